"""The scheduler's side of the task queue: what is due becomes tasks.

At each digest check (`[schedule] digest_check_minutes`), with `[queue] broker` set, the
scheduler neither matches nor sends: `dispatch_due` plans the due digests into batch
tasks (unless the run dispatched before is still being made) and asks for as many send
chunks as the outbox's due rows need (unless some are still waiting in the queue), or
for one when no row is due but some are claimed by senders, perhaps dead ones.
Nothing here decides what is sent: a batch or chunk lost, made twice or never made
changes no digest (see `digest.tasks`); the next tick dispatches what is still due.
"""

from __future__ import annotations

import logging
import math
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.config import Settings
from digest.jobs.digests import plan_due_digests
from digest.store import Database
from digest.store.models import OutboxRow
from digest.store.outbox import count_due
from digest.tasks import SEND_QUEUE, progress

log = logging.getLogger("digest.tasks")

# Send chunks asked for at one tick at most; a worker asks for more as batches queue.
MAX_CHUNKS = 64


@dataclass
class DispatchReport:
    """What one tick dispatched."""

    run: str | None = None
    batches: int = 0
    busy_with: str | None = None
    due_to_send: int = 0
    held_by_senders: int = 0
    send_chunks: int = 0

    def summary(self) -> str:
        """One line: `tasks: run 3f2a... as 12 batches, 4 send chunks for 1,800 due`."""
        if self.run:
            digests = f"run {self.run} as {self.batches} batches"
        elif self.busy_with:
            digests = f"run {self.busy_with} still being made"
        else:
            digests = "no digests due"
        held = f", {self.held_by_senders} held by senders" if self.held_by_senders else ""
        return (
            f"tasks: {digests}; {self.send_chunks} send chunks for {self.due_to_send} "
            f"messages due{held}"
        )


def dispatch_due(settings: Settings, database: Database, *, now: datetime) -> DispatchReport:
    """Turn what is due at `now` into tasks; see the module docstring."""
    from digest.tasks.work import configure, digest_batch, send_chunk

    configure(settings)
    report = DispatchReport()
    report.busy_with = progress.run_in_flight(settings)
    if report.busy_with is None:
        plan = plan_due_digests(database, now=now, batch=settings.queue.batch)
        if plan is not None:
            run = uuid.uuid4().hex[:12]
            progress.run_dispatched(settings, run, len(plan.ranges))
            for after, last in plan.ranges:
                digest_batch.apply_async(
                    args=[run, plan.now.isoformat(), plan.start.isoformat(), after, last]
                )
            # Only now the run in flight: a broker lost half-way (the publish failed, so
            # would anything that tries to undo it) leaves no run in flight, and the next
            # tick plans again at once; batches already sent find their readers done or
            # still due.
            progress.run_sent(settings, run)
            report.run, report.batches = run, len(plan.ranges)
    with database.session() as session:
        report.due_to_send = count_due(session, now=now)
        report.held_by_senders = _held_by_senders(session)
    waiting = progress.redis_for(settings).llen(SEND_QUEUE)
    if waiting:
        return report
    if report.due_to_send:
        chunks = min(MAX_CHUNKS, math.ceil(report.due_to_send / settings.queue.send_chunk))
    else:
        # Nothing due, but rows claimed ("sending"): perhaps by a chunk whose worker was
        # killed whole, whose task the broker holds until the visibility timeout. One
        # chunk takes over the claims of a sender that is gone (at once on its host,
        # after the lease elsewhere) and leaves a live one's alone.
        chunks = 1 if report.held_by_senders else 0
    for _ in range(chunks):
        send_chunk.apply_async()
    report.send_chunks = chunks
    return report


def _held_by_senders(session: Session) -> int:
    """Outbox rows claimed by a send run ("sending"): one of the outbox's due index's
    states, so counted from the index."""
    query = select(func.count()).select_from(OutboxRow).where(OutboxRow.state == "sending")
    return session.scalar(query) or 0
