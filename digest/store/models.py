"""SQLAlchemy tables of the store.

Portable SQL only: the same models run on SQLite (the default) and PostgreSQL (the
scale-out target). Times are stored as naive UTC and read back as aware UTC, because
SQLite keeps no time zone. Lists (authors, categories, sources) are JSON columns.
The schema is owned by the Alembic migrations in `migrations/`; keep them in step.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime, stored without zone so every database keeps it the same."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use aware UTC times")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    """Base of all tables."""


class PaperRow(Base):
    """One paper, keyed by its versionless arXiv id."""

    __tablename__ = "papers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    abstract: Mapped[str] = mapped_column(Text)
    authors: Mapped[list[str]] = mapped_column(JSON, default=list)
    organization: Mapped[str | None] = mapped_column(String(300))
    categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    published: Mapped[date | None] = mapped_column(Date)
    listed: Mapped[date | None] = mapped_column(Date, index=True)
    upvotes: Mapped[int | None] = mapped_column(Integer)
    comments: Mapped[int | None] = mapped_column(Integer)
    url_abs: Mapped[str | None] = mapped_column(String(500))
    url_pdf: Mapped[str | None] = mapped_column(String(500))
    url_hf: Mapped[str | None] = mapped_column(String(500))
    url_code: Mapped[str | None] = mapped_column(String(500))
    url_project: Mapped[str | None] = mapped_column(String(500))
    sources: Mapped[list[str]] = mapped_column(JSON, default=list)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The Daily Papers day that first listed the paper, and when it was first seen there.
    hf_listed: Mapped[date | None] = mapped_column(Date, index=True)
    hf_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)


class HttpCacheRow(Base):
    """Validators of the last good response per URL, for conditional requests."""

    __tablename__ = "http_cache"

    url: Mapped[str] = mapped_column(String(1000), primary_key=True)
    etag: Mapped[str | None] = mapped_column(String(500))
    last_modified: Mapped[str | None] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class FetchRow(Base):
    """One fetch of one source: what it found, or why it failed."""

    __tablename__ = "fetches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(32), index=True)
    day: Mapped[date | None] = mapped_column(Date)
    origin: Mapped[str] = mapped_column(String(1000))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    papers: Mapped[int] = mapped_column(Integer, default=0)
    new: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)


class SubscriberRow(Base):
    """A person who signed up; `status` is pending, active, paused, unsubscribed or bounced.

    `last_digest_at` is the watermark: papers first seen before it were considered for an
    earlier digest already, so each digest holds only papers first seen at or after it.
    `next_digest_at` is when the next digest is due (None unless active).
    """

    __tablename__ = "subscribers"
    # Addresses are looked up whatever their case (`find_subscriber`): without this
    # index every sign-up scanned the table (5 ms at 33,000 subscribers, growing).
    __table_args__ = (Index("ix_subscribers_email_lower", func.lower(text("email"))),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    interests: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), index=True, default="pending")
    send_time: Mapped[str] = mapped_column(String(5), default="08:00")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirm_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_digest_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    # The UTC instant the next digest is due; set while the subscriber is active.
    next_digest_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    # "daily", or "weekly:mon" (digest.subscriber.parse_cadence).
    cadence: Mapped[str] = mapped_column(String(16), default="daily", server_default="daily")
    # How they became active: "link" (the emailed confirmation) or "operator" (added with
    # consent already held); None while never confirmed.
    consent: Mapped[str | None] = mapped_column(String(16))
    # How many "Suggested for you" papers a digest may hold (0: none); digest.learn.
    suggestions: Mapped[int] = mapped_column(Integer, default=5, server_default="5")


class OutboxRow(Base):
    """One message to deliver: a digest (unique per subscriber and day) or a transactional one.

    `state` moves queued → sending → sent, or through retrying back to sending, or ends
    failed, unknown (the server may have accepted it; see `digest.send`) or skipped.
    The message itself is in `OutboxMessageRow`, so a change of state rewrites a small row.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        # One digest per subscriber and day; other kinds (confirmations) may repeat.
        Index(
            "ux_outbox_digest",
            "subscriber_id",
            "digest_date",
            unique=True,
            sqlite_where=text("kind = 'digest'"),
            postgresql_where=text("kind = 'digest'"),
        ),
        Index("ix_outbox_due", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    digest_date: Mapped[date | None] = mapped_column(Date)
    state: Mapped[str] = mapped_column(String(16))
    sender: Mapped[str] = mapped_column(String(254))
    recipient: Mapped[str] = mapped_column(String(254))
    message_id: Mapped[str] = mapped_column(String(255), index=True)
    size: Mapped[int] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Who is sending it ("sending" rows): the run's owner id (`digest.send.owner`), when it
    # claimed the row, and when it last renewed its lease on it (taken over once stale).
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    renewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reply_code: Mapped[int | None] = mapped_column(Integer)
    reply: Mapped[str | None] = mapped_column(Text)


class OutboxMessageRow(Base):
    """The complete message of an outbox row, in one of three forms told by its first
    byte (`digest.store.outbox.unpack`): `W` its wire form (CRLF, dot-stuffed) as queued,
    `Z` that form zlib-compressed once the row is finished, or (rows queued before the
    wire form) zlib of the plain message.

    Kept apart from `OutboxRow`: SQLite rewrites a whole row on every update, and a state
    change should not rewrite 70 KB of message. A retry sends exactly these bytes.
    """

    __tablename__ = "outbox_messages"

    outbox_id: Mapped[int] = mapped_column(
        ForeignKey("outbox.id", ondelete="CASCADE"), primary_key=True
    )
    data: Mapped[bytes] = mapped_column(LargeBinary)


class FeedbackRow(Base):
    """One reader's verdict on one paper: +1 (more like this) or -1 (less like this).

    `source` says where it came from: "email" (a digest's link), "manage" (the manage
    page) or "seed" (a `like:ID` entry of their interests). One row per reader and paper:
    a later verdict replaces an earlier one. The paper need not be stored yet (a seed
    fetched later), so `paper_id` is no foreign key. Models are derived from these rows.
    """

    __tablename__ = "feedback"
    __table_args__ = (UniqueConstraint("subscriber_id", "paper_id", name="ux_feedback_paper"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    paper_id: Mapped[str] = mapped_column(String(64))
    vote: Mapped[int] = mapped_column(SmallInteger)
    source: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ReaderModelRow(Base):
    """A reader's model (`digest.learn.taste`), derived from their feedback rows over the
    text model of `text_version`; rebuilt from the rows whenever needed."""

    __tablename__ = "reader_models"

    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    )
    text_version: Mapped[int] = mapped_column(Integer)
    labelled: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TextModelRow(Base):
    """The shared text representation of papers (`digest.learn.text`): a tf-idf
    vectoriser fitted on the store's papers, refitted on a schedule. The newest row is
    the one in use."""

    __tablename__ = "text_models"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    fitted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    papers: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
