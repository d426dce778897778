"""The Celery app and its tasks, run by `digest worker`.

One app per process, configured from the settings by `configure` (the scheduler that
sends tasks and the workers that run them call it alike). Tasks are acknowledged late
and given back when their worker process is lost, one at a time per process (no
prefetching: a batch is seconds of work, and a worker that dies should hold no others).
A task that cannot reach the database says so in one line and tries again with
backoff; the broker's own reconnection is Celery's.

Each worker process keeps what its tasks share (`_Worker`): the store's connections,
the renderer and, in `digest.jobs.digests`, the papers indexed for the run at hand.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import threading
import warnings
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from celery import Celery, signals
from celery.exceptions import CPendingDeprecationWarning
from sqlalchemy.exc import DBAPIError

from digest import tokens
from digest.clock import Clock, clock_from_environment
from digest.config import Settings
from digest.jobs.digests import queue_digest_batch
from digest.render import DigestRenderer
from digest.send import send_due
from digest.store import Database, open_database
from digest.tasks import DIGEST_QUEUE, QUEUES, SEND_QUEUE
from digest.tasks import progress as run_progress

log = logging.getLogger("digest.tasks")

BATCH_TASK = "digest.batch"
SEND_TASK = "digest.send"
# Backoff of a task whose database is unreachable: 2, 4, 8 ... seconds, at most a minute.
RETRY_FIRST = 2.0
RETRY_MAX = 60.0
# Send chunks one digest batch asks for at most: the rest are the next tick's.
MAX_CHUNKS_PER_BATCH = 16

app = Celery("digest", set_as_current=False)
_settings: Settings | None = None


def configure(settings: Settings) -> Celery:
    """Point the app at `[queue] broker` with the settings every task relies on."""
    global _settings
    before = _settings.queue if _settings is not None else None
    _settings = settings
    queue = settings.queue
    if before is not None and (before.broker, before.visibility_timeout) != (
        queue.broker,
        queue.visibility_timeout,
    ):
        # Another broker (a process configured twice): the connections and producers
        # pooled for the old one would still carry every task there. Dropped as Celery
        # drops them after a fork; the next task opens them on the new broker.
        app._pool = None
        with contextlib.suppress(AttributeError, KeyError):
            app.__dict__["amqp"]._producer_pool = None
    app.conf.update(
        broker_url=queue.broker,
        broker_connection_retry_on_startup=True,
        # A message a worker took and never acknowledged goes back to the queue after this
        # long (Redis has no other way to know its worker died). The next scheduler tick
        # finds that work still due long before: this only bounds the duplicate.
        broker_transport_options={"visibility_timeout": queue.visibility_timeout},
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=DIGEST_QUEUE,
        task_routes={BATCH_TASK: {"queue": DIGEST_QUEUE}, SEND_TASK: {"queue": SEND_QUEUE}},
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        broker_heartbeat=None,
    )
    return app


@dataclass
class _Worker:
    """What one worker process's tasks share."""

    settings: Settings
    database: Database
    renderer: DigestRenderer
    clock: Clock
    pid: int


_worker: _Worker | None = None


def _here() -> _Worker:
    """This process's worker state, made on its first task (after the fork: every pool
    process opens its own connections)."""
    global _worker
    if _worker is None or _worker.pid != os.getpid():
        if _settings is None:
            raise RuntimeError("digest.tasks.work.configure() was not called in this process")
        _worker = _Worker(
            settings=_settings,
            database=open_database(_settings, migrate=False),
            renderer=DigestRenderer(_settings, tokens.secret_key(_settings)),
            clock=clock_from_environment(),
            pid=os.getpid(),
        )
    return _worker


def _retry_later(task: Any, error: DBAPIError, what: str) -> None:
    """Say in one line that the database is out of reach, then retry with backoff."""
    countdown = min(RETRY_MAX, RETRY_FIRST * 2**task.request.retries)
    reason = str(error.orig or error).strip().splitlines()[0][:200]
    log.warning("%s: database unreachable (%s); trying again in %.0f s", what, reason, countdown)
    raise task.retry(countdown=countdown, max_retries=None, exc=error)


@app.task(name=BATCH_TASK, bind=True)
def digest_batch(
    self: Any, run: str, now: str, start: str, after: int, last: int | None
) -> dict[str, int]:
    """Queue the digests of one batch of a planned run; then ask for their delivery."""
    here = _here()
    try:
        report = queue_digest_batch(
            here.settings,
            here.database,
            now=datetime.fromisoformat(now),
            start=datetime.fromisoformat(start),
            after=after,
            last=last,
            renderer=here.renderer,
            batch=here.settings.queue.batch,
        )
    except DBAPIError as error:
        _retry_later(self, error, f"digest batch after id {after}")
    if report.queued:
        _ask_delivery(here.settings, report.queued, after)
    run_progress.batch_done(here.settings, run, report)
    log.info("batch after id %d: %s", after, report.summary())
    return {"due": report.due, "queued": report.queued}


def _ask_delivery(settings: Settings, queued: int, after: int) -> None:
    """Ask for the send chunks that a batch's `queued` digests need. Best effort: the
    digests are committed, and while their rows are due the scheduler's next digest
    check asks for chunks itself; a broker out of reach now must not make the batch a
    failed task (it is done, and made again it would change nothing)."""
    chunks = min(MAX_CHUNKS_PER_BATCH, math.ceil(queued / settings.queue.send_chunk))
    try:
        for _ in range(chunks):
            send_chunk.apply_async()
    except Exception as error:
        reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else repr(error)
        log.warning(
            "batch after id %d: cannot ask for the delivery of %d digests (%s); "
            "the next digest check will",
            after,
            queued,
            reason,
        )


@app.task(name=SEND_TASK, bind=True)
def send_chunk(self: Any) -> dict[str, int]:
    """Claim and deliver up to `[queue] send_chunk` due outbox rows."""
    here = _here()
    try:
        report = send_due(
            here.settings,
            here.database,
            now=here.clock(),
            limit=here.settings.queue.send_chunk,
            lock=False,
        )
    except DBAPIError as error:
        _retry_later(self, error, "send chunk")
    finally:
        _flush_latencies(here.settings)  # what was sent counts, whatever came after
    if report.error:
        log.warning("send chunk: %s", report.error)
    if report.due or report.error:
        log.info("send chunk: %s", report.summary())
    return {"sent": report.sent, "due": report.due}


def worker_name() -> str:
    """A node name unique per worker process on a host: `digest-PID@HOST`."""
    return f"digest-{os.getpid()}@{socket.gethostname()}"


def run_worker(
    settings: Settings, *, concurrency: int, queues: tuple[str, ...] = QUEUES, loglevel: str
) -> None:
    """Run a Celery worker with the app's settings until it is stopped (SIGTERM: the
    tasks at work finish first)."""
    configure(settings)
    app.worker_main(
        [
            "worker",
            f"--concurrency={concurrency}",
            f"--queues={','.join(queues)}",
            f"--hostname={worker_name()}",
            f"--loglevel={loglevel}",
            "--without-gossip",
            "--without-mingle",
            "--pool=prefork",
        ]
    )


@signals.worker_ready.connect
def _quiet_cancel_warning(**_: Any) -> None:
    """At every lost broker connection Celery warns, in seven lines, that cancelling
    the tasks at work will become its default. Not cancelling them is this app's choice
    (worker_cancel_long_running_tasks_on_connection_loss in `configure`: a task
    finishes, is delivered again and changes nothing), so the warning only buries the
    one line that says the connection was lost and is being re-established. Filtered
    once the worker is ready: its logging setup turns Celery's own warnings on."""
    warnings.filterwarnings(
        "ignore",
        message=r"\s*In Celery 5\.1 we introduced an optional breaking change",
        category=CPendingDeprecationWarning,
    )


@signals.task_failure.connect
def _count_failure(sender: Any = None, exception: BaseException | None = None, **_: Any) -> None:
    """Keep a count of failed tasks and the last failure, for `digest status`."""
    if _settings is not None and sender is not None:
        run_progress.task_failed(_settings, sender.name, exception)


# --- heartbeats and send latency, for `digest status` and /metrics ---------------------

_beating: threading.Event | None = None


@signals.worker_ready.connect
def _start_heartbeat(sender: Any = None, **_: Any) -> None:
    """Say every `HEARTBEAT_SECONDS` that this worker is alive (from its main process)."""
    global _beating
    if _settings is None or sender is None:
        return
    settings, name = _settings, sender.hostname
    concurrency = int(getattr(sender, "concurrency", 1) or 1)
    stop = _beating = threading.Event()

    def beat() -> None:
        while not stop.is_set():
            try:
                run_progress.worker_alive(settings, name, concurrency)
            except Exception as error:  # the broker is away: Celery says so already
                log.debug("heartbeat: %s", error)
            stop.wait(run_progress.HEARTBEAT_SECONDS)

    threading.Thread(target=beat, name="digest-heartbeat", daemon=True).start()


@signals.worker_shutdown.connect
def _stop_heartbeat(sender: Any = None, **_: Any) -> None:
    if _beating is not None:
        _beating.set()
    if _settings is not None and sender is not None:
        with contextlib.suppress(Exception):
            run_progress.worker_gone(_settings, sender.hostname)


# A pool process's send latencies, kept until its send chunk ends (`_flush_latencies`):
# one round trip to Redis a chunk, not one at every group commit (that was 7 % of the
# workers' day at 100,000 readers).
_latencies: list[tuple[str, float]] = []
_latencies_failing = False


@signals.worker_process_init.connect
def _count_sends_in_redis(**_: Any) -> None:
    """In each pool process: send latencies go to Redis, where /metrics reads them."""
    from digest import metrics

    metrics.latency_sink = _latencies.extend


def _flush_latencies(settings: Settings) -> None:
    """Add this chunk's send latencies to Redis (best effort: figures, never a failure)."""
    global _latencies_failing
    from digest.metrics import LATENCY_BUCKETS

    observed = _latencies[:]
    _latencies.clear()
    try:
        run_progress.record_latencies(settings, observed, LATENCY_BUCKETS)
    except Exception as error:
        if not _latencies_failing:  # once per outage
            log.warning("cannot record send latencies (until it works again): %s", error)
        _latencies_failing = True
    else:
        _latencies_failing = False
