"""The database handle: engine, sessions, and schema migrations (Alembic).

`open_database(settings)` is how every entry point gets the store: it creates the data
folder for a SQLite file, connects, and brings the schema up to date on first run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from digest.config import Settings
from digest.errors import StoreError

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the web app read while the scheduler writes; the busy timeout makes a
    # writer wait for another instead of failing at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class Database:
    """A connection pool to the store plus its migrations."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise StoreError(f'[database] url is not a database URL: "{url}"') from None
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        try:
            self.engine: Engine = create_engine(url, pool_pre_ping=not self.is_sqlite)
        except (ArgumentError, ImportError, SQLAlchemyError) as error:
            raise StoreError(f"cannot use database {parsed!r}: {error}") from None
        if self.is_sqlite:
            event.listen(self.engine, "connect", _tune_sqlite)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def __repr__(self) -> str:
        return f"Database({make_url(self.url)!r})"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed when the block ends, rolled back if it raises."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def _alembic_config(self) -> AlembicConfig:
        config = AlembicConfig()
        config.set_main_option("script_location", str(MIGRATIONS))
        return config

    def head_revision(self) -> str | None:
        """The newest migration shipped with this version of digest."""
        return ScriptDirectory.from_config(self._alembic_config()).get_current_head()

    def current_revision(self) -> str | None:
        """The migration the database is at (None for an empty database)."""
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def upgrade(self) -> tuple[str | None, str | None]:
        """Apply every pending migration; return (revision before, revision after)."""
        try:
            before = self.current_revision()
            config = self._alembic_config()
            with self.engine.begin() as connection:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
            return before, self.current_revision()
        except DBAPIError as error:
            raise StoreError(f"cannot open database {self!r}: {error.orig}") from None

    def ensure_schema(self) -> None:
        """Upgrade the schema if it is behind; cheap when it is already current."""
        try:
            current = self.current_revision()
        except DBAPIError as error:
            raise StoreError(f"cannot open database {self!r}: {error.orig}") from None
        if current != self.head_revision():
            before, after = self.upgrade()
            log.info("database schema upgraded from %s to %s", before or "empty", after)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def open_database(settings: Settings, *, migrate: bool = True) -> Database:
    """Connect to the configured store, creating the data folder and schema as needed."""
    if settings.database_url.startswith("sqlite:///"):
        path = Path(settings.database_url.removeprefix("sqlite:///"))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(f"cannot create data folder {path.parent}: {error.strerror}") from None
    database = Database(settings.database_url)
    if migrate:
        database.ensure_schema()
    return database
