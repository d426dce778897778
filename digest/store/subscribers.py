"""Saving and reading subscribers.

A subscriber's status changes only through `change_status`, which keeps the rules the
rest of the service relies on: `next_digest_at` is set exactly while the subscriber is
active, `status_changed_at` says when the status last changed, `confirmed_at` is when
they first became active, and becoming active forgets earlier delivery failures.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from sqlalchemy import bindparam, delete, false, func, insert, literal, select, update
from sqlalchemy.orm import Session

from digest.store.feedback import erase_learning
from digest.store.models import OutboxMessageRow, OutboxRow, SubscriberRow, UTCDateTime
from digest.subscriber import (
    CONSENTS,
    DAILY,
    MAX_SUGGESTIONS,
    STATUSES,
    Subscriber,
    cadence_weekday,
    next_send_at,
)

# A subscription that starts (or starts again after a pause) gets, in its first digest,
# the papers of the day before it started, not everything ever stored.
FIRST_DIGEST_LOOKBACK = timedelta(days=1)
# Ids per statement: well under every database's limit on bound parameters.
_CHUNK = 500

_subscribers = SubscriberRow.__table__


def subscriber_from_row(row: SubscriberRow) -> Subscriber:
    """The `Subscriber` a stored row holds."""
    return Subscriber(
        id=row.id,
        email=row.email,
        interests=row.interests,
        status=row.status,
        send_time=row.send_time,
        timezone=row.timezone,
        created_at=row.created_at,
        confirmed_at=row.confirmed_at,
        status_changed_at=row.status_changed_at,
        confirm_sent_at=row.confirm_sent_at,
        last_digest_at=row.last_digest_at,
        consecutive_failures=row.consecutive_failures,
        next_digest_at=row.next_digest_at,
        cadence=row.cadence,
        consent=row.consent,
        suggestions=row.suggestions,
    )


def create_subscriber(
    session: Session,
    email: str,
    interests: str,
    *,
    send_time: str,
    timezone: str,
    now: datetime,
    status: str = "pending",
    cadence: str = DAILY,
    consent: str | None = None,
) -> Subscriber:
    """Add a subscriber (the address must be new; it is unique in the store).

    `consent` says how one added as active agreed (see `change_status`)."""
    if status not in STATUSES:
        raise ValueError(f"unknown subscriber status {status!r}")
    cadence_weekday(cadence)  # a cadence the calendar cannot read is a bug: fail here
    # Everyone starts pending; any other first status is reached by `change_status`, so
    # its rules (schedule, confirmed_at, ...) live in one place.
    row = SubscriberRow(
        email=email,
        interests=interests,
        status="pending",
        send_time=send_time,
        timezone=timezone,
        cadence=cadence,
        created_at=now,
        status_changed_at=now,
        consecutive_failures=0,
    )
    session.add(row)
    session.flush()
    if status != "pending":
        change_status(session, row.id, status, now, consent=consent)
    return subscriber_from_row(row)


def _start_watermark(last_digest_at: datetime | None, now: datetime) -> datetime:
    """The watermark of a subscriber who becomes active at `now`: moved up to
    `FIRST_DIGEST_LOOKBACK` before `now` (never back), so their first digest holds the
    last day's papers, not all those seen while they were away."""
    start = now - FIRST_DIGEST_LOOKBACK
    return start if last_digest_at is None or last_digest_at < start else last_digest_at


def get_subscriber(session: Session, subscriber_id: int) -> Subscriber | None:
    """The subscriber with this id, if any."""
    row = session.get(SubscriberRow, subscriber_id)
    return subscriber_from_row(row) if row else None


def find_subscriber(session: Session, email: str) -> Subscriber | None:
    """The subscriber with this address (compared without case), if any."""
    row = session.scalar(
        select(SubscriberRow).where(func.lower(SubscriberRow.email) == email.strip().lower())
    )
    return subscriber_from_row(row) if row else None


def change_status(
    session: Session,
    ids: int | Iterable[int],
    status: str,
    now: datetime,
    *,
    only_from: Collection[str] | None = None,
    consent: str | None = None,
) -> list[int]:
    """Move subscribers to `status` at `now`; return the ids that changed, sorted.

    The one writer of a subscriber's status. Subscribers already in `status`, those not
    in `only_from` (when given; checked in the same UPDATE, so a concurrent change is
    never overwritten) and unknown ids are left as they are. For those that change:
    `status_changed_at` becomes `now`; `next_digest_at` is cleared, unless they become
    active: then their next digest is scheduled from `now` and their watermark moved up
    (see `_start_watermark`), `confirmed_at` is set if it never was, and their count of
    consecutive delivery failures starts again from zero. A `consent` ("link": they
    followed the emailed link; "operator": added with consent the operator holds) is
    recorded as how they agreed; without, what was recorded stays (a resume).

    Written with Core statements, a few per 500 ids; subscriber objects the session
    holds for changed ids are expired, so they read the new values.
    """
    for name in (status, *(only_from or ())):
        if name not in STATUSES:
            raise ValueError(f"unknown subscriber status {name!r}")
    if consent is not None and (consent not in CONSENTS or status != "active"):
        raise ValueError(f"consent {consent!r} is recorded only on becoming active")
    wanted = [ids] if isinstance(ids, int) else sorted(set(ids))
    changed: list[int] = []
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        changed += _change_chunk(session, chunk, status, now, only_from, consent)
    for subscriber_id in changed:
        row = session.identity_map.get(session.identity_key(SubscriberRow, subscriber_id))
        if row is not None:
            session.expire(row)
    return sorted(changed)


def _change_chunk(
    session: Session,
    ids: list[int],
    status: str,
    now: datetime,
    only_from: Collection[str] | None,
    consent: str | None,
) -> list[int]:
    table = _subscribers
    where = [table.c.id.in_(ids), table.c.status != status]
    if only_from is not None:
        where.append(table.c.status.in_(list(only_from)))
    values: dict[str, object] = {
        "status": status,
        "status_changed_at": now,
        "next_digest_at": None,  # set just below for those becoming active
    }
    if status == "active":
        values["confirmed_at"] = func.coalesce(table.c.confirmed_at, literal(now, UTCDateTime))
        values["consecutive_failures"] = 0
        if consent is not None:
            values["consent"] = consent
    # The guarded UPDATE decides which rows change (and on PostgreSQL locks them until
    # commit); RETURNING hands back what scheduling them needs.
    rows = session.execute(
        update(table)
        .where(*where)
        .values(values)
        .returning(
            table.c.id,
            table.c.send_time,
            table.c.timezone,
            table.c.cadence,
            table.c.last_digest_at,
        ),
        execution_options={"synchronize_session": False},
    ).all()
    if status == "active" and rows:
        # Each next digest is due at the subscriber's own time, zone and cadence, from
        # `now`; many share one, so each is worked out once.
        due_at: dict[tuple[str, str, str], datetime] = {}
        schedules = []
        for row in rows:
            key = (row.send_time, row.timezone, row.cadence)
            if key not in due_at:
                due_at[key] = next_send_at(row.send_time, row.timezone, now, row.cadence)
            mark = _start_watermark(row.last_digest_at, now)
            schedules.append({"key": row.id, "due": due_at[key], "mark": mark})
        session.execute(
            update(table)
            .where(table.c.id == bindparam("key"))
            .values(next_digest_at=bindparam("due"), last_digest_at=bindparam("mark")),
            schedules,
            execution_options={"synchronize_session": False},
        )
    return [row.id for row in rows]


def stored_status(session: Session, subscriber_id: int) -> str | None:
    """The subscriber's status as stored now (not as an object the session holds
    remembers it): read after a guarded `change_status` to learn where it stands."""
    return session.scalar(select(SubscriberRow.status).where(SubscriberRow.id == subscriber_id))


def unsubscribe_reader(session: Session, subscriber_id: int, now: datetime) -> str | None:
    """Unsubscribe at `now`; return the status it left (None: already unsubscribed, or
    unknown). The status left is the one the UPDATE replaced, so an undo (see
    `undo_unsubscribe`) restores what really was, even if it changed just before."""
    for _ in range(5):  # a concurrent change moves the status under us: read it again
        status = stored_status(session, subscriber_id)
        if status is None or status == "unsubscribed":
            return None
        if change_status(session, subscriber_id, "unsubscribed", now, only_from=(status,)):
            return status
    # Still moving after all those tries: unsubscribe whatever it is (leaving is never
    # refused), with nothing to undo.
    change_status(session, subscriber_id, "unsubscribed", now)
    return None


def undo_unsubscribe(
    session: Session, subscriber_id: int, unsubscribed_at: datetime, back_to: str, now: datetime
) -> bool:
    """Return to `back_to` from the unsubscribe made at `unsubscribed_at`; whether it did.

    Only that very unsubscribe is undone: if the subscriber changed status since (signed
    up again, confirmed, unsubscribed once more), nothing changes.
    """
    changed_at = session.scalar(
        select(SubscriberRow.status_changed_at).where(
            SubscriberRow.id == subscriber_id, SubscriberRow.status == "unsubscribed"
        )
    )
    if changed_at != unsubscribed_at:
        return False
    # Checked again as it is written: a sign-up committed since the read keeps it pending.
    return bool(change_status(session, subscriber_id, back_to, now, only_from=("unsubscribed",)))


def count_by_status(session: Session) -> dict[str, int]:
    """How many subscribers are in each status."""
    rows = session.execute(
        select(SubscriberRow.status, func.count()).group_by(SubscriberRow.status)
    )
    counts = dict.fromkeys(STATUSES, 0)
    counts.update({status: count for status, count in rows})
    return counts


def update_preferences(
    session: Session,
    subscriber_id: int,
    *,
    interests: str | None = None,
    send_time: str | None = None,
    timezone: str | None = None,
    cadence: str | None = None,
    suggestions: int | None = None,
    now: datetime | None = None,
) -> None:
    """Change what a subscriber gets and when (None leaves a field as it is).

    A new time, time zone or cadence of an active subscriber reschedules the next digest
    from `now` (required then); a digest already sent today is not sent again, since the
    outbox keeps one digest per subscriber and day. The watermark stays: the next
    digest, daily or weekly, holds every paper since the last one, none twice.
    """
    row = session.get(SubscriberRow, subscriber_id)
    if row is None:
        raise LookupError(f"no subscriber {subscriber_id}")
    if interests is not None:
        row.interests = interests
    if suggestions is not None:
        if not 0 <= suggestions <= MAX_SUGGESTIONS:
            raise ValueError(f"suggestions must be 0 to {MAX_SUGGESTIONS}, not {suggestions}")
        row.suggestions = suggestions
    if cadence is not None:
        cadence_weekday(cadence)  # fail on a cadence the calendar cannot read
    old = (row.send_time, row.timezone, row.cadence)
    moved = (send_time or row.send_time, timezone or row.timezone, cadence or row.cadence) != old
    if send_time is not None:
        row.send_time = send_time
    if timezone is not None:
        row.timezone = timezone
    if cadence is not None:
        row.cadence = cadence
    if not moved:
        return
    if now is None:
        if row.status == "active":
            raise ValueError("rescheduling an active subscriber needs `now`")
        return
    # Rescheduled only while active, checked as it is written: a pause or a bounce
    # committed meanwhile keeps the reader unscheduled (next_digest_at set iff active).
    session.flush()
    session.execute(
        update(SubscriberRow)
        .where(SubscriberRow.id == subscriber_id, SubscriberRow.status == "active")
        .values(next_digest_at=next_send_at(row.send_time, row.timezone, now, row.cadence)),
        execution_options={"synchronize_session": False},
    )
    session.expire(row, ["next_digest_at"])


def record_confirm_sent(session: Session, subscriber_id: int, now: datetime) -> None:
    """Note when a confirmation (or reminder) email was last sent to this subscriber."""
    row = session.get(SubscriberRow, subscriber_id)
    if row is None:
        raise LookupError(f"no subscriber {subscriber_id}")
    row.confirm_sent_at = now


def delete_expired_pending(session: Session, older_than: datetime) -> int:
    """Delete sign-ups never confirmed whose last confirmation link went out before
    `older_than` (so whose links have all expired); return how many.

    The age counts from the last confirmation email (else from the sign-up), not from
    when the row was created: an address that unsubscribed long ago and signs up again is
    pending anew, and its fresh link must keep working for its whole life.
    """
    last_asked = func.coalesce(SubscriberRow.confirm_sent_at, SubscriberRow.status_changed_at)
    rows = session.scalars(
        select(SubscriberRow).where(SubscriberRow.status == "pending", last_asked < older_than)
    ).all()
    for row in rows:
        session.delete(row)
    return len(rows)


def due_subscribers(
    session: Session, now: datetime, *, limit: int, after_id: int = 0
) -> list[Subscriber]:
    """Active subscribers whose digest is due at `now`, by id, `limit` at a time."""
    rows = session.scalars(
        select(SubscriberRow)
        .where(
            SubscriberRow.status == "active",
            SubscriberRow.next_digest_at <= now,
            SubscriberRow.id > after_id,
        )
        .order_by(SubscriberRow.id)
        .limit(limit)
    )
    return [subscriber_from_row(row) for row in rows]


def oldest_due_watermark(session: Session, now: datetime) -> datetime | None:
    """The oldest watermark among the active subscribers due at `now` (None if none is
    due or one of them has none): where the papers any of them may get begin."""
    mark = SubscriberRow.last_digest_at
    unmarked, oldest = session.execute(
        select(func.count() - func.count(mark), func.min(mark)).where(
            SubscriberRow.status == "active", SubscriberRow.next_digest_at <= now
        )
    ).one()
    return None if unmarked else oldest


class ScheduleMove(NamedTuple):
    """A digest done for one subscriber: the new watermark (None keeps it) and the one
    read with the subscriber (`was_mark`), the due time read with them (`was_due`) and
    the one that follows it (`due`)."""

    subscriber_id: int
    mark: datetime | None
    was_due: datetime | None
    due: datetime
    was_mark: datetime | None = None


def advance_schedules(session: Session, moves: Iterable[ScheduleMove]) -> set[int]:
    """Record digests done: move watermarks and due times that nobody moved meanwhile;
    return the subscribers whose watermark this call moved.

    A watermark moves only from the one the job read (`was_mark`): if another run (a
    task delivered twice, two workers on one batch) moved it since, this run's digest is
    a duplicate, and the caller queues only the digests of the subscribers returned.
    On PostgreSQL the UPDATE waits for the other run's commit and then finds the row
    changed; so the watermark, not the broker, decides which run's digest counts.

    A due time changed since the job read it (the person picked another time on the
    manage page, or paused) is theirs to keep: the job's, computed from the old time,
    is dropped.
    """
    table = SubscriberRow.__table__
    moves = list(moves)
    marks = [
        {"key": m.subscriber_id, "mark": m.mark, "was": m.was_mark}
        for m in moves
        if m.mark is not None
    ]
    moved: set[int] = set()
    if marks:
        session.execute(
            update(table)
            .where(
                table.c.id == bindparam("key"),
                table.c.last_digest_at.is_not_distinct_from(bindparam("was", type_=UTCDateTime)),
            )
            .values(last_digest_at=bindparam("mark")),
            marks,
            execution_options={"synchronize_session": False},
        )
        wanted = {m["key"]: m["mark"] for m in marks}
        keys = sorted(wanted)
        for start in range(0, len(keys), _CHUNK):
            rows = session.execute(
                select(table.c.id, table.c.last_digest_at).where(
                    table.c.id.in_(keys[start : start + _CHUNK])
                )
            )
            moved.update(key for key, mark in rows if mark == wanted[key])
    dues = [{"key": m.subscriber_id, "was": m.was_due, "due": m.due} for m in moves]
    if dues:
        session.execute(
            update(table)
            .where(
                table.c.id == bindparam("key"),
                table.c.next_digest_at == bindparam("was", type_=UTCDateTime),
            )
            .values(next_digest_at=bindparam("due")),
            dues,
            execution_options={"synchronize_session": False},
        )
    return moved


def upcoming_digests(session: Session, until: datetime) -> tuple[int, datetime | None]:
    """How many active subscribers are due before `until`, and the earliest due time."""
    due = SubscriberRow.next_digest_at
    count, first = session.execute(
        select(func.count(), func.min(due)).where(
            SubscriberRow.status == "active", due.is_not(None), due < until
        )
    ).one()
    return int(count), first if first is None else first.replace(tzinfo=UTC)


# --- Many readers at once (`digest subscribers import`, `export`), and erasure ----------


# PostgreSQL's advisory lock of the operator's writers (`lock_subscribers`): any number,
# the same in every process; this one spells "digest" in ASCII.
_OPERATOR_LOCK = 0x646967657374


def lock_subscribers(session: Session) -> None:
    """Hold other operators' imports and adds off until this transaction ends, so that
    what it reads of the stored addresses stays true until it writes.

    SQLite: a write that changes nothing takes the database's one write lock (another
    writer waits up to the busy timeout, 30 s). PostgreSQL: a transaction-level advisory
    lock that every `lock_subscribers` waits for; sign-ups from the web take none, and a
    sign-up of an address being imported fails the import on the unique address.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(_OPERATOR_LOCK)))
    else:
        session.execute(
            update(_subscribers).where(false()).values(status=_subscribers.c.status),
            execution_options={"synchronize_session": False},
        )


class NewReader(NamedTuple):
    """One reader to add with `create_subscribers`: their address and preferences."""

    email: str
    interests: str
    send_time: str
    timezone: str
    cadence: str = DAILY


def create_subscribers(
    session: Session,
    readers: Sequence[NewReader],
    *,
    now: datetime,
    confirm_sent: bool = False,
) -> list[int]:
    """Add many pending subscribers at once (addresses new to the store); their ids, in
    the order given. `confirm_sent` notes that a confirmation goes to each at `now`.

    A few statements per 500 readers, where `create_subscriber` takes two per reader.
    They start pending, as every subscriber does: `change_status` moves them on.
    """
    for reader in readers:
        cadence_weekday(reader.cadence)  # a cadence the calendar cannot read is a bug
    ids: list[int] = []
    for start in range(0, len(readers), _CHUNK):
        rows = [
            {
                "email": reader.email,
                "interests": reader.interests,
                "status": "pending",
                "send_time": reader.send_time,
                "timezone": reader.timezone,
                "cadence": reader.cadence,
                "created_at": now,
                "status_changed_at": now,
                "confirm_sent_at": now if confirm_sent else None,
                "consecutive_failures": 0,
            }
            for reader in readers[start : start + _CHUNK]
        ]
        ids += session.scalars(
            insert(_subscribers).returning(_subscribers.c.id, sort_by_parameter_order=True),
            rows,
        ).all()
    return ids


def find_subscribers(session: Session, emails: Iterable[str]) -> dict[str, Subscriber]:
    """The stored subscribers among these addresses, keyed by address in lower case
    (compared without case, as `find_subscriber` does; 500 addresses a query, each
    answered by the index on lower(email)). Read as plain rows: the session keeps none."""
    wanted = sorted({email.strip().lower() for email in emails})
    found: dict[str, Subscriber] = {}
    for start in range(0, len(wanted), _CHUNK):
        rows = session.execute(
            select(_subscribers).where(
                func.lower(_subscribers.c.email).in_(wanted[start : start + _CHUNK])
            )
        )
        for row in rows:
            found[row.email.lower()] = subscriber_from_row(row)  # type: ignore[arg-type]
    return found


def iter_subscribers(
    session: Session, *, status: str | None = None, chunk: int = 1000
) -> Iterator[Subscriber]:
    """Every subscriber (or those in `status`), by id, `chunk` at a time: a million of
    them never sit in memory at once. Each chunk is its own query, after the last id
    read (no server-side cursor held open), as plain rows the session does not keep."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown subscriber status {status!r}")
    after = 0
    while True:
        query = select(_subscribers).where(_subscribers.c.id > after)
        if status is not None:
            query = query.where(_subscribers.c.status == status)
        rows = session.execute(query.order_by(_subscribers.c.id).limit(chunk)).all()
        if not rows:
            return
        for row in rows:
            yield subscriber_from_row(row)  # type: ignore[arg-type]
        after = rows[-1].id


class Erased(NamedTuple):
    """What `erase_subscriber` deleted besides the subscriber: outbox rows, and the
    message bytes still kept for them (the hourly cleanup frees old ones)."""

    outbox_rows: int
    messages: int


def erase_subscriber(session: Session, subscriber_id: int) -> Erased | None:
    """Delete a subscriber and every outbox row and message of theirs (an erasure
    request); None if there is no such subscriber.

    Deleted explicitly, children first, rather than left to the foreign keys' ON DELETE
    CASCADE: a store whose SQLite connection ran without `PRAGMA foreign_keys` would
    otherwise keep the rows, and the counts say what went.
    """
    outbox = OutboxRow.__table__
    messages = OutboxMessageRow.__table__
    theirs = select(outbox.c.id).where(outbox.c.subscriber_id == subscriber_id)
    dropped_messages = session.execute(
        delete(messages).where(messages.c.outbox_id.in_(theirs)),
        execution_options={"synchronize_session": False},
    ).rowcount
    erase_learning(session, subscriber_id)
    dropped_rows = session.execute(
        delete(outbox).where(outbox.c.subscriber_id == subscriber_id),
        execution_options={"synchronize_session": False},
    ).rowcount
    gone = session.execute(
        delete(_subscribers).where(_subscribers.c.id == subscriber_id),
        execution_options={"synchronize_session": False},
    ).rowcount
    row = session.identity_map.get(session.identity_key(SubscriberRow, subscriber_id))
    if row is not None:
        session.expunge(row)
    if not gone:
        return None
    return Erased(dropped_rows or 0, dropped_messages or 0)
