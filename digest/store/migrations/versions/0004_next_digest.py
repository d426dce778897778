"""When each subscriber's next digest is due.

Subscribers already active get a schedule here, as if they had just become active:
their next digest at their next local send time after their last one (or after now, if
they never had one), so an upgrade neither skips nor repeats a day.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

# Frozen: no application code here, so a later change of the app cannot change what this
# migration did. Times are stored naive UTC (as `digest.store.models.UTCDateTime` does).
UTCDateTime = sa.DateTime()
FIRST_DIGEST_LOOKBACK = timedelta(days=1)  # as in digest.store.subscribers, at this revision

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscribers") as batch:
        batch.add_column(sa.Column("next_digest_at", UTCDateTime, nullable=True))
    op.create_index("ix_subscribers_next_digest_at", "subscribers", ["next_digest_at"])
    schedule_active_subscribers(datetime.now(UTC))


def schedule_active_subscribers(now: datetime) -> None:
    """Give every active subscriber their next digest time (and a watermark if none)."""
    subscribers = sa.table(
        "subscribers",
        sa.column("id", sa.Integer),
        sa.column("status", sa.String),
        sa.column("send_time", sa.String),
        sa.column("timezone", sa.String),
        sa.column("last_digest_at", UTCDateTime),
        sa.column("next_digest_at", UTCDateTime),
    )
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(
            subscribers.c.id,
            subscribers.c.send_time,
            subscribers.c.timezone,
            subscribers.c.last_digest_at,
        ).where(subscribers.c.status == "active")
    ).all()
    for id_, send_time, timezone, stored_last in rows:
        last = stored_last.replace(tzinfo=UTC) if stored_last is not None else None
        # After their last digest (a past time is caught up once), else from now on.
        due = _next_send_at(send_time, timezone, last or now)
        connection.execute(
            subscribers.update()
            .where(subscribers.c.id == id_)
            .values(
                last_digest_at=_naive_utc(last or now - FIRST_DIGEST_LOOKBACK),
                next_digest_at=_naive_utc(due),
            )
        )


def _naive_utc(instant: datetime) -> datetime:
    """An aware instant as the store keeps it: naive UTC."""
    return instant.astimezone(UTC).replace(tzinfo=None)


# The schedule maths of `digest.subscriber` as it was at this revision, copied.


def _local_send_instant(day: date, send_time: str, timezone: str) -> datetime:
    """The UTC instant of `send_time` on local `day` in `timezone`.

    A time skipped by a spring-forward gap moves forward by the gap; a time that occurs
    twice (autumn fall-back) means its first occurrence.
    """
    wall = datetime.combine(day, time.fromisoformat(send_time), tzinfo=ZoneInfo(timezone))
    # fold=0 picks the first of two occurrences; inside a gap zoneinfo applies the offset
    # from before the gap, which lands just as far after it.
    return wall.replace(fold=0).astimezone(UTC)


def _next_send_at(send_time: str, timezone: str, after: datetime) -> datetime:
    """The first scheduled send instant strictly after `after` (aware UTC)."""
    local_day = after.astimezone(ZoneInfo(timezone)).date()
    for offset in range(3):  # today, tomorrow, or (across a gap) the day after
        candidate = _local_send_instant(local_day + timedelta(days=offset), send_time, timezone)
        if candidate > after:
            return candidate
    raise AssertionError("unreachable: a send time recurs every day")


def downgrade() -> None:
    op.drop_index("ix_subscribers_next_digest_at", "subscribers")
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_column("next_digest_at")
