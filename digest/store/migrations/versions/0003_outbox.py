"""The outbox: every message to deliver, its state, attempts, the server's reply, its bytes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

# Frozen: no application code here. Times are naive UTC (`digest.store.models.UTCDateTime`
# stores them so), which is what a plain DateTime creates on every database.
UTCDateTime = sa.DateTime()

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "subscriber_id",
            sa.Integer,
            sa.ForeignKey("subscribers.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("digest_date", sa.Date),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("sender", sa.String(254), nullable=False),
        sa.Column("recipient", sa.String(254), nullable=False),
        sa.Column("message_id", sa.String(255), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("queued_at", UTCDateTime, nullable=False),
        sa.Column("next_attempt_at", UTCDateTime, nullable=False),
        sa.Column("last_attempt_at", UTCDateTime),
        sa.Column("sent_at", UTCDateTime),
        sa.Column("claimed_by", sa.String(128)),
        sa.Column("claimed_at", UTCDateTime),
        sa.Column("reply_code", sa.Integer),
        sa.Column("reply", sa.Text),
    )
    # The message bytes apart: SQLite rewrites a whole row on update, and state changes
    # should not rewrite 12 KB of message each.
    op.create_table(
        "outbox_messages",
        sa.Column(
            "outbox_id",
            sa.Integer,
            sa.ForeignKey("outbox.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_outbox_subscriber_id", "outbox", ["subscriber_id"])
    op.create_index("ix_outbox_message_id", "outbox", ["message_id"])
    op.create_index("ix_outbox_due", "outbox", ["state", "next_attempt_at"])
    # One digest per subscriber and day; confirmations and other kinds may repeat.
    op.create_index(
        "ux_outbox_digest",
        "outbox",
        ["subscriber_id", "digest_date"],
        unique=True,
        sqlite_where=sa.text("kind = 'digest'"),
        postgresql_where=sa.text("kind = 'digest'"),
    )


def downgrade() -> None:
    op.drop_index("ux_outbox_digest", "outbox")
    op.drop_index("ix_outbox_due", "outbox")
    op.drop_index("ix_outbox_message_id", "outbox")
    op.drop_index("ix_outbox_subscriber_id", "outbox")
    op.drop_table("outbox_messages")
    op.drop_table("outbox")
