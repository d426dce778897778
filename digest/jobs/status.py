"""Status: what the service holds and does, for `digest status`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from digest.config import Settings
from digest.store import Database
from digest.store.lock import LockHeld, SchedulerLock
from digest.store.outbox_admin import state_counts
from digest.store.papers import (
    FetchRecord,
    count_papers,
    last_fetches,
    last_successful_fetches,
)
from digest.store.subscribers import count_by_status, upcoming_digests

if TYPE_CHECKING:
    from digest.tasks.progress import QueueStatus


@dataclass(frozen=True)
class Status:
    """A snapshot of the service."""

    now: datetime
    subscribers: dict[str, int]
    papers: int
    fetches: dict[str, FetchRecord]
    successes: dict[str, FetchRecord]
    digests_today: dict[str, int]
    scheduler_running: bool
    due_next_day: int
    next_digest_at: datetime | None
    settings: Settings = field(repr=False)
    queue: QueueStatus | None = None

    def lines(self) -> list[str]:
        """The status for a person, one fact a line."""
        subs = ", ".join(f"{count} {state}" for state, count in self.subscribers.items())
        lines = [f"subscribers: {subs}", f"papers stored: {self.papers:,}"]
        for source in ("hf", "arxiv"):
            fetch = self.fetches.get(source)
            if fetch is None:
                lines.append(f"last fetch {source}: never")
                continue
            line = f"last fetch {source}: {_fetch_text(fetch)}"
            if fetch.error is not None:  # a failure: when did this source last work?
                success = self.successes.get(source)
                line += f"; last success: {_fetch_text(success) if success else 'never'}"
            lines.append(line)
        today = self.now.date().isoformat()
        counts = ", ".join(f"{n} {state}" for state, n in sorted(self.digests_today.items()))
        lines.append(f"digests dated {today}: {counts or 'none yet'}")
        lines.append(f"scheduler: {'running' if self.scheduler_running else 'not running'}")
        schedule = self.settings.schedule
        lines.append(
            f"next: fetch every {schedule.fetch_every_minutes:g} min and arXiv at "
            f"{schedule.arxiv_fetch_time} UTC; {plural(self.due_next_day, 'digest')} due in "
            "the next 24 h"
            + (
                f", the first at {self.next_digest_at:%Y-%m-%d %H:%M} UTC"
                if self.next_digest_at
                else ""
            )
        )
        if self.queue is not None:
            lines += _queue_lines(self.queue)
        return lines


def _queue_lines(queue: QueueStatus) -> list[str]:
    """The task queue (with [queue] broker): workers, tasks waiting, running, failed."""
    if not queue.reachable:
        return [f"task queue {queue.broker}: unreachable: {queue.error}"]
    waiting = ", ".join(f"{count:,} {name}" for name, count in queue.queued.items())
    workers = ", ".join(queue.workers) if queue.workers else "none alive"
    running = "unknown" if queue.running is None else f"{queue.running:,}"
    lines = [
        f"task queue {queue.broker}: waiting {waiting}; running {running}; "
        f"failed {queue.failed:,}"
        + (f" (last: {queue.last_failure})" if queue.last_failure else ""),
        f"workers: {plural(len(queue.workers), 'worker')} seen in the last 45 s ({workers})",
    ]
    if queue.run:
        lines.append(f"digest run {queue.run} is being made")
    return lines


def plural(count: int, noun: str) -> str:
    """`1 digest`, `2 digests`, `0 digests`."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def _fetch_text(fetch: FetchRecord) -> str:
    """When a fetch started and what it found, or why it failed."""
    at = fetch.started_at.strftime("%Y-%m-%d %H:%M UTC")
    if fetch.error is not None:
        # Errors name their source first ("hf: cannot fetch ..."); the line already does.
        return f"{at}: failed: {fetch.error.removeprefix(fetch.source + ': ')}"
    return f"{at}: {plural(fetch.papers, 'paper')}, {fetch.new:,} new, {fetch.updated:,} updated"


def _scheduler_running(settings: Settings, database: Database) -> bool:
    lock = SchedulerLock(database, settings.data_dir)
    try:
        lock.acquire()
    except LockHeld:
        return True
    lock.release()
    return False


def service_status(settings: Settings, database: Database, *, now: datetime) -> Status:
    """Subscribers by state, papers, last fetches, today's digests, what comes next."""
    today = now.date()
    with database.session() as session:
        digests: Counter[str] = Counter()
        for day, kind, state, count in state_counts(session):
            if kind == "digest" and day == today:
                digests[state] += count
        due, first = upcoming_digests(session, now + timedelta(days=1))
        status = Status(
            now=now,
            subscribers=count_by_status(session),
            papers=count_papers(session),
            fetches=last_fetches(session),
            successes=last_successful_fetches(session),
            digests_today=dict(digests),
            scheduler_running=_scheduler_running(settings, database),
            due_next_day=due,
            next_digest_at=first,
            settings=settings,
            queue=_queue_status(settings),
        )
    return status


def _queue_status(settings: Settings) -> QueueStatus | None:
    if not settings.queue.broker:
        return None
    from digest.tasks.progress import queue_status  # no Redis client loaded without a queue

    return queue_status(settings)  # an unreachable broker (or no redis package) is a line
