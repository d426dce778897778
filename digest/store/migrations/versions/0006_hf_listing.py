"""Papers remember when Hugging Face Daily Papers first listed them: `hf_listed`, `hf_seen_at`.

Trending digests and the /papers day pages go by the Daily Papers listing, which often
comes a day or more after a paper was first seen on arXiv. Papers stored before this
revision that Hugging Face had listed get their first sighting as the best known answer:
their listing day and the time they were first seen. `listed` gets an index for the day
pages.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

# Frozen: no application code here. Times are naive UTC, as in 0001.
UTCDateTime = sa.DateTime()
HF_SOURCE = "hf"

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("papers") as batch:
        batch.add_column(sa.Column("hf_listed", sa.Date(), nullable=True))
        batch.add_column(sa.Column("hf_seen_at", UTCDateTime, nullable=True))
    op.create_index("ix_papers_hf_listed", "papers", ["hf_listed"])
    op.create_index("ix_papers_hf_seen_at", "papers", ["hf_seen_at"])
    op.create_index("ix_papers_listed", "papers", ["listed"])
    _backfill()


def _backfill() -> None:
    """Set both columns on stored papers whose sources include Hugging Face."""
    papers = sa.table(
        "papers",
        sa.column("id", sa.String),
        sa.column("sources", sa.JSON),
        sa.column("listed", sa.Date),
        sa.column("first_seen_at", UTCDateTime),
        sa.column("hf_listed", sa.Date),
        sa.column("hf_seen_at", UTCDateTime),
    )
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(papers.c.id, papers.c.sources, papers.c.listed, papers.c.first_seen_at)
    ).all()
    listed = [
        {"key": row.id, "day": row.listed, "seen": row.first_seen_at}
        for row in rows
        if HF_SOURCE in (row.sources or [])
    ]
    if listed:
        connection.execute(
            papers.update()
            .where(papers.c.id == sa.bindparam("key"))
            .values(hf_listed=sa.bindparam("day"), hf_seen_at=sa.bindparam("seen")),
            listed,
        )


def downgrade() -> None:
    op.drop_index("ix_papers_listed", "papers")
    op.drop_index("ix_papers_hf_seen_at", "papers")
    op.drop_index("ix_papers_hf_listed", "papers")
    with op.batch_alter_table("papers") as batch:
        batch.drop_column("hf_seen_at")
        batch.drop_column("hf_listed")
