"""The Alembic migrations against the models, on SQLite and PostgreSQL.

The migrations own the schema and the models describe it; these tests keep the two in
step (no drift) and check that downgrades work.
"""

from __future__ import annotations

import re
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from digest.store import Database
from digest.store.models import Base


def _migrate(database: Database, direction: str, revision: str) -> None:
    """Run `alembic upgrade|downgrade revision` on the database, as `Database.upgrade` does."""
    config = database._alembic_config()
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        getattr(command, direction)(config, revision)


def _drift(database: Database) -> list[Any]:
    """What autogenerate would change to make the database match the models."""
    with database.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
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
