"""Transactional mail: confirmation and manage-link emails, the courier, the sample."""

from __future__ import annotations

import email
import json
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path
from typing import Any

import pytest

from digest.config import Settings
from digest.jobs import mail as mail_job
from digest.jobs.mail import (
    SAMPLE_RENDERS,
    Courier,
    SampleBusy,
    sample_digest_html,
    send_transactional,
)
from digest.render import DigestRenderer
from digest.sources import hf
from digest.store import Database, open_database
from digest.store.papers import save_papers
from digest.store.subscribers import create_subscriber, get_subscriber
from digest.tokens import read_token, secret_key, token_matches
from tests.outbox_rows import get_entry
from tests.smtp_server import free_port
from tests.tasks_support import running_redis

NOW = datetime(2026, 6, 12, 9, 0, tzinfo=UTC)
DATA = Path(__file__).parent / "data" / "sources"


@pytest.fixture
def mailer(make_settings, smtp_server) -> tuple[Settings, Database]:
    settings = make_settings(
        smtp={"host": "127.0.0.1", "port": smtp_server.port, "security": "none"},
        mail={"from_address": "digest@lab.example.org", "from_name": "Lab digest"},
        service={"base_url": "https://digest.lab.example.org"},
    )
    return settings, open_database(settings)


def pending(database: Database, email_address: str = "ada@example.org") -> int:
    with database.session() as session:
        return create_subscriber(
            session,
            email_address,
            "diffusion\nrlhf",
            send_time="08:00",
            timezone="UTC",
            now=NOW,
        ).id


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_confirmation_is_queued_and_delivered_at_once(mailer, smtp_server) -> None:
    settings, database = mailer
    subscriber_id = pending(database)
    outbox_id = send_transactional(settings, database, subscriber_id, "confirm", now=NOW)
    courier = Courier(settings, database, lambda: NOW)
    try:
        courier.kick()
        wait_for(lambda: len(smtp_server.received) == 1)
    finally:
        courier.stop()
    received = smtp_server.received[0]
    assert received.recipients == ("ada@example.org",)
    assert received.sender == "confirm@lab.example.org"
    message = email.message_from_bytes(received.data, policy=policy.default)
    assert message["From"].addresses[0].addr_spec == "confirm@lab.example.org"
    assert "List-Unsubscribe" not in message
    text = message.get_body(("plain",)).get_content()
    link = next(w for w in text.split() if w.startswith("https://digest.lab.example.org/"))
    purpose, token = link.removeprefix("https://digest.lab.example.org/").split("/")
    assert purpose == "confirm"
    subscriber, tag = read_token(secret_key(settings), "confirm", token)
    assert subscriber == subscriber_id and token_matches(tag, "ada@example.org")
    with database.session() as session:
        entry = get_entry(session, outbox_id)
    assert entry is not None and entry.state == "sent" and entry.kind == "confirm"


def test_manage_link_email_for_a_known_address(mailer, smtp_server) -> None:
    settings, database = mailer
    subscriber_id = pending(database)
    send_transactional(settings, database, subscriber_id, "manage", now=NOW)
    courier = Courier(settings, database, lambda: NOW)
    try:
        courier.kick()
        wait_for(lambda: len(smtp_server.received) == 1)
    finally:
        courier.stop()
    text = email.message_from_bytes(smtp_server.received[0].data, policy=policy.default)
    body = text.get_body(("plain",)).get_content()
    assert "https://digest.lab.example.org/manage/" in body


def test_each_confirmation_is_its_own_message(mailer) -> None:
    settings, database = mailer
    subscriber_id = pending(database)
    first = send_transactional(settings, database, subscriber_id, "confirm", now=NOW)
    later = NOW + timedelta(minutes=11)
    second = send_transactional(settings, database, subscriber_id, "confirm", now=later)
    assert first != second


def test_unknown_kind_and_subscriber(mailer) -> None:
    settings, database = mailer
    with pytest.raises(ValueError, match="unknown transactional"):
        send_transactional(settings, database, 1, "digest", now=NOW)
    with pytest.raises(LookupError):
        send_transactional(settings, database, 999, "confirm", now=NOW)


def test_courier_waits_while_another_sender_works(
    mailer, smtp_server, caplog: pytest.LogCaptureFixture
) -> None:
    from digest.send.delivery import _send_lock

    settings, database = mailer
    subscriber_id = pending(database)
    send_transactional(settings, database, subscriber_id, "confirm", now=NOW)
    Courier.RETRY_AFTER = 0.2
    courier = Courier(settings, database, lambda: NOW)
    caplog.set_level("INFO", logger="digest.jobs.mail")

    def busy_tries() -> int:
        return sum("trying again" in record.getMessage() for record in caplog.records)

    try:
        with _send_lock(settings.data_dir):
            courier.kick()
            # Found the lock taken twice (so it looked again after waiting): still nothing.
            wait_for(lambda: busy_tries() >= 2)
            assert smtp_server.received == []
        wait_for(lambda: len(smtp_server.received) == 1)
    finally:
        courier.stop()
        Courier.RETRY_AFTER = 2.0


def _sample_reader(database: Database) -> Any:
    """Ada, reading psychometrics, with the listing of 12 June seen two days before NOW."""
    papers = hf.parse_api((DATA / "hf_api_daily_papers_2026-06-12.json").read_bytes(), "a").papers
    with database.session() as session:
        save_papers(session, papers, NOW - timedelta(days=2))
        created = create_subscriber(
            session,
            "ada@example.org",
            "title:psychometric",
            send_time="08:00",
            timezone="UTC",
            now=NOW,
            status="active",
        )
        return get_subscriber(session, created.id)


def test_sample_is_the_digest_of_the_last_week(settings: Settings, database: Database) -> None:
    subscriber = _sample_reader(database)
    assert subscriber is not None
    html = sample_digest_html(settings, database, subscriber, now=NOW)
    papers = hf.parse_api((DATA / "hf_api_daily_papers_2026-06-12.json").read_bytes(), "a").papers
    wanted = next(p for p in papers if "psychometric" in p.title.lower())
    assert "<html" in html.lower() and "Psychometric" in html
    assert wanted.id in html
    # Older than a week: not in the sample.
    later = sample_digest_html(settings, database, subscriber, now=NOW + timedelta(days=8))
    assert wanted.id not in later


# --- samples at once (issue 14): at most SAMPLE_RENDERS per process ---------------------


class _HeldRenderer(DigestRenderer):
    """The real renderer, held inside `render_digest` until the test lets it go."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, secret_key(settings))
        self.inside = threading.Semaphore(0)
        self.go = threading.Event()

    def render_digest(self, *args: Any, **kwargs: Any) -> Any:
        self.inside.release()
        assert self.go.wait(30)
        return super().render_digest(*args, **kwargs)


def test_at_most_two_samples_render_at_once(settings: Settings, database: Database) -> None:
    reader = _sample_reader(database)
    renderer = _HeldRenderer(settings)
    results: list[str] = []

    def make_one() -> None:
        results.append(sample_digest_html(settings, database, reader, now=NOW, renderer=renderer))

    threads = [threading.Thread(target=make_one) for _ in range(SAMPLE_RENDERS)]
    for thread in threads:
        thread.start()
    for _ in threads:  # both are rendering now
        assert renderer.inside.acquire(timeout=30)
    with pytest.raises(SampleBusy, match="2 samples are being made"):
        sample_digest_html(settings, database, reader, now=NOW)
    renderer.go.set()
    for thread in threads:
        thread.join(30)
    assert len(results) == SAMPLE_RENDERS and all("Psychometric" in html for html in results)
    # Their places are free again, and so is a failed sample's.
    with pytest.raises(LookupError):
        sample_digest_html(settings, database, replace(reader, timezone="Nowhere/Else"), now=NOW)
    for _ in range(SAMPLE_RENDERS + 1):
        assert "Psychometric" in sample_digest_html(settings, database, reader, now=NOW)


def test_a_busy_sample_is_a_503_in_the_manage_page_frame(make_site: Any) -> None:
    site = make_site()
    reader = _sample_reader(site.database)
    sample = f"/manage/{site.token('manage', reader)}/sample"
    assert site.get(sample).status_code == 200
    # As if two samples were rendering: the third is turned away at once.
    held = [mail_job._sample_slots.acquire(blocking=False) for _ in range(SAMPLE_RENDERS)]
    try:
        assert all(held)
        busy = site.get(sample)
    finally:
        for _ in held:
            mail_job._sample_slots.release()
    assert busy.status_code == 503
    assert "Busy making samples" in busy.get_data(as_text=True)
    assert busy.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert "frame-ancestors 'self'" in busy.headers["Content-Security-Policy"]
    assert site.get(sample).status_code == 200


def test_with_task_workers_the_courier_asks_a_worker_to_deliver(
    make_settings, smtp_server, tmp_path
) -> None:
    """With [queue] broker, a sign-up's confirmation is a send chunk for a task worker:
    the web process sends nothing itself."""
    with running_redis(tmp_path / "redis") as redis_server:
        settings = make_settings(
            smtp={"host": "127.0.0.1", "port": smtp_server.port, "security": "none"},
            mail={"from_address": "digest@lab.example.org"},
            queue={"broker": redis_server.url},
        )
        database = open_database(settings)
        subscriber_id = pending(database)
        outbox_id = send_transactional(settings, database, subscriber_id, "confirm", now=NOW)
        courier = Courier(settings, database, lambda: NOW)
        try:
            courier.kick()
            wait_for(lambda: redis_server.client().llen("send") == 1)
        finally:
            courier.stop()
        message = json.loads(redis_server.client().lindex("send", 0))
        assert message["headers"]["task"] == "digest.send"
        assert smtp_server.received == []
        with database.session() as session:
            entry = get_entry(session, outbox_id)
        assert entry is not None and entry.state == "queued"  # a worker's to deliver


def test_with_the_broker_down_the_courier_says_so_and_leaves_it_to_the_scheduler(
    make_settings, smtp_server, caplog
) -> None:
    settings = make_settings(
        smtp={"host": "127.0.0.1", "port": smtp_server.port, "security": "none"},
        queue={"broker": f"redis://127.0.0.1:{free_port()}/0"},  # nothing listens there
    )
    database = open_database(settings)
    send_transactional(settings, database, pending(database), "confirm", now=NOW)
    courier = Courier(settings, database, lambda: NOW)
    try:
        courier.kick()
        wait_for(lambda: "cannot ask a task worker to deliver" in caplog.text, timeout=30)
    finally:
        courier.stop()
    assert smtp_server.received == []
