"""Building and storing readers' models, from their feedback rows, at any time.

- `refresh_reader`: after a vote is recorded or undone (the web page, in the same
  transaction), that reader's model is fitted again from all their rows.
- `rebuild_models`: every reader's model fitted again from the rows (`digest models
  rebuild`, and after a refit of the text model). Fitting is deterministic, so a rebuilt
  model equals the one the clicks left, byte for byte.
- `refit_text_model`: fits the shared vectoriser on the store's newest papers, stores it
  as the new version and rebuilds every model over it; `text_model_due` says when the
  schedule should do that (none yet, or older than `[learn] refit_days`).

`current_text_model` reads the text model once per process and version.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from threading import Event

import scipy.sparse as sp
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digest.learn.taste import Taste, dump_taste, fit_taste
from digest.learn.text import (
    FIT_PAPERS,
    MIN_PAPERS,
    TextModel,
    dump_text_model,
    fit_vectorizer,
    load_text_model,
)
from digest.store.database import Database
from digest.store.feedback import (
    Vote,
    readers_with_votes,
    save_reader_model,
    save_text_model,
    text_model_version,
    votes_of,
    votes_of_many,
)
from digest.store.feedback import (
    load_text_model as load_stored_text_model,
)
from digest.store.models import FeedbackRow, PaperRow, ReaderModelRow, TextModelRow
from digest.store.papers import count_papers, newest_papers, papers_by_id

log = logging.getLogger(__name__)
_CHUNK = 500  # readers fitted per read of rows and papers
_loaded: dict[tuple[str, int], TextModel] = {}
_loading = threading.Lock()


def current_text_model(session: Session) -> TextModel | None:
    """The text model in use (read from the store once per process and version); None
    before the first is fitted, or when the stored one cannot be read (logged: digests
    then go out without learning until `digest models rebuild --refit` or the next
    refit, which `text_model_due` asks for at once)."""
    try:
        return _newest_text_model(session)
    except Exception as error:  # an unreadable model must not stop digests or clicks
        log.warning("learn: the stored text model cannot be read (%s); digests go out "
                    "without learning until it is fitted again", error)  # fmt: skip
        return None


def _newest_text_model(session: Session) -> TextModel | None:
    version = text_model_version(session)
    if version is None:
        return None
    model = _loaded.get((str(session.get_bind().url), version))
    if model is not None:
        return model
    with _loading:
        # The newest row, read whole: a refit that replaced the version just seen is
        # read instead (never a retry under the lock, which a thread cannot retake).
        stored = load_stored_text_model(session)
        if stored is None:
            return None
        key = (str(session.get_bind().url), stored.version)
        model = _loaded.get(key)
        if model is None:
            model = load_text_model(stored.version, stored.data)
            _loaded.clear()  # one version at a time: the old one is dead
            _loaded[key] = model
    return model


def fit_reader(session: Session, text: TextModel, votes: Sequence[Vote]) -> Taste | None:
    """A reader's taste from their rows (oldest first), over `text`."""
    return _fit_many(session, text, {0: list(votes)})[0]


def _fit_many(
    session: Session, text: TextModel, votes: dict[int, list[Vote]]
) -> dict[int, Taste | None]:
    """Tastes of many readers: their papers read and vectorised in one go."""
    ids = {vote.paper_id for rows in votes.values() for vote in rows}
    papers = papers_by_id(session, ids)
    order = sorted(papers)
    matrix = text.transform([papers[paper_id] for paper_id in order])
    vectors: dict[str, sp.csr_matrix] = {paper_id: matrix[i] for i, paper_id in enumerate(order)}
    titles = {paper_id: paper.title for paper_id, paper in papers.items()}
    return {reader: fit_taste(rows, vectors, titles, text) for reader, rows in votes.items()}


def _save(
    session: Session, reader: int, text: TextModel, taste: Taste | None, now: datetime
) -> None:
    data = None if taste is None else dump_taste(taste)
    save_reader_model(session, reader, text.version, 0 if taste is None else taste.labelled,
                      data, now)  # fmt: skip


def refresh_reader(session: Session, subscriber_id: int, now: datetime) -> None:
    """Fit one reader's model again from their feedback rows and store it (no commit).

    Nothing to do before the first text model is fitted: the refit builds every model."""
    text = current_text_model(session)
    if text is None:
        return
    taste = fit_reader(session, text, votes_of(session, subscriber_id))
    _save(session, subscriber_id, text, taste, now)


@dataclass
class RebuildReport:
    """What a rebuild did."""

    readers: int = 0
    models: int = 0
    seconds: float = 0.0
    text_version: int | None = None

    def summary(self) -> str:
        """One line for the log and the CLI."""
        if self.text_version is None:
            return "no text model yet: nothing to rebuild (it is fitted once papers are stored)"
        return (
            f"rebuilt {self.models} models of {self.readers} readers with feedback over "
            f"text model {self.text_version} in {self.seconds:.1f} s"
        )


def rebuild_models(
    database: Database, now: datetime, *, stale_only: bool = False, stop: Event | None = None
) -> RebuildReport:
    """Every reader's model fitted again from their rows, over the current text model,
    a chunk of readers per transaction; then models of older text models are dropped.

    `stale_only`: only readers whose model is missing or of an older text model (what
    the scheduler's hourly learn job catches up on: a rebuild stopped half way, a click
    made over the model a refit replaced). `stop` ends it between two chunks.
    """
    started = time.perf_counter()
    report = RebuildReport()
    with database.session() as session:
        text = current_text_model(session)
        if text is None:
            return report
        report.text_version = text.version
        readers = (
            stale_readers(session, text.version) if stale_only else readers_with_votes(session)
        )
    _refit_readers(database, text, readers, now, report, stop)
    with database.session() as session:
        _drop_older_models(session, text.version)
    report.seconds = time.perf_counter() - started
    return report


def _refit_readers(
    database: Database,
    text: TextModel,
    readers: Sequence[int],
    now: datetime,
    report: RebuildReport,
    stop: Event | None = None,
) -> None:
    """Fit these readers' models again, a chunk per transaction, counted in `report`."""
    for start in range(0, len(readers), _CHUNK):
        if stop is not None and stop.is_set():
            break
        chunk = readers[start : start + _CHUNK]
        with database.session() as session:
            tastes = _fit_many(session, text, votes_of_many(session, chunk))
            for reader in chunk:
                report.models += _save_apart(session, reader, text, tastes.get(reader), now)
        report.readers += len(chunk)


def _save_apart(
    session: Session, reader: int, text: TextModel, taste: Taste | None, now: datetime
) -> bool:
    """Save one reader's model in a savepoint of its own: a reader erased meanwhile, or
    whose first click saved a model meanwhile, costs that reader, not the chunk. A model
    of a newer text model (a later refit's) is never overwritten. Whether one was saved."""
    row = session.get(ReaderModelRow, reader)
    if row is not None and row.text_version > text.version:
        return False
    try:
        with session.begin_nested():
            _save(session, reader, text, taste, now)
    except IntegrityError:
        return False
    return taste is not None


def _drop_older_models(session: Session, version: int) -> None:
    session.execute(delete(ReaderModelRow).where(ReaderModelRow.text_version < version))


def stale_readers(session: Session, version: int) -> list[int]:
    """Readers with a verdict on a stored paper whose model is missing or was made over
    another text model than `version`, ascending."""
    current = (
        select(ReaderModelRow.subscriber_id)
        .where(
            ReaderModelRow.subscriber_id == FeedbackRow.subscriber_id,
            ReaderModelRow.text_version == version,
        )
        .exists()
    )
    stored = select(PaperRow.id).where(PaperRow.id == FeedbackRow.paper_id).exists()
    query = (
        select(FeedbackRow.subscriber_id)
        .where(stored, ~current)
        .distinct()
        .order_by(FeedbackRow.subscriber_id)
    )
    return list(session.execute(query).scalars())


def text_model_due(database: Database, now: datetime, refit_every: timedelta) -> bool:
    """Whether the text model should be fitted (again): none yet and enough papers, or
    the current one older than `refit_every`."""
    with database.session() as session:
        newest = session.query(TextModelRow.fitted_at).order_by(TextModelRow.version.desc()).first()
        if newest is None or current_text_model(session) is None:  # none, or unreadable
            return count_papers(session) >= MIN_PAPERS
    return now - newest[0] >= refit_every


def refit_text_model(database: Database, now: datetime, stop: Event | None = None) -> RebuildReport:
    """Fit the vectoriser on the newest papers, store it, and rebuild every model over
    it. Nothing happens with fewer than `MIN_PAPERS` papers stored."""
    with database.session() as session:
        papers = newest_papers(session, FIT_PAPERS)
    if len(papers) < MIN_PAPERS:
        return RebuildReport()
    started = time.perf_counter()
    vectorizer, background = fit_vectorizer(papers)
    with database.session() as session:
        version = save_text_model(session, now, len(papers),
                                  dump_text_model(vectorizer, background))  # fmt: skip
    fitted = time.perf_counter() - started
    report = rebuild_models(database, now, stop=stop)
    log.info(
        "text model %d fitted on %d papers (%d words) in %.1f s; %s",
        version, len(papers), len(vectorizer.vocabulary_), fitted, report.summary(),
    )  # fmt: skip
    return report


def learning_status(session: Session) -> str:
    """What is learned, in a few lines: the text model, feedback rows, models."""
    from sqlalchemy import func

    stored = session.execute(
        select(TextModelRow.version, TextModelRow.fitted_at, TextModelRow.papers)
        .order_by(TextModelRow.version.desc())
        .limit(1)
    ).first()  # not the model itself: megabytes to read for three figures
    rows = session.scalar(select(func.count()).select_from(FeedbackRow)) or 0
    readers = len(readers_with_votes(session))
    models = session.scalar(select(func.count()).select_from(ReaderModelRow)) or 0
    text = (
        "text model: none yet (fitted once enough papers are stored)"
        if stored is None
        else f"text model {stored.version}: fitted {stored.fitted_at:%Y-%m-%d %H:%M} UTC "
        f"on {stored.papers} papers"
    )
    return f"{text}\nfeedback: {rows} rows from {readers} readers\nmodels: {models}"


def refresh_readers_of(database: Database, paper_ids: Sequence[str], now: datetime) -> int:
    """Fit again the models of the readers with a verdict on any of these papers (seed
    papers just fetched: stored now, they count); returns how many were refitted."""
    if not paper_ids:
        return 0
    with database.session() as session:
        text = current_text_model(session)
        if text is None:
            return 0
        query = select(FeedbackRow.subscriber_id).where(FeedbackRow.paper_id.in_(paper_ids))
        readers = sorted(set(session.execute(query).scalars()))
    report = RebuildReport(text_version=text.version)
    _refit_readers(database, text, readers, now, report)
    return report.readers
