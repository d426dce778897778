"""Claim owners that are other processes of this host, for the tests of who may take over
whose claims: a real `python` process that holds an owner id until it is killed."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The child computes its own owner id (its pid and start time, not ours) and waits.
_CHILD = """
from digest.send import owner
with owner.claiming() as claimer:
    print(claimer, flush=True)
    input()
"""


@contextmanager
def other_sender() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A live process of this host with an owner id, as another sender would have it.

    Killed (and reaped) at the end if the test has not done so.
    """
    process = subprocess.Popen(
        [sys.executable, "-c", _CHILD],
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        yield process, process.stdout.readline().decode().strip()
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()
