"""Saving and reading what readers taught the service: feedback rows, their models,
and the shared text model (`digest.learn` makes the models; this module only stores).

Feedback rows are the truth: one per reader and paper, +1 (more like this) or -1 (less
like this), with where it came from (`SOURCES`). Models are derived data, rebuilt from
the rows at any time (`digest models rebuild`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from digest.store.models import (
    FeedbackRow,
    PaperRow,
    ReaderModelRow,
    SubscriberRow,
    TextModelRow,
)

MORE, LESS = 1, -1
VOTES = {"more": MORE, "less": LESS}
SOURCES = ("email", "manage", "seed")
"""Where a verdict came from: a digest's link, the manage page, a `like:ID` entry."""
_CHUNK = 500  # ids per statement
_MAX_ROW_ID = 2**31 - 1  # row ids fit PostgreSQL's INTEGER


@dataclass(frozen=True, slots=True)
class Vote:
    """One feedback row."""

    id: int
    subscriber_id: int
    paper_id: str
    vote: int
    source: str
    created_at: datetime


def _vote(row: FeedbackRow) -> Vote:
    return Vote(row.id, row.subscriber_id, row.paper_id, row.vote, row.source, row.created_at)


def record_vote(
    session: Session, subscriber_id: int, paper_id: str, vote: int, source: str, now: datetime
) -> Vote:
    """Record a reader's verdict on a paper, replacing any earlier one on the same paper."""
    if vote not in (MORE, LESS):
        raise ValueError(f"a vote is +1 or -1, not {vote!r}")
    if source not in SOURCES:
        raise ValueError(f"unknown feedback source {source!r}")
    row = session.execute(
        select(FeedbackRow).where(
            FeedbackRow.subscriber_id == subscriber_id, FeedbackRow.paper_id == paper_id
        )
    ).scalar_one_or_none()
    if row is None:
        row = FeedbackRow(subscriber_id=subscriber_id, paper_id=paper_id)
        session.add(row)
    row.vote, row.source, row.created_at = vote, source, now
    session.flush()
    return _vote(row)


def remove_vote(
    session: Session, subscriber_id: int, vote_id: int, *, keep: Collection[str] = ()
) -> Vote | None:
    """Delete one of a reader's feedback rows (undo); None if they have no such row, or
    its source is one of `keep` (a seed, whose undo is its `like:` line)."""
    if not 1 <= vote_id <= _MAX_ROW_ID:  # names no row, and would overflow the query
        return None
    row = session.get(FeedbackRow, vote_id)
    if row is None or row.subscriber_id != subscriber_id or row.source in keep:
        return None
    vote = _vote(row)
    session.delete(row)
    session.flush()
    return vote


def votes_of(session: Session, subscriber_id: int) -> list[Vote]:
    """A reader's feedback rows, oldest first."""
    return votes_of_many(session, [subscriber_id]).get(subscriber_id, [])


def votes_of_many(session: Session, subscriber_ids: Iterable[int]) -> dict[int, list[Vote]]:
    """Feedback rows by reader (only readers with some), each oldest first."""
    ids = sorted(set(subscriber_ids))
    found: dict[int, list[Vote]] = {}
    for start in range(0, len(ids), _CHUNK):
        rows = session.execute(
            select(FeedbackRow)
            .where(FeedbackRow.subscriber_id.in_(ids[start : start + _CHUNK]))
            .order_by(FeedbackRow.subscriber_id, FeedbackRow.created_at, FeedbackRow.id)
        ).scalars()
        for row in rows:
            found.setdefault(row.subscriber_id, []).append(_vote(row))
    return found


def readers_with_votes(session: Session) -> list[int]:
    """The ids of every reader with at least one feedback row, ascending."""
    return list(
        session.execute(
            select(FeedbackRow.subscriber_id).distinct().order_by(FeedbackRow.subscriber_id)
        ).scalars()
    )


def sync_seeds(
    session: Session, subscriber_id: int, paper_ids: Collection[str], now: datetime
) -> bool:
    """Make a reader's seed rows those of `paper_ids` (their `like:` entries): add the
    new ones, drop seed rows no longer named. A paper with a verdict from a link or the
    manage page keeps it. Returns whether anything changed."""
    rows = session.execute(
        select(FeedbackRow).where(FeedbackRow.subscriber_id == subscriber_id)
    ).scalars()
    have = {row.paper_id: row for row in rows}
    changed = False
    for paper_id, row in have.items():
        if row.source == "seed" and paper_id not in paper_ids:
            session.delete(row)
            changed = True
    for paper_id in paper_ids:
        if paper_id not in have:
            session.add(
                FeedbackRow(
                    subscriber_id=subscriber_id,
                    paper_id=paper_id,
                    vote=MORE,
                    source="seed",
                    created_at=now,
                )
            )
            changed = True
    session.flush()
    return changed


def missing_seed_papers(session: Session, limit: int = 200) -> list[str]:
    """Paper ids some active or paused reader named with `like:` that the store does
    not hold yet, the most recently named first (ids arXiv does not know stay missing:
    they must not keep a newly named one from its turn). An unconfirmed sign-up's seeds
    wait for its confirmation: anyone can type an address, and the fetch would store
    whatever they named."""
    stored = select(PaperRow.id).where(PaperRow.id == FeedbackRow.paper_id).exists()
    readers = select(SubscriberRow.id).where(
        SubscriberRow.id == FeedbackRow.subscriber_id,
        SubscriberRow.status.in_(("active", "paused")),
    )
    return list(
        session.execute(
            select(FeedbackRow.paper_id)
            .where(FeedbackRow.source == "seed", ~stored, readers.exists())
            .group_by(FeedbackRow.paper_id)
            .order_by(func.max(FeedbackRow.created_at).desc(), FeedbackRow.paper_id)
            .limit(limit)
        ).scalars()
    )


# --- models -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredTextModel:
    """The text model's row: its version, when it was fitted, on how many papers, and
    the serialised model (`digest.learn.text`)."""

    version: int
    fitted_at: datetime
    papers: int
    data: bytes


def save_text_model(session: Session, fitted_at: datetime, papers: int, data: bytes) -> int:
    """Store a newly fitted text model, drop the older ones; returns its version."""
    row = TextModelRow(fitted_at=fitted_at, papers=papers, data=data)
    session.add(row)
    session.flush()
    session.execute(delete(TextModelRow).where(TextModelRow.version < row.version))
    return row.version


def text_model_version(session: Session) -> int | None:
    """The version of the text model in use, None before the first is fitted."""
    return session.execute(select(func.max(TextModelRow.version))).scalar_one_or_none()


def load_text_model(session: Session, version: int | None = None) -> StoredTextModel | None:
    """The text model of `version` (default: the newest), None if there is none."""
    query = select(TextModelRow)
    if version is None:
        query = query.order_by(TextModelRow.version.desc()).limit(1)
    else:
        query = query.where(TextModelRow.version == version)
    row = session.execute(query).scalar_one_or_none()
    if row is None:
        return None
    return StoredTextModel(row.version, row.fitted_at, row.papers, row.data)


def save_reader_model(
    session: Session,
    subscriber_id: int,
    text_version: int,
    labelled: int,
    data: bytes | None,
    now: datetime,
) -> None:
    """Store a reader's model (None: they have none any more, e.g. every vote undone)."""
    row = session.get(ReaderModelRow, subscriber_id)
    if data is None:
        if row is not None:
            session.delete(row)
        session.flush()
        return
    if row is None:
        row = ReaderModelRow(subscriber_id=subscriber_id)
        session.add(row)
    row.text_version, row.labelled, row.data, row.updated_at = text_version, labelled, data, now
    session.flush()


def reader_models(
    session: Session, subscriber_ids: Iterable[int], text_version: int
) -> dict[int, bytes]:
    """The stored models of these readers made over `text_version`, by reader."""
    ids = sorted(set(subscriber_ids))
    found: dict[int, bytes] = {}
    for start in range(0, len(ids), _CHUNK):
        rows = session.execute(
            select(ReaderModelRow.subscriber_id, ReaderModelRow.data).where(
                ReaderModelRow.subscriber_id.in_(ids[start : start + _CHUNK]),
                ReaderModelRow.text_version == text_version,
            )
        )
        found.update({key: data for key, data in rows})
    return found


def erase_learning(session: Session, subscriber_id: int) -> int:
    """Delete a reader's feedback rows and model (erasure); returns the rows deleted."""
    gone = session.execute(
        delete(FeedbackRow).where(FeedbackRow.subscriber_id == subscriber_id),
        execution_options={"synchronize_session": False},
    ).rowcount
    session.execute(
        delete(ReaderModelRow).where(ReaderModelRow.subscriber_id == subscriber_id),
        execution_options={"synchronize_session": False},
    )
    return gone
