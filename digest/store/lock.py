"""The scheduler lock: at most one scheduler runs against a store.

Held for the life of the scheduler and released by the operating system or the database
server when the process dies, so a crash never leaves a stale lock behind:
- SQLite: an exclusive `flock` on `scheduler.lock` beside the database file;
- PostgreSQL: a session advisory lock on a connection kept open for the purpose;
- any other database: a `flock` in the data folder (one machine only).

`FileLock` is the one `flock` of the project: the scheduler lock's file lock and the
send lock (`digest.send.delivery`) both use it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from sqlalchemy import text

from digest.errors import DigestError
from digest.store.database import Database

try:
    import fcntl
except ImportError:  # not POSIX: see FileLock(optional=...)
    fcntl = None  # type: ignore[assignment]

# An arbitrary constant naming "the digest scheduler" among advisory locks.
ADVISORY_KEY = 0x64696765  # "dige"


class LockHeld(DigestError):
    """Another scheduler already runs against this store."""


class FileLock:
    """An exclusive `flock` on `path`, taken without waiting, held until `release()`.

    The kernel drops it when the process dies, even by SIGKILL, so a crash never leaves a
    stale lock. The holder writes `pid N` in the file; when the lock is taken, `busy` gets
    that text (empty if none) and returns the error to raise. Without `fcntl` (not POSIX)
    an `optional` lock is not taken at all and any other raises ImportError.
    """

    def __init__(
        self, path: Path, busy: Callable[[str], Exception], *, optional: bool = False
    ) -> None:
        self.path = path
        self.busy = busy
        self.optional = optional
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock, or raise the error `busy` makes."""
        if fcntl is None:
            if self.optional:
                return
            raise ImportError(f"cannot lock {self.path}: file locks need fcntl (POSIX)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Private to the service's user whatever the umask: in a shared folder nobody
        # else may take it (and so stop the scheduler) or read it.
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        handle = os.fdopen(descriptor, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            raise self.busy(holder) from None
        except OSError:  # no locks on this file system (ENOLCK on some NFS): not held
            handle.close()
            raise
        # "a+" appends wherever we seek: empty the file first so it names only us.
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        """Give the lock back (idempotent)."""
        if self._handle is not None and fcntl is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class SchedulerLock:
    """Take with `acquire()`, give back with `release()` (or use as a context manager)."""

    def __init__(self, database: Database, data_dir: Path) -> None:
        self.database = database
        self.path = self._lock_path(database, data_dir)
        self._file = FileLock(self.path, self._held_by)
        self._connection: Any = None

    @staticmethod
    def _lock_path(database: Database, data_dir: Path) -> Path:
        if database.is_sqlite and database.engine.url.database not in (None, "", ":memory:"):
            return Path(str(database.engine.url.database)).with_name("scheduler.lock")
        return data_dir / "scheduler.lock"

    def acquire(self) -> None:
        """Take the lock, or raise LockHeld naming who holds it."""
        if self.database.engine.dialect.name == "postgresql":
            self._acquire_advisory()
        else:
            self._file.acquire()

    def _held_by(self, holder: str) -> LockHeld:
        return LockHeld(
            f"another scheduler is already running ({holder or 'another process'}, lock "
            f"{self.path}); run one `digest scheduler` or `digest run` per database"
        )

    def _acquire_advisory(self) -> None:
        connection = self.database.engine.connect()
        taken = connection.execute(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_KEY}
        ).scalar()
        connection.commit()
        if not taken:
            connection.close()
            raise LockHeld(
                "another scheduler is already running against this database (PostgreSQL "
                "advisory lock taken); run one `digest scheduler` or `digest run` per database"
            )
        self._connection = connection

    def release(self) -> None:
        """Give the lock back (idempotent)."""
        self._file.release()
        if self._connection is not None:
            self._connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_KEY})
            self._connection.commit()
            self._connection.close()
            self._connection = None

    def __enter__(self) -> SchedulerLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
