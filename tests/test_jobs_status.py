"""`digest status`: what the service holds and does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from digest.config import Settings
from digest.jobs.fetch import fetch_sources
from digest.jobs.status import service_status
from digest.store import Database
from digest.store.lock import SchedulerLock
from digest.store.subscribers import create_subscriber

NOW = datetime(2026, 6, 12, 9, 0, tzinfo=UTC)
DATA = Path(__file__).parent / "data" / "sources"


def test_status_of_an_empty_service(settings: Settings, database: Database) -> None:
    lines = service_status(settings, database, now=NOW).lines()
    assert lines == [
        "subscribers: 0 pending, 0 active, 0 paused, 0 unsubscribed, 0 bounced",
        "papers stored: 0",
        "last fetch hf: never",
        "last fetch arxiv: never",
        "digests dated 2026-06-12: none yet",
        "scheduler: not running",
        "next: fetch every 60 min and arXiv at 01:30 UTC; 0 digests due in the next 24 h",
    ]


def test_status_with_subscribers_papers_and_a_scheduler(
    settings: Settings, database: Database
) -> None:
    fetch_sources(settings, database, file=DATA / "hf_api_daily_papers_2026-06-12.json", now=NOW)
    with database.session() as session:
        for n in range(3):
            create_subscriber(
                session,
                f"r{n}@example.org",
                "agents",
                send_time="10:00",
                timezone="UTC",
                now=NOW,
                status="active",
            )
        create_subscriber(
            session, "p@example.org", "agents", send_time="10:00", timezone="UTC", now=NOW
        )
    with SchedulerLock(database, settings.data_dir):
        status = service_status(settings, database, now=NOW)
    lines = status.lines()
    assert lines[0] == "subscribers: 1 pending, 3 active, 0 paused, 0 unsubscribed, 0 bounced"
    assert lines[1] == "papers stored: 30"
    assert lines[2] == "last fetch hf: 2026-06-12 09:00 UTC: 30 papers, 30 new, 0 updated"
    assert lines[5] == "scheduler: running"
    assert lines[6].endswith("3 digests due in the next 24 h, the first at 2026-06-12 10:00 UTC")
    assert status.next_digest_at == NOW + timedelta(hours=1)
