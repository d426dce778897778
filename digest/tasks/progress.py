"""What the broker knows about the work: runs in flight, failures, queues and workers.

Kept in Redis beside the queues (the broker), in a few small keys under `digest:`:
- `digest:run` names the digest run last dispatched whole and `digest:run:<id>` counts
  its batches not yet made; while it is above zero (and the run is younger than
  `[queue] run_timeout_minutes`), the scheduler dispatches no other run, so a slow run
  is not dispatched again on every tick. A batch made twice counts down twice; a batch
  lost with its worker never counts down, and the run times out: both only let the next
  run start sooner or later, since making a batch again changes nothing.
- `digest:failed` counts tasks that failed for good (`digest:failed:last` says the last
  one), for `digest status` and `/metrics`.
These are figures for operators and a brake on duplicate work, never what decides
whether a digest is sent: that is the outbox's and the watermarks' job.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from digest.config import Settings
from digest.tasks import QUEUES

if TYPE_CHECKING:
    from redis import Redis

    from digest.jobs.digests import QueueReport

log = logging.getLogger("digest.tasks")

RUN_KEY = "digest:run"
FAILED_KEY = "digest:failed"
LAST_FAILURE_KEY = "digest:failed:last"


@cache
def _redis(url: str) -> Redis:
    from redis import Redis

    # Short timeouts: these figures must never hold up a task or a status page.
    return Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)


def redis_for(settings: Settings) -> Redis:
    """A client of the broker's Redis (one per process and URL)."""
    return _redis(settings.queue.broker)


def run_in_flight(settings: Settings) -> str | None:
    """The digest run still being made, if any (its id)."""
    client = redis_for(settings)
    run = client.get(RUN_KEY)
    if run is None:
        return None
    left = client.get(f"{RUN_KEY}:{run.decode()}")
    return run.decode() if left is not None and int(left) > 0 else None


def run_dispatched(settings: Settings, run: str, batches: int) -> None:
    """Note a run about to be dispatched, `batches` tasks long (its count, which its
    batches count down from their first one); it expires after the timeout. The run is
    in flight only once `run_sent` says that every batch is in the queue."""
    seconds = int(settings.queue.run_timeout_minutes * 60)
    redis_for(settings).set(f"{RUN_KEY}:{run}", batches, ex=seconds)


def run_sent(settings: Settings, run: str) -> None:
    """Every batch of `run` is in the queue: it is the run in flight until its batches
    are made or it times out. A dispatch that failed half-way never says so, and the
    next tick plans the run again at once, not after the timeout."""
    seconds = int(settings.queue.run_timeout_minutes * 60)
    redis_for(settings).set(RUN_KEY, run, ex=seconds)


# DECR of a key that exists only: a batch made after its run timed out (its keys
# expired) must not make the count again, as a key that never expires.
_COUNT_DOWN = "if redis.call('exists', KEYS[1]) == 1 then return redis.call('decr', KEYS[1]) end"


def batch_done(settings: Settings, run: str, report: QueueReport) -> None:
    """Count down the run's batches (best effort: a lost count only times out)."""
    try:
        redis_for(settings).eval(_COUNT_DOWN, 1, f"{RUN_KEY}:{run}")
    except Exception as error:  # the broker is down: the run simply times out
        log.warning("cannot count batch of run %s done: %s", run, error)


def task_failed(settings: Settings, name: str, error: BaseException | None) -> None:
    """Count a task that failed for good, and remember the last one."""
    try:
        client = redis_for(settings)
        client.incr(FAILED_KEY)
        client.set(LAST_FAILURE_KEY, f"{name}: {type(error).__name__}: {error}"[:500])
    except Exception as failure:
        log.warning("cannot count a failed task: %s", failure)


@dataclass(frozen=True)
class QueueStatus:
    """The task queue as `digest status` and `/metrics` show it."""

    broker: str
    reachable: bool
    queued: dict[str, int]
    running: int | None = None
    workers: tuple[str, ...] = ()
    failed: int = 0
    last_failure: str | None = None
    run: str | None = None
    error: str | None = None


def queue_status(settings: Settings, *, ask_workers: bool = True) -> QueueStatus:
    """Tasks waiting per queue, failures, the run in flight, the workers alive (by their
    heartbeats) and, with `ask_workers` (a broadcast that waits up to a second for
    answers), the tasks running."""
    shown = _hide_password(settings.queue.broker)
    try:
        client = redis_for(settings)
        queued = {name: int(client.llen(name)) for name in QUEUES}
        failed = int(client.get(FAILED_KEY) or 0)
        last = client.get(LAST_FAILURE_KEY)
        run = run_in_flight(settings)
    except Exception as error:
        return QueueStatus(shown, False, {}, error=str(error).splitlines()[0][:200])
    try:
        workers = tuple(sorted(workers_alive(settings)))
    except Exception:  # answered a moment ago: a blip, the heartbeats say nothing now
        workers = ()
    running = _ask_workers(settings) if ask_workers else None
    return QueueStatus(
        shown,
        True,
        queued,
        running=running,
        workers=workers,
        failed=failed,
        last_failure=last.decode() if last else None,
        run=run,
    )


def _ask_workers(settings: Settings) -> int | None:
    """How many tasks the workers run now (a broadcast: waits up to a second)."""
    try:
        from digest.tasks.work import configure

        inspect = configure(settings).control.inspect(timeout=1.0)
        active: dict[str, list[Any]] | None = inspect.active()
    except Exception as error:
        log.warning("cannot ask the workers what they run: %s", error)
        return None
    return sum(len(tasks) for tasks in (active or {}).values())


def _hide_password(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


# --- workers seen and what they sent, for `digest status` and /metrics ------------------

WORKER_KEY = "digest:worker:"  # + node name; refreshed while the worker runs
HEARTBEAT_SECONDS = 15
LATENCY_KEY = "digest:latency:"  # + kind: a histogram of worker sends (see record_latencies)


def worker_alive(settings: Settings, name: str, concurrency: int) -> None:
    """Say this worker is alive for the next three heartbeats."""
    redis_for(settings).set(f"{WORKER_KEY}{name}", str(concurrency), ex=3 * HEARTBEAT_SECONDS)


def worker_gone(settings: Settings, name: str) -> None:
    """Say this worker stopped (a killed one simply stops saying it is alive)."""
    redis_for(settings).delete(f"{WORKER_KEY}{name}")


def workers_alive(settings: Settings) -> dict[str, int]:
    """Workers that said they were alive in the last three heartbeats, with their
    process counts: one SCAN of a few keys, no broadcast to wait for."""
    client = redis_for(settings)
    found: dict[str, int] = {}
    for key in client.scan_iter(match=f"{WORKER_KEY}*", count=1000):
        value = client.get(key)
        if value is not None:
            found[key.decode().removeprefix(WORKER_KEY)] = int(value)
    return found


def record_latencies(
    settings: Settings, observations: list[tuple[str, float]], buckets: tuple[float, ...]
) -> None:
    """Add worker sends to a histogram kept in Redis (`digest:latency:KIND`: a count per
    bucket bound, `count` and `sum`), which /metrics exports for the task workers; the
    process-local histogram would be seen by nobody in a worker. Counted here first, so
    a whole send chunk is one round trip of a few commands per kind."""
    fields: dict[tuple[str, str], int] = {}
    sums: dict[str, float] = {}
    for kind, seconds in observations:
        for bound in buckets:
            if seconds <= bound:
                key = (kind, f"le:{bound:g}")
                fields[key] = fields.get(key, 0) + 1
        fields[(kind, "count")] = fields.get((kind, "count"), 0) + 1
        sums[kind] = sums.get(kind, 0.0) + seconds
    if not sums:
        return
    pipe = redis_for(settings).pipeline(transaction=False)
    for (kind, name), count in fields.items():
        pipe.hincrby(f"{LATENCY_KEY}{kind}", name, count)
    for kind, total in sums.items():
        pipe.hincrbyfloat(f"{LATENCY_KEY}{kind}", "sum", total)
    pipe.execute()


def latencies(settings: Settings, kinds: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """The Redis-kept send latency histograms, by kind (empty fields: nothing sent)."""
    client = redis_for(settings)
    found = {}
    for kind in kinds:
        raw = client.hgetall(f"{LATENCY_KEY}{kind}")
        found[kind] = {field.decode(): float(value) for field, value in raw.items()}
    return found
