"""digest.tasks.progress: what the broker knows (runs in flight, failures, queues), on a
real redis-server; and `digest status` showing the queue, reachable or not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from digest.cli import cli
from digest.config import Settings
from digest.jobs.digests import QueueReport
from digest.tasks import progress
from tests.smtp_server import free_port
from tests.tasks_support import RedisServer, running_redis


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, on a free loopback port."""
    with running_redis(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def queue_settings(make_settings: Any, redis_server: RedisServer) -> Settings:
    """Settings whose broker is the test's redis-server."""
    return make_settings(queue={"broker": redis_server.url, "run_timeout_minutes": 2.0})


def test_a_run_is_in_flight_until_its_batches_are_counted_down(
    queue_settings: Settings, redis_server: RedisServer
) -> None:
    assert progress.run_in_flight(queue_settings) is None
    progress.run_dispatched(queue_settings, "run1", 2)
    assert progress.run_in_flight(queue_settings) is None  # its batches not all sent yet
    progress.run_sent(queue_settings, "run1")
    assert progress.run_in_flight(queue_settings) == "run1"
    # Both keys live as long as a run may take, no longer.
    client = redis_server.client()
    assert 110 < client.ttl(progress.RUN_KEY) <= 120
    assert 110 < client.ttl(f"{progress.RUN_KEY}:run1") <= 120
    progress.batch_done(queue_settings, "run1", QueueReport())
    assert progress.run_in_flight(queue_settings) == "run1"
    progress.batch_done(queue_settings, "run1", QueueReport())
    assert progress.run_in_flight(queue_settings) is None
    # A batch made twice counts down twice: the run is over all the same.
    progress.batch_done(queue_settings, "run1", QueueReport())
    assert progress.run_in_flight(queue_settings) is None


def test_a_run_whose_batches_were_lost_times_out(
    queue_settings: Settings, redis_server: RedisServer
) -> None:
    progress.run_dispatched(queue_settings, "lost", 3)
    progress.run_sent(queue_settings, "lost")
    client = redis_server.client()
    for key in (progress.RUN_KEY, f"{progress.RUN_KEY}:lost"):
        client.delete(key)  # as if run_timeout_minutes had passed: expired
    assert progress.run_in_flight(queue_settings) is None


def test_a_batch_done_after_its_run_timed_out_leaves_no_key_behind(
    queue_settings: Settings, redis_server: RedisServer
) -> None:
    """A run slower than run_timeout_minutes: its last batches finish after its keys
    expired. Counting them down must not make a key that never expires."""
    progress.run_dispatched(queue_settings, "slow", 2)
    progress.run_sent(queue_settings, "slow")
    client = redis_server.client()
    client.delete(progress.RUN_KEY, f"{progress.RUN_KEY}:slow")  # expired
    progress.batch_done(queue_settings, "slow", QueueReport())
    assert client.keys("digest:run*") == []
    assert progress.run_in_flight(queue_settings) is None


def test_failed_tasks_are_counted_with_the_last_one(
    queue_settings: Settings, redis_server: RedisServer
) -> None:
    progress.task_failed(queue_settings, "digest.batch", ValueError("first"))
    progress.task_failed(queue_settings, "digest.send", RuntimeError("line one\nline two"))
    status = progress.queue_status(queue_settings, ask_workers=False)
    assert status.failed == 2
    assert status.last_failure == "digest.send: RuntimeError: line one\nline two"


def test_queue_status_counts_the_tasks_waiting_and_the_run(
    queue_settings: Settings, redis_server: RedisServer
) -> None:
    from digest.tasks.work import configure, digest_batch, send_chunk

    configure(queue_settings)
    for _ in range(3):
        digest_batch.apply_async(args=["r", "2026-06-12T06:00:00+00:00", "x", 0, None])
    send_chunk.apply_async()
    progress.run_dispatched(queue_settings, "r", 3)
    progress.run_sent(queue_settings, "r")
    status = progress.queue_status(queue_settings, ask_workers=False)
    assert status.reachable and status.error is None
    assert status.queued == {"digests": 3, "send": 1}
    assert (status.run, status.failed, status.last_failure) == ("r", 0, None)
    assert (status.workers, status.running) == ((), None)  # not asked
    # Asked, with no worker running: none answer within the second allowed.
    asked = progress.queue_status(queue_settings)
    assert (asked.workers, asked.running) == ((), 0)


def test_an_unreachable_broker_is_one_line_not_an_exception(make_settings: Any) -> None:
    port = free_port()  # nothing listens there
    settings = make_settings(queue={"broker": f"redis://:hunter2@127.0.0.1:{port}/0"})
    status = progress.queue_status(settings)
    assert not status.reachable
    assert status.broker == f"redis://:***@127.0.0.1:{port}/0"
    assert status.error and "\n" not in status.error and len(status.error) <= 200
    assert status.queued == {} and status.run is None


# --- `digest status` with [queue] broker ----------------------------------------------


def status_output(tmp_path: Path, broker: str) -> str:
    """What `digest status` prints with [queue] broker (and a new SQLite store)."""
    config = tmp_path / "config.toml"
    config.write_text(
        f'[service]\ndata_dir = "{tmp_path / "data"}"\n[queue]\nbroker = "{broker}"\n'
    )
    result = CliRunner().invoke(cli, ["--config", str(config), "status"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_status_shows_the_queue(
    tmp_path: Path, queue_settings: Settings, redis_server: RedisServer
) -> None:
    from digest.tasks.work import configure, send_chunk

    configure(queue_settings)
    send_chunk.apply_async()
    send_chunk.apply_async()
    progress.run_dispatched(queue_settings, "abc123", 4)
    progress.run_sent(queue_settings, "abc123")
    progress.task_failed(queue_settings, "digest.send", OSError("disk full"))
    lines = status_output(tmp_path, redis_server.url).splitlines()
    assert lines[-3:] == [
        f"task queue {redis_server.url}: waiting 0 digests, 2 send; running 0; failed 1 "
        "(last: digest.send: OSError: disk full)",
        "workers: 0 workers seen in the last 45 s (none alive)",
        "digest run abc123 is being made",
    ]


def test_status_with_an_unreachable_queue_says_so_in_one_line(tmp_path: Path) -> None:
    port = free_port()
    output = status_output(tmp_path, f"redis://:hunter2@127.0.0.1:{port}/0")
    [line] = [line for line in output.splitlines() if line.startswith("task queue")]
    assert line.startswith(f"task queue redis://:***@127.0.0.1:{port}/0: unreachable: ")
    assert "hunter2" not in output
    assert output.splitlines()[-1] == line  # no workers or run lines after it
