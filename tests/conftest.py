"""Shared fixtures: settings on a temporary data folder, a migrated database, test data."""

from __future__ import annotations

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
