"""/metrics in the Prometheus text format: what the store holds, read at each scrape.

Off unless `[web] metrics = true`. Then the process that runs the scheduler (`digest run`,
`digest scheduler`; one per database) serves it on `[web] metrics_listen`, an address of
its own (`MetricsServer`, started by `digest.service`), never on the public port; with
`metrics_listen = "web"` every web app answers /metrics on its own port instead
(`digest.web.create_app`). Several `digest web` processes share one config, so they
never listen on the metrics address: they would fight over it.

What is exported (`StoreCollector` reads the store at scrape time, one function per
family in `FAMILIES`, so any process with the database gives the same figures; a new
family, such as the Celery workers' to come, is one more function in that tuple):

- `digest_readers{status}`: readers by status.
- `digest_papers_stored`: papers in the store.
- `digest_last_fetch_timestamp_seconds{source}`, `digest_last_fetch_success{source}` and
  `digest_last_successful_fetch_timestamp_seconds{source}`: the latest fetch of each
  enabled source, whether it worked, and the start of the latest one that did (0: never).
- `digest_digests{day, state}`: digest rows by digest date and state, for the last
  `DIGEST_DAYS` days only, so the set of series stays bounded.
- `digest_outbox_depth{kind, state}`: rows still to deliver (queued, retrying, sending),
  and `digest_outbox_oldest_due_age_seconds`: how late the oldest row due now is.
- `digest_send_latency_seconds{kind}`: a histogram of the seconds from a message being
  queued to the mail server accepting it. The only family kept in memory, not read from
  the store: the outbox has no index on `sent_at`, so the store could only answer it by
  reading every sent row, while the sender has `queued_at` in hand when it records a
  delivery (`record_sent`, from `digest.send.delivery`). So it counts only what the
  process serving /metrics has sent since it started: every digest, for the scheduler's
  process; the confirmation emails that the web app's courier sends count in the web
  processes (seen with "web"); with `[queue] broker` set, the `digest worker` processes
  send, and keep theirs in Redis instead: `digest_worker_send_latency_seconds{kind}`.
  `digest outbox --resend` starts a message's clock again.
- With `[queue] broker` (`tasks`, read from Redis): `digest_task_broker_up`,
  `digest_task_workers` and `digest_task_worker_processes` (alive in the last 45 s, by
  their heartbeats), `digest_tasks_waiting{queue}`, `digest_tasks_failed_total`,
  `digest_task_run_in_flight`, and the workers' send latency histogram.

Nothing about any one reader is exported: only counts, times, and names of sources,
states, kinds and days.

Cost: the outbox is read only through ranges of its (state, next_attempt_at) index: the
digests of the last days (see `digests`), the backlog, the oldest due row; readers and
papers are counted from their indexes (count_by_status, count_papers, as `digest status`
does), which reads each reader's index entry. Measured on 1,000,000 readers and 3.1
million outbox rows (100,000 digests a day for 31 days): 380 ms a scrape on SQLite and
255 ms on PostgreSQL, three quarters of it counting the 800,000 digests of the window,
50 to 65 ms the readers. A scrape's answer is reused for `REUSE_SECONDS`, and one scrape
at a time reads the store (`Exporter`): a flood of scrapes costs one read of the store a
second. A scrape that cannot read the store answers 503 with one line; the process goes
on.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from digest.config import Settings
from digest.config.settings import listen_address
from digest.errors import DigestError
from digest.store import Database
from digest.store.models import OutboxRow
from digest.store.outbox import DIGEST, DUE_STATES, STATES
from digest.store.papers import count_papers, last_fetches, last_successful_fetches
from digest.store.subscribers import count_by_status

if TYPE_CHECKING:
    from digest.store.outbox import OutboxJob, Result

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_outbox = OutboxRow.__table__

# Days of digests exported, today (UTC) included: each day is a label value, so a window
# keeps the number of series bounded however long the service runs.
DIGEST_DAYS = 7
# A digest dated D is queued on its reader's day D, which begins at the earliest 14 hours
# before D begins in UTC (UTC+14); a row's next_attempt_at is set when it is queued and
# only ever moves later. So the rows dated D or later all have next_attempt_at after this
# much before D, and that bound lets the outbox's (state, next_attempt_at) index find them.
_EARLIEST_ZONE = timedelta(hours=14)
WAITING_STATES = ("queued", "retrying", "sending")
# The kinds of message the outbox holds (digest.jobs.mail.KINDS; not imported: it loads
# the renderer); always exported, so their series exist before the first of each.
KINDS = (DIGEST, "confirm", "manage")
SOURCES = ("hf", "arxiv")
# From a message sent at once to one retried for a day ([delivery] retry_deadline_hours).
LATENCY_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400)
REUSE_SECONDS = 1.0
# The text format's media type, spelled out: prometheus_client's CONTENT_TYPE_LATEST names
# another version from one release to the next, for the same text.
TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"

# The process's own sends (see the module docstring); registered in each registry made
# here, never in prometheus_client's global one.
SEND_LATENCY = Histogram(
    "digest_send_latency_seconds",
    "Seconds from a message being queued to the mail server accepting it (the maildir: "
    "writing it), for the messages this process sent since it started (the scheduler's "
    "sends every digest, unless task workers do), not read from the store.",
    ["kind"],
    buckets=LATENCY_BUCKETS,
    registry=None,
)
for _kind in KINDS:
    SEND_LATENCY.labels(_kind)


# Where a task worker's pool process sends its observations instead (`digest.tasks.work`
# keeps them in Redis, which /metrics reads: nobody scrapes a worker).
latency_sink: Callable[[list[tuple[str, float]]], None] | None = None
_sink_failing = False


def record_sent(now: datetime, jobs: Sequence[OutboxJob], results: Sequence[Result]) -> None:
    """Count the send latency of the jobs whose result is "sent", as recorded at `now`."""
    sent = {result.id for result in results if result.state == "sent"}
    observed = [
        # Never negative: a clock set back (or a test's clock) must not break the sum.
        (job.kind, max(0.0, (now - job.queued_at).total_seconds()))
        for job in jobs
        if job.id in sent
    ]
    sink = latency_sink
    if sink is not None and observed:
        global _sink_failing
        try:
            sink(observed)
        except Exception as error:  # figures must never stop a delivery
            if not _sink_failing:  # once per outage, not at every group commit
                log.warning("cannot record send latencies (until it works again): %s", error)
            _sink_failing = True
        else:
            _sink_failing = False
        return
    for kind, seconds in observed:
        SEND_LATENCY.labels(kind).observe(seconds)


# ---------------------------------------------------------------------------------------
# The families: one function each, reading the store through `Scrape.session`.


@dataclass(frozen=True)
class Scrape:
    """What a family function reads: the settings, an open session, and the time."""

    settings: Settings
    session: Session
    now: datetime


def readers(scrape: Scrape) -> Iterator[Metric]:
    """`digest_readers{status}`."""
    family = GaugeMetricFamily(
        "digest_readers", "Readers (subscribers) by status.", labels=["status"]
    )
    for status, count in count_by_status(scrape.session).items():
        family.add_metric([status], count)
    yield family


def papers(scrape: Scrape) -> Iterator[Metric]:
    """`digest_papers_stored`."""
    yield GaugeMetricFamily(
        "digest_papers_stored", "Papers in the store.", value=count_papers(scrape.session)
    )


def fetches(scrape: Scrape) -> Iterator[Metric]:
    """The latest fetch of each enabled source, whether it worked, and the latest that did."""
    latest = last_fetches(scrape.session)
    good = last_successful_fetches(scrape.session)
    attempted = GaugeMetricFamily(
        "digest_last_fetch_timestamp_seconds",
        "When the latest fetch of each enabled source started (Unix time; 0: never).",
        labels=["source"],
    )
    success = GaugeMetricFamily(
        "digest_last_fetch_success",
        "Whether the latest fetch of each enabled source worked (1) or failed (0).",
        labels=["source"],
    )
    succeeded = GaugeMetricFamily(
        "digest_last_successful_fetch_timestamp_seconds",
        "When the latest working fetch of each enabled source started (Unix time; 0: never).",
        labels=["source"],
    )
    sources = scrape.settings.sources
    for source in (name for name in SOURCES if getattr(sources, name).enabled):
        last, last_good = latest.get(source), good.get(source)
        attempted.add_metric([source], _timestamp(last.started_at if last else None))
        success.add_metric([source], 1 if last is not None and last.error is None else 0)
        succeeded.add_metric([source], _timestamp(last_good.started_at if last_good else None))
    yield from (attempted, success, succeeded)


def digests(scrape: Scrape) -> Iterator[Metric]:
    """`digest_digests{day, state}` for the digests dated in the last `DIGEST_DAYS` days.

    One query per state, each a range of the (state, next_attempt_at) index: the rows
    touched are those of the last days (see `_EARLIEST_ZONE`), not the whole outbox.
    """
    today = scrape.now.date()
    first_day = today - timedelta(days=DIGEST_DAYS - 1)
    since = datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC) - _EARLIEST_ZONE
    counts: dict[tuple[date, str], int] = {}
    for state in STATES:
        rows = scrape.session.execute(
            select(_outbox.c.digest_date, func.count())
            .where(
                _outbox.c.state == state,
                _outbox.c.next_attempt_at >= since,
                _outbox.c.kind == DIGEST,
                _outbox.c.digest_date >= first_day,
            )
            .group_by(_outbox.c.digest_date)
        )
        counts.update({(day, state): count for day, count in rows})
    # Every day of the window with every state, so no series comes and goes; and any later
    # day already queued (readers east of UTC are on tomorrow already).
    days = {first_day + timedelta(days=n) for n in range(DIGEST_DAYS)} | {d for d, _ in counts}
    family = GaugeMetricFamily(
        "digest_digests",
        f"Digests by digest date and state, for the dates of the last {DIGEST_DAYS} days "
        "(UTC) and any later one only, to keep the series few.",
        labels=["day", "state"],
    )
    for day in sorted(days):
        for state in STATES:
            family.add_metric([day.isoformat(), state], counts.get((day, state), 0))
    yield family


def outbox(scrape: Scrape) -> Iterator[Metric]:
    """`digest_outbox_depth{kind, state}` and `digest_outbox_oldest_due_age_seconds`."""
    depth = {(kind, state): 0 for kind in KINDS for state in WAITING_STATES}
    rows = scrape.session.execute(
        select(_outbox.c.kind, _outbox.c.state, func.count())
        .where(_outbox.c.state.in_(WAITING_STATES))
        .group_by(_outbox.c.kind, _outbox.c.state)
    )
    depth.update({(kind, state): count for kind, state, count in rows})
    family = GaugeMetricFamily(
        "digest_outbox_depth",
        "Messages in the outbox still to deliver, by kind and state.",
        labels=["kind", "state"],
    )
    for (kind, state), count in sorted(depth.items()):
        family.add_metric([kind, state], count)
    yield family
    oldest = None
    for state in DUE_STATES:  # one index range each: min() reads its first entry
        due = scrape.session.scalar(
            select(func.min(_outbox.c.next_attempt_at)).where(
                _outbox.c.state == state, _outbox.c.next_attempt_at <= scrape.now
            )
        )
        if due is not None:
            due = due if due.tzinfo else due.replace(tzinfo=UTC)
            oldest = due if oldest is None else min(oldest, due)
    late = (scrape.now - oldest).total_seconds() if oldest is not None else 0.0
    yield GaugeMetricFamily(
        "digest_outbox_oldest_due_age_seconds",
        "Seconds since the oldest message due for delivery became due (0: none is due).",
        value=late,
    )


def tasks(scrape: Scrape) -> Iterator[Metric]:
    """With `[queue] broker`: workers alive, tasks waiting per queue, tasks failed for
    good, whether a digest run is in flight, and the workers' send latency, all read
    from Redis (`digest.tasks.progress`); nothing without a broker."""
    if not scrape.settings.queue.broker:
        return
    from digest.tasks import progress

    status = progress.queue_status(scrape.settings, ask_workers=False)
    yield GaugeMetricFamily(
        "digest_task_broker_up", "Whether the task broker (Redis) answered (1) or not (0).",
        value=1 if status.reachable else 0,
    )  # fmt: skip
    if not status.reachable:
        return
    alive = progress.workers_alive(scrape.settings)
    yield GaugeMetricFamily(
        "digest_task_workers", "Task workers that said they were alive in the last 45 s.",
        value=len(alive),
    )  # fmt: skip
    yield GaugeMetricFamily(
        "digest_task_worker_processes", "Pool processes of the task workers alive.",
        value=sum(alive.values()),
    )  # fmt: skip
    waiting = GaugeMetricFamily(
        "digest_tasks_waiting", "Tasks waiting in each queue.", labels=["queue"]
    )
    for name, count in status.queued.items():
        waiting.add_metric([name], count)
    yield waiting
    yield CounterMetricFamily(
        "digest_tasks_failed", "Tasks that failed for good (not retried).", value=status.failed
    )
    yield GaugeMetricFamily(
        "digest_task_run_in_flight", "Whether a digest run's batches are being made (1).",
        value=1 if status.run else 0,
    )  # fmt: skip
    histogram = HistogramMetricFamily(
        "digest_worker_send_latency_seconds",
        "Seconds from a message being queued to the mail server accepting it, for the "
        "messages the task workers sent (kept in Redis).",
        labels=["kind"],
    )
    for kind, fields in progress.latencies(scrape.settings, KINDS).items():
        # `le` written as prometheus_client writes its own histograms' ("5.0").
        buckets = [
            (floatToGoString(bound), fields.get(f"le:{bound:g}", 0.0)) for bound in LATENCY_BUCKETS
        ]
        buckets.append(("+Inf", fields.get("count", 0.0)))
        histogram.add_metric([kind], buckets, sum_value=fields.get("sum", 0.0))
    yield histogram


def _timestamp(instant: datetime | None) -> float:
    return instant.timestamp() if instant is not None else 0.0


Family = Callable[[Scrape], Iterable[Metric]]
FAMILIES: tuple[Family, ...] = (readers, papers, fetches, digests, outbox, tasks)


class StoreCollector:
    """A prometheus_client collector: the `families` read in one session at each scrape."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        clock: Clock,
        families: Sequence[Family] = FAMILIES,
    ) -> None:
        self.settings = settings
        self.database = database
        self.clock = clock
        self.families = tuple(families)

    def collect(self) -> Iterator[Metric]:
        """Every family's metrics; raises (SQLAlchemyError) when the store cannot be read."""
        with self.database.session() as session:
            scrape = Scrape(self.settings, session, self.clock())
            # All read before the first is handed out: the session closes here.
            metrics = [metric for family in self.families for metric in family(scrape)]
        yield from metrics


def make_registry(settings: Settings, database: Database, clock: Clock) -> CollectorRegistry:
    """A registry of its own (not prometheus_client's global one) with every family."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(settings, database, clock))
    registry.register(SEND_LATENCY)
    return registry


# ---------------------------------------------------------------------------------------
# Serving


@dataclass(frozen=True)
class Answer:
    """An HTTP answer to a scrape."""

    status: int
    body: bytes
    content_type: str


class Exporter:
    """Scrapes a registry into answers: one at a time, each reused for `reuse` seconds.

    A flood of scrapes then reads the store once a second, and a scrape that finds it
    unreadable answers 503 with one line (the details go to the log).
    """

    def __init__(self, registry: CollectorRegistry, *, reuse: float = REUSE_SECONDS) -> None:
        self.registry = registry
        self.reuse = reuse
        self._lock = threading.Lock()
        self._last: Answer | None = None
        self._at = 0.0

    def answer(self) -> Answer:
        """The registry's figures in the text format, or a 503 saying why not."""
        with self._lock:
            if self._last is not None and time.monotonic() - self._at < self.reuse:
                return self._last
            self._last, self._at = self._scrape(), time.monotonic()
            return self._last

    def _scrape(self) -> Answer:
        try:
            return Answer(200, generate_latest(self.registry), TEXT_FORMAT)
        except SQLAlchemyError as error:
            log.warning("metrics: cannot read the database: %s", str(error).splitlines()[0])
            line = f"metrics unavailable: cannot read the database ({type(error).__name__})"
        except Exception:  # a bug in a family: say so, keep serving
            log.exception("metrics: cannot collect the figures")
            line = "metrics unavailable: cannot collect the figures (see the service's log)"
        return Answer(503, line.encode() + b"\n", "text/plain; charset=utf-8")


_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


def wsgi_app(exporter: Exporter) -> WsgiApp:
    """A WSGI app answering GET and HEAD /metrics, and nothing else."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        headers = [("Cache-Control", "no-store")]
        if environ.get("PATH_INFO") != "/metrics":
            answer = Answer(404, b"not found: the metrics are at /metrics\n", "text/plain")
        elif method not in ("GET", "HEAD"):
            answer = Answer(405, f"{method} not allowed: use GET\n".encode(), "text/plain")
            headers.append(("Allow", "GET, HEAD"))
        else:
            answer = exporter.answer()
        headers += [
            ("Content-Type", answer.content_type),
            ("Content-Length", str(len(answer.body))),
        ]
        start_response(f"{answer.status} {_REASONS[answer.status]}", headers)
        return [b""] if method == "HEAD" else [answer.body]

    return app


class MetricsServer:
    """/metrics alone on an address of its own, served by waitress from one thread.

    The thread runs waitress's loop on a socket map of its own, so it stops when asked
    (`stop`), whatever the main thread serves; two worker threads answer the scrapes.
    """

    THREADS = 2

    def __init__(self, app: WsgiApp, address: str) -> None:
        from waitress import create_server

        host, port = listen_address(address)
        self.address = address
        self._map: dict[int, Any] = {}
        try:
            self._server = create_server(
                app, host=host, port=port, threads=self.THREADS, ident="digest", map=self._map
            )
        except OSError as error:
            raise DigestError(
                f"cannot listen on {address} for /metrics: {error.strerror or error}; "
                "set [web] metrics_listen to a free address, or stop what is using it"
            ) from None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="metrics", daemon=True)

    @property
    def url(self) -> str:
        """Where to scrape, with the port really bound (the one asked for, unless 0)."""
        host, port = listen_address(self.address)
        port = getattr(self._server, "effective_port", port)
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/metrics"

    def start(self) -> MetricsServer:
        """Serve from a thread of its own; returns self."""
        self._thread.start()
        return self

    def _serve(self) -> None:
        from waitress import wasyncore

        try:
            while not self._stopping.is_set():
                wasyncore.loop(timeout=1.0, map=self._map, count=1, use_poll=True)
        except Exception:  # the service goes on without /metrics: say so once
            log.exception("metrics: the server on %s stopped", self.address)
        finally:
            self._server.task_dispatcher.shutdown(timeout=5)
            for dispatcher in list(self._map.values()):  # the listener and its connections
                with contextlib.suppress(OSError):  # already closed: nothing to free
                    dispatcher.close()

    def stop(self) -> None:
        """Stop listening and close every connection; returns once the thread is done."""
        self._stopping.set()
        if self._thread.is_alive():
            with contextlib.suppress(OSError):  # closed already: the loop is ending anyway
                self._server.pull_trigger()  # wake the loop now rather than at its timeout
            self._thread.join(timeout=10)
        else:
            self._server.close()


def serve_metrics(settings: Settings, database: Database, clock: Clock) -> MetricsServer:
    """Start /metrics on `[web] metrics_listen` (an address, not "web"); DigestError if
    it cannot listen there."""
    app = wsgi_app(Exporter(make_registry(settings, database, clock)))
    return MetricsServer(app, settings.web.metrics_listen).start()
