"""The database handle: engine, sessions, and schema migrations (Alembic).

`open_database(settings)` is how every entry point gets the store: it creates the data
folder for a SQLite file, connects, and brings the schema up to date on first run. The
data folder and the SQLite files (with the WAL and shared-memory files beside them) hold
every reader's address and interests: they are private to the service's user (0700 and
0600, whatever the umask), and made so at start when an older run left them open.
"""

from __future__ import annotations

import logging
import re
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
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from digest.config import Settings
from digest.errors import StoreError
from digest.paths import private_file, private_folder, tighten

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


def _reason(error: DBAPIError) -> str:
    """The driver's complaint in a few words, one line: `connection refused`.

    psycopg frames it (`connection failed: connection to server at "h", port 1 failed:
    FATAL:  ...`) and adds a hint on a second line; the person needs only the core.
    """
    lines = str(error.orig).strip().splitlines()
    text = lines[0].strip() if lines else type(error.orig).__name__
    text = re.sub(r"^.*\bfailed:\s*", "", text)
    text = re.sub(r"^(?:FATAL|ERROR):\s*", "", text)
    text = re.sub(r"\[Errno -?\d+\]\s*", "", text)
    # "Connection refused" reads better mid-sentence as "connection refused"; "SSL ..." stays.
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


class Database:
    """A connection pool to the store plus its migrations.

    `where` names the setting the database comes from, for error messages; by default
    `[database] url` and the URL with any password hidden.
    """

    def __init__(self, url: str, *, where: str | None = None) -> None:
        self.url = url
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise StoreError(f'[database] url is not a database URL: "{url}"') from None
        self.where = where or f"[database] url {parsed.render_as_string(hide_password=True)}"
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        try:
            self.engine: Engine = create_engine(url, pool_pre_ping=not self.is_sqlite)
        except (ArgumentError, ImportError, SQLAlchemyError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            raise StoreError(f"cannot use the database at {self.where}: {first}") from None
        if self.is_sqlite:
            event.listen(self.engine, "connect", _tune_sqlite)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def __repr__(self) -> str:
        return f"Database({make_url(self.url)!r})"

    def _error(self, error: DBAPIError) -> StoreError:
        """The one-line StoreError for a driver error met while opening the store."""
        reason = _reason(error)
        if not isinstance(error, OperationalError):  # reached, but not a store we can use
            return StoreError(
                f"cannot open database at {self.where}: {reason}; check that it is digest's own"
            )
        if self.is_sqlite:
            return StoreError(
                f"cannot open the database at {self.where}: {reason}; check that its folder "
                "exists and that digest may write to it"
            )
        return StoreError(
            f"cannot reach the database at {self.where}: {reason}; check that the server "
            "runs and the url is right"
        )

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
            raise self._error(error) from None

    def ensure_schema(self) -> None:
        """Upgrade the schema if it is behind; cheap when it is already current."""
        try:
            current = self.current_revision()
        except DBAPIError as error:
            # OperationalError above all: a server down, a wrong host, a folder we cannot
            # write. One line naming the setting, never the driver's multi-line text.
            raise self._error(error) from None
        if current != self.head_revision():
            before, after = self.upgrade()
            log.info("database schema upgraded from %s to %s", before or "empty", after)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def open_database(settings: Settings, *, migrate: bool = True) -> Database:
    """Connect to the configured store, creating the data folder and schema as needed.

    Raises StoreError, one line naming the setting to fix, when the store cannot be
    reached or opened (server down, folder not writable).
    """
    url = settings.database_url
    if settings.database.url:
        where = f"[database] url {_shown(url)}"
    else:  # the default: a SQLite file in the data folder
        where = f"{url.removeprefix('sqlite:///')} (in [service] data_dir)"
    # The data folder is digest's own: private, even if something else made it first.
    tighten(settings.data_dir, "data folder")
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        try:
            private_folder(path.parent)
        except OSError as error:
            raise StoreError(
                f"cannot create data folder {path.parent} for the database at {where}: "
                f"{error.strerror or error}; check the path and that digest may write there"
            ) from None
        _private_sqlite_files(path)
    database = Database(url, where=where)
    if migrate:
        database.ensure_schema()
    return database


# SQLite's files beside the database: the write-ahead log, its shared-memory index, and
# the rollback journal of a database not (yet) in WAL mode.
_SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def _private_sqlite_files(path: Path) -> None:
    """Make the database file private before SQLite opens it, and any companion of it.

    SQLite creates a new database 0644 (less the umask), and its WAL, shared-memory and
    journal files with the database file's own mode: creating the (empty) file 0600
    first makes all of them private. Files an older run left open are tightened. A file
    that cannot be created here is left for SQLite to report when it connects.
    """
    if path.name in ("", ":memory:") or path.name.startswith("file:"):
        return
    try:
        private_file(path)
    except OSError:
        return  # a folder we cannot write, a path that is a folder: Database says so
    for candidate in (path, *(path.with_name(path.name + end) for end in _SQLITE_COMPANIONS)):
        tighten(candidate, "database file")


def _shown(url: str) -> str:
    """The URL as it may be printed: any password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url  # not a URL at all: Database() says so
