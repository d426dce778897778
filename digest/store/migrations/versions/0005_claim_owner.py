"""Claims on outbox rows carry a lease their sender renews: `outbox.renewed_at`.

A sender stamps the rows it claims with its owner id (`claimed_by`: host, pid, process
start, run) and renews the lease on them while it runs; another sender takes them over
only when that owner is provably gone or has stopped renewing. Rows claimed before this
revision have no renewal time: their lease counts from `claimed_at`.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

# Frozen: no application code here. Times are naive UTC, as in 0003.
UTCDateTime = sa.DateTime()

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("renewed_at", UTCDateTime, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("renewed_at")
