"""Digests: store -> match -> render -> outbox, for every subscriber whose time has come.

Each active subscriber has a watermark (`last_digest_at`) and a due time
(`next_digest_at`, their chosen local time every day, or on their day of the week,
computed across daylight-saving changes).
`queue_due_digests` takes the subscribers due at `now`, matches each against the papers
first seen from their own watermark up to (not including) the cutoff, renders one each,
and in one transaction per batch queues the messages and moves each watermark to the
cutoff and each due time to the next local send time after `now`.

A weekly digest is the same thing with a week between due times: its window runs from
the last digest, so it holds the week's papers (its trending section the week's most
upvoted), and switching between daily and weekly moves only the due time, never the
watermark: nothing is lost or sent twice.

So nothing is missed (a late fetch, a weekend, a day of downtime: the papers simply fall
in the next window) and nothing is sent twice (windows do not overlap, and the outbox
keeps one digest per subscriber and date). After downtime a subscriber whose time
passed is due at once and gets one digest dated the day it was due; missed days are not
sent one by one (their papers are in that digest), and that digest is dated by the
latest send time that passed. A digest already queued for that date
(say the subscriber moved their time to later the same day) is left alone and the
window stays open for the next one.

A digest reaches back at most `MAX_WINDOW` (30 days), whatever the watermark says.
The papers are read and indexed once per run for the last `SHARED_WINDOW` (8 days) and
shared by every batch; a batch with an older watermark gets a window of its own.

The cutoff is `now` less `SETTLE`: a fetch that started before the job but commits
after it read the papers still lands inside a later window, never behind a watermark.

On task workers (`digest.tasks`), the scheduler plans a run (`plan_due_digests`: the
batches as id ranges, and where the shared window starts) and each batch is a task
(`queue_digest_batch`) that any worker may make, indexing the run's papers once per
process. A batch made twice (a task delivered again after a worker was lost) queues
nothing the second time: a watermark moves only from the value its run read, and only
the run that moved it queues the digest (`_record`).

`queue_digest_now` makes one reader's digest at once (`digest send-digests --email`),
through the same steps: their window from their watermark up to the cutoff, dated today
in their time zone, queued unless the outbox already holds their digest of that date,
their watermark moved as the daily job moves it. A reader whose digest of today is
queued so becomes due later the same day only to find that date taken (as after moving
their time to later the same day): one digest a day either way.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import pickle
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest import tokens
from digest.config import Settings
from digest.errors import DigestError, InterestSyntaxError
from digest.learn.rank import BatchLearning, Learning, learning_for_batch, learning_for_run
from digest.match import Interests, Matcher, Selection, parse_interests
from digest.render import DigestRenderer
from digest.store import Database
from digest.store.models import OutboxRow, SubscriberRow
from digest.store.outbox import DIGEST, Outgoing, digest_row, queue_messages
from digest.store.papers import papers_first_seen_between, papers_first_seen_since
from digest.store.subscribers import (
    ScheduleMove,
    advance_schedules,
    due_subscribers,
    find_subscriber,
    oldest_due_watermark,
)
from digest.subscriber import Subscriber, digest_day, next_send_at, previous_send_at

log = logging.getLogger(__name__)

SETTLE = timedelta(minutes=5)
# How far back the papers indexed for a whole run go: a weekly digest's week, with room
# for a daylight-saving hour and a run that comes late.
SHARED_WINDOW = timedelta(days=8)
MAX_WINDOW = timedelta(days=30)  # how far back any digest goes
BATCH = 2000


@dataclass
class QueueReport:
    """What one run of the daily job did."""

    due: int = 0
    queued: int = 0
    empty: int = 0
    already: int = 0
    invalid: int = 0
    papers: int = 0
    # Why each digest counted in `invalid` after matching could not be made, by subscriber
    # id: what `queue_digest_now` tells the operator (the daily job logs it instead).
    problems: dict[int, str] = field(default_factory=dict)
    # CPU seconds spent in each stage (read, index, match, render, queue), summed over
    # the processes that did the work: where a run's time goes, for the log and benches.
    cpu: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def timing(self, stage: str) -> Iterator[None]:
        """Add the CPU time the block takes to `stage`."""
        started = time.process_time()
        try:
            yield
        finally:
            self.cpu[stage] = self.cpu.get(stage, 0.0) + time.process_time() - started

    def add(self, other: QueueReport) -> None:
        """Count in what another process of the same run did."""
        for name in ("due", "queued", "empty", "already", "invalid"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.papers = max(self.papers, other.papers)
        self.problems.update(other.problems)
        for stage, seconds in other.cpu.items():
            self.cpu[stage] = self.cpu.get(stage, 0.0) + seconds

    def summary(self) -> str:
        """One greppable line: `digests due 412, queued 410, empty 2, ...`."""
        return (
            f"digests due {self.due}, queued {self.queued}, nothing new {self.empty}, "
            f"already queued {self.already}, bad interests {self.invalid}, "
            f"papers considered {self.papers}"
        )


def queue_due_digests(
    settings: Settings,
    database: Database,
    *,
    now: datetime,
    renderer: DigestRenderer | None = None,
    batch: int = BATCH,
    workers: int | None = None,
) -> QueueReport:
    """Queue the digest of every subscriber due at `now`; see the module docstring.

    `workers` processes share the batches (default `[schedule] digest_workers`); each
    batch is still one transaction, whichever process makes it.
    """
    renderer = renderer or DigestRenderer(settings, tokens.secret_key(settings))
    workers = settings.schedule.digest_workers if workers is None else workers
    cutoff = now - SETTLE
    report = QueueReport()
    with database.session() as session:
        with report.timing("read"):
            ranges = _batch_ranges(session, now, batch)
        if not ranges:
            return report
        with report.timing("index"):
            shared = _shared_window(session, now, cutoff)
            learning = learning_for_run(session)
    run = _Run(settings, database, renderer, shared, now, cutoff, batch, learning=learning)
    workers = min(workers, len(ranges)) if _can_fork() else 1
    # The papers' index and the renderer's caches live for the whole run: frozen out of
    # the cyclic garbage collector's sight, they are not walked again at every full
    # collection (nor copied into each worker by it). The run makes no cycles to free.
    gc.freeze()
    try:
        if workers > 1:
            return _in_workers(run, ranges, workers, report)
        for after, last in ranges:
            run.batches(after, last, report)
        return report
    finally:
        gc.unfreeze()


@dataclass(frozen=True)
class ReaderDigest:
    """What `queue_digest_now` did for one reader.

    `outcome` is "queued" (their digest is in the outbox now), "already" (the outbox
    held their digest of `day` already, in state `state`; nothing queued) or "empty"
    (nothing matched and `[mail] send_empty` is off: no digest, the window moves on).
    `papers` counts the papers their window held, first seen from `since` (their
    watermark, at most `MAX_WINDOW` back) up to `until` (`SETTLE` before `now`); both
    mean nothing for "already", which reads no papers. `waiting` counts the papers first
    seen after `until` (the last at `last_waiting`): they go in the reader's next digest.
    """

    subscriber: Subscriber
    day: date
    outcome: str
    papers: int
    since: datetime
    until: datetime
    state: str | None = None
    outbox_id: int | None = None
    waiting: int = 0
    last_waiting: datetime | None = None


# Why a reader who is not active gets no digest, said to the operator who asked for one.
_NOT_ACTIVE = {
    "pending": "has not confirmed their address yet: no digest until they do",
    "paused": "is paused: no digest until they resume (on their manage page)",
    "unsubscribed": "unsubscribed: no digest goes to them",
    "bounced": (
        "is bounced (mail to the address failed for good): no digest goes to them; "
        "their manage page can turn it back on"
    ),
}


def queue_digest_now(
    settings: Settings,
    database: Database,
    email: str,
    *,
    now: datetime,
    renderer: DigestRenderer | None = None,
) -> ReaderDigest:
    """Queue the digest of the reader with this address now, once per local date.

    The same steps as `queue_due_digests` for one subscriber, whether or not their time
    has come: the papers first seen from their watermark up to `now` less `SETTLE`,
    matched, rendered, dated today in their time zone and queued, their watermark moved
    to the cutoff (and their due time, if it had passed, to their next send time). The
    outbox's digest of that date, if any, is left alone: one digest a day.

    DigestError for an unknown address, a reader who is not active (pending, paused,
    unsubscribed, bounced) or whose interests no longer parse, and a digest that cannot
    be rendered; nothing changes then.
    """
    renderer = renderer or DigestRenderer(settings, tokens.secret_key(settings))
    cutoff = now - SETTLE
    report = QueueReport()
    with database.session() as session:
        subscriber = find_subscriber(session, email)
        if subscriber is None:
            raise DigestError(f"no subscriber with the address {email}; check the spelling")
        if subscriber.status != "active":
            why = _NOT_ACTIVE.get(subscriber.status, f"is {subscriber.status}")
            raise DigestError(f"{subscriber.email} {why}")
        day = digest_day(now, subscriber.timezone)
        days = {subscriber.id: day}
        taken = _taken_days(session, days)
        if taken:
            window = _Window(cutoff, Matcher(()))  # not read: `_compose` matches nobody
        else:
            try:
                parse_interests(subscriber.interests)
            except InterestSyntaxError as error:  # said here: `_compose` only counts it
                raise DigestError(
                    f"{subscriber.email}: their interests no longer parse ({error}); no digest made"
                ) from None
            window = _batch_window(session, [subscriber], cutoff)
        learned = learning_for_batch(session, learning_for_run(session), [subscriber])
        outgoing, moves = _compose(
            settings, renderer, [subscriber], window.matcher, days, taken, {}, report, now,
            cutoff, learned,
        )  # fmt: skip
        if report.invalid:  # rendering failed: raise, so the session changes nothing
            problem = report.problems.get(subscriber.id, "see the log")
            raise DigestError(f"cannot make the digest of {subscriber.email}: {problem}")
        queued = _record(session, outgoing, moves, now)
        row = digest_row(session, subscriber.id, day)
        waiting, last_waiting = papers_first_seen_since(session, cutoff)
    if report.empty:
        outcome = "empty"
    elif queued:
        outcome = "queued"
    else:  # taken before, or by another process while this one rendered
        outcome = "already"
    return ReaderDigest(
        subscriber=subscriber,
        day=day,
        outcome=outcome,
        papers=window.matcher.count,
        since=window.start,
        until=cutoff,
        state=row.state if row else None,
        outbox_id=row.id if row else None,
        waiting=waiting,
        last_waiting=last_waiting,
    )


# A batch of the run: the due subscribers after id `after`, up to id `last` (None: every
# one after `after`, so those who become due while the run goes are not left out).
_Range = tuple[int, int | None]


@dataclass(frozen=True)
class DigestPlan:
    """A run of the digest job, planned for task workers: its time, where its shared
    window starts, and its batches as id ranges (see `_batch_ranges`)."""

    now: datetime
    start: datetime
    ranges: tuple[_Range, ...]


def plan_due_digests(database: Database, *, now: datetime, batch: int = BATCH) -> DigestPlan | None:
    """The run due at `now` as batches for task workers; None if nobody is due."""
    with database.session() as session:
        ranges = _batch_ranges(session, now, batch)
        if not ranges:
            return None
        start = _window_start(oldest_due_watermark(session, now), now - SETTLE, SHARED_WINDOW)
    return DigestPlan(now, start, tuple(ranges))


# The runs a worker process has indexed papers for, newest last: a worker makes many
# batches of one run, then moves on to the next run (at most two are kept).
_worker_runs: dict[tuple[datetime, datetime], _Run] = {}
_KEPT_RUNS = 2


def queue_digest_batch(
    settings: Settings,
    database: Database,
    *,
    now: datetime,
    start: datetime,
    after: int,
    last: int | None,
    renderer: DigestRenderer | None = None,
    batch: int = BATCH,
) -> QueueReport:
    """Queue the digests of one batch of a planned run (`plan_due_digests`): the due
    subscribers after id `after` up to `last`, one transaction per `batch` of them.

    What a task worker runs. The run's papers (from `start` to the cutoff) are read and
    indexed on the process's first batch of the run and kept for its next ones. Made
    twice, a batch changes nothing the second time (see the module docstring).
    """
    key = (now, start)
    run = _worker_runs.get(key)
    if run is None or run.database is not database or run.settings is not settings:
        renderer = renderer or DigestRenderer(settings, tokens.secret_key(settings))
        cutoff = now - SETTLE
        with database.session() as session:
            # The plan's start is already within `SHARED_WINDOW`: the window starts there.
            shared = _index_window(session, start, cutoff, SHARED_WINDOW)
            learning = learning_for_run(session)
        run = _Run(settings, database, renderer, shared, now, cutoff, batch, learning=learning)
        while len(_worker_runs) >= _KEPT_RUNS:
            _worker_runs.pop(next(iter(_worker_runs)))
        _worker_runs[key] = run
    report = QueueReport()
    run.batches(after, last, report)
    return report


def _batch_ranges(session: Session, now: datetime, batch: int) -> list[_Range]:
    """The run's batches as id ranges of `batch` due subscribers each, planned up front
    so that several processes can share them out; the last range is open-ended."""
    ids = session.scalars(
        select(SubscriberRow.id)
        .where(SubscriberRow.status == "active", SubscriberRow.next_digest_at <= now)
        .order_by(SubscriberRow.id)
    ).all()
    lasts = [ids[end - 1] for end in range(batch, len(ids), batch)]
    afters = [0, *lasts]
    return [*zip(afters, lasts, strict=False), (afters[-1], None)] if ids else []


@dataclass
class _Run:
    """What every batch of a run shares: the papers indexed once, the renderer."""

    settings: Settings
    database: Database
    renderer: DigestRenderer
    shared: _Window
    now: datetime
    cutoff: datetime
    batch: int
    parsed: dict[str, Interests | None] = field(default_factory=dict)
    # Readers' models (digest.learn): None before the first text model is fitted.
    learning: Learning | None = None
    # Wider windows, by where they start: batches whose oldest watermark is the same (or
    # reaches back as far as allowed, as one never sent does) share one index.
    wider: dict[datetime, _Window] = field(default_factory=dict)

    def batches(self, after: int, last: int | None, report: QueueReport) -> None:
        """Queue the digests of the due subscribers after id `after` up to `last`, a
        batch (one transaction) at a time: one batch, unless more became due meanwhile."""
        while True:
            with self.database.session() as session:
                with report.timing("read"):
                    page = due_subscribers(session, self.now, limit=self.batch, after_id=after)
                due = [s for s in page if last is None or s.id <= last]
                if due:
                    self._batch(session, due, report)
            if len(due) < self.batch or (last is not None and due[-1].id >= last):
                return
            after = due[-1].id

    def _batch(self, session: Session, due: list[Subscriber], report: QueueReport) -> None:
        now, cutoff = self.now, self.cutoff
        with report.timing("index"):
            window = self.shared if self.shared.covers(due) else self._wider(session, due)
        report.papers = max(report.papers, window.matcher.count)
        with report.timing("read"):
            days = {s.id: _digest_date(s, now) for s in due}  # once each: time zone maths
            taken = _taken_days(session, days)
            learned = learning_for_batch(session, self.learning, due)
        outgoing, moves = _compose(
            self.settings, self.renderer, due, window.matcher, days, taken, self.parsed,
            report, now, cutoff, learned,
        )  # fmt: skip
        with report.timing("queue"):
            report.queued += _record(session, outgoing, moves, now)
            session.commit()

    def _wider(self, session: Session, due: list[Subscriber]) -> _Window:
        """The window of a batch the shared one does not cover, indexed once a run."""
        start = _batch_start(due, self.cutoff)
        if start not in self.wider:
            self.wider[start] = _index_window(session, start, self.cutoff, MAX_WINDOW)
        return self.wider[start]


def _can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def _in_workers(run: _Run, ranges: list[_Range], workers: int, report: QueueReport) -> QueueReport:
    """The run's batches shared out between `workers` forked processes, each taking the
    next batch nobody has taken; their reports added to `report`.

    Forked after the papers are read and indexed, so every process shares that work
    and its memory. Each batch commits or rolls back on its own, as in one
    process: a worker that dies loses only its batch in progress, whose subscribers
    stay due for the next run. After a failure no worker starts another batch, and the
    first error is raised here once every worker has stopped.
    """
    context = multiprocessing.get_context("fork")
    next_range = context.Value("i", 0)
    stop = context.Event()
    children = []
    for _ in range(workers):
        receive, send = context.Pipe(duplex=False)
        process = context.Process(
            target=_worker, args=(run, ranges, next_range, stop, send), daemon=True
        )
        process.start()
        send.close()
        children.append((process, receive))
    outcomes = [_outcome(process, receive) for process, receive in children]
    for outcome in outcomes:
        if isinstance(outcome, QueueReport):
            report.add(outcome)
    errors = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    if errors:
        raise errors[0]
    return report


def _worker(
    run: _Run,
    ranges: list[_Range],
    next_range: Any,
    stop: Any,
    results: Connection,
) -> None:
    """One forked process: batches until none is left (or another worker failed)."""
    # The parent's pooled connections are the parent's: this process opens its own.
    run.database.engine.dispose(close=False)
    report = QueueReport()
    try:
        while not stop.is_set():
            with next_range.get_lock():
                index = next_range.value
                next_range.value += 1
            if index >= len(ranges):
                break
            run.batches(*ranges[index], report)
    except BaseException as error:
        stop.set()
        results.send(_picklable(error))
        raise
    results.send(report)


def _outcome(process: Any, receive: Connection) -> QueueReport | BaseException:
    """A worker's report or error, once it has stopped."""
    try:
        outcome = receive.recv()
    except EOFError:  # killed before it could say anything
        outcome = DigestError("a digest worker process died; its batch in progress is not queued")
    process.join()
    return outcome


def _picklable(error: BaseException) -> BaseException:
    try:
        pickle.dumps(error)
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error


@dataclass
class _Window:
    """Papers indexed for matching: those first seen from `start` up to the cutoff."""

    start: datetime
    matcher: Matcher

    def covers(self, due: Sequence[Subscriber]) -> bool:
        """Whether every subscriber's papers are in the window."""
        return all(s.last_digest_at is not None and s.last_digest_at >= self.start for s in due)


def _window_start(oldest: datetime | None, cutoff: datetime, reach: timedelta) -> datetime:
    """Where a window from `oldest` (None: from as far as allowed) starts, going back at
    most `reach` from the cutoff."""
    floor = cutoff - reach
    return floor if oldest is None else max(oldest, floor)


def _index_window(
    session: Session, oldest: datetime | None, cutoff: datetime, reach: timedelta
) -> _Window:
    """The papers first seen from `oldest` (None: from as far as allowed) up to the
    cutoff, going back at most `reach`, read and indexed."""
    start = _window_start(oldest, cutoff, reach)
    papers = papers_first_seen_between(session, start, cutoff)
    return _Window(start, Matcher(papers, trending_until=cutoff, since=start))


def _shared_window(session: Session, now: datetime, cutoff: datetime) -> _Window:
    """The papers every batch of the run shares, read and indexed once for the run
    rather than once per batch (at a million subscribers: one index, not 500).

    It starts at the oldest watermark among the due subscribers, but at most
    `SHARED_WINDOW` back: a subscriber whose watermark is older (back after a long pause
    in service, or one whose digests keep failing) must not make every run index weeks
    of papers for everyone. Their batches get a window of their own.
    """
    return _index_window(session, oldest_due_watermark(session, now), cutoff, SHARED_WINDOW)


def _batch_window(session: Session, due: Sequence[Subscriber], cutoff: datetime) -> _Window:
    """The papers of one batch the shared window does not cover: from its oldest mark,
    but at most `MAX_WINDOW` back (a watermark that cannot move, say of an address that
    can never be mailed, must not grow the window day after day)."""
    return _index_window(session, _batch_start(due, cutoff), cutoff, MAX_WINDOW)


def _batch_start(due: Sequence[Subscriber], cutoff: datetime) -> datetime:
    """Where a batch's own window starts: its oldest mark, at most `MAX_WINDOW` back."""
    floor = cutoff - MAX_WINDOW
    marks = [s.last_digest_at for s in due]
    if None in marks:
        return floor
    return max(floor, min(mark for mark in marks if mark is not None))


def _taken_days(session: Session, days: dict[int, date]) -> set[tuple[int, date]]:
    """(subscriber, date) pairs, of the digest dates given, already in the outbox."""
    wanted = set(days.items())
    rows = session.execute(
        select(OutboxRow.subscriber_id, OutboxRow.digest_date).where(
            OutboxRow.kind == DIGEST,
            OutboxRow.subscriber_id.in_({key for key, _ in wanted}),
            OutboxRow.digest_date.in_({day for _, day in wanted}),
        )
    )
    return {(key, day) for key, day in rows} & wanted


def _digest_date(subscriber: Subscriber, now: datetime) -> date:
    """The local date of the latest send time that passed: the digest's date."""
    latest = previous_send_at(subscriber.send_time, subscriber.timezone, now, subscriber.cadence)
    return digest_day(latest, subscriber.timezone)


def _interests(text: str, parsed: dict[str, Interests | None]) -> Interests | None:
    """Parse each distinct list once; None for a list that no longer parses."""
    if text not in parsed:
        try:
            parsed[text] = parse_interests(text)
        except InterestSyntaxError:
            parsed[text] = None
    return parsed[text]


def _compose(
    settings: Settings,
    renderer: DigestRenderer,
    due: Sequence[Subscriber],
    matcher: Matcher,
    days: dict[int, date],
    taken: set[tuple[int, date]],
    parsed: dict[str, Interests | None],
    report: QueueReport,
    now: datetime,
    cutoff: datetime,
    learned: BatchLearning | None = None,
) -> tuple[list[Outgoing], list[ScheduleMove]]:
    """Match and render a batch: the messages to queue and the schedules to move.

    `days` holds each subscriber's digest date; `learned` the models of those who have
    one (their keyword matches re-ordered, their suggestions added)."""
    report.due += len(due)
    outgoing: list[Outgoing] = []
    moves: dict[int, ScheduleMove] = {}
    matchable: list[tuple[Subscriber, Interests, datetime | None]] = []
    for subscriber in due:
        following = next_send_at(subscriber.send_time, subscriber.timezone, now, subscriber.cadence)
        was = subscriber.next_digest_at
        interests = _interests(subscriber.interests, parsed)
        if (subscriber.id, days[subscriber.id]) in taken:
            report.already += 1
            moves[subscriber.id] = ScheduleMove(subscriber.id, None, was, following)
        elif interests is None:
            report.invalid += 1
            log.warning("subscriber %d: interests no longer parse; skipped", subscriber.id)
            moves[subscriber.id] = ScheduleMove(subscriber.id, None, was, following)
        else:
            matchable.append((subscriber, interests, subscriber.last_digest_at))
            mark = subscriber.last_digest_at
            moves[subscriber.id] = ScheduleMove(subscriber.id, cutoff, was, following, mark)
    selections = _selections(matcher, matchable, settings.match.max_papers)
    if learned is not None:
        selections = learned.refine(
            matcher,
            selections,
            lambda who: _interests(who.interests, parsed),  # type: ignore[arg-type,return-value]
            settings.match.max_papers,
        )
    while True:
        with report.timing("match"):  # the matcher works a block at a time, on demand
            chosen = next(selections, None)
        if chosen is None:
            break
        subscriber, selection = chosen
        if not selection.papers and not settings.mail.send_empty:
            report.empty += 1
            continue
        day = days[subscriber.id]
        try:
            with report.timing("render"):
                message = renderer.render_digest(subscriber, selection, day, now=now)
        except DigestError as error:  # e.g. an address that cannot be mailed
            report.invalid += 1
            report.problems[subscriber.id] = str(error)
            log.warning("subscriber %d: cannot render digest: %s", subscriber.id, error)
            # Keep their watermark: the papers stay theirs for when it can be rendered.
            moves[subscriber.id] = moves[subscriber.id]._replace(mark=None)
            continue
        outgoing.append(Outgoing(subscriber.id, DIGEST, day, message))
    return outgoing, list(moves.values())


def _record(
    session: Session, outgoing: list[Outgoing], moves: list[ScheduleMove], now: datetime
) -> int:
    """Move the batch's watermarks and due times, then queue the digests of those whose
    watermark this run moved; return how many were queued.

    A run that finds a watermark moved by another (the same batch made twice: a task
    redelivered, a second worker) queues nothing for that reader: the other run's digest
    is the one, so each window is sent once whatever the queue delivers twice.
    """
    moved = advance_schedules(session, moves)
    mine = [item for item in outgoing if item.subscriber_id in moved]
    return queue_messages(session, mine, now=now)


def _selections(
    matcher: Matcher,
    matchable: list[tuple[Subscriber, Interests, datetime | None]],
    max_papers: int,
) -> Iterator[tuple[Subscriber, Selection]]:
    if not matchable:
        return iter(())
    return matcher.select_many(matchable, max_papers)
