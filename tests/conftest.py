"""Shared fixtures: settings on a temporary data folder, a migrated database, test data."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from digest.config import Settings, load_settings
from digest.store import Database, open_database

DATA = Path(__file__).parent / "data"


@pytest.fixture
def data_dir() -> Path:
    """The folder of real sample data (saved pages, papers)."""
    return DATA


@pytest.fixture
def make_settings(tmp_path: Path) -> Any:
    """Build settings on a temporary data folder, with nested overrides."""

    def build(**sections: Any) -> Settings:
        overrides: dict[str, Any] = {"service": {"data_dir": str(tmp_path / "data")}}
        for name, values in sections.items():
            overrides.setdefault(name, {}).update(values)
        return load_settings(environ={}, overrides=overrides)

    return build


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    """Default settings on a temporary data folder."""
    return make_settings()


@pytest.fixture
def database(settings: Settings) -> Iterator[Database]:
    """A migrated SQLite database in the temporary data folder."""
    database = open_database(settings)
    yield database
    database.dispose()


@pytest.fixture(params=[0o022, 0o000], ids=["umask-022", "umask-000"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """Run the test under a permissive umask (files made private must be so anyway)."""
    before = os.umask(request.param)
    yield request.param
    os.umask(before)


# The store must work on PostgreSQL too: CI starts a throwaway server and names it here.
POSTGRES_URL = os.environ.get("DIGEST_TEST_POSTGRES_URL", "")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_database(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Database]:
    """A migrated database on each backend the store supports (store tests use this)."""
    if request.param == "sqlite":
        database = open_database(settings)
        yield database
        database.dispose()
        return
    yield from _fresh_postgres_database()


@pytest.fixture
def postgres_database() -> Iterator[Database]:
    """A migrated PostgreSQL database, for what only it allows (several hosts on one store)."""
    yield from _fresh_postgres_database()


def _fresh_postgres_database() -> Iterator[Database]:
    """A new database on the test server, migrated, dropped after the test."""
    if not POSTGRES_URL:
        if os.environ.get("CI"):
            pytest.fail("CI must test PostgreSQL: set DIGEST_TEST_POSTGRES_URL")
        pytest.skip("no PostgreSQL server: set DIGEST_TEST_POSTGRES_URL to test on one")
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"digest_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    database = Database(make_url(POSTGRES_URL).set(database=name).render_as_string(False))
    try:
        database.upgrade()  # inside: a failed migration still drops the database
        yield database
    finally:
        database.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


# --- sources ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def httpserver_listen_address() -> tuple[str, int]:
    """pytest-httpserver listens on IPv4 loopback only, on a free port."""
    return ("127.0.0.1", 0)


@pytest.fixture
def sources_data() -> Path:
    """The saved pages and feeds of the sources tests (see its PROVENANCE.md)."""
    return DATA / "sources"


class FakeTime:
    """A clock that only moves when something sleeps: tests of waiting never wait."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


@pytest.fixture
def fake_time() -> FakeTime:
    """Injectable `sleep` and `clock` that record every wait instead of waiting."""
    return FakeTime()


# --- send: real SMTP servers on loopback ----------------------------------------------


@pytest.fixture
def start_smtp_server() -> Iterator[Any]:
    """Start aiosmtpd servers (faults injectable); all are stopped after the test."""
    from tests.smtp_server import SmtpServer

    servers: list[SmtpServer] = []

    def start(port: int | None = None, *, listen: bool = True, **options: Any) -> SmtpServer:
        server = SmtpServer(port, **options)
        servers.append(server)
        return server.start() if listen else server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def smtp_server(start_smtp_server: Any) -> Any:
    """A plain SMTP server on a free loopback port."""
    return start_smtp_server()


@pytest.fixture(scope="session")
def tls_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate (and key) for localhost and 127.0.0.1."""
    from tests.tls import make_certificate

    return make_certificate(tmp_path_factory.mktemp("tls"))


# --- web: the app with its test client, store, clock and mailbox ----------------------


@pytest.fixture
def make_site(make_settings: Any, start_smtp_server: Any) -> Iterator[Any]:
    """Build the web app (`tests.web_support.Site`) on a clock that stands still at NOW.

    `smtp=True` sends its mail to a real aiosmtpd server, else it lands in the maildir;
    other keyword arguments are settings sections. Couriers are stopped afterwards.
    """
    from digest.web import create_app
    from tests.web_support import BASE_URL, SECRET, Clock, Site

    sites: list[Site] = []

    def build(*, smtp: bool = False, clock: Clock | None = None, **sections: Any) -> Site:
        server = start_smtp_server() if smtp else None
        web = {"secret_key": SECRET, **sections.pop("web", {})}
        service = {"base_url": BASE_URL, **sections.pop("service", {})}
        if server is not None:
            sections["smtp"] = {**server.smtp_settings(), **sections.get("smtp", {})}
        settings = make_settings(web=web, service=service, **sections)
        database = open_database(settings)
        clock = clock or Clock()
        app = create_app(settings, database=database, clock=clock)
        site = Site(app, settings, database, clock, server)
        sites.append(site)
        return site

    yield build
    for site in sites:
        site.stop()


@pytest.fixture
def site(make_site: Any) -> Any:
    """The web app with default settings; its mail lands in the maildir."""
    return make_site()


def _real_papers() -> tuple[Any, ...]:
    import json

    from digest.paper import Paper

    lines = (DATA / "papers.jsonl").read_text(encoding="utf-8").splitlines()
    return tuple(
        Paper(id=f"2606.{number:05d}", title=row["title"], abstract=row["abstract"])
        for number, row in enumerate(json.loads(line) for line in lines)
    )


@pytest.fixture(scope="session")
def real_papers() -> tuple[Any, ...]:
    """The 188 real papers of tests/data/papers.jsonl as `Paper`s, ids 2606.00000 on."""
    return _real_papers()
