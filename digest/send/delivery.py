"""Deliver what is due in the outbox: `send_due`, used by `digest send` and the scheduler.

How a run goes:
1. Take the data folder's send lock (`<data_dir>/send.lock`), so one sender runs at a
   time from it, and requeue the rows a dead sender left in state "sending" (see below).
2. Claim due rows in chunks of hundreds (state "sending", stamped with this run's owner id),
   hand them to `[smtp] connections` worker threads, each with one persistent connection
   (one for the maildir). While the run lasts, the coordinator renews its lease on the
   rows it holds every `RENEW_EVERY` seconds.
3. Each worker sends one message after another on its connection and hands each
   outcome to the coordinator, which commits all the outcomes that are waiting in one
   transaction (group commit: a fraction of a commit per message). A worker may start
   the next message (MAIL, RCPT, DATA and the text) at once, but it sends that
   message's final "." only once the previous outcome is committed; so the commit
   overlaps the next transfer, and every acceptance is on disk before the same
   connection can get another message accepted.
4. On a stop request (`stop` event: the service's SIGTERM), workers finish the message
   they are sending, its outcome is recorded, and the claimed rows nobody started are
   handed back.

Exactly once, and the one window we cannot close
-------------------------------------------------
Every row exists before its message is sent, and is marked sent in the transaction that
records the server's "250" for it. SMTP has no way to take back or confirm a delivery,
so one window stays open: the server accepted the message (it said 250 after the final
".") and we stopped before that was committed (SIGKILL, power loss, a crash). Because
no connection sends a final "." before its previous outcome is committed, at most one
message per open connection can be in that window. After such a stop, the rows of the
dead run are still "sending" (those it had claimed, among them the ones in flight); the
next run (at once on the same host: see below) queues them again with a note in
`reply`, logs their Message-IDs, and sends them. So at most one person per connection
may get the same digest twice, with the same Message-ID (stable per subscriber and
day), which mail programs and servers can recognise as a duplicate. A
digest is never lost: not resending could drop digests the server never received. (The
outcomes are committed with SQLite's WAL and synchronous=NORMAL: a killed process loses
nothing committed; a power cut may lose the last few commits, hence a few more
duplicates, never a lost digest.)

A close relative: the connection is lost *after* the whole message and the final "."
were sent, but before the server answered. The server may have accepted it or not. That
row goes to state "unknown" (counted in the report, logged with its Message-ID) and is
not retried blindly. What the operator does: look the Message-ID up in the mail server's
log (`grep '<digest....>' /var/log/mail.log`, or the provider's message search), then
`digest outbox --mark-sent ID` if it went out, or `digest outbox --resend ID` if not.

Whose claims a run may take over
--------------------------------
Several senders may share a store: on other hosts (PostgreSQL), or on this host with
other data folders, hence other send locks (a scheduler and a `digest send` with another
config, say). The send lock therefore proves nothing about the rows in "sending". Each
run stamps its claims with an owner id (host, pid, the process's start time, a run
token: `digest.send.owner`) and renews its lease on them; the next run takes a claim
over only when its owner is provably gone, at once (a process of this host and boot
that no longer exists, or whose pid now belongs to another process, or a finished run
of this very process: so a killed sender is recovered by the next run on its host
without waiting), or when the owner has not renewed for `LEASE` (dead elsewhere, after
a reboot, or hung). A run that stalls longer than that (its coordinator stuck, say on
the database) may have lost claims: the lease is checked again before any connection
may end another message, and such a run stops without sending what it no longer holds.

(This module is kept whole, past the project's ~450 lines: the coordinator, its workers
and the exactly-once argument above only make sense read together.)
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from digest.config import Settings
from digest.errors import ConfigError, DeliveryError
from digest.metrics import record_sent
from digest.send import owner, policy
from digest.send.backends import (
    Backend,
    BackendMisconfigured,
    BackendUnavailable,
    Connection,
    Outcome,
)
from digest.send.maildir import MaildirBackend
from digest.send.smtp import SmtpBackend
from digest.store import Database
from digest.store.lock import FileLock
from digest.store.outbox import (
    OutboxJob,
    Result,
    claim_due,
    count_due,
    record_results,
    recover_interrupted,
    release_claims,
    renew_claims,
)

log = logging.getLogger(__name__)

# A claim whose owner has not renewed it for LEASE is taken over (its owner is not
# provably gone, but dead elsewhere or hung). Renewing ten times per lease lets a slow
# database miss a few renewals without a live sender losing its claims.
LEASE = timedelta(minutes=10)
RENEW_EVERY = LEASE.total_seconds() / 10
# Rows claimed at a time: hundreds, so that claiming costs little per message (up to
# ~20 MB of 69 KB digests held), and at least 16 per connection.
CLAIM_AT_ONCE = 256
CHUNK_PER_CONNECTION = 16
GATHER = 0.001  # seconds an outcome may wait for others to share its commit


class SenderBusy(DeliveryError):
    """Another sender holds this data folder's send lock; what is due goes out in its run
    or in the next one."""


@dataclass
class SendReport:
    """What one run did. `unknown_ids` are the Message-IDs of rows now in state "unknown"."""

    due: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    unknown: int = 0
    skipped: int = 0
    suppressed: int = 0
    recovered: int = 0
    stopped: bool = False
    dry_run: bool = False
    error: str | None = None
    unknown_ids: list[str] = field(default_factory=list)

    def add(self, result: Result) -> None:
        """Count one recorded result."""
        if result.state in ("sent", "retrying", "failed", "unknown", "skipped"):
            setattr(self, result.state, getattr(self, result.state) + 1)

    def summary(self) -> str:
        """One line for people."""
        if self.dry_run:
            return f"{self.due} messages due (dry run: nothing sent)"
        parts = [
            f"{self.sent} sent",
            f"{self.retrying} retrying",
            f"{self.failed} failed",
            f"{self.suppressed} addresses suppressed",
        ]
        if self.skipped:
            parts.append(f"{self.skipped} skipped")
        if self.unknown:
            parts.append(f"{self.unknown} unknown (see `digest outbox`)")
        if self.recovered:
            parts.append(f"{self.recovered} resent after an interrupted run")
        if self.stopped:
            parts.append("stopped on request")
        return ", ".join(parts)


def make_backend(settings: Settings) -> Backend:
    """The configured delivery backend (`[delivery] backend`, `[smtp]`)."""
    if settings.mail_backend == "smtp":
        if not settings.smtp.host:
            raise ConfigError(
                '[delivery] backend is "smtp" but [smtp] host is empty; set [smtp] host, '
                'or backend = "maildir"'
            )
        return SmtpBackend(settings.smtp)
    return MaildirBackend(settings.maildir)


def send_due(
    settings: Settings,
    database: Database,
    *,
    now: datetime,
    day: date | None = None,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
    stop: threading.Event | None = None,
    backend: Backend | None = None,
    rng: random.Random | None = None,
    limit: int | None = None,
    lock: bool = True,
) -> SendReport:
    """Deliver every outbox row due at `now` (only digests of `day`, if given).

    `limit`: claim at most that many rows (a task worker's send chunk). `lock=False`
    skips the data folder's send lock: for task workers, several of which send from one
    host at once; their claims keep them apart, as they keep senders on several hosts.

    `progress(finished, due)` is called with the number of messages finished since its
    last call and the number due at the start;
    setting `stop` ends the run cleanly (the message in flight is finished and recorded).
    A backend that cannot be used at all (server down, bad login) ends the run early with
    `report.error` set to one actionable sentence; what was done until then is recorded.
    """
    if dry_run:
        with database.session() as session:
            return SendReport(due=count_due(session, now=now, day=day), dry_run=True)
    backend = backend or make_backend(settings)
    held = _send_lock(settings.data_dir) if lock else contextlib.nullcontext()
    with held, owner.claiming() as claimer:
        run = _Run(
            settings,
            database,
            backend,
            claimer=claimer,
            now=now,
            day=day,
            progress=progress,
            stop=stop or threading.Event(),
            rng=rng or random.Random(),
            limit=limit,
        )
        return run.run()


def _send_lock(data_dir: Path) -> FileLock:
    """The data folder's send lock, to hold with `with`: SenderBusy if another sender has it.

    The kernel drops it when the process dies, even by SIGKILL. Not POSIX: no lock, one
    sender by convention.
    """
    path = data_dir / "send.lock"
    return FileLock(
        path,
        lambda holder: SenderBusy(
            f"another `digest send` is already delivering from this data folder "
            f"({holder or 'a process'} holds {path}); wait for it to finish"
        ),
        optional=True,
    )


class Pacer:
    """Spaces messages out to at most `rate` per second across all connections (0: no limit)."""

    def __init__(
        self,
        rate: float,
        stop: threading.Event,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.stop = stop
        self.clock = clock
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        """Return when the next message may go (early if a stop is requested)."""
        if not self.interval:
            return
        with self._lock:
            slot = max(self.clock(), self._next)
            self._next = slot + self.interval
        delay = slot - self.clock()
        if delay > 0:
            self.stop.wait(delay)


# What a worker hands the coordinator besides an Outcome.
@dataclass(frozen=True, slots=True)
class _Failure:
    kind: str  # "unavailable", "misconfigured", "release", "bounced", "crash"
    text: str = ""


_WAITING = object()  # a worker waits for its previous outcome to be committed


class _ClaimLost(Exception):
    """Raised before a final "." when the run may no longer hold its claims."""


@dataclass(frozen=True, slots=True)
class _Done:
    job: OutboxJob
    outcome: Outcome | _Failure
    ack: threading.Event


class _Run:
    """One run of `send_due`: a coordinator (this thread) and worker threads."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        backend: Backend,
        *,
        claimer: str,
        now: datetime,
        day: date | None,
        progress: Callable[[int, int], None] | None,
        stop: threading.Event,
        rng: random.Random,
        limit: int | None = None,
    ) -> None:
        self.settings = settings
        self.limit = limit
        self.claimed = 0
        self.database = database
        self.backend = backend
        self.now = now
        self.day = day
        self.progress = progress
        self.stop = stop
        self.rng = rng
        self.report = SendReport()
        self.claimer = claimer
        self.held: set[int] = set()  # rows claimed and not yet recorded or handed back
        self.renewed = time.monotonic()  # when the lease on `held` was last confirmed
        self.claims_lost = False  # set by the coordinator; read by workers before a "."
        self.todo: queue.Queue[OutboxJob | None] = queue.Queue()
        self.results: queue.Queue[_Done | object | None] = queue.Queue()
        self.bounced: set[int] = set()  # read by workers: skip subscribers bounced meanwhile
        self.exhausted = False
        self.closing = False
        self.workers = 0
        self.abort: str | None = None
        self.coordinator_gone = False  # the coordinator failed: workers must not wait on it
        self.unavailable: str | None = None
        rate = settings.smtp.rate if backend.name == "smtp" else 0.0
        self.pacer = Pacer(rate, stop)
        self.started = time.monotonic()
        self.chunk = max(CLAIM_AT_ONCE, CHUNK_PER_CONNECTION * backend.connections)

    def clock(self) -> datetime:
        """`now` moved on by the time this run has taken, for the times we record."""
        return self.now + timedelta(seconds=time.monotonic() - self.started)

    # --- the coordinator -------------------------------------------------------------

    def run(self) -> SendReport:
        with self.database.session() as session:
            recovered = recover_interrupted(session, now=self.now, lease=LEASE, gone=owner.gone)
            self.report.due = count_due(session, now=self.now, day=self.day)
            first = self._claim(session)
        if recovered:
            self.report.recovered = len(recovered)
            log.warning(
                "%d messages were in flight when an earlier send stopped; sending them "
                "again (some may arrive twice): %s",
                len(recovered),
                " ".join(recovered),
            )
        if not first:
            return self.report
        threads = [
            threading.Thread(target=self._worker, name=f"send-{n}", daemon=True)
            for n in range(min(self.backend.connections, self.report.due) or 1)
        ]
        self.workers = len(threads)
        for thread in threads:
            thread.start()
        try:
            self._coordinate(len(threads))
        except BaseException:
            self.coordinator_gone = True
            raise
        finally:
            self._close_workers()
            for thread in threads:
                thread.join()
            self._release(self._drain_todo())
        self.report.stopped = self.stop.is_set()
        self.report.error = self.abort or (
            self.unavailable if self.report.sent == 0 or not self._all_done() else None
        )
        return self.report

    def _all_done(self) -> bool:
        with self.database.session() as session:
            return count_due(session, now=self.now, day=self.day) == 0

    def _coordinate(self, alive: int) -> None:
        """Collect outcomes and commit them in groups.

        A group is committed as soon as a worker needs it (it is about to send a final
        "." and its previous outcome is not yet on disk), or once its oldest outcome has
        waited `GATHER` seconds, or when it is large. With a fast server the group holds
        about one outcome per connection (a fraction of a commit per message); with a
        slow one it is committed long before any worker has to wait for it.
        """
        pending: list[_Done] = []
        oldest = 0.0
        while alive:
            wait = 0.2 if not pending else max(0.0, oldest + GATHER - time.monotonic())
            try:
                items = [self.results.get(timeout=wait)]
                flush = False
            except queue.Empty:
                items, flush = [], True
            while True:
                try:
                    items.append(self.results.get_nowait())
                except queue.Empty:
                    break
            for item in items:
                if item is None:
                    alive -= 1
                    flush = True
                elif item is _WAITING:
                    flush = True
                else:
                    if not pending:
                        oldest = time.monotonic()
                    pending.append(item)
            renew = self._renewal_due()
            if flush or renew or len(pending) >= self.chunk or self._refill_needed():
                self._record(pending)
                pending = []
            if self.stop.is_set() or self.abort or (self.exhausted and self.todo.empty()):
                self._close_workers()
        self._record(pending)

    def _refill_needed(self) -> bool:
        return not (self.exhausted or self.closing) and self.todo.qsize() < self.chunk // 2

    def _record(self, batch: list[_Done]) -> None:
        refill = self._refill_needed()
        renew = self._renewal_due()
        if not batch and not refill and not renew:
            return
        results, release = [], []
        for done in batch:
            self.held.discard(done.job.id)  # recorded or handed back below
            result = self._result(done)
            if result is None:
                release.append(done.job.id)
            else:
                results.append(result)
        with self.database.session() as session:
            bounced = record_results(
                session,
                results,
                now=self.clock(),
                bounce_threshold=self.settings.delivery.bounce_threshold,
            )
            self._release_in(session, release)
            if refill:
                self._claim(session)
            if renew:
                self._renew(session)
        if time.monotonic() - self.renewed >= LEASE.total_seconds() / 2:
            # This commit took long enough for the claims to be near or past their lease
            # (the database stalled): before any worker may end another message, check
            # that they are still ours.
            with self.database.session() as session:
                self._renew(session)
        # Only now, with the outcomes committed, may each worker send its next message.
        for done in batch:
            done.ack.set()
        self.bounced.update(bounced)
        self.report.suppressed += len(bounced)
        for result in results:
            self.report.add(result)
        record_sent(self.clock(), [done.job for done in batch], results)  # /metrics
        if self.progress and batch:
            self.progress(len(batch), self.report.due)

    def _renewal_due(self) -> bool:
        """Whether the lease on the rows this run holds is due to be renewed."""
        return time.monotonic() - self.renewed >= RENEW_EVERY

    def _renew(self, session: object) -> None:
        """Renew the lease on the rows this run holds; stop the run if some were taken."""
        confirmed = time.monotonic()  # before the statement: the lease is at least this fresh
        held = renew_claims(
            session,  # type: ignore[arg-type]
            self.claimer,
            self.held,
            now=self.clock(),
        )
        self.renewed = confirmed
        if held < len(self.held) and not self.claims_lost:
            # Workers check this before each final ".": nothing more is sent on claims
            # that may now be another sender's.
            self.claims_lost = True
            self.abort = self.abort or (
                f"this run stalled for longer than the lease ({LEASE}) and another sender "
                f"took over {len(self.held) - held} of its messages; stopped so that none "
                "is sent twice"
            )
            log.warning("%s", self.abort)

    def _result(self, done: _Done) -> Result | None:
        """The row update for one worker report; None to hand the row back untried."""
        job, outcome = done.job, done.outcome
        hours = self.settings.delivery.retry_deadline_hours
        if isinstance(outcome, Outcome):
            result = policy.result_for(
                job, outcome, now=self.clock(), retry_deadline_hours=hours, rng=self.rng
            )
            if result.state == "unknown":
                self.report.unknown_ids.append(job.message_id)
                log.warning(
                    "connection lost after sending %s to %s; it may or may not have been "
                    "accepted: find it in the mail server's log, then run `digest outbox "
                    "--mark-sent %d` or `--resend %d`",
                    job.message_id,
                    job.recipient,
                    job.id,
                    job.id,
                )
            return result
        if outcome.kind == "unavailable":
            self.unavailable = outcome.text
            log.warning("%s", outcome.text)
            return policy.temporary_failure(
                job, None, outcome.text, now=self.clock(), hours=hours, rng=self.rng
            )
        if outcome.kind == "bounced":
            return Result(
                job.id, job.subscriber_id, "skipped", False, reply="not sent: the address bounced"
            )
        if outcome.kind in ("misconfigured", "crash"):
            self.abort = self.abort or outcome.text
        return None

    def _claim(self, session: object) -> list[OutboxJob]:
        wanted = self.chunk if self.limit is None else min(self.chunk, self.limit - self.claimed)
        if wanted <= 0:
            self.exhausted = True
            return []
        jobs = claim_due(
            session,  # type: ignore[arg-type]
            now=self.now,
            limit=wanted,
            claimer=self.claimer,
            day=self.day,
            claimed_at=self.clock(),  # an hour into a slow run, the claim is still fresh
        )
        self.claimed += len(jobs)
        if len(jobs) < wanted or self.claimed == self.limit:
            self.exhausted = True
        hours = self.settings.delivery.retry_deadline_hours
        settled = []
        for job in jobs:
            result = policy.ineligible(job) or policy.expired(job, now=self.now, hours=hours)
            if result is None:
                self.held.add(job.id)
                self.todo.put(job)
            else:
                settled.append(result)
                self.report.add(result)
        record_results(
            session,  # type: ignore[arg-type]
            settled,
            now=self.now,
            bounce_threshold=self.settings.delivery.bounce_threshold,
        )
        return jobs

    def _close_workers(self) -> None:
        """Stop handing out work: unstarted rows go back, each worker gets an end marker."""
        if self.closing:
            return
        self.closing = True
        self._release(self._drain_todo())
        for _ in range(self.workers):
            self.todo.put(None)

    def _drain_todo(self) -> list[int]:
        ids = []
        while True:
            try:
                job = self.todo.get_nowait()
            except queue.Empty:
                return ids
            if job is not None:
                ids.append(job.id)

    def _release(self, ids: list[int]) -> None:
        if ids:
            with self.database.session() as session:
                self._release_in(session, ids)

    def _release_in(self, session: object, ids: list[int]) -> None:
        if ids:
            self.held.difference_update(ids)
            # Only rows still ours: a claim taken over meanwhile is its new owner's.
            release_claims(session, ids, self.claimer)  # type: ignore[arg-type]

    # --- the workers -----------------------------------------------------------------

    def _worker(self) -> None:
        previous: threading.Event | None = None  # set when the last outcome is committed
        connection: Connection | None = None

        def previous_recorded() -> None:
            # Called just before the server can accept the next message (the final "."):
            # the connection's previous outcome must be on disk first.
            if previous is not None and not previous.is_set():
                self.results.put(_WAITING)  # ask the coordinator to commit now
                while not previous.wait(0.5):
                    if self.coordinator_gone:
                        raise RuntimeError("the outbox coordinator stopped")
            if self.claims_lost:
                raise _ClaimLost  # the connection is dropped: this message is not completed

        try:
            while (job := self.todo.get()) is not None:
                outcome, connection, last = self._deliver(job, connection, previous_recorded)
                previous = threading.Event()
                self.results.put(_Done(job, outcome, previous))
                if last:
                    break
        finally:
            if connection is not None:
                with contextlib.suppress(Exception):
                    connection.close()
            self.results.put(None)

    def _deliver(
        self,
        job: OutboxJob,
        connection: Connection | None,
        previous_recorded: Callable[[], None],
    ) -> tuple[Outcome | _Failure, Connection | None, bool]:
        """Deliver one job; return the outcome, the connection, and whether to stop."""
        if job.subscriber_id in self.bounced:
            return _Failure("bounced"), connection, False
        self.pacer.wait()
        if self.stop.is_set() or self.abort:
            return _Failure("release"), connection, True
        try:
            if connection is None:
                connection = self.backend.open()
            return connection.deliver(job.outgoing(), previous_recorded), connection, False
        except BackendUnavailable as error:
            return _Failure("unavailable", str(error)), connection, True
        except BackendMisconfigured as error:
            return _Failure("misconfigured", str(error)), connection, True
        except _ClaimLost:
            return _Failure("release"), connection, True
        except Exception as error:  # a bug: keep the row, stop the run, say so
            if self.coordinator_gone:
                return _Failure("release"), None, True
            log.exception("unexpected error while sending %s", job.message_id)
            return _Failure("crash", f"internal error while sending: {error!r}"), connection, True
