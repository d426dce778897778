"""digest.tasks.dispatch: the scheduler's tick turns what is due into tasks, on a real
redis-server (no worker runs here: the tasks are counted in the queues).

A run dispatched is not dispatched again while it is being made, and is again once it
is over or timed out (its readers still due); send chunks are asked for as the outbox's
due rows need, not while some wait; and a broker that fails in the middle of a dispatch
leaves no run in flight, so the next tick plans the whole run again.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from kombu.exceptions import OperationalError

from digest.config import Settings
from digest.jobs.digests import QueueReport
from digest.store import Database
from digest.store.outbox import claim_due
from digest.tasks import dispatch, progress
from digest.tasks.dispatch import DispatchReport, dispatch_due
from tests.messages import queue_digests
from tests.tasks_support import NOW, RedisServer, running_redis, stock, wait_for


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, on a free loopback port."""
    with running_redis(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def queue_settings(make_settings: Any, redis_server: RedisServer) -> Settings:
    """Batches of 50 readers, send chunks of 20 messages, on the test's redis-server."""
    return make_settings(
        queue={"broker": redis_server.url, "batch": 50, "send_chunk": 20},
        web={"secret_key": "dispatch-test-" + "x" * 40},
    )


def waiting(server: RedisServer) -> dict[str, int]:
    """Tasks waiting in each queue."""
    client = server.client()
    return {name: client.llen(name) for name in ("digests", "send")}


def batch_args(server: RedisServer) -> list[list[Any]]:
    """The arguments of the batch tasks waiting, in the order they were sent."""
    import base64
    import json

    client = server.client()
    found = []
    for raw in reversed(client.lrange("digests", 0, -1)):  # LPUSHed: newest first
        message = json.loads(raw)
        body = json.loads(base64.b64decode(message["body"]))
        assert message["headers"]["task"] == "digest.batch"
        found.append(body[0])
    return found


def test_a_run_is_dispatched_once_while_it_is_being_made(
    queue_settings: Settings, database: Database, redis_server: RedisServer
) -> None:
    stock(database, 120)
    first = dispatch_due(queue_settings, database, now=NOW)
    assert (first.batches, first.busy_with, first.send_chunks) == (3, None, 0)
    assert first.run and first.summary() == (
        f"tasks: run {first.run} as 3 batches; 0 send chunks for 0 messages due"
    )
    # The batches cover the due readers by id range, the last one open-ended.
    args = batch_args(redis_server)
    assert [a[0] for a in args] == [first.run] * 3
    assert [a[3:] for a in args] == [[0, 50], [50, 100], [100, None]]
    assert {(a[1], a[2]) for a in args} == {(NOW.isoformat(), args[0][2])}

    # The next tick, the run not made yet: nothing more, though the readers are due.
    again = dispatch_due(queue_settings, database, now=NOW + timedelta(minutes=1))
    assert (again.run, again.busy_with, again.batches) == (None, first.run, 0)
    assert again.summary().startswith(f"tasks: run {first.run} still being made;")
    assert waiting(redis_server)["digests"] == 3

    # Its batches counted down (made, here without a worker): the next tick plans the
    # readers still due, since nothing was queued for them.
    for _ in range(3):
        progress.batch_done(queue_settings, first.run, QueueReport())
    later = dispatch_due(queue_settings, database, now=NOW + timedelta(minutes=2))
    assert later.run not in (None, first.run) and later.batches == 3


def test_a_run_that_timed_out_is_planned_again(
    queue_settings: Settings, database: Database, redis_server: RedisServer
) -> None:
    stock(database, 10)
    first = dispatch_due(queue_settings, database, now=NOW)
    assert first.batches == 1
    client = redis_server.client()
    keys = client.keys("digest:run*")
    assert len(keys) == 2
    for key in keys:  # as if run_timeout_minutes had passed
        client.pexpire(key, 1)
    wait_for(lambda: not client.exists(*keys), "the run's keys to expire", timeout=10)
    second = dispatch_due(queue_settings, database, now=NOW + timedelta(minutes=31))
    assert second.run not in (None, first.run) and second.batches == 1


def test_no_digests_due_dispatches_no_run(
    queue_settings: Settings, database: Database, redis_server: RedisServer
) -> None:
    report = dispatch_due(queue_settings, database, now=NOW)
    assert report == DispatchReport()
    assert report.summary() == "tasks: no digests due; 0 send chunks for 0 messages due"
    assert waiting(redis_server) == {"digests": 0, "send": 0}
    assert progress.run_in_flight(queue_settings) is None


def test_send_chunks_follow_the_messages_due(
    queue_settings: Settings, database: Database, redis_server: RedisServer
) -> None:
    queue_digests(database, 45, now=NOW, papers=1)
    report = dispatch_due(queue_settings, database, now=NOW)
    assert (report.due_to_send, report.send_chunks) == (45, 3)  # chunks of 20
    assert waiting(redis_server) == {"digests": 0, "send": 3}
    # While chunks wait in the queue, a tick asks for none more.
    again = dispatch_due(queue_settings, database, now=NOW)
    assert (again.due_to_send, again.send_chunks) == (45, 0)
    assert waiting(redis_server)["send"] == 3
    # Taken (the queue empty) but the rows still due (a chunk lost): asked for again.
    redis_server.client().delete("send")
    assert dispatch_due(queue_settings, database, now=NOW).send_chunks == 3


def test_send_chunks_asked_at_one_tick_are_capped(
    make_settings: Any, database: Database, redis_server: RedisServer
) -> None:
    settings = make_settings(queue={"broker": redis_server.url, "send_chunk": 1})
    queue_digests(database, dispatch.MAX_CHUNKS + 6, now=NOW, papers=1)
    report = dispatch_due(settings, database, now=NOW)
    assert (report.due_to_send, report.send_chunks) == (70, dispatch.MAX_CHUNKS)
    assert math.ceil(report.due_to_send / 1) > report.send_chunks
    assert waiting(redis_server)["send"] == dispatch.MAX_CHUNKS


@pytest.mark.parametrize("how", ["publish-fails", "broker-stops"])
def test_a_broker_failing_mid_dispatch_leaves_no_run_in_flight(
    how: str,
    queue_settings: Settings,
    database: Database,
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The third batch cannot be sent: the tick fails, and the next one (the broker
    back) plans the whole run again at once, not after run_timeout_minutes."""
    from digest.tasks.work import digest_batch

    stock(database, 200)  # 4 batches
    sent = digest_batch.apply_async
    calls: list[int] = []

    def failing(*args: Any, **kwargs: Any) -> Any:
        """The real publish, except that the third fails."""
        calls.append(1)
        if len(calls) == 3:
            if how == "publish-fails":
                raise OperationalError("Error 32 while writing to socket. Broken pipe.")
            redis_server.stop()  # the publish below finds no broker
        return sent(*args, **kwargs)

    monkeypatch.setattr(digest_batch, "apply_async", failing)
    with pytest.raises(OperationalError):
        dispatch_due(queue_settings, database, now=NOW)
    monkeypatch.undo()
    if how == "broker-stops":
        redis_server.start()  # the same files: what it held before is there again
    assert progress.run_in_flight(queue_settings) is None
    assert waiting(redis_server)["digests"] == 2  # the two sent before the failure
    report = dispatch_due(queue_settings, database, now=NOW + timedelta(minutes=1))
    assert report.batches == 4 and report.busy_with is None


def test_rows_held_by_a_sender_that_may_be_dead_get_a_chunk(
    queue_settings: Settings, database: Database, redis_server: RedisServer
) -> None:
    """A worker killed whole while it sends: its chunk is held by the broker for the
    visibility timeout (an hour by default), and its rows are "sending", not due. The
    next tick asks for one chunk all the same, which takes over the claims of a sender
    that is gone (at once on its host, after the lease elsewhere)."""
    queue_digests(database, 30, now=NOW, papers=1)
    with database.session() as session:
        claimed = claim_due(session, now=NOW, limit=30, claimer="host:4242:dead:run")
        session.commit()
    assert len(claimed) == 30
    report = dispatch_due(queue_settings, database, now=NOW)
    assert (report.due_to_send, report.held_by_senders, report.send_chunks) == (0, 30, 1)
    assert report.summary().endswith("1 send chunks for 0 messages due, 30 held by senders")
    # One chunk waiting is enough: the next tick asks for none more.
    assert dispatch_due(queue_settings, database, now=NOW).send_chunks == 0
