"""The Alembic migrations against the models, on SQLite and PostgreSQL.

The migrations own the schema and the models describe it; these tests keep the two in
step (no drift), check that downgrades work, and that no migration runs application
code: a migration must do today what it did when it was written, whatever the app
becomes.
"""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import DateTime, Integer, bindparam, inspect, text

from digest.store import Database
from digest.store.database import MIGRATIONS
from digest.store.models import Base

VERSIONS = sorted((MIGRATIONS / "versions").glob("*.py"))


def _migrate(database: Database, direction: str, revision: str) -> None:
    """Run `alembic upgrade|downgrade revision` on the database, as `Database.upgrade` does."""
    config = database._alembic_config()
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        getattr(command, direction)(config, revision)


# The full-text index of migration 0007 is not in the models, which cannot describe it:
# an FTS5 virtual table and the shadow tables FTS5 keeps its index in (SQLite), an index
# on a function (PostgreSQL). digest.store.search reads it with SQL of its own.
SEARCH_TABLES = {"paper_search"} | {
    f"paper_search_{shadow}" for shadow in ("data", "idx", "docsize", "config")
}
SEARCH_INDEXES = {"ix_papers_search"}


def _modelled(item: object, name: str | None, kind: str, reflected: bool, _: object) -> bool:
    """Whether autogenerate compares a database object: all but the search index's."""
    unmodelled = SEARCH_TABLES if kind == "table" else SEARCH_INDEXES if kind == "index" else ()
    return not (reflected and name in unmodelled)


def _drift(database: Database) -> list[Any]:
    """What autogenerate would change to make the database match the models."""
    with database.engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "compare_server_default": True,
                "include_object": _modelled,
            },
        )
        return compare_metadata(context, Base.metadata)


def _predicate(clause: object) -> str:
    # PostgreSQL gives back "((kind)::text = 'digest'::text)" for "kind = 'digest'".
    return " ".join(re.sub(r"::\w+|[()]", "", str(clause)).lower().split())


def _partial_indexes(database: Database) -> tuple[dict[str, str], dict[str, str]]:
    """(in the database, in the models): each partial index's name and WHERE clause.

    Autogenerate does not compare index predicates, so a changed one would go unnoticed.
    """
    dialect = database.engine.dialect.name
    reflected = {}
    inspector = inspect(database.engine)
    for table in Base.metadata.tables:
        for index in inspector.get_indexes(table):
            where = index.get("dialect_options", {}).get(f"{dialect}_where")
            if where is not None:
                reflected[index["name"]] = _predicate(where)
    modelled = {
        str(index.name): _predicate(index.dialect_options[dialect]["where"])
        for table in Base.metadata.tables.values()
        for index in table.indexes
        if index.dialect_options[dialect]["where"] is not None
    }
    return reflected, modelled


def test_the_migrations_build_the_schema_the_models_describe(store_database: Database) -> None:
    assert store_database.current_revision() == store_database.head_revision()
    assert _drift(store_database) == []
    reflected, modelled = _partial_indexes(store_database)
    assert reflected == modelled == {"ux_outbox_digest": "kind = 'digest'"}


def test_every_migration_downgrades_and_upgrades_again(store_database: Database) -> None:
    _migrate(store_database, "downgrade", "base")
    assert set(inspect(store_database.engine).get_table_names()) <= {"alembic_version"}
    assert store_database.current_revision() is None
    store_database.upgrade()
    assert _drift(store_database) == []


@pytest.mark.parametrize("path", VERSIONS, ids=lambda path: path.name)
def test_a_migration_imports_no_application_code(path: Path) -> None:
    imported = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            imported.append(node.module or "")
    assert not [name for name in imported if name == "digest" or name.startswith("digest.")]


def test_0004_schedules_with_its_own_time_zone_maths(
    store_database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    def changed(*args: object) -> datetime:
        raise AssertionError("migration 0004 used the application's schedule code")

    # Whatever the app's schedule becomes, 0004 must schedule as it did when written.
    monkeypatch.setattr("digest.subscriber.next_send_at", changed)
    monkeypatch.setattr("digest.subscriber.local_send_instant", changed)
    _migrate(store_database, "downgrade", "0003")
    # id: (send time, time zone, last digest, next digest as 0004 sets it), in UTC
    caught_up = {
        # Saturday 08:00 in Paris; the clocks go forward overnight: Sunday 08:00 is 06:00 UTC.
        1: ("08:00", "Europe/Paris", "2026-03-28 07:00", "2026-03-29 06:00"),
        # 02:30 does not exist in Paris on 29 March 2026: the wall clock says 03:30 (CEST).
        2: ("02:30", "Europe/Paris", "2026-03-28 01:30", "2026-03-29 01:30"),
        # 01:30 happens twice in New York on 1 November 2026: the first (EDT) one counts.
        3: ("01:30", "America/New_York", "2026-10-31 05:30", "2026-11-01 05:30"),
    }
    started = datetime.now(UTC).replace(tzinfo=None)  # the store keeps naive UTC
    subscribers = [
        (id_, "active", send_time, timezone, datetime.fromisoformat(last))
        for id_, (send_time, timezone, last, _) in caught_up.items()
    ]
    subscribers += [(4, "active", "08:00", "UTC", None), (5, "paused", "08:00", "UTC", None)]
    insert = text(
        "INSERT INTO subscribers (id, email, interests, status, send_time, timezone, "
        "created_at, last_digest_at, consecutive_failures) VALUES "
        "(:id, :email, 'x', :status, :send_time, :timezone, :created, :last, 0)"
    ).bindparams(bindparam("created", type_=DateTime), bindparam("last", type_=DateTime))
    with store_database.engine.begin() as connection:
        for id_, status, send_time, timezone, last in subscribers:
            values = dict(id=id_, email=f"r{id_}@example.org", status=status, last=last)
            connection.execute(
                insert, dict(values, send_time=send_time, timezone=timezone, created=started)
            )
    store_database.upgrade()
    read = text("SELECT id, last_digest_at, next_digest_at FROM subscribers")
    with store_database.engine.connect() as connection:
        rows = connection.execute(
            read.columns(id=Integer, last_digest_at=DateTime, next_digest_at=DateTime)
        )
        schedule = {id_: (last, due) for id_, last, due in rows}
    for id_, (_, _, last, due) in caught_up.items():
        # Caught up after their last digest: the day after it is neither skipped nor repeated.
        assert schedule[id_] == (datetime.fromisoformat(last), datetime.fromisoformat(due))
    last, due = schedule[4]  # never had a digest: scheduled from the upgrade on
    assert started - timedelta(days=1) <= last <= started
    assert started < due <= started + timedelta(days=1, minutes=5)
    assert (due.hour, due.minute) == (8, 0)
    assert schedule[5] == (None, None)  # not active: no schedule


def test_0006_dates_the_hugging_face_listing_of_papers_stored_before_it(
    store_database: Database,
) -> None:
    _migrate(store_database, "downgrade", "0005")
    seen = datetime(2026, 6, 12, 10, 0)
    insert = text(
        "INSERT INTO papers (id, title, abstract, authors, categories, sources, listed, "
        "first_seen_at, updated_at) VALUES (:id, 't', 'a', '[]', '[]', :sources, :listed, "
        ":seen, :seen)"
    ).bindparams(bindparam("seen", type_=DateTime))
    with store_database.engine.begin() as connection:
        for id_, sources in (("2606.00001", '["hf"]'), ("2606.00002", '["arxiv", "hf"]')):
            connection.execute(
                insert, dict(id=id_, sources=sources, listed="2026-06-12", seen=seen)
            )
        connection.execute(
            insert, dict(id="2606.00003", sources='["arxiv"]', listed=None, seen=seen)
        )
    store_database.upgrade()
    read = text("SELECT id, hf_listed, hf_seen_at FROM papers ORDER BY id")
    with store_database.engine.connect() as connection:
        rows = connection.execute(read.columns(hf_seen_at=DateTime)).all()
    assert [(id_, str(day) if day else None, at) for id_, day, at in rows] == [
        ("2606.00001", "2026-06-12", seen),
        ("2606.00002", "2026-06-12", seen),
        ("2606.00003", None, None),
    ]
