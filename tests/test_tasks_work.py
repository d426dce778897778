"""`digest worker` for real: Celery workers over redis-server and PostgreSQL.

Workers are `python -m digest worker` subprocesses (tests/tasks_support.py); the test
process plays the scheduler, calling `dispatch_due` at the tick's `now`, and receives the
mail in an aiosmtpd sink. The readers are due and their papers in their window in the
store from the start, so no test waits for a clock.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from digest.cli import cli
from digest.config import load_settings
from digest.jobs.digests import queue_due_digests
from digest.store import Database
from digest.tasks import progress, work
from digest.tasks.dispatch import DispatchReport, dispatch_due
from digest.tasks.work import configure, send_chunk
from tests.conftest import _fresh_postgres_database
from tests.smtp_server import SmtpServer
from tests.tasks_support import (
    DAY,
    NOW,
    SHARED,
    SIGNUP,
    SMTP_CONNECTIONS,
    RedisServer,
    Worker,
    Workers,
    broker_idle,
    digest_count,
    digest_rows,
    open_transactions,
    proxy_for,
    received_by,
    running_redis,
    still_due,
    stock,
    wait_for,
    worker_clock,
    worker_pool,
    write_config,
)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, on a free loopback port."""
    with running_redis(tmp_path / "redis") as server:
        yield server


# --- `digest worker` refuses to start without what it needs ----------------------------


def worker_command(tmp_path: Path, *arguments: str, broker: str = "") -> Any:
    """`digest worker ...` through click's CliRunner, with `broker` in [queue]."""
    config = tmp_path / "worker.toml"
    config.write_text(
        f'[service]\ndata_dir = "{tmp_path / "data"}"\n[queue]\nbroker = "{broker}"\n'
    )
    return CliRunner().invoke(
        cli, ["--config", str(config), "worker", *arguments], catch_exceptions=False
    )


def test_worker_without_a_broker_is_a_one_line_error(tmp_path: Path) -> None:
    result = worker_command(tmp_path)
    assert result.exit_code == 1
    assert result.stderr == (
        "digest: digest worker needs [queue] broker (a redis:// URL) in the config\n"
    )
    assert result.stdout == ""


@pytest.mark.parametrize("queues", ["digests,mail", ",", "send,digest"])
def test_worker_with_an_unknown_queue_is_a_usage_error(tmp_path: Path, queues: str) -> None:
    result = worker_command(tmp_path, "-Q", queues, broker="redis://127.0.0.1:1/0")
    assert result.exit_code == 2
    assert "Invalid value for --queues: unknown queue" in result.stderr
    assert "choose from digests, send" in result.stderr
    assert "Traceback" not in result.output


def test_configured_again_for_another_broker_the_tasks_go_there(
    make_settings: Any, redis_server: RedisServer
) -> None:
    """One process configured twice (tests do; so would a reloaded config): the tasks go
    to the second broker, not through the connections pooled for the first."""
    from redis import Redis

    for number in (0, 1):
        broker = f"redis://127.0.0.1:{redis_server.port}/{number}"
        configure(make_settings(queue={"broker": broker}))
        send_chunk.apply_async()
    counts = [Redis(port=redis_server.port, db=db).llen("send") for db in (0, 1)]
    assert counts == [1, 1]


# --- real workers: a day's run, then faults (killed, stopped, Redis and PostgreSQL lost)


@dataclass
class Rig:
    """One test's real parts: the store, the broker, the SMTP sink and the workers."""

    folder: Path
    database: Database
    redis: RedisServer
    smtp: SmtpServer
    workers: Workers
    clock: Path
    ticks: int = 0

    def config(self, *, database_url: str | None = None, **options: Any) -> Path:
        """The workers' config (`options`: [queue] values, or `rate` for [smtp])."""
        return write_config(
            self.folder,
            database_url=database_url or self.database.url,
            broker=self.redis.url,
            smtp=self.smtp,
            **options,
        )

    def start(self, config: Path, *names: str, queues: str = "digests,send") -> list[Worker]:
        """Start workers of one process each, taking tasks from `queues`."""
        return self.workers.start(config, *names, arguments=("-Q", queues), clock=self.clock)

    def tick(self, config: Path) -> DispatchReport:
        """The scheduler's tick: `dispatch_due`, a second later than the last one."""
        self.ticks += 1
        settings = load_settings(config, environ={})
        return dispatch_due(settings, self.database, now=NOW + timedelta(seconds=self.ticks))

    def wait(
        self, predicate: Callable[[], bool], what: str, *, ticking: Path | None = None
    ) -> None:
        """Wait until `predicate` holds; with `ticking` (a config), the scheduler ticks
        every second meanwhile, as it would (every `digest_check_minutes`)."""
        last = time.monotonic()

        def check() -> bool:
            """The predicate, after the tick that is due, if any."""
            nonlocal last
            if ticking is not None and time.monotonic() - last >= 1.0:
                self.tick(ticking)
                last = time.monotonic()
            return predicate()

        wait_for(check, what, logs=self.workers.logs)

    def all_sent(self, readers: int) -> Callable[[], bool]:
        """Every reader's digest sent, and no task left waiting or at work."""
        return lambda: (
            digest_count(self.database, "sent") == readers
            and len(self.smtp.received) >= readers
            and broker_idle(self.redis)
        )

    def wait_mid_batch(self, worker: Worker, readers: int, *, first: bool = False) -> str:
        """Wait until `worker` (one pool process) is inside a digest batch's
        transaction, after a first batch was made (or any batch, with `first`) and
        before the last: the same batch at work and the same digests queued before and
        after its transaction is seen open. The id of that batch's task."""
        seen: list[str] = []

        def inside() -> bool:
            """Whether it is so now."""
            at_work = worker.at_work("digest.batch")
            queued = digest_count(self.database)
            seen[:] = at_work
            return bool(
                at_work
                and (first or queued > 0)
                and queued < readers
                and open_transactions(self.database) > 0
                and digest_count(self.database) == queued
                and worker.at_work("digest.batch") == at_work
            )

        self.wait(inside, "the worker inside its second or third batch")
        [batch] = seen
        return batch


@pytest.fixture
def rig(
    tmp_path: Path,
    postgres_database: Database,
    redis_server: RedisServer,
    smtp_server: SmtpServer,
) -> Iterator[Rig]:
    """The parts of a fault test, the workers stopped (and their logs shown) after it."""
    with worker_pool() as workers:
        yield Rig(
            tmp_path, postgres_database, redis_server, smtp_server, workers, worker_clock(tmp_path)
        )


def assert_delivered(
    rig: Rig, emails: list[str], *, twice_at_most: int = 0
) -> dict[str, list[tuple[str, frozenset[str]]]]:
    """Every reader has one digest row, sent, and received it; a reader who received it
    more than once received the same message (one Message-ID), and such extra copies
    number `twice_at_most` at most (the window delivery.py documents). Returns what
    arrived (`received_by`)."""
    rows = {row.email: row for row in digest_rows(rig.database)}
    assert sorted(rows) == sorted(emails)
    assert {(row.day, row.state) for row in rows.values()} == {(DAY, "sent")}
    arrived = received_by(rig.smtp)
    assert sorted(arrived) == sorted(emails)
    for address, got in arrived.items():
        assert {message_id for message_id, _ in got} == {rows[address].message_id}, address
    extra = sum(len(got) - 1 for got in arrived.values())
    assert extra <= twice_at_most, f"{extra} digests arrived twice"
    return arrived


def test_a_batch_made_while_the_broker_is_away_is_not_a_failure(
    make_settings: Any,
    database: Database,
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The batch committed its digests, then cannot ask for their delivery (the broker
    is away): a warning line, not a failed task; the next tick asks for the chunks."""
    settings = make_settings(queue={"broker": redis_server.url, "batch": 50}, **SHARED)
    stock(database, 20)
    monkeypatch.setattr(work, "_worker", None)  # this process's worker state: these settings
    configure(settings)
    redis_server.stop()
    result = work.digest_batch.apply(args=["run", NOW.isoformat(), SIGNUP.isoformat(), 0, None])
    assert result.successful(), result.traceback
    assert result.get() == {"due": 20, "queued": 20}
    assert digest_count(database, "queued") == 20
    [line] = [r.getMessage() for r in caplog.records if "delivery" in r.getMessage()]
    assert line.startswith("batch after id 0: cannot ask for the delivery of 20 digests (")
    assert line.endswith("); the next digest check will")
    redis_server.start()
    assert dispatch_due(settings, database, now=NOW + timedelta(minutes=1)).send_chunks == 1
    assert work._worker is not None
    work._worker.database.dispose()  # the state made for this test's settings


@pytest.mark.timeout(180)
def test_a_day_of_2000_readers_over_two_workers_equals_the_run_in_one_process(
    rig: Rig, make_settings: Any
) -> None:
    """The scheduler's one tick dispatches 40 batches; two workers make and send them
    all, without another tick. Each reader gets one digest, holding the papers the job
    run in one process picks for them from the same readers and papers."""
    emails = stock(rig.database, 2000)
    config = rig.config(batch=50, send_chunk=100)
    workers = rig.start(config, "a", "b")
    report = dispatch_due(load_settings(config, environ={}), rig.database, now=NOW)
    assert report.batches == 40
    rig.wait(rig.all_sent(2000), "2,000 digests sent, the queues empty")
    made = [worker.finished("digest.batch") for worker in workers]
    assert sum(made) == 40 and min(made) > 0, made  # both workers made batches
    arrived = assert_delivered(rig, emails)
    # Their send latencies are in Redis for /metrics, one round trip a send chunk.
    sent = progress.latencies(load_settings(config, environ={}), ("digest",))["digest"]
    assert sent["count"] == 2000 and sent["le:86400"] == 2000

    # The same readers and papers in a second store, made by the job in one process.
    with contextlib.contextmanager(_fresh_postgres_database)() as other:
        stock(other, 2000)
        alone = make_settings(**SHARED)
        assert queue_due_digests(alone, other, now=NOW).queued == 2000
        expected = {row.email: row.papers for row in digest_rows(other, papers=True)}
    assert {address: got[0][1] for address, got in arrived.items()} == expected
    assert len(set(expected.values())) >= 8  # readers' interests differ, so do their papers


@pytest.mark.timeout(120)
def test_a_pool_process_killed_mid_batch_is_replaced_and_the_batch_made_again(
    rig: Rig,
) -> None:
    emails = stock(rig.database, 300)
    config = rig.config(batch=100, send_chunk=100)
    [worker] = rig.start(config, "a")
    assert rig.tick(config).batches == 3
    lost = rig.wait_mid_batch(worker, 300)
    worker.kill_child()
    rig.wait(
        rig.all_sent(300), "every digest sent after the pool process was replaced", ticking=config
    )
    log = worker.log()
    assert "exited with 'signal 9 (SIGKILL)'" in log
    assert log.count(f"Task digest.batch[{lost}] received") == 2  # given back, made again
    assert worker.running()
    assert_delivered(rig, emails)


@pytest.mark.timeout(150)
def test_a_worker_killed_whole_mid_batch_loses_and_doubles_nothing(rig: Rig) -> None:
    """The batch in hand dies with its worker, unacknowledged. The scheduler's next
    ticks find its readers still due once the run times out, and plan them again; the
    lost task itself comes back after the visibility timeout, to a worker that starts,
    and changes nothing."""
    emails = stock(rig.database, 300)
    config = rig.config(batch=100, send_chunk=100, visibility_timeout=5, run_timeout_minutes=0.05)
    [worker] = rig.start(config, "a")
    assert rig.tick(config).batches == 3
    lost = rig.wait_mid_batch(worker, 300)
    worker.kill()
    killed = time.monotonic()
    assert 0 < still_due(rig.database) < 300
    worker.start("-Q", "digests,send").wait_ready()  # restarted at once, as systemd would
    # Not waiting for the broker to be idle: the lost task is still held for its worker.
    rig.wait(lambda: digest_count(rig.database, "sent") == 300, "every digest sent", ticking=config)
    assert_delivered(rig, emails)
    assert f"Task digest.batch[{lost}] succeeded" not in worker.log()
    client = rig.redis.client()
    rig.wait(  # the other tasks done, the lost one still held for the worker that died
        lambda: not (client.llen("digests") or client.llen("send")) and client.hlen("unacked") == 1,
        "only the lost task left in the broker",
    )
    # The lost task is visible again 5 s after it was taken: a worker that starts then
    # finds it, and making it again queues nothing.
    time.sleep(max(0.0, killed + 5.5 - time.monotonic()))
    worker.kill()
    worker.start("-Q", "digests,send").wait_ready()
    made_again = f"Task digest.batch[{lost}] succeeded"
    rig.wait(lambda: made_again in worker.log(), "the lost batch made again")
    [line] = [line for line in worker.log().splitlines() if made_again in line]
    assert line.endswith("{'due': 0, 'queued': 0}")
    assert_delivered(rig, emails)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kill", ["pool-process", "whole-worker"])
def test_a_worker_killed_mid_send_chunk_sends_each_digest_once(rig: Rig, kill: str) -> None:
    """Killed while a chunk of 100 is about half sent: the rows it had claimed are taken over
    at once by the next chunk on this host (their owner is gone) and sent; only those
    in flight on its connections may arrive twice, with the same Message-ID."""
    emails = stock(rig.database, 300)
    alone = load_settings(rig.config(), environ={})
    assert queue_due_digests(alone, rig.database, now=NOW).queued == 300
    config = rig.config(send_chunk=100, rate=200.0, visibility_timeout=5)
    [worker] = rig.start(config, "a", queues="send")
    assert rig.tick(config).send_chunks == 3

    def half_sent() -> bool:
        """A chunk at work, the second or third, neither at its start nor its end."""
        sent = len(rig.smtp.received)
        return bool(worker.at_work("digest.send")) and 100 < sent < 300 and 10 <= sent % 100 <= 90

    rig.wait(half_sent, "the second or third send chunk half sent")
    if kill == "pool-process":
        worker.kill_child()
        rig.wait(rig.all_sent(300), "every digest sent after the pool process was replaced")
    else:
        worker.kill()
        worker.start("-Q", "send").wait_ready()
        rig.wait(
            lambda: digest_count(rig.database, "sent") == 300,
            "every digest sent",
            ticking=config,
        )
    assert "resent after an interrupted run" in worker.log()
    assert_delivered(rig, emails, twice_at_most=SMTP_CONNECTIONS)


@pytest.mark.timeout(120)
def test_redis_restarted_mid_run_the_run_finishes_once(rig: Rig) -> None:
    """The broker goes away for a second while two workers make the run and send it;
    the workers reconnect by themselves, and with the scheduler's ticks the run
    finishes: every digest once, none twice (no worker died, so no send was cut)."""
    emails = stock(rig.database, 300)
    config = rig.config(batch=25, send_chunk=25, visibility_timeout=5, run_timeout_minutes=0.05)
    workers = rig.start(config, "a", "b")
    assert rig.tick(config).batches == 12
    rig.wait(lambda: digest_count(rig.database) >= 75, "a quarter of the run made")
    rig.redis.restart(down=1.0)
    rig.wait(lambda: digest_count(rig.database, "sent") == 300, "every digest sent", ticking=config)
    for worker in workers:
        assert worker.running()
        log = worker.log()
        assert "Connection to broker lost. Trying to re-establish the connection" in log
        assert "Traceback" not in log
        assert "In Celery 5.1 we introduced" not in log  # the warning work.py quiets
    assert_delivered(rig, emails)


@pytest.mark.timeout(120)
def test_postgresql_unreachable_mid_run_the_workers_retry_and_finish_once(rig: Rig) -> None:
    """Every connection to PostgreSQL cut and new ones refused for a moment: the tasks
    that need it say so in one line each and try again with backoff; once it is back
    the run finishes, every digest once."""
    emails = stock(rig.database, 200)
    proxy = proxy_for(rig.database)
    try:
        config = rig.config(database_url=proxy.url(rig.database.url), batch=25, send_chunk=25)
        [worker] = rig.start(config, "a")
        assert rig.tick(config).batches == 8
        rig.wait(lambda: digest_count(rig.database) >= 50, "a quarter of the run made")
        proxy.cut()
        rig.wait(lambda: "database unreachable" in worker.log(), "a task to find no database")
        proxy.restore()
        rig.wait(
            lambda: digest_count(rig.database, "sent") == 200, "every digest sent", ticking=config
        )
    finally:
        proxy.stop()
    log = worker.log()
    retries = [line for line in log.splitlines() if "database unreachable (" in line]
    assert retries and all("; trying again in " in line for line in retries)
    assert "; trying again in 2 s" in retries[0]
    assert "Traceback" not in log
    assert_delivered(rig, emails, twice_at_most=SMTP_CONNECTIONS)


@pytest.mark.timeout(120)
def test_sigterm_finishes_the_batch_in_hand_then_stops(rig: Rig) -> None:
    """A warm stop: the batch at work is made whole and committed, the worker exits 0,
    the batches it had not started stay queued for the next worker."""
    emails = stock(rig.database, 300)
    config = rig.config(batch=100)
    [worker] = rig.start(config, "a", queues="digests")
    assert rig.tick(config).batches == 3
    in_hand = rig.wait_mid_batch(worker, 300, first=True)
    assert worker.terminate() == 0
    assert f"Task digest.batch[{in_hand}] succeeded" in worker.log()
    made = worker.finished("digest.batch")
    assert 1 <= made <= 3
    assert digest_count(rig.database) == 100 * made  # whole batches only
    assert still_due(rig.database) == 300 - 100 * made
    assert open_transactions(rig.database) == 0
    assert rig.redis.client().llen("digests") == 3 - made  # the rest still queued
    worker.start("-Q", "digests").wait_ready()
    rig.wait(
        lambda: digest_count(rig.database) == 300 and broker_idle_of(rig, "digests"),
        "the rest made by the worker started again",
    )
    rows = digest_rows(rig.database)
    assert sorted(row.email for row in rows) == sorted(emails)


@pytest.mark.timeout(120)
def test_sigterm_finishes_the_send_chunk_in_hand_then_stops(rig: Rig) -> None:
    """A warm stop while a chunk of 100 is being sent: the chunk is sent whole and
    recorded, none twice; the next chunk stays queued, its rows still due."""
    stock(rig.database, 200)
    alone = load_settings(rig.config(), environ={})
    assert queue_due_digests(alone, rig.database, now=NOW).queued == 200
    config = rig.config(send_chunk=100, rate=200.0)
    [worker] = rig.start(config, "a", queues="send")
    assert rig.tick(config).send_chunks == 2
    rig.wait(
        lambda: bool(worker.at_work("digest.send")) and 10 <= len(rig.smtp.received) <= 90,
        "the first send chunk half sent",
    )
    assert worker.terminate() == 0
    assert worker.finished("digest.send") == 1
    assert len(rig.smtp.received) == 100
    assert max(rig.smtp.message_ids().values()) == 1
    assert digest_count(rig.database, "sent") == 100
    assert digest_count(rig.database, "sending") == 0  # nothing left claimed
    assert digest_count(rig.database, "queued") == 100
    assert rig.redis.client().llen("send") == 1


def broker_idle_of(rig: Rig, queue: str) -> bool:
    """No task waiting in `queue` and none held unacknowledged."""
    client = rig.redis.client()
    return not (client.llen(queue) or client.hlen("unacked"))


@pytest.mark.timeout(120)
def test_tasks_delivered_twice_change_nothing_the_second_time(rig: Rig) -> None:
    """Every batch and send chunk of a finished run delivered again, as Redis does when
    a visibility timeout expires: the batches find their readers done, the chunks find
    nothing to claim; not one more digest is queued or sent."""
    emails = stock(rig.database, 150)
    config = rig.config(batch=50, send_chunk=50)
    assert rig.tick(config).batches == 3  # no worker yet: the tasks wait in the queue
    client = rig.redis.client()
    batches = client.lrange("digests", 0, -1)
    assert len(batches) == 3
    [worker] = rig.start(config, "a")
    rig.wait(rig.all_sent(150), "every digest sent")
    chunks = worker.finished("digest.send")
    client.lpush("digests", *batches)  # the very same messages, task ids and all
    configure(load_settings(config, environ={}))
    send_chunk.apply_async()
    send_chunk.apply_async()
    rig.wait(
        lambda: (
            worker.finished("digest.batch") == 6 and worker.finished("digest.send") == chunks + 2
        ),
        "the tasks made again",
    )
    rig.wait(lambda: broker_idle(rig.redis), "the queues empty")
    again = [
        line
        for line in worker.log().splitlines()
        if "digest.batch[" in line and "succeeded" in line
    ][3:]
    assert len(again) == 3 and all(line.endswith("{'due': 0, 'queued': 0}") for line in again)
    assert len(rig.smtp.received) == 150
    assert_delivered(rig, emails)


@pytest.mark.timeout(120)
def test_tasks_that_never_run_are_found_by_the_next_ticks(rig: Rig) -> None:
    """The batches are lost before any worker takes them (a broker that lost its data,
    say): their readers are still due, and once the run times out a tick plans them
    again. (Send chunks lost while their rows are still queued are asked for again at
    the next tick: tests/test_tasks_dispatch.py.)"""
    emails = stock(rig.database, 150)
    config = rig.config(batch=50, send_chunk=50, run_timeout_minutes=0.05)
    first = rig.tick(config)
    assert first.batches == 3
    client = rig.redis.client()
    client.delete("digests")  # lost: never run
    assert rig.tick(config).busy_with == first.run  # the run is still being made...
    assert still_due(rig.database) == 150
    ticks: list[DispatchReport] = []

    def planned_again() -> bool:
        """Tick; whether that tick planned a run."""
        ticks.append(rig.tick(config))
        return ticks[-1].run is not None

    wait_for(planned_again, "a tick to plan the readers again once the run timed out", every=0.2)
    assert ticks[-1].batches == 3 and ticks[-1].run != first.run
    rig.start(config, "a")
    rig.wait(rig.all_sent(150), "every digest sent")
    assert_delivered(rig, emails)
