"""Papers, the HTTP validator cache, and the fetch log.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

# Frozen: no application code here. Times are naive UTC (`digest.store.models.UTCDateTime`
# stores them so), which is what a plain DateTime creates on every database.
UTCDateTime = sa.DateTime()

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "papers",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("abstract", sa.Text, nullable=False),
        sa.Column("authors", sa.JSON, nullable=False),
        sa.Column("organization", sa.String(300)),
        sa.Column("categories", sa.JSON, nullable=False),
        sa.Column("published", sa.Date),
        sa.Column("listed", sa.Date),
        sa.Column("upvotes", sa.Integer),
        sa.Column("comments", sa.Integer),
        sa.Column("url_abs", sa.String(500)),
        sa.Column("url_pdf", sa.String(500)),
        sa.Column("url_hf", sa.String(500)),
        sa.Column("url_code", sa.String(500)),
        sa.Column("url_project", sa.String(500)),
        sa.Column("sources", sa.JSON, nullable=False),
        sa.Column("first_seen_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_papers_first_seen_at", "papers", ["first_seen_at"])
    op.create_table(
        "http_cache",
        sa.Column("url", sa.String(1000), primary_key=True),
        sa.Column("etag", sa.String(500)),
        sa.Column("last_modified", sa.String(100)),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "fetches",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("day", sa.Date),
        sa.Column("origin", sa.String(1000), nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("papers", sa.Integer, nullable=False),
        sa.Column("new", sa.Integer, nullable=False),
        sa.Column("updated", sa.Integer, nullable=False),
        sa.Column("skipped", sa.Integer, nullable=False),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_fetches_source", "fetches", ["source"])
    op.create_index("ix_fetches_started_at", "fetches", ["started_at"])


def downgrade() -> None:
    op.drop_table("fetches")
    op.drop_table("http_cache")
    op.drop_index("ix_papers_first_seen_at", "papers")
    op.drop_table("papers")
