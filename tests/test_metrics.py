"""/metrics: the figures read from a real store, served over real HTTP on loopback, off by
default, on an address of its own or on the web app's port only when asked."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert

from digest.config import Settings, load_settings
from digest.errors import ConfigError, DigestError
from digest.metrics import (
    DIGEST_DAYS,
    LATENCY_BUCKETS,
    SEND_LATENCY,
    Exporter,
    StoreCollector,
    make_registry,
    serve_metrics,
)
from digest.paper import Paper
from digest.send import send_due
from digest.store import Database
from digest.store.models import OutboxRow
from digest.store.outbox import STATES, queue_message
from digest.store.papers import FetchRecord, record_fetch, save_papers
from digest.store.subscribers import create_subscriber
from digest.web import create_app
from tests.messages import build_digest
from tests.smtp_server import free_port
from tests.tasks_support import running_redis

ROOT = Path(__file__).parents[1]
NOW = datetime(2026, 6, 12, 12, 0, tzinfo=UTC)
TODAY = NOW.date()
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape, by name and labels, read with prometheus_client's parser."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def scrape_text(settings: Settings, database: Database, now: datetime = NOW) -> str:
    answer = Exporter(make_registry(settings, database, lambda: now), reuse=0).answer()
    assert answer.status == 200, answer.body
    return answer.body.decode()


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def add_readers(database: Database, counts: dict[str, int]) -> list[int]:
    """Readers in each status (reader<n>@example.org); their ids, in order."""
    ids = []
    with database.session() as session:
        for status, count in counts.items():
            for _ in range(count):
                reader = create_subscriber(
                    session,
                    f"reader{len(ids)}@example.org",
                    "diffusion",
                    send_time="08:00",
                    timezone="UTC",
                    now=NOW - timedelta(days=30),
                    status=status,
                )
                ids.append(reader.id)
    return ids


def add_outbox_row(
    database: Database,
    subscriber_id: int,
    *,
    kind: str = "digest",
    day: date | None,
    state: str,
    queued_at: datetime,
    next_attempt_at: datetime | None = None,
) -> None:
    """A row as the service leaves it: queued at `queued_at`, next attempt then or later."""
    with database.session() as session:
        session.execute(
            insert(OutboxRow).values(
                subscriber_id=subscriber_id,
                kind=kind,
                digest_date=day if kind == "digest" else None,
                state=state,
                sender="digest@example.org",
                recipient=f"reader{subscriber_id}@example.org",
                message_id=f"<{kind}.{day}.{subscriber_id}.{state}@example.org>",
                size=1000,
                attempts=0 if state == "queued" else 1,
                queued_at=queued_at,
                next_attempt_at=next_attempt_at or queued_at,
                sent_at=queued_at + timedelta(seconds=30) if state == "sent" else None,
            )
        )


def fetch(source: str, started_at: datetime, error: str | None = None) -> FetchRecord:
    return FetchRecord(
        source, started_at.date(), "https://example.org", started_at, 3, 1, 2, 0, error
    )


# --- the figures ------------------------------------------------------------------------


@pytest.fixture
def filled(store_database: Database) -> Database:
    """A store with readers in every status, papers, fetches, and outbox rows of several
    days and states (see the expected figures in the tests below)."""
    database = store_database
    ids = add_readers(
        database, {"pending": 1, "active": 4, "paused": 2, "unsubscribed": 1, "bounced": 1}
    )
    with database.session() as session:
        save_papers(
            session,
            [Paper(id=f"2606.0000{n}", title=f"Paper {n}", abstract="About.") for n in range(5)],
            NOW - timedelta(hours=3),
        )
        record_fetch(session, fetch("hf", NOW - timedelta(hours=5)))
        record_fetch(session, fetch("hf", NOW - timedelta(hours=2), error="hf: cannot fetch"))
        record_fetch(session, fetch("arxiv", NOW - timedelta(hours=9), error="arxiv: down"))
        record_fetch(session, fetch("arxiv", NOW - timedelta(hours=4)))
    yesterday, week_ago = TODAY - timedelta(days=1), TODAY - timedelta(days=DIGEST_DAYS)
    today_states = ["queued", "queued", "sending", "retrying", "sent", "sent", "sent", "failed"]
    for reader, state in zip(ids, today_states, strict=False):
        retry = at(TODAY, 11) if state == "retrying" else None
        add_outbox_row(
            database, reader, day=TODAY, state=state, queued_at=at(TODAY, 8), next_attempt_at=retry
        )
    for reader, state in zip(ids, ["sent", "sent", "unknown", "skipped"], strict=False):
        add_outbox_row(database, reader, day=yesterday, state=state, queued_at=at(yesterday, 8))
    first_day = TODAY - timedelta(days=DIGEST_DAYS - 1)
    add_outbox_row(database, ids[0], day=first_day, state="sent", queued_at=at(first_day, 8))
    # Dated the day before the window: never exported, however many.
    for reader in ids[:5]:
        add_outbox_row(database, reader, day=week_ago, state="sent", queued_at=at(week_ago, 8))
    # A reader in UTC+13 already has tomorrow's digest, queued at 08:00 their time.
    tomorrow = TODAY + timedelta(days=1)
    add_outbox_row(database, ids[1], day=tomorrow, state="queued", queued_at=at(TODAY, 19))
    # Confirmations: one due since 07:30 (the oldest due row), one retrying later on.
    confirm = {"kind": "confirm", "day": None}
    add_outbox_row(database, ids[0], **confirm, state="queued", queued_at=at(TODAY, 7, 30))
    add_outbox_row(
        database,
        ids[2],
        **confirm,
        state="retrying",
        queued_at=at(TODAY, 6),
        next_attempt_at=at(TODAY, 13),
    )
    return database


def test_readers_papers_and_fetches_are_exact(settings: Settings, filled: Database) -> None:
    samples = parse(scrape_text(settings, filled))
    readers = {
        status: value(samples, "digest_readers", status=status)
        for status in ("pending", "active", "paused", "unsubscribed", "bounced")
    }
    assert readers == {"pending": 1, "active": 4, "paused": 2, "unsubscribed": 1, "bounced": 1}
    assert value(samples, "digest_papers_stored") == 5
    # hf: the latest fetch failed; its last success was three hours before.
    hf_last, hf_good = NOW - timedelta(hours=2), NOW - timedelta(hours=5)
    assert value(samples, "digest_last_fetch_timestamp_seconds", source="hf") == hf_last.timestamp()
    assert value(samples, "digest_last_fetch_success", source="hf") == 0
    assert (
        value(samples, "digest_last_successful_fetch_timestamp_seconds", source="hf")
        == hf_good.timestamp()
    )
    # arxiv: failed, then worked.
    arxiv = (NOW - timedelta(hours=4)).timestamp()
    assert value(samples, "digest_last_fetch_timestamp_seconds", source="arxiv") == arxiv
    assert value(samples, "digest_last_fetch_success", source="arxiv") == 1
    assert value(samples, "digest_last_successful_fetch_timestamp_seconds", source="arxiv") == arxiv


def test_digests_by_day_and_state_over_the_last_days_only(
    settings: Settings, filled: Database
) -> None:
    samples = parse(scrape_text(settings, filled))
    digests = {
        (dict(labels)["day"], dict(labels)["state"]): count
        for (name, labels), count in samples.items()
        if name == "digest_digests"
    }
    first_day = TODAY - timedelta(days=DIGEST_DAYS - 1)
    days = [(first_day + timedelta(days=n)).isoformat() for n in range(DIGEST_DAYS + 1)]
    # Every day of the window and every state, and tomorrow's (a reader east of UTC);
    # not the day before the window, which holds five rows.
    assert sorted({day for day, _ in digests}) == days
    assert set(digests) == {(day, state) for day in days for state in STATES}
    nonzero = {key: count for key, count in digests.items() if count}
    today, yesterday = TODAY.isoformat(), (TODAY - timedelta(days=1)).isoformat()
    assert nonzero == {
        (today, "queued"): 2,
        (today, "sending"): 1,
        (today, "retrying"): 1,
        (today, "sent"): 3,
        (today, "failed"): 1,
        (yesterday, "sent"): 2,
        (yesterday, "unknown"): 1,
        (yesterday, "skipped"): 1,
        (first_day.isoformat(), "sent"): 1,
        ((TODAY + timedelta(days=1)).isoformat(), "queued"): 1,
    }


def test_outbox_depth_and_how_late_the_oldest_due_row_is(
    settings: Settings, filled: Database
) -> None:
    samples = parse(scrape_text(settings, filled))
    depth = {
        (dict(labels)["kind"], dict(labels)["state"]): count
        for (name, labels), count in samples.items()
        if name == "digest_outbox_depth"
    }
    assert depth == {
        ("digest", "queued"): 3,  # today's two and tomorrow's
        ("digest", "retrying"): 1,
        ("digest", "sending"): 1,
        ("confirm", "queued"): 1,
        ("confirm", "retrying"): 1,
        ("confirm", "sending"): 0,
        ("manage", "queued"): 0,
        ("manage", "retrying"): 0,
        ("manage", "sending"): 0,
    }
    # Due since 07:30 (the confirmation), at 12:00: 4.5 hours late. The retrying one due
    # at 13:00 is not due yet.
    assert value(samples, "digest_outbox_oldest_due_age_seconds") == 4.5 * 3600
    later = parse(scrape_text(settings, filled, now=NOW + timedelta(hours=2)))
    assert value(later, "digest_outbox_oldest_due_age_seconds") == 6.5 * 3600


def test_an_empty_store_gives_zeros_and_never_for_the_sources(
    settings: Settings, database: Database
) -> None:
    samples = parse(scrape_text(settings, database))
    assert value(samples, "digest_readers", status="active") == 0
    assert value(samples, "digest_papers_stored") == 0
    assert value(samples, "digest_last_successful_fetch_timestamp_seconds", source="hf") == 0
    assert value(samples, "digest_outbox_oldest_due_age_seconds") == 0
    assert value(samples, "digest_digests", day=TODAY.isoformat(), state="sent") == 0


def test_only_enabled_sources_are_exported(make_settings: Any, database: Database) -> None:
    settings = make_settings(sources={"hf": {"enabled": False}})
    samples = parse(scrape_text(settings, database))
    sources = {dict(labels).get("source") for (name, labels) in samples if "fetch" in name}
    assert sources == {"arxiv"}


def test_nothing_about_any_reader_is_exported(settings: Settings, filled: Database) -> None:
    text = scrape_text(settings, filled)
    for private in ("@", "example.org", "reader0", "diffusion", "Paper 1", "cannot fetch"):
        assert private not in text
    labels = {name for _, sample_labels in parse(text) for name, _ in sample_labels}
    assert labels == {"status", "source", "day", "state", "kind", "le"}


def latency(kind: str) -> tuple[float, float]:
    """(count, sum) of the process's send latency histogram for `kind`."""
    samples = {
        sample.name: sample.value
        for metric in SEND_LATENCY.collect()
        for sample in metric.samples
        if sample.labels.get("kind") == kind
    }
    return samples["digest_send_latency_seconds_count"], samples["digest_send_latency_seconds_sum"]


def test_send_latency_counts_each_message_this_process_sends(
    settings: Settings, store_database: Database
) -> None:
    (reader,) = add_readers(store_database, {"active": 1})
    queued = NOW - timedelta(seconds=90)
    with store_database.session() as session:
        message = build_digest(reader, "reader0@example.org", TODAY, papers=2)
        queue_message(
            session,
            subscriber_id=reader,
            kind="digest",
            digest_date=TODAY,
            message=message,
            now=queued,
        )
    count, total = latency("digest")
    buckets = parse(scrape_text(settings, store_database))
    report = send_due(settings, store_database, now=NOW)  # to the maildir
    assert report.sent == 1
    after_count, after_total = latency("digest")
    assert after_count == count + 1
    assert 90 <= after_total - total < 100  # the run's own seconds on top
    # The registry made for /metrics holds the same histogram.
    samples = parse(scrape_text(settings, store_database))
    assert value(samples, "digest_send_latency_seconds_count", kind="digest") == after_count
    for le, more in (("60.0", 0), ("120.0", 1), ("+Inf", 1)):
        name, labels = "digest_send_latency_seconds_bucket", {"kind": "digest", "le": le}
        assert value(samples, name, **labels) == value(buckets, name, **labels) + more


# --- the metrics server -----------------------------------------------------------------


@pytest.fixture
def metrics_settings(make_settings: Any) -> Settings:
    return make_settings(web={"metrics": True, "metrics_listen": f"127.0.0.1:{free_port()}"})


@pytest.fixture
def metrics_server(metrics_settings: Settings, database: Database) -> Iterator[Any]:
    server = serve_metrics(metrics_settings, database, lambda: NOW)
    yield server
    server.stop()


def test_the_server_answers_get_in_the_text_format(
    metrics_server: Any, metrics_settings: Settings
) -> None:
    url = f"http://{metrics_settings.web.metrics_listen}/metrics"
    assert metrics_server.url == url
    response = httpx.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert value(parse(response.text), "digest_readers", status="active") == 0
    head = httpx.head(url)
    assert head.status_code == 200 and head.content == b""


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_the_server_refuses_other_methods(metrics_server: Any, method: str) -> None:
    response = httpx.request(method, metrics_server.url, content=b"x=1")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


def test_the_server_answers_only_at_metrics(metrics_server: Any) -> None:
    base = metrics_server.url.removesuffix("/metrics")
    for path in ("/", "/healthz", "/metrics/", "/metrics.txt", "/signup"):
        assert httpx.get(base + path).status_code == 404


def test_a_flood_of_scrapes_reads_the_store_once_a_second(
    metrics_server: Any, settings: Settings, database: Database
) -> None:
    # Through the real server: every one of 300 concurrent scrapes gets the same figures.
    def get(_: int) -> tuple[int, str]:
        response = httpx.get(metrics_server.url, timeout=30)
        return response.status_code, response.text

    with ThreadPoolExecutor(max_workers=64) as pool:
        answers = list(pool.map(get, range(300)))
    assert {status for status, _ in answers} == {200}
    assert all("digest_readers" in text for _, text in answers)
    # And the exporter behind it: one read of the store for all of them.
    reads = []

    def counted(scrape: Any) -> Iterator[Any]:
        reads.append(1)
        time.sleep(0.05)  # long enough for the others to queue behind it
        return iter(())

    registry = make_registry(settings, database, lambda: NOW)
    registry.register(StoreCollector(settings, database, lambda: NOW, families=[counted]))
    exporter = Exporter(registry)
    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(lambda _: exporter.answer(), range(200)))
    assert len(reads) == 1 and all(result is results[0] for result in results)


def test_an_unreachable_database_answers_503_and_the_server_goes_on(
    make_settings: Any, tmp_path: Path
) -> None:
    settings = make_settings(web={"metrics": True, "metrics_listen": f"127.0.0.1:{free_port()}"})
    gone = Database(f"sqlite:///{tmp_path / 'no such folder' / 'digest.db'}")
    server = serve_metrics(settings, gone, lambda: NOW)
    try:
        for _ in range(2):
            response = httpx.get(server.url)
            assert response.status_code == 503
            assert response.text == (
                "metrics unavailable: cannot read the database (OperationalError)\n"
            )
            time.sleep(1.1)  # past the reuse of an answer: the second one tries again
        assert httpx.post(server.url).status_code == 405  # still serving
    finally:
        server.stop()
        gone.dispose()


def test_stop_closes_open_connections_and_frees_the_address(
    metrics_settings: Settings, database: Database
) -> None:
    server = serve_metrics(metrics_settings, database, lambda: NOW)
    with httpx.Client() as client:  # keeps its connection open (keep-alive)
        assert client.get(server.url).status_code == 200
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 3
        with pytest.raises(httpx.TransportError):
            client.get(server.url)
    host, _, port = metrics_settings.web.metrics_listen.rpartition(":")
    assert not listening(int(port))
    with socket.socket() as probe:  # free again for the next start (as waitress binds it)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, int(port)))


def test_an_address_in_use_is_a_clear_error(make_settings: Any, database: Database) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        settings = make_settings(web={"metrics": True, "metrics_listen": address})
        expected = rf"cannot listen on {address} for /metrics: .*set \[web\] metrics_listen"
        with pytest.raises(DigestError, match=expected):
            serve_metrics(settings, database, lambda: NOW)


def test_ipv6_loopback(make_settings: Any, database: Database) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
            port = probe.getsockname()[1]
    except OSError:
        pytest.skip("no IPv6 loopback here")
    settings = make_settings(web={"metrics": True, "metrics_listen": f"[::1]:{port}"})
    server = serve_metrics(settings, database, lambda: NOW)
    try:
        assert server.url == f"http://[::1]:{port}/metrics"
        assert httpx.get(server.url).status_code == 200
    finally:
        server.stop()


# --- the web app ------------------------------------------------------------------------


def web_client(settings: Settings, database: Database) -> Any:
    app = create_app(settings, database=database, clock=lambda: NOW)
    app.extensions["digest"].courier = None
    return app.test_client()


def test_the_web_app_has_no_metrics_by_default(settings: Settings, database: Database) -> None:
    client = web_client(settings, database)
    assert client.get("/metrics").status_code == 404
    assert client.get("/healthz").get_json() == {"status": "ok", "database": "ok"}


def test_the_web_app_has_no_metrics_when_they_have_their_own_address(
    metrics_settings: Settings, database: Database
) -> None:
    assert web_client(metrics_settings, database).get("/metrics").status_code == 404


def test_the_web_app_answers_metrics_when_asked(make_settings: Any, database: Database) -> None:
    settings = make_settings(web={"metrics": True, "metrics_listen": "web"})
    client = web_client(settings, database)
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert value(parse(response.get_data(as_text=True)), "digest_papers_stored") == 0
    assert client.post("/metrics").status_code == 405
    assert client.get("/healthz").get_json() == {"status": "ok", "database": "ok"}


def test_the_web_app_answers_503_when_the_database_is_unreachable(
    make_settings: Any, database: Database, tmp_path: Path
) -> None:
    settings = make_settings(web={"metrics": True, "metrics_listen": "web"})
    client = web_client(settings, database)
    database.dispose()
    (tmp_path / "data" / "digest.db").unlink()  # opened again, a new file without tables
    response = client.get("/metrics")
    assert response.status_code == 503
    assert response.get_data(as_text=True).startswith("metrics unavailable: cannot read the")


# --- settings ---------------------------------------------------------------------------


def test_metrics_are_off_by_default() -> None:
    web = load_settings(environ={}).web
    assert (web.metrics, web.metrics_listen) == (False, "127.0.0.1:9108")


GOOD = ("127.0.0.1:9108", "0.0.0.0:9108", "[::1]:9108", "[::]:9108", "localhost:0", "web")
BAD = ("9108", "localhost", "127.0.0.1:", ":9108", "127.0.0.1:65536", "[::1", "[zz::1]:9108")
BAD += ("::1:9108", "", " 127.0.0.1:9108", "http://127.0.0.1:9108", "Web", "127.0.0.1:9/x")


@pytest.mark.parametrize("address", GOOD)
def test_good_addresses(address: str) -> None:
    web = load_settings(environ={}, overrides={"web": {"metrics_listen": address}}).web
    assert web.metrics_listen == address


@pytest.mark.parametrize("address", BAD)
def test_bad_addresses_name_the_key(address: str) -> None:
    with pytest.raises(ConfigError, match=r"^overrides: \[web\] metrics_listen must be an address"):
        load_settings(environ={}, overrides={"web": {"metrics_listen": address}})


def test_settings_from_the_file_and_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[web]\nmetrics = "yes"\n')
    with pytest.raises(ConfigError, match=r"config.toml: \[web\] metrics must be true or false"):
        load_settings(config, environ={})
    config.write_text('[web]\nmetrics = true\nmetrics_listen = "127.0.0.1:9"\n')
    web = load_settings(config, environ={"DIGEST_WEB_METRICS_LISTEN": "[::1]:9109"}).web
    assert (web.metrics, web.metrics_listen) == (True, "[::1]:9109")
    with pytest.raises(ConfigError, match=r"environment DIGEST_WEB_METRICS: must be true or"):
        load_settings(config, environ={"DIGEST_WEB_METRICS": "sometimes"})


def test_the_web_apps_own_address_is_refused() -> None:
    overrides = {"web": {"metrics": True, "port": 8000, "metrics_listen": "127.0.0.1:8000"}}
    with pytest.raises(ConfigError, match=r'metrics_listen "127.0.0.1:8000" is the web app'):
        load_settings(environ={}, overrides=overrides)
    overrides["web"]["metrics"] = False  # off: nothing listens there
    load_settings(environ={}, overrides=overrides)


# --- the service, as a person runs it ---------------------------------------------------


def service_config(folder: Path, **web: Any) -> tuple[Path, int]:
    port, dead = free_port(), f"http://127.0.0.1:{free_port()}"
    lines = "".join(
        f"{key} = {str(item).lower() if isinstance(item, bool) else repr(item)}\n"
        for key, item in web.items()
    )
    config = folder / "config.toml"
    config.write_text(
        f'[service]\ndata_dir = "data"\nbase_url = "http://127.0.0.1:{port}"\n'
        f"[web]\nport = {port}\n{lines}"
        f'[sources.hf]\nbase_url = "{dead}"\n[sources.arxiv]\nfeed_url = "{dead}"\n'
        "[schedule]\nfetch_at_start = false\n"
    )
    return config, port


def start(config: Path, command: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DIGEST_CONFIG", None)
    return subprocess.Popen(
        [sys.executable, "-m", "digest", "--config", str(config), command],
        cwd=config.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for(url: str, process: subprocess.Popen[str]) -> httpx.Response:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0]
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            time.sleep(0.1)
    pytest.fail(f"nothing answered at {url}")


def stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output
    return output


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_run_serves_metrics_on_their_own_address_only(tmp_path: Path, processes: list[Any]) -> None:
    metrics_port = free_port()
    config, port = service_config(
        tmp_path, metrics=True, metrics_listen=f"127.0.0.1:{metrics_port}"
    )
    processes.append(process := start(config, "run"))
    assert wait_for(f"http://127.0.0.1:{port}/healthz", process).status_code == 200
    response = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics")
    assert response.status_code == 200 and "digest_readers" in response.text
    assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 404
    output = stop(process)
    assert f"metrics on http://127.0.0.1:{metrics_port}/metrics" in output
    assert not listening(metrics_port)


def test_run_has_no_metrics_by_default(tmp_path: Path, processes: list[Any]) -> None:
    config, port = service_config(tmp_path)
    processes.append(process := start(config, "run"))
    assert wait_for(f"http://127.0.0.1:{port}/healthz", process).status_code == 200
    assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 404
    assert not listening(9108)  # the default address, were metrics on
    assert "metrics" not in stop(process)


def test_the_scheduler_alone_serves_metrics(tmp_path: Path, processes: list[Any]) -> None:
    metrics_port = free_port()
    config, _ = service_config(tmp_path, metrics=True, metrics_listen=f"127.0.0.1:{metrics_port}")
    processes.append(process := start(config, "scheduler"))
    response = wait_for(f"http://127.0.0.1:{metrics_port}/metrics", process)
    assert response.status_code == 200 and "digest_outbox_depth" in response.text
    stop(process)
    assert not listening(metrics_port)


def test_web_alone_leaves_the_address_to_the_scheduler_or_answers_when_asked(
    tmp_path: Path, processes: list[Any]
) -> None:
    metrics_port = free_port()
    config, port = service_config(
        tmp_path, metrics=True, metrics_listen=f"127.0.0.1:{metrics_port}"
    )
    processes.append(process := start(config, "web"))
    assert wait_for(f"http://127.0.0.1:{port}/healthz", process).status_code == 200
    assert not listening(metrics_port)
    assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 404
    assert "served on" in stop(process)
    # "web": the web app's own port answers.
    (tmp_path / "web").mkdir()
    config, port = service_config(tmp_path / "web", metrics=True, metrics_listen="web")
    processes.append(process := start(config, "web"))
    assert wait_for(f"http://127.0.0.1:{port}/healthz", process).status_code == 200
    response = httpx.get(f"http://127.0.0.1:{port}/metrics")
    assert response.status_code == 200 and "digest_papers_stored 0.0" in response.text
    stop(process)


def test_an_address_in_use_stops_the_service_at_start(tmp_path: Path, processes: list[Any]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        config, _ = service_config(tmp_path, metrics=True, metrics_listen=address)
        processes.append(process := start(config, "scheduler"))
        output = process.communicate(timeout=30)[0]
    assert process.returncode == 1
    assert f"cannot listen on {address} for /metrics" in output
    assert "scheduler started" not in output


def test_sigterm_during_a_slow_scrape_stops_cleanly(tmp_path: Path, processes: list[Any]) -> None:
    # A client that connects and never finishes its request must not hold the stop up.
    metrics_port = free_port()
    config, _ = service_config(tmp_path, metrics=True, metrics_listen=f"127.0.0.1:{metrics_port}")
    processes.append(process := start(config, "scheduler"))
    wait_for(f"http://127.0.0.1:{metrics_port}/metrics", process)
    with socket.create_connection(("127.0.0.1", metrics_port)) as slow:
        slow.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        stop(process)
    assert time.monotonic() - started < 10


def test_stop_from_another_thread_while_scrapes_run(
    metrics_settings: Settings, database: Database
) -> None:
    server = serve_metrics(metrics_settings, database, lambda: NOW)
    errors: list[BaseException] = []

    def hammer() -> None:
        for _ in range(50):
            try:
                httpx.get(server.url, timeout=5)
            except httpx.TransportError:
                return  # the server went away: what stopping means
            except BaseException as error:  # anything else is a failure
                errors.append(error)
                return

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    server.stop()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []


# --- the task workers' figures, from Redis ([queue] broker) ------------------------------


def test_task_figures_come_from_the_broker(
    make_settings: Any, database: Database, tmp_path: Path
) -> None:
    from digest.tasks import progress

    with running_redis(tmp_path / "redis") as redis_server:
        settings = make_settings(queue={"broker": redis_server.url})
        client = redis_server.client()
        client.rpush("digests", "a", "b", "c")
        client.rpush("send", "d")
        progress.worker_alive(settings, "digest-1@host-a", 2)
        progress.worker_alive(settings, "digest-2@host-b", 1)
        progress.task_failed(settings, "digest.batch", RuntimeError("boom"))
        progress.record_latencies(settings, [("digest", 3.0), ("digest", 70.0)], LATENCY_BUCKETS)
        samples = parse(scrape_text(settings, database))
    assert value(samples, "digest_task_broker_up") == 1
    assert value(samples, "digest_task_workers") == 2
    assert value(samples, "digest_task_worker_processes") == 3
    assert value(samples, "digest_tasks_waiting", queue="digests") == 3
    assert value(samples, "digest_tasks_waiting", queue="send") == 1
    assert value(samples, "digest_tasks_failed_total") == 1
    assert value(samples, "digest_task_run_in_flight") == 0
    latency = "digest_worker_send_latency_seconds"
    assert value(samples, f"{latency}_count", kind="digest") == 2
    assert value(samples, f"{latency}_sum", kind="digest") == 73
    assert value(samples, f"{latency}_bucket", kind="digest", le="5.0") == 1
    assert value(samples, f"{latency}_bucket", kind="digest", le="120.0") == 2
    assert value(samples, f"{latency}_bucket", kind="confirm", le="+Inf") == 0


def test_a_broker_that_does_not_answer_is_one_figure_not_a_failed_scrape(
    make_settings: Any, database: Database
) -> None:
    settings = make_settings(queue={"broker": f"redis://127.0.0.1:{free_port()}/0"})
    samples = parse(scrape_text(settings, database))
    assert value(samples, "digest_task_broker_up") == 0
    assert value(samples, "digest_readers", status="active") == 0  # the rest is there
    assert not any(name.startswith("digest_task_workers") for name, _ in samples)


def test_no_task_figures_without_a_broker(settings: Settings, database: Database) -> None:
    samples = parse(scrape_text(settings, database))
    assert not any(name.startswith(("digest_task", "digest_worker")) for name, _ in samples)
