"""The outbox: messages waiting to be delivered, being delivered, and their fate.

A row is written (`queue_message`) before anything is sent, holding the complete message
in its wire form (see "How the bytes are kept" below) so every attempt sends the same
bytes. A sender claims due rows
(`claim_due`: state "sending", stamped with its owner id), renews its lease on them while
it runs (`renew_claims`), delivers them, and writes each outcome (`record_results`) right
after the server answers. A claim is taken over (`recover_interrupted`) only once its owner
is provably gone or its lease has run out. Digests are unique per subscriber and day;
other kinds (confirmation emails) may be queued any number of times.

States: queued (never tried) · sending (claimed by a sender) · retrying (a temporary
failure, `next_attempt_at` says when) · sent · failed (permanent failure or retry deadline
passed; `reply` keeps the server's answer) · unknown (the connection was lost after the
whole message went out, so the server may or may not have accepted it) · skipped (the
subscriber no longer receives mail). The delivery policy (what is temporary, backoff,
bounce rules) lives in `digest.send`; this module only reads and writes rows. What an
operator reads and does with the outbox is in `digest.store.outbox_admin`. (The module
stays whole, a little over 500 lines: queueing, claiming, recording and recovering are one
protocol over the same rows and are read together.)

How the bytes are kept (`outbox_messages.data`): a row queued now holds b"W" and the
message's wire form (`digest.message.WireMessage`: CRLF line ends, dot-stuffed, ending
in CRLF), uncompressed, so the sender writes it to the socket as it is: no inflating and
no stuffing per message. Once a row is finished, the hourly cleanup
(`digest.store.outbox_admin.compress_finished`) replaces it with b"Z" and the same wire
form zlib-compressed, a fifth of the size, for the 30 days it is kept. Rows queued by
earlier versions hold the plain message zlib-compressed (a zlib stream starts with 0x78,
never W or Z) and are sent as before.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Integer,
    Row,
    Text,
    and_,
    bindparam,
    case,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digest.message import CRLF, Message, WireMessage, dot_stuff, dot_unstuff
from digest.store.models import OutboxMessageRow, OutboxRow, SubscriberRow, UTCDateTime
from digest.store.subscribers import change_status

STATES = ("queued", "sending", "retrying", "sent", "failed", "unknown", "skipped")
DUE_STATES = ("queued", "retrying")
DIGEST = "digest"
# Tags of the stored bytes (see the module docstring); older rows start with 0x78.
WIRE = b"W"
WIRE_COMPRESSED = b"Z"
# zlib level 6, for finished rows only, off the sending path: a 69 KB digest packs to
# ~12 KB in ~1.1 ms (level 1: ~15 KB in ~0.5 ms, and unpacks twice as slowly).
COMPRESSION_LEVEL = 6

_outbox = OutboxRow.__table__
_messages = OutboxMessageRow.__table__
_subscribers = SubscriberRow.__table__


def pack(data: bytes) -> bytes:
    """The bytes to store for a message: its wire form, tagged.

    A message that does not end with CRLF (none of ours) is kept the older way, whole
    and compressed, since its wire form would not say where it ended.
    """
    if data.endswith(CRLF):
        return WIRE + dot_stuff(data)
    return zlib.compress(data, COMPRESSION_LEVEL)


def wire_of(packed: bytes) -> bytes | None:
    """The wire form stored bytes hold (None for a row stored the older way)."""
    tag = packed[:1]
    if tag == WIRE:
        return packed[1:]
    if tag == WIRE_COMPRESSED:
        return zlib.decompress(packed[1:])
    return None


def unpack(packed: bytes) -> bytes:
    """The message (`Message.data`: not dot-stuffed) that stored bytes hold, any format."""
    wire = wire_of(packed)
    return zlib.decompress(packed) if wire is None else dot_unstuff(wire)


def compressed(packed: bytes) -> bytes:
    """Stored bytes in their compact form (b"Z"); other forms are already compact."""
    if packed[:1] != WIRE:
        return packed
    return WIRE_COMPRESSED + zlib.compress(memoryview(packed)[1:], COMPRESSION_LEVEL)


@dataclass(frozen=True, slots=True)
class OutboxJob:
    """A claimed row, ready to deliver; `subscriber_status` is read in the same claim."""

    id: int
    subscriber_id: int
    subscriber_status: str
    kind: str
    digest_date: date | None
    attempts: int
    queued_at: datetime
    sender: str
    recipient: str
    message_id: str
    packed: bytes
    reply: str | None = None
    subscriber_failures: int = 0

    def message(self) -> Message:
        """The message itself, as it was queued."""
        return Message(self.sender, self.recipient, self.message_id, unpack(self.packed))

    def outgoing(self) -> WireMessage | Message:
        """What to hand a backend: the stored wire form, as it is, when the row has one."""
        wire = wire_of(self.packed)
        if wire is None:
            return self.message()
        return WireMessage(self.sender, self.recipient, self.message_id, wire)


@dataclass(frozen=True, slots=True)
class Result:
    """What became of one claimed row, as `record_results` writes it.

    `state` is the new state (sent, retrying, failed, unknown, skipped, or queued to hand
    the row back untried). `attempted` says whether a delivery was really tried (it counts
    in `attempts`). `bounce` is "suppress" (the address does not exist: the subscriber is
    bounced at once), "count" (a permanent failure that counts towards the bounce
    threshold) or "" (no effect on the subscriber). A "sent" result resets the
    subscriber's count of consecutive failures unless `reset_failures` is False (the
    sender knows it is already zero: one statement fewer per batch).
    """

    id: int
    subscriber_id: int
    state: str
    attempted: bool = True
    reply_code: int | None = None
    reply: str | None = None
    next_attempt_at: datetime | None = None
    bounce: str = ""
    reset_failures: bool = True


# --- Queueing -------------------------------------------------------------------------


def queue_message(
    session: Session,
    *,
    subscriber_id: int,
    kind: str,
    digest_date: date | None,
    message: Message,
    now: datetime,
) -> int | None:
    """Put a message in the outbox; return its row id, or None if that digest is queued.

    A digest (kind "digest") is queued at most once per subscriber and `digest_date`:
    queueing it again keeps the first row and its bytes, so a re-run of the daily job
    never sends a second copy. Other kinds (e.g. "confirm") are queued every time.
    """
    if kind == DIGEST:
        if digest_date is None:
            raise ValueError("a digest needs its digest_date")
        if digest_row(session, subscriber_id, digest_date) is not None:
            return None
    values = _row_values(subscriber_id, kind, digest_date, message, now)
    try:
        with session.begin_nested():  # a concurrent queue of the same digest loses cleanly
            result = session.execute(insert(_outbox).values(**values))
            row_id = int(result.inserted_primary_key[0])
            session.execute(insert(_messages).values(outbox_id=row_id, data=pack(message.data)))
    except IntegrityError:
        if kind == DIGEST and digest_row(session, subscriber_id, digest_date) is not None:
            return None
        raise
    return row_id


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message for `queue_messages`."""

    subscriber_id: int
    kind: str
    digest_date: date | None
    message: Message


def queue_messages(session: Session, items: Sequence[Outgoing], *, now: datetime) -> int:
    """Queue many messages at once (the daily digests); return how many were new.

    Same rules as `queue_message`, in a few statements instead of a few per message:
    digests already queued for that subscriber and day are left as they are.
    """
    wanted = [item for item in items if item.kind != DIGEST or item.digest_date is not None]
    if len(wanted) != len(items):
        raise ValueError("a digest needs its digest_date")
    queued: set[tuple[int, date]] = set()
    digests = [item for item in wanted if item.kind == DIGEST]
    for start in range(0, len(digests), 500):
        chunk = digests[start : start + 500]
        rows = session.execute(
            select(_outbox.c.subscriber_id, _outbox.c.digest_date).where(
                _outbox.c.kind == DIGEST,
                _outbox.c.subscriber_id.in_({item.subscriber_id for item in chunk}),
                _outbox.c.digest_date.in_({item.digest_date for item in chunk}),
            )
        )
        queued.update((sid, day) for sid, day in rows)
    fresh, seen = [], set()
    for item in wanted:
        key = (item.subscriber_id, item.digest_date)
        if item.kind == DIGEST and (key in queued or key in seen):
            continue
        seen.add(key)
        fresh.append(item)
    if not fresh:
        return 0
    rows = [_row_values(i.subscriber_id, i.kind, i.digest_date, i.message, now) for i in fresh]
    try:
        with session.begin_nested():
            ids = session.scalars(
                insert(_outbox).returning(_outbox.c.id, sort_by_parameter_order=True), rows
            ).all()
            session.execute(
                insert(_messages),
                [
                    {"outbox_id": row_id, "data": pack(item.message.data)}
                    for row_id, item in zip(ids, fresh, strict=True)
                ],
            )
    except IntegrityError:  # another process queued some meanwhile: one by one
        return sum(
            queue_message(
                session,
                subscriber_id=item.subscriber_id,
                kind=item.kind,
                digest_date=item.digest_date,
                message=item.message,
                now=now,
            )
            is not None
            for item in wanted
        )
    return len(fresh)


def _row_values(
    subscriber_id: int, kind: str, digest_date: date | None, message: Message, now: datetime
) -> dict[str, object]:
    return {
        "subscriber_id": subscriber_id,
        "kind": kind,
        "digest_date": digest_date,
        "state": "queued",
        "sender": message.sender,
        "recipient": message.recipient,
        "message_id": message.message_id,
        "size": len(message.data),
        "attempts": 0,
        "queued_at": now,
        "next_attempt_at": now,
    }


def digest_row(session: Session, subscriber_id: int, digest_date: date) -> Row[Any] | None:
    """(id, state) of the subscriber's digest of `digest_date` in the outbox, if any."""
    return session.execute(
        select(_outbox.c.id, _outbox.c.state).where(
            _outbox.c.subscriber_id == subscriber_id,
            _outbox.c.digest_date == digest_date,
            _outbox.c.kind == DIGEST,
        )
    ).first()


# --- Claiming and recording -------------------------------------------------------------


def due_filter(now: datetime, day: date | None) -> list:
    """The conditions of a row due for delivery at `now` (only digests of `day`, if given)."""
    conditions = [_outbox.c.state.in_(DUE_STATES), _outbox.c.next_attempt_at <= now]
    if day is not None:
        conditions.append(_outbox.c.digest_date == day)
    return conditions


def count_due(session: Session, *, now: datetime, day: date | None = None) -> int:
    """How many rows are due for delivery at `now` (optionally only digests of `day`)."""
    query = select(func.count()).select_from(_outbox).where(*due_filter(now, day))
    return session.scalar(query) or 0


def claim_due(
    session: Session,
    *,
    now: datetime,
    limit: int,
    claimer: str,
    day: date | None = None,
    claimed_at: datetime | None = None,
) -> list[OutboxJob]:
    """Mark up to `limit` due rows as being sent by `claimer` and return them, oldest first.

    Rows due at `now` are claimed; the claim and its lease are stamped `claimed_at`
    (default `now`): a long run passes the present time, so that other senders see a
    fresh claim, not one as old as the run. The update re-checks the state and the rows
    are read back by claimer, so two senders never claim the same row. On PostgreSQL rows
    another sender is claiming right now are skipped, not waited for: else that sender
    would be waited for and, its claim committed, this one would come away with none of
    the rows still due. (SQLite ignores `FOR UPDATE`; its writers take turns, so the
    update's re-check is what keeps two senders' claims apart there.)
    """
    # Materialised on PostgreSQL: as a plain subquery of the UPDATE, the planner may run
    # it more than once, and with SKIP LOCKED each run can pick other rows, so a claim
    # of `limit` once came back with twice as many (seen with task workers' chunks).
    due = (
        select(_outbox.c.id)
        .where(*due_filter(now, day))
        .order_by(_outbox.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("due")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    # One statement picks and claims them, and says which it claimed.
    ids = session.scalars(
        update(_outbox)
        .where(_outbox.c.id.in_(select(due.c.id)), _outbox.c.state.in_(DUE_STATES))
        .values(
            state="sending",
            claimed_by=claimer,
            claimed_at=claimed_at or now,
            renewed_at=claimed_at or now,
        )
        .returning(_outbox.c.id)
    ).all()
    if not ids:
        return []
    rows = session.execute(
        select(
            _outbox.c.id,
            _outbox.c.subscriber_id,
            _subscribers.c.status,
            _outbox.c.kind,
            _outbox.c.digest_date,
            _outbox.c.attempts,
            _outbox.c.queued_at,
            _outbox.c.sender,
            _outbox.c.recipient,
            _outbox.c.message_id,
            _messages.c.data,
            _outbox.c.reply,
            _subscribers.c.consecutive_failures,
        )
        .join(_subscribers, _subscribers.c.id == _outbox.c.subscriber_id)
        .join(_messages, _messages.c.outbox_id == _outbox.c.id)
        .where(
            _outbox.c.id.in_(ids),
            _outbox.c.state == "sending",
            _outbox.c.claimed_by == claimer,
        )
        .order_by(_outbox.c.id)
    )
    return [OutboxJob(*row) for row in rows]


def release_claims(session: Session, ids: Iterable[int], claimer: str | None = None) -> None:
    """Hand claimed rows back untried (a sender stopping before it got to them).

    With `claimer`, only rows it still holds: one whose claim another sender took over
    (this one stalled past its lease) is that sender's now.
    """
    ids = list(ids)
    for start in range(0, len(ids), 500):
        held = [_outbox.c.id.in_(ids[start : start + 500]), _outbox.c.state == "sending"]
        if claimer is not None:
            held.append(_outbox.c.claimed_by == claimer)
        session.execute(
            update(_outbox)
            .where(*held)
            .values(state=_untried_state(), claimed_by=None, claimed_at=None, renewed_at=None)
        )


def renew_claims(session: Session, claimer: str, ids: Collection[int], *, now: datetime) -> int:
    """Renew `claimer`'s lease on the rows `ids` it claimed; return how many it still holds.

    Fewer than `len(ids)` means another sender took some over (this one stopped renewing
    for longer than the lease): the caller must not send those.
    """
    ids, held = sorted(ids), 0
    for start in range(0, len(ids), 500):
        result = session.execute(
            update(_outbox)
            .where(
                _outbox.c.id.in_(ids[start : start + 500]),
                _outbox.c.state == "sending",
                _outbox.c.claimed_by == claimer,
            )
            .values(renewed_at=now)
        )
        held += result.rowcount or 0
    return held


def _untried_state() -> object:
    return case((_outbox.c.attempts == 0, "queued"), else_="retrying")


def recover_interrupted(
    session: Session, *, now: datetime, lease: timedelta, gone: Callable[[str], bool]
) -> list[str]:
    """Requeue rows left "sending" by a sender that stopped; return their Message-IDs.

    A claim is taken over when `gone(owner id)` says its owner is certainly not sending
    any more (`digest.send.owner.gone`: a dead process on this host), or when its owner
    has not renewed its lease for `lease` (dead elsewhere, or hung). Any other claim is
    a live sender's, whatever host or data folder it runs from. Owner ids are compared
    whole, as strings: no pattern, so no character of a host name is a wildcard.
    """
    # Rows claimed before leases were renewed (revision 0005) count from their claim.
    leased = func.coalesce(_outbox.c.renewed_at, _outbox.c.claimed_at)
    expired = or_(leased.is_(None), leased < now - lease)
    owners = session.scalars(
        select(_outbox.c.claimed_by)
        .distinct()
        .where(_outbox.c.state == "sending", _outbox.c.claimed_by.is_not(None))
    )
    dead = sorted(owner for owner in owners if gone(owner))
    stale = and_(
        _outbox.c.state == "sending",
        or_(expired, _outbox.c.claimed_by.in_(dead)) if dead else expired,
    )
    # One statement that re-checks and reports: a claim renewed meanwhile stays its
    # owner's, and a row another sender recovered first is not counted twice.
    return list(
        session.scalars(
            update(_outbox)
            .where(stale)
            .values(
                state=_untried_state(),
                claimed_by=None,
                claimed_at=None,
                renewed_at=None,
                next_attempt_at=now,
                reply="interrupted while sending (the sender stopped); sent again, "
                "so it may arrive twice with the same Message-ID",
            )
            .returning(_outbox.c.message_id)
        )
    )


# Built once: these run for every few messages sent, and building a statement costs more
# than running it.
_RECORD = (
    update(_outbox)
    .where(_outbox.c.id == bindparam("row_id"))
    .values(
        state=bindparam("new_state"),
        attempts=_outbox.c.attempts + bindparam("tried", type_=Integer),
        last_attempt_at=func.coalesce(
            bindparam("last_at", type_=UTCDateTime), _outbox.c.last_attempt_at
        ),
        sent_at=bindparam("sent_at", type_=UTCDateTime),
        next_attempt_at=func.coalesce(
            bindparam("next_at", type_=UTCDateTime), _outbox.c.next_attempt_at
        ),
        reply_code=func.coalesce(bindparam("code", type_=Integer), _outbox.c.reply_code),
        reply=func.coalesce(bindparam("text", type_=Text), _outbox.c.reply),
        claimed_by=None,
        claimed_at=None,
        renewed_at=None,
    )
)
_RESET_FAILURES = (
    update(_subscribers)
    .where(
        _subscribers.c.id.in_(bindparam("ids", expanding=True)),
        _subscribers.c.consecutive_failures != 0,
    )
    .values(consecutive_failures=0)
)
_COUNT_FAILURE = (
    update(_subscribers)
    .where(_subscribers.c.id == bindparam("sid"))
    .values(consecutive_failures=_subscribers.c.consecutive_failures + 1)
)


def record_results(
    session: Session, results: Sequence[Result], *, now: datetime, bounce_threshold: int
) -> list[int]:
    """Write what became of claimed rows and its effect on subscribers, in one go.

    A delivery resets the subscriber's count of consecutive permanent failures; a
    "count" bounce adds one and bounces the subscriber at `bounce_threshold`; a
    "suppress" bounce bounces them at once. A bounced subscriber's other waiting rows are
    skipped. Returns the ids of the subscribers bounced by these results.
    """
    if not results:
        return []
    # The session's Core connection: same transaction, without the ORM's per-call work.
    session.connection().execute(
        _RECORD,
        [
            {
                "row_id": r.id,
                "new_state": r.state,
                "tried": 1 if r.attempted else 0,
                "last_at": now if r.attempted else None,
                "sent_at": now if r.state == "sent" else None,
                "next_at": r.next_attempt_at,
                "code": r.reply_code,
                "text": r.reply,
            }
            for r in results
        ],
    )
    return _apply_to_subscribers(session, results, now=now, threshold=bounce_threshold)


def _apply_to_subscribers(
    session: Session, results: Sequence[Result], *, now: datetime, threshold: int
) -> list[int]:
    delivered = {r.subscriber_id for r in results if r.state == "sent" and r.reset_failures}
    if delivered:
        session.execute(_RESET_FAILURES, {"ids": sorted(delivered)})
    counted = [r.subscriber_id for r in results if r.bounce == "count"]
    bounced = {r.subscriber_id for r in results if r.bounce == "suppress"}
    if counted:
        session.execute(_COUNT_FAILURE, [{"sid": sid} for sid in counted])
        bounced |= set(
            session.scalars(
                select(_subscribers.c.id).where(
                    _subscribers.c.id.in_(counted),
                    _subscribers.c.consecutive_failures >= threshold,
                )
            )
        )
    if not bounced:
        return []
    # Through the one status writer, which also takes them off the digest schedule.
    newly = change_status(session, bounced, "bounced", now)
    if newly:
        skip_waiting(session, newly, reason="not sent: the address bounced")
    return newly


def skip_waiting(session: Session, subscriber_ids: Iterable[int], *, reason: str) -> int:
    """Mark the queued and retrying rows of these subscribers skipped; return how many."""
    result = session.execute(
        update(_outbox)
        .where(_outbox.c.subscriber_id.in_(list(subscriber_ids)), _outbox.c.state.in_(DUE_STATES))
        .values(state="skipped", reply=reason)
    )
    return result.rowcount or 0
