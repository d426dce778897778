"""A sending process killed half-way (SIGKILL) or asked to stop (SIGTERM), then restarted,
on SQLite and on PostgreSQL (where rows are claimed with SELECT ... FOR UPDATE SKIP
LOCKED).

`digest send` runs in a subprocess against a real SMTP server in this process; the test
kills it once about half of 1,000 messages have arrived. After a restart every message
must have arrived, exactly once, except at most one per connection that was in flight
(accepted by the server, not yet recorded), and those must be rows the killed process
had claimed. A SIGTERM is a clean stop: no duplicates at all. Two `digest send` with
their own data folders (so their own send locks) on one store at the same time: each
digest arrives once, since neither takes the other's claims for a dead sender's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from digest.config import load_settings
from digest.send import send_due
from digest.store import Database, open_database
from digest.store.models import OutboxRow
from tests.messages import queue_digests

ROOT = Path(__file__).resolve().parent.parent
CONNECTIONS = 3
COUNT = 1000


def _config(
    tmp_path: Path, server: Any, store: Database, data: str = "data", rate: float = 0.0
) -> Path:
    """A config sending through `server` from `store` (SQLite or PostgreSQL), with its
    own data folder `tmp_path / data` (and so its own send lock), at most `rate`
    messages a second (0: no limit)."""
    config = tmp_path / f"{data}.toml"
    config.write_text(
        f'[service]\ndata_dir = "{tmp_path / data}"\n'
        f'[database]\nurl = "{store.url}"\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {server.port}\nsecurity = "none"\n'
        f"connections = {CONNECTIONS}\ntimeout = 10.0\nrate = {rate}\n"
        '[delivery]\nbackend = "smtp"\n'
    )
    return config


def _setup(
    tmp_path: Path, server: Any, store: Database, count: int = COUNT
) -> tuple[Path, Any, Any]:
    """A config on `store` (SQLite in the data folder, or a PostgreSQL database), with
    `count` digests queued."""
    config = _config(tmp_path, server, store)
    settings = load_settings(config, environ={})
    database = open_database(settings)
    assert database.url == store.url  # the subprocess sends from the same store
    now = datetime.now(UTC)
    # Small digests (2 papers) keep the test quick; size does not change the property.
    messages = queue_digests(database, count, now=now, papers=2)
    return config, settings, (database, messages)


def _start_send(config: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-m", "digest", "--config", str(config), "send"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _wait_for(server: Any, count: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while len(server.received) < count:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the sender made no progress"
        time.sleep(0.005)


def _rows_by_state(database: Any, state: str) -> set[str]:
    with database.session() as session:
        return set(session.scalars(select(OutboxRow.message_id).where(OutboxRow.state == state)))


def test_sigkill_half_way_then_restart_loses_nothing(
    tmp_path: Path, smtp_server: Any, store_database: Database
) -> None:
    config, settings, (database, messages) = _setup(tmp_path, smtp_server, store_database)
    process = _start_send(config)
    _wait_for(smtp_server, COUNT // 2, process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    in_flight = _rows_by_state(database, "sending")  # claimed by the dead process
    assert in_flight, "the kill came after the run"

    report = send_due(settings, database, now=datetime.now(UTC))
    assert report.recovered == len(in_flight) and report.error is None

    counts = smtp_server.message_ids()
    assert set(counts) == {m.message_id for m in messages}  # nothing lost
    twice = {message_id for message_id, n in counts.items() if n > 1}
    assert max(counts.values()) <= 2
    assert len(twice) <= CONNECTIONS  # at most one in-flight message per connection
    assert twice <= in_flight  # and only messages the dead process had in flight
    assert _rows_by_state(database, "sent") == set(counts)
    database.dispose()


def test_sigterm_stops_cleanly_and_a_restart_finishes_exactly_once(
    tmp_path: Path, smtp_server: Any, store_database: Database
) -> None:
    config, settings, (database, messages) = _setup(tmp_path, smtp_server, store_database)
    process = _start_send(config)
    _wait_for(smtp_server, COUNT // 3, process)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert b"stopped on request" in out
    assert _rows_by_state(database, "sending") == set()  # everything recorded or handed back
    sent_before = len(smtp_server.received)
    assert sent_before < COUNT

    report = send_due(settings, database, now=datetime.now(UTC))
    assert (report.recovered, report.sent) == (0, COUNT - sent_before)
    assert smtp_server.message_ids() == Counter({m.message_id: 1 for m in messages})
    database.dispose()


def test_two_senders_with_their_own_data_folders_send_every_digest_once(
    tmp_path: Path, smtp_server: Any, store_database: Database
) -> None:
    # Two `digest send` on one host and one store, each with its own data folder (so its
    # own send lock), started together: neither may take the other's live claims for
    # those of a dead sender (the old recovery took every claim of this host: 41 to 71 of
    # 300 digests arrived twice). Paced, so that each run lasts a second or two and leaves
    # SQLite's write lock free between commits: unpaced, the first sender could keep it
    # until its run is over, and the two runs would not overlap at all.
    _, _, (database, messages) = _setup(tmp_path, smtp_server, store_database, count=300)
    configs = [
        _config(tmp_path, smtp_server, store_database, data, rate=200.0) for data in ("a", "b")
    ]
    processes = [_start_send(config) for config in configs]
    outputs = [process.communicate(timeout=120) for process in processes]
    counts = smtp_server.message_ids()
    twice = sorted(message_id for message_id, n in counts.items() if n > 1)
    assert twice == [], f"{len(twice)} of {len(messages)} arrived more than once"
    assert counts == Counter({m.message_id: 1 for m in messages})
    assert _rows_by_state(database, "sent") == {m.message_id for m in messages}
    sent = []
    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
        assert b"resent after an interrupted run" not in out, out
        sent.append(int(out.split(b" sent,")[0]))
    assert sum(sent) == len(messages) and min(sent) > 0  # both sent: the runs overlapped
    database.dispose()
