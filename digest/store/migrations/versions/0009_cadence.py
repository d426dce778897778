"""Subscribers choose how often: `cadence` ("daily" or "weekly:mon"), and say how they
consented: `consent` ("link" or "operator").

Every subscriber stored before this revision gets daily digests, as before. Those who
were ever confirmed confirmed by the emailed link (operators could not add anyone yet),
so their consent is "link".

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy): SQLite adds a column with a constant default in
    # place, and the table's expression index on lower(email) stays as it is.
    op.add_column(
        "subscribers",
        sa.Column("cadence", sa.String(16), nullable=False, server_default="daily"),
    )
    op.add_column("subscribers", sa.Column("consent", sa.String(16), nullable=True))
    subscribers = sa.table(
        "subscribers", sa.column("confirmed_at", sa.DateTime()), sa.column("consent", sa.String)
    )
    op.execute(
        subscribers.update().where(subscribers.c.confirmed_at.is_not(None)).values(consent="link")
    )


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+): a batch copy would lose the lower(email) index.
    op.drop_column("subscribers", "consent")
    op.drop_column("subscribers", "cadence")
