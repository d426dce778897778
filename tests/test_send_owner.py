"""Owner ids of claims, and when an owner is provably gone (`digest.send.owner`).

Real processes: a live `python` child of this test holds an owner id; it is killed to
see its claims become takeable at once. Everything the module cannot be sure of must
answer "not gone", since a wrong "gone" sends a live sender's messages twice.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from digest.send import owner
from digest.send.owner import HOST, Owner, claiming, gone
from tests.owners import other_sender

linux = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="process start times come from /proc"
)


def test_an_owner_id_names_the_host_the_process_its_start_and_the_run() -> None:
    with claiming() as first, claiming() as second:
        parsed = Owner.parse(first)
        assert parsed is not None
        assert (parsed.host, parsed.pid) == (HOST, os.getpid())
        assert first != second  # one per run, even in one process
        assert len(first) <= 128  # the width of outbox.claimed_by
    if Path("/proc/self/stat").exists():
        start_ticks = Path("/proc/self/stat").read_text().rpartition(")")[2].split()[19]
        assert parsed.ticks == start_ticks and parsed.scope


def test_a_run_of_this_process_is_gone_once_it_ends() -> None:
    with claiming() as claimer:
        assert not gone(claimer)  # another run of this process may still be sending
    assert gone(claimer)


def test_a_live_sender_of_this_host_is_not_gone_and_a_killed_one_is() -> None:
    with other_sender() as (process, claimer):
        assert Owner.parse(claimer).pid == process.pid
        assert not gone(claimer)
        process.kill()
        process.wait(timeout=30)
        assert gone(claimer)


@linux
def test_a_killed_sender_not_yet_reaped_is_gone() -> None:
    with other_sender() as (process, claimer):
        os.kill(process.pid, signal.SIGKILL)  # a zombie until its parent waits for it
        stat = Path(f"/proc/{process.pid}/stat")
        deadline = time.monotonic() + 10
        while stat.read_text().rpartition(")")[2].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert gone(claimer)


@linux
def test_a_pid_now_used_by_another_process_is_gone() -> None:
    # The owner died and its pid went to a new process: same pid, another start time.
    with other_sender() as (_, claimer):
        parsed = Owner.parse(claimer)
        earlier = f"{parsed.host}:{parsed.pid}:{parsed.scope}.{int(parsed.ticks) - 1}:x"
        assert not gone(claimer) and gone(earlier)


def test_what_cannot_be_judged_here_is_left_to_the_lease(monkeypatch) -> None:
    with other_sender() as (process, claimer):
        parsed = Owner.parse(claimer)
        process.kill()
        process.wait(timeout=30)
    assert gone(claimer)
    # The same dead pid, in owner ids this host cannot vouch for:
    pid, start = parsed.pid, f"{parsed.scope}.{parsed.ticks}"
    elsewhere = [
        f"other-{HOST}:{pid}:{start}:x",  # another host
        f"{HOST[:-1]}_:{pid}:{start}:x",  # "_" is no wildcard
        f"{HOST.upper()}x:{pid}:{start}:x",  # nor is case ignored
        f"{HOST}:{pid}:abcd1234",  # the owner ids of earlier versions: host:pid:token
        "",
        "nonsense",
    ]
    if parsed.scope:
        boot, _, namespace = parsed.scope.partition(".")
        elsewhere += [
            f"{HOST}:{pid}:0000beef.{namespace}.{parsed.ticks}:x",  # another boot
            f"{HOST}:{pid}:{boot}.1.{parsed.ticks}:x",  # another pid namespace (container)
            f"{HOST}:{pid}::x",  # a sender that could not tell its start
        ]
    assert [who for who in elsewhere if gone(who)] == []
    monkeypatch.setattr(owner, "_POSIX", False)  # off POSIX, no pid is ever asked about
    assert not gone(claimer)
