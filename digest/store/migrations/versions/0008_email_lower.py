"""Subscribers are found by address whatever its case: an index on `lower(email)`.

`find_subscriber` compares `lower(email)`; without an index on that expression every
sign-up, confirmation and one-click unsubscribe by address scanned the whole table
(about 5 ms at 33,000 subscribers, growing with them).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_subscribers_email_lower", "subscribers", [sa.text("lower(email)")])


def downgrade() -> None:
    op.drop_index("ix_subscribers_email_lower", "subscribers")
