"""Readers teach the service: feedback rows (more / less like this, seed papers), the
models derived from them, the shared text model, and how many suggestions a reader wants.

Every subscriber stored before this revision gets the default of 5 suggestions; they
have no feedback yet, so their digests stay as they were until they give some.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy), as in 0009: the lower(email) index stays.
    op.add_column(
        "subscribers",
        sa.Column("suggestions", sa.Integer(), nullable=False, server_default="5"),
    )
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "subscriber_id",
            sa.Integer(),
            sa.ForeignKey("subscribers.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("paper_id", sa.String(64), nullable=False),
        sa.Column("vote", sa.SmallInteger(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("subscriber_id", "paper_id", name="ux_feedback_paper"),
    )
    op.create_index("ix_feedback_subscriber_id", "feedback", ["subscriber_id"])
    op.create_table(
        "reader_models",
        sa.Column(
            "subscriber_id",
            sa.Integer(),
            sa.ForeignKey("subscribers.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("text_version", sa.Integer(), nullable=False),
        sa.Column("labelled", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "text_models",
        sa.Column("version", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("fitted_at", sa.DateTime(), nullable=False),
        sa.Column("papers", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("text_models")
    op.drop_table("reader_models")
    op.drop_index("ix_feedback_subscriber_id", table_name="feedback")
    op.drop_table("feedback")
    op.drop_column("subscribers", "suggestions")
