"""When each subscriber's next digest is due.

Subscribers already active get a schedule here, as if they had just become active:
their next digest at their next local send time after their last one (or after now, if
they never had one), so an upgrade neither skips nor repeats a day.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

from digest.store.models import UTCDateTime
from digest.subscriber import next_send_at

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
    for id_, send_time, timezone, last in rows:
        # After their last digest (a past time is caught up once), else from now on.
        due = next_send_at(send_time, timezone, last or now)
        connection.execute(
            subscribers.update()
            .where(subscribers.c.id == id_)
            .values(last_digest_at=last or now - FIRST_DIGEST_LOOKBACK, next_digest_at=due)
        )


def downgrade() -> None:
    op.drop_index("ix_subscribers_next_digest_at", "subscribers")
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_column("next_digest_at")
