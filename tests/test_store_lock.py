"""The scheduler lock: one scheduler per store, released when its process dies."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from digest.config import Settings
from digest.store import Database
from digest.store.lock import FileLock, LockHeld, SchedulerLock

ROOT = Path(__file__).parents[1]


def test_second_lock_is_refused_then_free_after_release(
    store_database: Database, settings: Settings
) -> None:
    first = SchedulerLock(store_database, settings.data_dir)
    first.acquire()
    second = SchedulerLock(store_database, settings.data_dir)
    with pytest.raises(LockHeld, match="another scheduler is already running"):
        second.acquire()
    first.release()
    with second:
        pass
    first.release()  # releasing twice is harmless


def test_lock_of_a_killed_process_is_free(store_database: Database, settings: Settings) -> None:
    holder = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from digest.store import Database
        from digest.store.lock import SchedulerLock
        database = Database({store_database.url!r})
        lock = SchedulerLock(database, Path({str(settings.data_dir)!r}))
        lock.acquire()
        print("locked", flush=True)
        time.sleep(60)
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", holder],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "locked"
        lock = SchedulerLock(store_database, settings.data_dir)
        with pytest.raises(LockHeld):
            lock.acquire()
    finally:
        process.kill()
        process.wait()
    with SchedulerLock(store_database, settings.data_dir):
        pass


def test_file_lock_names_its_holder(database: Database, settings: Settings) -> None:
    with SchedulerLock(database, settings.data_dir) as lock:
        assert lock.path == settings.data_dir / "scheduler.lock"
        with pytest.raises(LockHeld, match=r"pid \d+"):
            SchedulerLock(database, settings.data_dir).acquire()


class Busy(Exception):
    """The error a FileLock's owner raises when someone else holds it."""


def test_file_lock_raises_its_owners_error_naming_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "new folder" / "some.lock"

    def busy(holder: str) -> Busy:
        return Busy(f"held by {holder}")

    first = FileLock(path, busy)
    with first:
        assert path.read_text() == f"pid {os.getpid()}\n"
        with pytest.raises(Busy, match=rf"^held by pid {os.getpid()}$"):
            FileLock(path, busy).acquire()
    with FileLock(path, busy):  # released on leaving the block
        pass
    first.release()  # releasing twice is harmless


def test_a_lock_file_is_private_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    with FileLock(tmp_path / "x.lock", lambda holder: RuntimeError(holder)):
        mode = (tmp_path / "x.lock").stat().st_mode & 0o777
    assert mode == 0o600
