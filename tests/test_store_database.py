"""The database handle: migrations on first run, upgrades, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect

from digest.config import Settings
from digest.errors import StoreError
from digest.store import Database, open_database


def test_first_open_creates_folder_and_schema(settings: Settings) -> None:
    assert not settings.data_dir.exists()
    database = open_database(settings)
    assert (settings.data_dir / "digest.db").is_file()
    assert database.current_revision() == database.head_revision()
    tables = set(inspect(database.engine).get_table_names())
    assert {"papers", "subscribers", "http_cache", "fetches", "alembic_version"} <= tables


def test_upgrade_twice_is_a_no_op(settings: Settings) -> None:
    database = open_database(settings, migrate=False)
    before, after = database.upgrade()
    assert before is None and after == database.head_revision()
    assert database.upgrade() == (after, after)


def test_reopening_keeps_data(settings: Settings) -> None:
    from datetime import UTC, datetime

    from digest.store.subscribers import create_subscriber, find_subscriber

    now = datetime(2026, 6, 12, 8, tzinfo=UTC)
    first = open_database(settings)
    with first.session() as session:
        create_subscriber(
            session, "ada@example.org", "diffusion", send_time="08:00", timezone="UTC", now=now
        )
    first.dispose()
    with open_database(settings).session() as session:
        found = find_subscriber(session, "ADA@example.org")
    assert found is not None and found.created_at == now


def test_unwritable_data_folder_is_a_clear_error(make_settings, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    settings = make_settings(service={"data_dir": str(blocker / "data")})
    with pytest.raises(StoreError, match="cannot create data folder"):
        open_database(settings)


def test_not_a_database_url() -> None:
    with pytest.raises(StoreError, match="not a database URL"):
        Database("this is not a url")


def test_file_that_is_not_a_database(make_settings, tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_text("this is not SQLite " * 100)
    settings = make_settings(database={"url": f"sqlite:///{path}"})
    with pytest.raises(StoreError, match="cannot open database"):
        open_database(settings)


def test_naive_datetimes_are_refused(database: Database) -> None:
    from datetime import datetime

    from digest.store.subscribers import create_subscriber

    with pytest.raises(Exception, match="naive datetime"), database.session() as session:
        create_subscriber(
            session, "b@example.org", "x", send_time="08:00", timezone="UTC", now=datetime.now()
        )
