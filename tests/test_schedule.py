"""The scheduler's jobs, run against a local copy of the sites and a maildir."""

from __future__ import annotations

import mailbox
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import select
from werkzeug.wrappers import Response

from digest.config import Settings
from digest.schedule import PENDING_LIFETIME, Scheduler
from digest.store import Database, open_database
from digest.store.lock import LockHeld
from digest.store.models import OutboxMessageRow
from digest.store.outbox import Result, claim_due, queue_message, record_results
from digest.store.papers import count_papers, last_fetches
from digest.store.subscribers import count_by_status, create_subscriber
from tests.messages import build_digest
from tests.smtp_server import free_port

DATA = Path(__file__).parent / "data" / "sources"
FRIDAY = datetime(2026, 6, 12, 5, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def sites(httpserver: HTTPServer) -> HTTPServer:
    """Hugging Face and arXiv, as far as the saved pages go."""
    api = (DATA / "hf_api_daily_papers_2026-06-12.json").read_bytes()
    rss = (DATA / "arxiv_rss_2026-09-24_excerpt.xml").read_bytes()
    httpserver.expect_request(
        "/api/daily_papers", query_string="date=2026-06-12"
    ).respond_with_data(api, content_type="application/json")
    httpserver.expect_request(
        "/api/daily_papers", query_string="date=2026-06-11"
    ).respond_with_data(b"[]", content_type="application/json")
    httpserver.expect_request("/rss/cs.LG+cs.CL").respond_with_data(
        rss, content_type="application/rss+xml"
    )
    return httpserver


@pytest.fixture
def service(make_settings: Any, sites: HTTPServer) -> tuple[Settings, Database]:
    base = sites.url_for("/").rstrip("/")
    settings = make_settings(
        sources={
            "hf": {"base_url": base},
            "arxiv": {"feed_url": base, "categories": ["cs.LG", "cs.CL"], "min_interval": 0.0},
            "http": {"retries": 0},
        },
    )
    return settings, open_database(settings)


def test_fetch_job_stores_both_sources(service: tuple[Settings, Database], caplog) -> None:
    settings, database = service
    jobs = Scheduler(settings, database, Clock(FRIDAY))
    caplog.set_level("INFO", logger="digest.schedule")
    jobs.fetch()
    with database.session() as session:
        assert count_papers(session) == 30 + 2
        assert set(last_fetches(session)) == {"hf", "arxiv"}
    lines = [r.getMessage() for r in caplog.records if r.name == "digest.schedule"]
    assert "fetch hf 2026-06-12: 30 papers, 30 new, 0 updated, 0 skipped" in lines
    assert any(line.startswith("fetch arxiv 2026-09-24: 2 papers, 2 new") for line in lines)
    assert any(line.startswith("fetch hf 2026-06-11: ") for line in lines)


def test_an_unreachable_site_is_one_line_per_source(make_settings: Any, caplog) -> None:
    dead = "http://127.0.0.1:9"  # discard port: nothing listens
    settings = make_settings(
        sources={
            "hf": {"base_url": dead},
            "arxiv": {"feed_url": dead, "min_interval": 0.0},
            "http": {"retries": 1, "backoff": 0.0},
        }
    )
    jobs = Scheduler(settings, open_database(settings), Clock(FRIDAY))
    caplog.set_level("INFO")
    jobs.fetch()
    problems = [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")]
    assert [r.getMessage().split(":")[0] for r in problems] == [
        "fetch hf 2026-06-12",
        "fetch arxiv",
        "fetch hf 2026-06-11",
    ]
    assert all("cannot" in r.getMessage() and "\n" not in r.getMessage() for r in problems)


def test_digest_job_queues_and_delivers(service: tuple[Settings, Database], caplog) -> None:
    settings, database = service
    clock = Clock(FRIDAY)
    jobs = Scheduler(settings, database, clock)
    with database.session() as session:
        create_subscriber(
            session,
            "ada@example.org",
            "title:psychometric",
            send_time="06:00",
            timezone="UTC",
            now=FRIDAY - timedelta(days=1),
            status="active",
        )
    jobs.fetch()
    caplog.set_level("INFO", logger="digest.schedule")
    clock.now = FRIDAY + timedelta(hours=1, minutes=1)
    jobs.digests()
    box = mailbox.Maildir(settings.maildir, create=False)
    assert len(box) == 1
    message = next(iter(box))
    assert message["To"] == "ada@example.org"
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("digests due 1, queued 1") for line in lines)
    assert any(line.startswith("send ") and "1 sent" in line for line in lines)


def test_cleanup_forgets_unconfirmed_signups_after_seven_days(
    service: tuple[Settings, Database],
) -> None:
    settings, database = service
    with database.session() as session:
        for days, address in ((8, "old@example.org"), (6, "new@example.org")):
            create_subscriber(
                session,
                address,
                "agents",
                send_time="08:00",
                timezone="UTC",
                now=FRIDAY - timedelta(days=days),
            )
        create_subscriber(
            session,
            "kept@example.org",
            "agents",
            send_time="08:00",
            timezone="UTC",
            now=FRIDAY - timedelta(days=30),
            status="active",
        )
    Scheduler(settings, database, Clock(FRIDAY)).cleanup()
    with database.session() as session:
        counts = count_by_status(session)
    assert (counts["pending"], counts["active"]) == (1, 1)
    assert timedelta(days=7) == PENDING_LIFETIME


def test_one_scheduler_per_store(service: tuple[Settings, Database]) -> None:
    settings, database = service
    first = Scheduler(settings, database, Clock(FRIDAY))
    first.start()
    try:
        with pytest.raises(LockHeld, match="another scheduler is already running"):
            Scheduler(settings, database, Clock(FRIDAY)).start()
    finally:
        first.stop()
    second = Scheduler(settings, database, Clock(FRIDAY))
    second.start()
    second.stop()


def test_started_scheduler_fetches_at_once_and_stops_cleanly(
    service: tuple[Settings, Database],
) -> None:
    settings, database = service
    jobs = Scheduler(settings, database, Clock(FRIDAY))
    jobs.start()
    try:
        assert set(jobs.next_runs()) == {"fetch", "fetch-arxiv", "digests", "learn", "cleanup"}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with database.session() as session:
                if count_papers(session) == 32:
                    break
            time.sleep(0.05)
        else:
            pytest.fail("the first fetch did not happen")
    finally:
        jobs.stop()
    assert jobs.next_runs() == {} or not jobs.started


def test_stop_waits_for_the_job_at_work(service: tuple[Settings, Database], sites) -> None:
    settings, database = service
    arrived, release = threading.Event(), threading.Event()
    released_at: list[float] = []
    stopped_at: list[float] = []

    def slow(request: Any) -> Response:
        arrived.set()
        release.wait(10)
        return Response(b"[]", content_type="application/json")

    def stop() -> None:
        jobs.stop()
        stopped_at.append(time.monotonic())

    sites.clear()
    sites.expect_request("/api/daily_papers").respond_with_handler(slow)
    sites.expect_request("/rss/cs.LG+cs.CL").respond_with_data(b"")
    jobs = Scheduler(settings, database, Clock(FRIDAY))
    jobs.start()
    assert arrived.wait(10), "the fetch at start never reached the site"
    stopper = threading.Thread(target=stop)
    stopper.start()
    stopper.join(0.2)  # give stop() a moment to (wrongly) return early
    released_at.append(time.monotonic())
    release.set()
    stopper.join(10)
    assert not stopper.is_alive()
    # stop() returned only once the fetch in flight was let go, however slow the machine.
    assert stopped_at[0] >= released_at[0]
    with database.session() as session:
        assert "hf" in last_fetches(session)  # the fetch in flight was recorded


def test_digest_job_leaves_delivery_to_a_busy_sender(
    service: tuple[Settings, Database], caplog
) -> None:
    from digest.send.delivery import _send_lock

    settings, database = service
    jobs = Scheduler(settings, database, Clock(FRIDAY))
    caplog.set_level("INFO", logger="digest.schedule")
    with _send_lock(settings.data_dir):
        jobs.digests()
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("send: another `digest send` is already delivering") for m in messages)
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def test_cleanup_compresses_the_messages_sent_since_and_keeps_those_waiting(
    service: tuple[Settings, Database],
) -> None:
    settings, database = service
    with database.session() as session:
        reader = create_subscriber(
            session, "ada@example.org", "agents", send_time="08:00", timezone="UTC",
            now=FRIDAY, status="active",
        )  # fmt: skip
        ids = [
            queue_message(
                session,
                subscriber_id=reader.id,
                kind="confirm",
                digest_date=None,
                message=build_digest(reader.id, reader.email, FRIDAY.date()),
                now=FRIDAY,
            )
            for _ in range(2)
        ]
        (job,) = claim_due(session, now=FRIDAY, limit=1, claimer="h:1:z")
        record_results(session, [Result(job.id, reader.id, "sent")], now=FRIDAY, bounce_threshold=3)
    Scheduler(settings, database, Clock(FRIDAY + timedelta(hours=1))).cleanup()
    with database.session() as session:
        rows = session.execute(select(OutboxMessageRow.outbox_id, OutboxMessageRow.data)).all()
        kept = {row_id: data for row_id, data in rows}
    waiting = next(row_id for row_id in ids if row_id != job.id)
    assert kept[job.id][:1] == b"Z" and kept[waiting][:1] == b"W"


def test_with_task_workers_a_broker_out_of_reach_is_one_line_per_check(
    make_settings: Any, caplog
) -> None:
    """With [queue] broker, the digest check only hands work to the task workers; a
    broker that does not answer is one warning line, and the next check tries again."""
    settings = make_settings(queue={"broker": f"redis://127.0.0.1:{free_port()}/0"})
    database = open_database(settings)
    with database.session() as session:
        create_subscriber(
            session, "ada@example.org", "agents", send_time="08:00", timezone="UTC",
            now=datetime(2026, 6, 10, tzinfo=UTC), status="active",
        )  # fmt: skip
    caplog.set_level("INFO")
    scheduler = Scheduler(settings, database, lambda: datetime(2026, 6, 12, 9, tzinfo=UTC))
    scheduler.digests()
    problems = [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")]
    assert [r.getMessage().split(" (")[0] for r in problems] == ["tasks: broker out of reach"]
    assert problems[0].exc_info is None
    with database.session() as session:  # no digest made here: the workers make them
        assert session.scalars(select(OutboxMessageRow)).all() == []
    database.dispose()


def test_learn_job_fits_the_text_model_when_due(
    make_settings: Any, real_papers: Any, caplog: Any
) -> None:
    from digest.learn.models import current_text_model
    from digest.store.papers import save_papers

    settings = make_settings(learn={"refit_days": 7})
    database = open_database(settings)
    jobs = Scheduler(settings, database, Clock(FRIDAY))
    jobs.learn()  # no papers yet: nothing to learn words from
    with database.session() as session:
        assert current_text_model(session) is None
        save_papers(session, real_papers, FRIDAY)
    with caplog.at_level("INFO"):
        jobs.learn()
    with database.session() as session:
        first = current_text_model(session)
    assert first is not None
    assert "text model 1 fitted on 188 papers" in caplog.text
    Scheduler(settings, database, Clock(FRIDAY + timedelta(days=6))).learn()  # not yet due
    Scheduler(settings, database, Clock(FRIDAY + timedelta(days=7))).learn()
    with database.session() as session:
        again = current_text_model(session)
    assert again is not None and again.version == first.version + 1
    database.dispose()
