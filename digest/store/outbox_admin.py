"""The outbox as an operator (`digest outbox`, `digest status`) and the manage page see
it: rows read without their message, and what they may do to a row or a subscriber.

`digest.store.outbox` is the delivery path (queue, claim, record); this module only
reads rows and changes them on request: settle an unknown row, queue a row again, let a
bounced subscriber receive mail again, and compress, then free, the bytes of finished
messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Select, bindparam, delete, func, select, update
from sqlalchemy.orm import Session

from digest.store.models import OutboxMessageRow, OutboxRow, SubscriberRow
from digest.store.outbox import compressed
from digest.store.subscribers import change_status

_outbox = OutboxRow.__table__
_messages = OutboxMessageRow.__table__


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A row as `digest outbox` shows it (without the message)."""

    id: int
    subscriber_id: int
    kind: str
    digest_date: date | None
    state: str
    recipient: str
    message_id: str
    size: int
    attempts: int
    queued_at: datetime
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    sent_at: datetime | None
    reply_code: int | None
    reply: str | None


def _entry_query() -> Select:
    """A select of OutboxEntry's columns, in order."""
    return select(
        _outbox.c.id,
        _outbox.c.subscriber_id,
        _outbox.c.kind,
        _outbox.c.digest_date,
        _outbox.c.state,
        _outbox.c.recipient,
        _outbox.c.message_id,
        _outbox.c.size,
        _outbox.c.attempts,
        _outbox.c.queued_at,
        _outbox.c.next_attempt_at,
        _outbox.c.last_attempt_at,
        _outbox.c.sent_at,
        _outbox.c.reply_code,
        _outbox.c.reply,
    )


def state_counts(session: Session) -> list[tuple[date | None, str, str, int]]:
    """(digest date, kind, state, count) for every group, newest date first."""
    rows = session.execute(
        select(_outbox.c.digest_date, _outbox.c.kind, _outbox.c.state, func.count())
        .group_by(_outbox.c.digest_date, _outbox.c.kind, _outbox.c.state)
        .order_by(_outbox.c.digest_date.desc().nulls_last(), _outbox.c.kind, _outbox.c.state)
    )
    return [(day, kind, state, count) for day, kind, state, count in rows]


def recent_problems(session: Session, limit: int = 20) -> list[OutboxEntry]:
    """The latest failed, unknown and retrying rows, newest attempt first."""
    query = (
        _entry_query()
        .where(_outbox.c.state.in_(("failed", "unknown", "retrying")))
        .order_by(_outbox.c.last_attempt_at.desc(), _outbox.c.id.desc())
        .limit(limit)
    )
    return [OutboxEntry(*row) for row in session.execute(query)]


def subscriber_messages(
    session: Session, subscriber_id: int, *, limit: int | None = None
) -> list[OutboxEntry]:
    """The outbox rows of one subscriber, newest first (all, or the `limit` latest): what
    `digest subscribers show` lists and a reader's data download holds."""
    query = (
        _entry_query()
        .where(_outbox.c.subscriber_id == subscriber_id)
        .order_by(_outbox.c.queued_at.desc(), _outbox.c.id.desc())
    )
    if limit is not None:
        query = query.limit(limit)
    return [OutboxEntry(*row) for row in session.execute(query)]


def resolve_unknown(session: Session, outbox_id: int, *, delivered: bool, now: datetime) -> None:
    """Settle a row in state "unknown" once the operator knows whether it arrived.

    `delivered` True marks it sent (found in the mail server's log by its Message-ID);
    False queues it again to be sent on the next run.
    """
    row = session.get(OutboxRow, outbox_id)
    if row is None:
        raise LookupError(f"no outbox row {outbox_id}")
    if row.state != "unknown":
        raise ValueError(f"outbox row {outbox_id} is {row.state}, not unknown")
    if delivered:
        row.state, row.sent_at = "sent", now
        row.reply = "marked sent by the operator"
    else:
        queue_again(session, outbox_id, now=now)


def queue_again(session: Session, outbox_id: int, *, now: datetime) -> None:
    """Send an "unknown" or "failed" row again on the next run, with a fresh retry deadline.

    The deadline counts from `queued_at`, so it starts again from `now`: a row failed by a
    day-long outage can be sent once the mail server is back.
    """
    row = session.get(OutboxRow, outbox_id)
    if row is None:
        raise LookupError(f"no outbox row {outbox_id}")
    if row.state not in ("unknown", "failed"):
        raise ValueError(
            f"outbox row {outbox_id} is {row.state}; only unknown or failed rows are sent again"
        )
    kept = session.scalar(select(func.count()).where(_messages.c.outbox_id == outbox_id))
    if not kept:
        raise ValueError(f"outbox row {outbox_id}: its message is no longer kept")
    row.state, row.next_attempt_at, row.queued_at = "retrying", now, now
    row.reply = "queued again by the operator"


def reactivate_subscriber(session: Session, subscriber_id: int, now: datetime) -> bool:
    """Let a bounced subscriber receive mail again (from the manage page); False if not bounced.

    Their failure count starts from zero and their next digest is scheduled from `now`,
    as for any subscriber who becomes active. Rows skipped while they were bounced stay
    skipped: old digests are not worth sending late.
    """
    if change_status(session, subscriber_id, "active", now, only_from=("bounced",)):
        return True
    if session.get(SubscriberRow, subscriber_id) is None:
        raise LookupError(f"no subscriber {subscriber_id}")
    return False


FINISHED = ("sent", "failed", "skipped", "unknown")
COMPRESS_AT_ONCE = 2_000  # ~2 s of zlib: a day of 10,000 digests in five hourly cleanups
_READ_AT_ONCE = 100  # rows read (and held uncompressed) at a time: ~7 MB


def compress_finished(session: Session, *, limit: int = COMPRESS_AT_ONCE) -> int:
    """Compress the stored bytes of up to `limit` finished messages; return how many.

    Rows are queued uncompressed, in the form the sender writes (`digest.store.outbox`);
    once finished they are kept a month, a fifth of the size compressed. A row still
    uncompressed is told by its stored length, which only the raw wire form makes
    longer than the message (no message blob is read to find them). Everything is
    compressed before the first write: on SQLite the write lock is then held only for
    the update, not while zlib works.
    """
    ids = list(
        session.scalars(
            select(_outbox.c.id)
            .join(_messages, _messages.c.outbox_id == _outbox.c.id)
            .where(
                _outbox.c.state.in_(FINISHED),
                func.length(_messages.c.data) > _outbox.c.size,
            )
            .order_by(_outbox.c.id)
            .limit(limit)
        )
    )
    packed = []
    for start in range(0, len(ids), _READ_AT_ONCE):
        rows = session.execute(
            select(_messages.c.outbox_id, _messages.c.data).where(
                _messages.c.outbox_id.in_(ids[start : start + _READ_AT_ONCE])
            )
        )
        packed += [{"row_id": row_id, "packed": compressed(data)} for row_id, data in rows]
    if packed:
        session.execute(
            update(_messages)
            .where(_messages.c.outbox_id == bindparam("row_id"))
            .values(data=bindparam("packed")),
            packed,
        )
    return len(packed)


def drop_old_messages(session: Session, *, before: datetime) -> int:
    """Free the stored bytes of messages sent, failed or skipped before `before`.

    The rows stay (they are the delivery log); only their message bytes go. The hourly
    cleanup compresses the bytes of more recently finished messages beside this
    (`compress_finished`).
    """
    finished = select(_outbox.c.id).where(
        _outbox.c.state.in_(("sent", "failed", "skipped")),
        func.coalesce(_outbox.c.sent_at, _outbox.c.last_attempt_at, _outbox.c.queued_at) < before,
    )
    result = session.execute(delete(_messages).where(_messages.c.outbox_id.in_(finished)))
    return result.rowcount or 0
