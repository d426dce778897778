"""Who holds a claim on outbox rows, and whether that holder is provably gone.

Each run of `send_due` stamps the rows it claims with an owner id,
`host:pid:start:run`:

- `host`: this machine's name (`socket.gethostname()`, at most 64 characters);
- `pid`: the sending process;
- `start`: which incarnation of that pid it is, `<boot>.<pid namespace>.<start ticks>`
  (Linux's boot id, the inode of the process's pid namespace, and its start time in clock
  ticks since boot, from /proc), or empty where /proc does not tell;
- `run`: a random token per run, since one process (the scheduler, the web app's
  courier) makes many runs one after another.

`gone(owner)` says whether an owner is certainly not sending any more; only then may
another sender take its claims over before their lease runs out (`recover_interrupted`).
It answers yes only when the owner ran on this host, in this boot and pid namespace (so
its pid means the same process here) and either its pid is not alive, or it is alive
with another start time (the pid was reused), or it is this very process and the run is
over. Everything else (another host, a namesake host, another container, a previous
boot, a system without /proc where a live pid may be reused) is "not provably gone": the
lease decides. A wrong "gone" would send a live sender's messages twice; a wrong "not
gone" only delays them until the lease runs out, so every doubt answers "not gone".
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HOST = socket.gethostname()[:64]  # claimed_by holds 128 characters in all

_PROC = Path("/proc")
_POSIX = os.name == "posix"  # elsewhere os.kill(pid, 0) would not ask but end the process
_active: set[str] = set()  # the run tokens of this process's runs still going
_active_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class Owner:
    """An owner id taken apart."""

    host: str
    pid: int
    scope: str  # "<boot>.<pid namespace>" where the pid means something; "" if unknown
    ticks: str  # the process's start time in clock ticks since boot; "" if unknown
    run: str

    @classmethod
    def parse(cls, text: str) -> Owner | None:
        """The parts of `text`, or None if it is no owner id of this format (the old
        `host:pid:token` of earlier versions, say, whose owners the lease judges)."""
        host, pid, start, run = ([""] * 4 + text.rsplit(":", 3))[-4:]
        scope, _, ticks = start.rpartition(".")
        if not (host and pid.isdigit() and run) or (start and not (scope and ticks)):
            return None
        return cls(host, int(pid), scope, ticks, run)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return ""


def _stat(pid: int | str) -> tuple[str, str]:
    """(state, start ticks) of a process from /proc, ("", "") if unreadable.

    The command name in parentheses may hold spaces and parentheses: split after the last.
    """
    text = _read(_PROC / str(pid) / "stat")
    fields = text.rpartition(")")[2].split()
    if len(fields) < 20:
        return "", ""
    return fields[0], fields[19]  # fields 3 and 22 of proc(5)


def _scope() -> str:
    """This kernel boot and pid namespace, in which pids identify processes ("" if unknown)."""
    boot = _read(_PROC / "sys/kernel/random/boot_id").replace("-", "")[:8]
    try:
        namespace = os.stat(_PROC / "self/ns/pid").st_ino
    except OSError:
        return ""
    return f"{boot}.{namespace}" if boot else ""


def _start() -> str:
    """This process's `start` part of an owner id."""
    scope, ticks = _scope(), _stat("self")[1]
    return f"{scope}.{ticks}" if scope and ticks else ""


@contextlib.contextmanager
def claiming() -> Iterator[str]:
    """A new owner id for one run, marked as going until the block ends.

    Computed per run, not once per import: a forked process has its own pid and start.
    """
    run = secrets.token_hex(4)
    with _active_lock:
        _active.add(run)
    try:
        yield f"{HOST}:{os.getpid()}:{_start()}:{run}"
    finally:
        with _active_lock:
            _active.discard(run)


def gone(owner_id: str) -> bool:
    """Whether the owner of a claim is certainly not sending any more (see the module)."""
    owner = Owner.parse(owner_id)
    if owner is None or owner.host != HOST or not _POSIX:
        return False  # not ours to judge
    scope = _scope()
    if owner.scope != scope:
        return False  # a pid of another boot or pid namespace says nothing here
    if owner.pid == os.getpid() and owner.ticks == _stat("self")[1]:
        with _active_lock:
            return owner.run not in _active  # this process: is that run still going?
    try:
        os.kill(owner.pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # it exists, under another user
    if not scope:
        return False  # alive, and without /proc a reused pid cannot be told apart
    state, ticks = _stat(owner.pid)
    if not ticks:
        return False  # unreadable (gone this instant, or /proc hides it): next run
    # A zombie (killed, not yet reaped) sends nothing; another start time is another
    # process that got the pid after the owner died.
    return state in ("Z", "X") or ticks != owner.ticks
