"""`digest worker` for real: Celery workers over redis-server and PostgreSQL.

Workers are `python -m digest worker` subprocesses (tests/tasks_support.py); the test
process plays the scheduler, calling `dispatch_due` at the tick's `now`, and receives the
mail in an aiosmtpd sink. The readers are due and their papers in their window in the
store from the start, so no test waits for a clock.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from digest.cli import cli
from digest.config import load_settings
from digest.jobs.digests import queue_due_digests
from digest.store import Database
from digest.tasks.dispatch import dispatch_due
from tests.conftest import _fresh_postgres_database
from tests.smtp_server import SmtpServer
from tests.tasks_support import (
    DAY,
    NOW,
    SHARED,
    RedisServer,
    broker_idle,
    digest_rows,
    received_by,
    running_redis,
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


def assert_each_digest_once(
    database: Database, emails: list[str], arrived: dict[str, list[tuple[str, frozenset[str]]]]
) -> None:
    """One digest row per reader for DAY, sent; each reader got one message (`arrived`:
    `received_by` the sink), whose Message-ID is their row's."""
    rows = digest_rows(database)
    assert sorted(row.email for row in rows) == sorted(emails)
    assert {(row.day, row.state) for row in rows} == {(DAY, "sent")}
    assert Counter({address: len(got) for address, got in arrived.items()}) == Counter(
        dict.fromkeys(emails, 1)
    )
    assert {address: got[0][0] for address, got in arrived.items()} == {
        row.email: row.message_id for row in rows
    }


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

    from digest.tasks.work import configure, send_chunk

    for number in (0, 1):
        broker = f"redis://127.0.0.1:{redis_server.port}/{number}"
        configure(make_settings(queue={"broker": broker}))
        send_chunk.apply_async()
    counts = [Redis(port=redis_server.port, db=db).llen("send") for db in (0, 1)]
    assert counts == [1, 1]


@pytest.mark.timeout(180)
def test_a_day_of_2000_readers_over_two_workers_equals_the_run_in_one_process(
    tmp_path: Path,
    postgres_database: Database,
    redis_server: RedisServer,
    smtp_server: SmtpServer,
    make_settings: Any,
) -> None:
    database = postgres_database
    emails = stock(database, 2000)
    config = write_config(
        tmp_path, database_url=database.url, broker=redis_server.url, smtp=smtp_server
    )
    settings = load_settings(config, environ={})
    with worker_pool() as workers:
        workers.start(config, "a", "b", clock=worker_clock(tmp_path))
        report = dispatch_due(settings, database, now=NOW)  # the scheduler's tick
        assert (report.batches, report.send_chunks) == (40, 0)  # 50 readers a batch
        wait_for(
            lambda: len(smtp_server.received) >= 2000 and broker_idle(redis_server),
            "2,000 digests delivered and the queues empty",
            logs=workers.logs,
        )
        made = [w.log().count("digest.tasks: batch after id") for w in workers.all]
    assert sum(made) == 40 and min(made) > 0, made  # both workers made batches
    arrived = received_by(smtp_server)
    assert_each_digest_once(database, emails, arrived)

    # The same readers and papers in a second store, made by the job in one process.
    with contextlib.contextmanager(_fresh_postgres_database)() as other:
        stock(other, 2000)
        alone = make_settings(**SHARED)
        assert queue_due_digests(alone, other, now=NOW).queued == 2000
        expected = {row.email: row.papers for row in digest_rows(other, papers=True)}
    delivered = {address: got[0][1] for address, got in arrived.items()}
    assert delivered == expected
    assert len(set(expected.values())) >= 8  # readers' interests differ, so do their papers
