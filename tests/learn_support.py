"""What the learning tests share: real papers stored, a reader, votes, a fitted text model."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from digest.learn.models import refit_text_model, refresh_reader
from digest.paper import Paper
from digest.store import Database
from digest.store.feedback import record_vote
from digest.store.papers import save_papers
from digest.store.subscribers import create_subscriber

T0 = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)
# Papers of tests/data/papers.jsonl (by index) on one topic each, for votes.
DIFFUSION = (25, 40, 56, 83, 86, 119, 126, 154, 179)


def store_papers(database: Database, papers: Sequence[Paper], at: datetime = T0) -> None:
    with database.session() as session:
        save_papers(session, papers, at)
        session.commit()


def add_reader(
    database: Database, email: str, interests: str, *, at: datetime = T0, suggestions: int = 5
) -> int:
    with database.session() as session:
        reader = create_subscriber(
            session, email, interests, send_time="08:00", timezone="UTC", now=at, status="active"
        )
        if suggestions != 5:
            from digest.store.subscribers import update_preferences

            update_preferences(session, reader.id, suggestions=suggestions)
        session.commit()
        return reader.id


def vote(database: Database, reader: int, paper: Paper, value: int, *, at: datetime = T0) -> None:
    """Record a vote as the web page does: the row, then the reader's model refitted."""
    with database.session() as session:
        record_vote(session, reader, paper.id, value, "email", at)
        refresh_reader(session, reader, at)
        session.commit()


def fit_text(database: Database, at: datetime = T0) -> int:
    report = refit_text_model(database, at)
    assert report.text_version is not None
    return report.text_version
