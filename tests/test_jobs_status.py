"""`digest status`: what the service holds and does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from digest.config import Settings
from digest.jobs.fetch import fetch_sources
from digest.jobs.status import service_status
from digest.store import Database
from digest.store.lock import SchedulerLock
from digest.store.papers import FetchRecord, record_fetch
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


def _fetch(source: str, at: datetime, error: str | None = None, papers: int = 0) -> FetchRecord:
    return FetchRecord(
        source=source,
        day=None,
        origin="https://example.org/listing",
        started_at=at,
        papers=papers,
        new=papers,
        updated=0,
        skipped=0,
        error=error,
    )


def test_a_failed_fetch_shows_when_the_source_last_worked(
    settings: Settings, store_database: Database
) -> None:
    database = store_database  # the last-success query runs on every backend
    with database.session() as session:
        record_fetch(session, _fetch("hf", NOW - timedelta(days=1), papers=1))
        record_fetch(session, _fetch("hf", NOW - timedelta(hours=2), error="hf: cannot fetch"))
        record_fetch(session, _fetch("hf", NOW - timedelta(hours=1), error="hf: timed out"))
        record_fetch(session, _fetch("arxiv", NOW - timedelta(hours=1), error="arxiv: 503"))
    lines = service_status(settings, database, now=NOW).lines()
    assert lines[2] == (
        "last fetch hf: 2026-06-12 08:00 UTC: failed: timed out; "
        "last success: 2026-06-11 09:00 UTC: 1 paper, 1 new, 0 updated"
    )
    assert lines[3] == "last fetch arxiv: 2026-06-12 08:00 UTC: failed: 503; last success: never"


def test_one_digest_due_is_singular(settings: Settings, database: Database) -> None:
    with database.session() as session:
        create_subscriber(
            session,
            "ada@example.org",
            "agents",
            send_time="10:00",
            timezone="UTC",
            now=NOW,
            status="active",
        )
    lines = service_status(settings, database, now=NOW).lines()
    assert lines[-1].endswith("; 1 digest due in the next 24 h, the first at 2026-06-12 10:00 UTC")
