"""When each subscriber's next digest is due.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

from digest.store.models import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscribers") as batch:
        batch.add_column(sa.Column("next_digest_at", UTCDateTime, nullable=True))
    op.create_index("ix_subscribers_next_digest_at", "subscribers", ["next_digest_at"])


def downgrade() -> None:
    op.drop_index("ix_subscribers_next_digest_at", "subscribers")
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_column("next_digest_at")
