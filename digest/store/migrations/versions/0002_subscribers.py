"""Subscribers and their interests.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

# Frozen: no application code here. Times are naive UTC (`digest.store.models.UTCDateTime`
# stores them so), which is what a plain DateTime creates on every database.
UTCDateTime = sa.DateTime()

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subscribers",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("email", sa.String(254), nullable=False, unique=True),
        sa.Column("interests", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("send_time", sa.String(5), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("confirmed_at", UTCDateTime),
        sa.Column("status_changed_at", UTCDateTime),
        sa.Column("confirm_sent_at", UTCDateTime),
        sa.Column("last_digest_at", UTCDateTime),
        sa.Column("consecutive_failures", sa.Integer, nullable=False),
    )
    op.create_index("ix_subscribers_status", "subscribers", ["status"])


def downgrade() -> None:
    op.drop_index("ix_subscribers_status", "subscribers")
    op.drop_table("subscribers")
