"""The database handle: migrations on first run, upgrades, clear errors."""

from __future__ import annotations

import logging
import os
import stat
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


def test_upgrading_to_0004_schedules_the_subscribers_already_active(settings: Settings) -> None:
    from datetime import UTC, datetime, timedelta

    from alembic import command
    from sqlalchemy import text

    from digest.store.subscribers import due_subscribers, get_subscriber
    from digest.subscriber import next_send_at

    database = open_database(settings, migrate=False)
    config = database._alembic_config()
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0003")
    started = datetime.now(UTC)
    yesterday = (started - timedelta(days=1)).replace(hour=8, minute=0, second=0, microsecond=0)
    insert = text(
        "INSERT INTO subscribers (id, email, interests, status, send_time, timezone, "
        "created_at, last_digest_at, consecutive_failures) VALUES "
        "(:id, :email, 'diffusion', :status, '08:00', 'Europe/Paris', :created, :last, 0)"
    )
    with database.engine.begin() as connection:
        for id_, status, last in [
            (1, "active", yesterday),
            (2, "active", None),
            (3, "paused", None),
        ]:
            connection.execute(
                insert,
                dict(
                    id=id_,
                    email=f"r{id_}@example.org",
                    status=status,
                    created=yesterday,
                    last=last.replace(tzinfo=None) if last else None,
                ),
            )
    database.upgrade()
    with database.session() as session:
        caught_up, fresh, paused = (get_subscriber(session, i) for i in (1, 2, 3))
        # The one who had digests gets the next after the last: caught up, not skipped.
        assert caught_up.next_digest_at == next_send_at("08:00", "Europe/Paris", yesterday)
        assert caught_up.last_digest_at == yesterday
        # The one who never had one starts as if confirmed now.
        assert started < fresh.next_digest_at <= started + timedelta(days=1, minutes=5)
        assert fresh.last_digest_at <= started - timedelta(days=1) + timedelta(minutes=5)
        assert paused.next_digest_at is None
        due = due_subscribers(session, started + timedelta(days=2), limit=10)
    assert sorted(s.id for s in due) == [1, 2]


# --- privacy: the data folder and the database files (issue 14, point 7) --------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _write_something(database: Database) -> None:
    from datetime import UTC, datetime

    from digest.store.subscribers import create_subscriber

    with database.session() as session:
        create_subscriber(
            session,
            "ada@example.org",
            "diffusion",
            send_time="08:00",
            timezone="UTC",
            now=datetime(2026, 6, 12, 8, tzinfo=UTC),
        )


def test_the_data_folder_and_database_files_are_private(settings: Settings, umask: int) -> None:
    database = open_database(settings)
    _write_something(database)
    folder = settings.data_dir
    assert _mode(folder) == 0o700
    files = sorted(path.name for path in folder.iterdir())
    # The WAL and its index exist while a connection is open: all three are private.
    assert {"digest.db", "digest.db-wal", "digest.db-shm"} <= set(files)
    assert {name: _mode(folder / name) for name in files} == dict.fromkeys(files, 0o600)
    database.dispose()


def test_files_an_older_run_left_open_are_made_private_at_start(
    settings: Settings, umask: int, caplog: pytest.LogCaptureFixture
) -> None:
    database = open_database(settings)
    _write_something(database)
    database.dispose()
    folder = settings.data_dir
    os.chmod(folder, 0o755)  # as digest made them before
    for name in ("digest.db", "digest.db-wal", "digest.db-shm"):
        if (folder / name).exists():
            os.chmod(folder / name, 0o644)
    with caplog.at_level(logging.WARNING, logger="digest.paths"):
        open_database(settings).dispose()
    assert _mode(folder) == 0o700 and _mode(folder / "digest.db") == 0o600
    assert all(_mode(path) == 0o600 for path in folder.iterdir())
    said = caplog.text
    assert f"data folder {folder} was open to other users: made it private" in said
    assert "(mode 0700, was 0755)" in said and "(mode 0600, was 0644)" in said
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="digest.paths"):
        open_database(settings).dispose()
    assert caplog.text == ""  # said once: the next start finds nothing to change


def test_a_database_outside_the_data_folder_is_private_its_folder_left_alone(
    make_settings, tmp_path: Path, umask: int
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o755)  # someone's folder, maybe the working directory: not ours
    settings = make_settings(database={"url": f"sqlite:///{shared / 'lab.db'}"})
    database = open_database(settings)
    _write_something(database)
    assert _mode(shared) == 0o755
    assert _mode(shared / "lab.db") == 0o600 and _mode(shared / "lab.db-wal") == 0o600
    database.dispose()
    nested = tmp_path / "new" / "deeper"
    settings = make_settings(database={"url": f"sqlite:///{nested / 'lab.db'}"})
    open_database(settings).dispose()
    assert _mode(nested) == 0o700  # a folder digest makes for its database is private
