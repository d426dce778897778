"""Saving and reading subscribers."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.store.models import SubscriberRow
from digest.subscriber import STATUSES, Subscriber


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
) -> Subscriber:
    """Add a subscriber (the address must be new; it is unique in the store)."""
    if status not in STATUSES:
        raise ValueError(f"unknown subscriber status {status!r}")
    row = SubscriberRow(
        email=email,
        interests=interests,
        status=status,
        send_time=send_time,
        timezone=timezone,
        created_at=now,
        status_changed_at=now,
        confirmed_at=now if status == "active" else None,
        consecutive_failures=0,
    )
    session.add(row)
    session.flush()
    return subscriber_from_row(row)


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


def set_status(session: Session, subscriber_id: int, status: str, now: datetime) -> None:
    """Move a subscriber to another status (confirming sets confirmed_at once)."""
    if status not in STATUSES:
        raise ValueError(f"unknown subscriber status {status!r}")
    row = session.get(SubscriberRow, subscriber_id)
    if row is None:
        raise LookupError(f"no subscriber {subscriber_id}")
    if row.status != status:
        row.status = status
        row.status_changed_at = now
    if status == "active" and row.confirmed_at is None:
        row.confirmed_at = now
    if status == "active":
        row.consecutive_failures = 0


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
) -> None:
    """Change what a subscriber gets and when (None leaves a field as it is)."""
    row = session.get(SubscriberRow, subscriber_id)
    if row is None:
        raise LookupError(f"no subscriber {subscriber_id}")
    if interests is not None:
        row.interests = interests
    if send_time is not None:
        row.send_time = send_time
    if timezone is not None:
        row.timezone = timezone


def record_confirm_sent(session: Session, subscriber_id: int, now: datetime) -> None:
    """Note when a confirmation (or reminder) email was last sent to this subscriber."""
    row = session.get(SubscriberRow, subscriber_id)
    if row is None:
        raise LookupError(f"no subscriber {subscriber_id}")
    row.confirm_sent_at = now


def delete_expired_pending(session: Session, older_than: datetime) -> int:
    """Delete sign-ups never confirmed that were made before `older_than`; return how many."""
    rows = session.scalars(
        select(SubscriberRow).where(
            SubscriberRow.status == "pending", SubscriberRow.created_at < older_than
        )
    ).all()
    for row in rows:
        session.delete(row)
    return len(rows)
