"""The scheduler: APScheduler jobs that run the pipeline on time.

Jobs, each logging one line of figures when it runs:
- fetch: every source every `[schedule] fetch_every_minutes` (Hugging Face for today and
  yesterday, since a day's list keeps growing after midnight), once at start, and arXiv
  again at `[schedule] arxiv_fetch_time` (UTC), just after its daily announcement;
- digests: every `[schedule] digest_check_minutes`, queue the digests that are due
  (`digest.jobs.queue_due_digests`) and deliver what the outbox holds (`send_due`); with
  `[queue] broker` set, hand both to task workers instead (`digest.tasks.dispatch`);
- cleanup: hourly, delete sign-ups never confirmed after 7 days and the bytes of
  delivered messages older than 30 days (their delivery records stay).

Jobs run one at a time (a fetch never interleaves with a digest run) and a late job
runs once, not once per missed turn. Catching up after downtime needs no job history:
a subscriber whose time passed while the service was down is simply due, and gets that
day's digest once. One scheduler per store: `SchedulerLock` refuses a second one.
Stopping (SIGTERM, SIGINT) lets the job at work finish the message in flight and record
it, then returns.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from digest import tokens
from digest.config import Settings
from digest.jobs.digests import queue_due_digests
from digest.jobs.fetch import fetch_sources
from digest.render import DigestRenderer
from digest.send import SenderBusy, send_due
from digest.sources import PoliteClient
from digest.store import Database
from digest.store.lock import SchedulerLock
from digest.store.outbox_admin import compress_finished, drop_old_messages
from digest.store.subscribers import delete_expired_pending

log = logging.getLogger("digest.schedule")

PENDING_LIFETIME = timedelta(days=7)
MESSAGE_LIFETIME = timedelta(days=30)


class Scheduler:
    """The service's jobs on an APScheduler background scheduler."""

    def __init__(
        self, settings: Settings, database: Database, clock: Callable[[], datetime]
    ) -> None:
        self.settings = settings
        self.database = database
        self.clock = clock
        self.stopping = threading.Event()
        self._one_at_a_time = threading.Lock()
        self._lock = SchedulerLock(database, settings.data_dir)
        self._client: PoliteClient | None = None
        self._renderer: DigestRenderer | None = None
        self.started = False
        self._scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )

    def start(self) -> None:
        """Take the scheduler lock (LockHeld if another runs) and start the jobs."""
        self._lock.acquire()
        schedule = self.settings.schedule
        fetch_every = timedelta(minutes=schedule.fetch_every_minutes)
        check_every = timedelta(minutes=schedule.digest_check_minutes)
        arxiv_at = time.fromisoformat(schedule.arxiv_fetch_time)
        add = self._scheduler.add_job
        first_fetch = datetime.now(UTC) if schedule.fetch_at_start else None
        add(
            self.fetch,
            IntervalTrigger(seconds=fetch_every.total_seconds()),
            id="fetch",
            next_run_time=first_fetch,
        )
        add(
            self.fetch_arxiv,
            CronTrigger(hour=arxiv_at.hour, minute=arxiv_at.minute),
            id="fetch-arxiv",
        )
        add(
            self.digests,
            IntervalTrigger(seconds=check_every.total_seconds()),
            id="digests",
            next_run_time=datetime.now(UTC) + timedelta(seconds=1),
        )
        add(
            self.learn,
            IntervalTrigger(hours=1),
            id="learn",
            next_run_time=datetime.now(UTC) + timedelta(seconds=10),
        )
        add(
            self.cleanup,
            IntervalTrigger(hours=1),
            id="cleanup",
            next_run_time=datetime.now(UTC) + timedelta(seconds=5),
        )
        self._scheduler.start()
        self.started = True
        log.info(
            "scheduler started: fetch every %s min, arXiv at %s UTC, digests checked every %s min",
            f"{schedule.fetch_every_minutes:g}",
            schedule.arxiv_fetch_time,
            f"{schedule.digest_check_minutes:g}",
        )
        sources = [name for name in ("hf", "arxiv") if self._enabled(name)]
        if first_fetch is not None and sources:
            # Its results (or failures) come only once every request has been answered or
            # has timed out and been retried: say now what the service is busy with.
            log.info("first fetch of %s started; this can take a minute", ", ".join(sources))

    def _enabled(self, source: str) -> bool:
        """Whether the settings fetch `source` ("hf" or "arxiv")."""
        return bool(getattr(self.settings.sources, source).enabled)

    def stop(self) -> None:
        """Let the running job finish its message in flight, then stop all jobs."""
        self.stopping.set()
        if not self.started:
            return
        self._scheduler.shutdown(wait=True)
        if self._client is not None:
            self._client.close()
        self._lock.release()
        self.started = False
        log.info("scheduler stopped")

    def next_runs(self) -> dict[str, datetime | None]:
        """When each job runs next (UTC)."""
        return {job.id: job.next_run_time for job in self._scheduler.get_jobs()}

    # --- jobs ----------------------------------------------------------------------

    def _guarded(self, name: str, work: Callable[[], None]) -> None:
        if self.stopping.is_set():
            return
        with self._one_at_a_time:
            try:
                work()
            except Exception:  # a job that breaks must not stop the service
                log.exception("%s: failed", name)

    def fetch(self) -> None:
        """Fetch every enabled source (Hugging Face: today and yesterday)."""
        self._guarded("fetch", lambda: self._fetch("all"))

    def fetch_arxiv(self) -> None:
        """Fetch arXiv's new announcements."""
        self._guarded("fetch", lambda: self._fetch("arxiv"))

    def _fetch(self, source: str) -> None:
        now = self.clock()
        # Waits between retries end at once when the service stops.
        client = self._client = self._client or PoliteClient.from_settings(
            self.settings, sleep=self.stopping.wait
        )
        reports = fetch_sources(self.settings, self.database, source=source, now=now, client=client)
        if source == "all" and self.settings.sources.hf.enabled:
            yesterday = now.astimezone(UTC).date() - timedelta(days=1)
            reports += fetch_sources(
                self.settings, self.database, source="hf", day=yesterday, now=now, client=client
            )
        for report in reports:
            if report.ok:
                log.info("fetch %s", report.summary())
            else:
                log.warning("fetch %s", report.summary())

    def digests(self) -> None:
        """Queue the digests that are due, then deliver the outbox."""
        self._guarded("digests", self._digests)

    def _digests(self) -> None:
        now = self.clock()
        if self.settings.queue.broker:
            from kombu.exceptions import OperationalError as BrokerError
            from redis.exceptions import RedisError

            from digest.tasks.dispatch import dispatch_due

            try:
                dispatched = dispatch_due(self.settings, self.database, now=now)
            except (BrokerError, RedisError, OSError) as error:  # the next check tries again
                reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else error
                log.warning("tasks: broker out of reach (%s); trying at the next check", reason)
                return
            log.info("%s", dispatched.summary())
            return
        if self._renderer is None:
            self._renderer = DigestRenderer(self.settings, tokens.secret_key(self.settings))
        queued = queue_due_digests(self.settings, self.database, now=now, renderer=self._renderer)
        if queued.due:
            log.info("%s", queued.summary())  # it starts "digests due ..." itself
        try:
            report = send_due(self.settings, self.database, now=self.clock(), stop=self.stopping)
        except SenderBusy as error:  # e.g. the web app's courier: the next round sends the rest
            log.info("send: %s", error)
            return
        if report.error:
            log.warning("send %s", report.error)
        if report.due or report.error:
            log.info("send %s", report.summary())
        # One line per complete round, even an idle one: what tests and operators wait for.
        log.info("digests job finished: %d queued, %d sent", queued.queued, report.sent)

    def learn(self) -> None:
        """Fit the shared text model when there is none yet or it is `[learn] refit_days`
        old, then rebuild every reader's model over it; otherwise catch up on models
        missing or made over an older text model (`digest.learn.models`).

        Not one at a time with the other jobs: a rebuild of many readers' models takes
        minutes and must not hold up fetches and digests (readers not rebuilt yet get
        keyword-only digests meanwhile). A stop ends it between two chunks of readers;
        the next run catches up.
        """
        if self.stopping.is_set():
            return
        try:
            self._learn()
        except Exception:  # a job that breaks must not stop the service
            log.exception("learn: failed")

    def _learn(self) -> None:
        from digest.learn.models import rebuild_models, refit_text_model, text_model_due

        now = self.clock()
        if text_model_due(self.database, now, timedelta(days=self.settings.learn.refit_days)):
            refit_text_model(self.database, now, stop=self.stopping)  # it logs what it did
            return
        report = rebuild_models(self.database, now, stale_only=True, stop=self.stopping)
        if report.readers:
            log.info("learn: %s", report.summary())

    def cleanup(self) -> None:
        """Forget stale sign-ups and the bytes of old delivered messages; compress the
        bytes of messages finished since (they are kept in their wire form until then)."""
        self._guarded("cleanup", self._cleanup)

    def _cleanup(self) -> None:
        now = self.clock()
        with self.database.session() as session:
            pending = delete_expired_pending(session, now - PENDING_LIFETIME)
            compressed = compress_finished(session)
            messages = drop_old_messages(session, before=now - MESSAGE_LIFETIME)
        if pending or messages or compressed:
            log.info(
                "cleanup: %d unconfirmed sign-ups deleted, %d finished messages compressed, "
                "%d old messages dropped",
                pending,
                compressed,
                messages,
            )
