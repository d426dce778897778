"""Saving and reading papers.

A paper is stored once, keyed by its arXiv id, with what the first source to see it
said. Later sightings (the same source again, or another one) only update what changes
over time: upvotes, comment count, code and project links, and they fill fields the
first sighting lacked (an organisation, an abstract, the HF page). So re-saving the same
listing changes nothing, and the counts say so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from digest.paper import HF_SOURCE, Paper, bound_paper, trending_order
from digest.store.models import FetchRow, HttpCacheRow, PaperRow

# Fields a later sighting overwrites when it knows them: they change after listing.
_MUTABLE = ("upvotes", "comments", "url_code", "url_project")
# Fields a later sighting fills only when the stored paper has none.
_FILL_IF_EMPTY = (
    "abstract",
    "authors",
    "organization",
    "categories",
    "published",
    "listed",
    "url_abs",
    "url_pdf",
    "url_hf",
)


@dataclass(frozen=True)
class SaveReport:
    """What saving a batch of papers did."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def total(self) -> int:
        """Papers in the batch."""
        return self.new + self.updated + self.unchanged


def _row_from_paper(paper: Paper, now: datetime) -> PaperRow:
    return PaperRow(
        id=paper.id,
        title=paper.title,
        abstract=paper.abstract,
        authors=list(paper.authors),
        organization=paper.organization,
        categories=list(paper.categories),
        published=paper.published,
        listed=paper.listed,
        upvotes=paper.upvotes,
        comments=paper.comments,
        url_abs=paper.url_abs,
        url_pdf=paper.url_pdf,
        url_hf=paper.url_hf,
        url_code=paper.url_code,
        url_project=paper.url_project,
        sources=list(paper.sources),
        first_seen_at=now,
        updated_at=now,
        **_hf_sighting(paper, now),
    )


def _hf_sighting(paper: Paper, now: datetime) -> dict[str, object]:
    """The HF listing columns a sighting sets: when it comes from Hugging Face, its
    listing day and now; from another source, nothing."""
    if HF_SOURCE not in paper.sources:
        return {}
    return {"hf_listed": paper.listed or now.date(), "hf_seen_at": now}


def paper_from_row(row: PaperRow) -> Paper:
    """The `Paper` a stored row holds, within the limits of `bound_paper` (rows stored
    before those limits existed may hold more)."""
    return bound_paper(
        Paper(
            id=row.id,
            title=row.title,
            abstract=row.abstract,
            authors=tuple(row.authors or ()),
            organization=row.organization,
            categories=tuple(row.categories or ()),
            published=row.published,
            listed=row.listed,
            upvotes=row.upvotes,
            comments=row.comments,
            url_abs=row.url_abs,
            url_pdf=row.url_pdf,
            url_hf=row.url_hf,
            url_code=row.url_code,
            url_project=row.url_project,
            sources=tuple(row.sources or ()),
            first_seen_at=row.first_seen_at,
            hf_listed=row.hf_listed,
            hf_seen_at=row.hf_seen_at,
        )
    )


def _stored_value(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


def _merge_sighting(row: PaperRow, paper: Paper, now: datetime) -> bool:
    """Update a stored row from a later sighting; return whether anything changed."""
    changed = False
    if row.hf_seen_at is None:
        for name, value in _hf_sighting(paper, now).items():
            setattr(row, name, value)
            changed = True
    for name in _MUTABLE:
        value = getattr(paper, name)
        if value is not None and getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    for name in _FILL_IF_EMPTY:
        value = _stored_value(getattr(paper, name))
        if value and not getattr(row, name):
            setattr(row, name, value)
            changed = True
    new_sources = [s for s in paper.sources if s not in (row.sources or [])]
    if new_sources:
        row.sources = [*(row.sources or []), *new_sources]
        changed = True
    return changed


def _dedupe(papers: Iterable[Paper]) -> list[Paper]:
    """One sighting per id: a listing that repeats a paper counts it once (last wins)."""
    by_id: dict[str, Paper] = {}
    for paper in papers:
        by_id[paper.id] = paper
    return list(by_id.values())


def save_papers(session: Session, papers: Iterable[Paper], now: datetime) -> SaveReport:
    """Insert new papers and merge sightings of known ones, in the caller's transaction."""
    batch = _dedupe(papers)
    ids = [paper.id for paper in batch]
    existing: dict[str, PaperRow] = {}
    for chunk_start in range(0, len(ids), 500):  # stay under bound-parameter limits
        chunk = ids[chunk_start : chunk_start + 500]
        rows = session.scalars(select(PaperRow).where(PaperRow.id.in_(chunk)))
        existing.update((row.id, row) for row in rows)
    new = updated = unchanged = 0
    for paper in batch:
        row = existing.get(paper.id)
        if row is None:
            session.add(_row_from_paper(paper, now))
            new += 1
        elif _merge_sighting(row, paper, now):
            row.updated_at = now
            updated += 1
        else:
            unchanged += 1
    session.flush()
    return SaveReport(new=new, updated=updated, unchanged=unchanged)


def list_papers(session: Session, since: date | datetime | None = None) -> list[Paper]:
    """Stored papers, newest first; `since` keeps those first seen on or after it."""
    query = select(PaperRow).order_by(PaperRow.first_seen_at.desc(), PaperRow.id)
    if since is not None:
        query = query.where(PaperRow.first_seen_at >= _as_datetime(since))
    return [paper_from_row(row) for row in session.scalars(query)]


def newest_papers(session: Session, limit: int) -> list[Paper]:
    """The `limit` papers first seen most recently, newest first."""
    query = select(PaperRow).order_by(PaperRow.first_seen_at.desc(), PaperRow.id).limit(limit)
    return [paper_from_row(row) for row in session.scalars(query)]


def papers_by_id(session: Session, ids: Iterable[str]) -> dict[str, Paper]:
    """The stored papers among these ids, by id."""
    wanted = sorted(set(ids))
    found: dict[str, Paper] = {}
    for start in range(0, len(wanted), 500):
        rows = session.scalars(select(PaperRow).where(PaperRow.id.in_(wanted[start : start + 500])))
        found.update({row.id: paper_from_row(row) for row in rows})
    return found


def papers_first_seen_between(
    session: Session, start: datetime | None, end: datetime
) -> list[Paper]:
    """What a digest covering [start, end) considers: the papers first seen in it, and
    those Hugging Face Daily Papers first listed in it (trending goes by the HF listing,
    which often comes a day or more after a paper was first seen on arXiv)."""
    seen = [PaperRow.first_seen_at < end]
    on_hf = [PaperRow.hf_seen_at < end]
    if start is not None:
        seen.append(PaperRow.first_seen_at >= start)
        on_hf.append(PaperRow.hf_seen_at >= start)
    query = (
        select(PaperRow)
        .where(or_(and_(*seen), and_(*on_hf)))
        .order_by(PaperRow.first_seen_at, PaperRow.id)
    )
    return [paper_from_row(row) for row in session.scalars(query)]


def papers_listed_between(session: Session, start: date | None, end: date | None) -> list[Paper]:
    """Papers whose day is in [start, end) (None: no bound), newest first as `list_papers`.

    A paper's day is the Daily Papers day Hugging Face listed it on, else its listing
    day (`Paper.listed`: the arXiv announcement it appeared in), as on the /papers pages;
    for one no listing dated, the UTC day it was first seen. This is
    what `digest preview --date` and `digest papers --since` mean by a day, so that a
    saved listing loaded today still counts under the day it lists. The digests go by
    when each paper was first seen instead (`papers_first_seen_between`): their windows
    must follow the store's clock to miss nothing and send nothing twice.
    """
    day = _day_column()
    listed = [day.is_not(None)]
    unlisted = [day.is_(None)]
    if start is not None:
        listed.append(day >= start)
        unlisted.append(PaperRow.first_seen_at >= _as_datetime(start))
    if end is not None:
        listed.append(day < end)
        unlisted.append(PaperRow.first_seen_at < _as_datetime(end))
    query = (
        select(PaperRow)
        .where(or_(and_(*listed), and_(*unlisted)))
        .order_by(PaperRow.first_seen_at.desc(), PaperRow.id)
    )
    return [paper_from_row(row) for row in session.scalars(query)]


def papers_of_day(session: Session, day: date) -> list[Paper]:
    """The papers of one listing day, best first, as the /papers pages show them.

    First those Hugging Face Daily Papers listed that day, by upvotes, then comments,
    then id (`trending_order`); then the arXiv-only papers of that day (never on HF, so
    without upvotes), newest first: by submission date, then id, descending. A paper HF
    listed shows on its HF day only.
    """
    on_hf = session.scalars(select(PaperRow).where(PaperRow.hf_listed == day))
    ranked = sorted((paper_from_row(row) for row in on_hf), key=trending_order)
    arxiv_only = session.scalars(
        select(PaperRow)
        .where(PaperRow.hf_listed.is_(None), PaperRow.listed == day)
        .order_by(PaperRow.published.desc().nulls_last(), PaperRow.id.desc())
    )
    return [*ranked, *(paper_from_row(row) for row in arxiv_only)]


def _day_column() -> ColumnElement[date]:
    """A paper's day on the /papers pages: its HF listing day, else its listing day."""
    return func.coalesce(PaperRow.hf_listed, PaperRow.listed)


def neighbour_days(session: Session, day: date) -> tuple[date | None, date | None]:
    """The nearest days before and after `day` that have papers (None where none do)."""
    before = _nearest(session, True, lambda column: column < day)
    after = _nearest(session, False, lambda column: column > day)
    return before, after


def latest_day(session: Session, until: date) -> date | None:
    """The most recent day, on or before `until`, that has papers."""
    return _nearest(session, True, lambda column: column <= until)


def _nearest(
    session: Session, latest: bool, where: Callable[[Any], ColumnElement[bool]]
) -> date | None:
    """The latest (else the earliest) day of papers whose day meets `where`.

    A paper's day is `coalesce(hf_listed, listed)`; asked as two questions, one per
    column, each answered from that column's index rather than a scan of every row.
    """
    pick = func.max if latest else func.min
    on_hf = session.scalar(select(pick(PaperRow.hf_listed)).where(where(PaperRow.hf_listed)))
    arxiv_only = session.scalar(
        select(pick(PaperRow.listed)).where(PaperRow.hf_listed.is_(None), where(PaperRow.listed))
    )
    found = [value for value in (on_hf, arxiv_only) if value is not None]
    if not found:
        return None
    return max(found) if latest else min(found)


def papers_first_seen_since(session: Session, start: datetime) -> tuple[int, datetime | None]:
    """How many papers were first seen at or after `start`, and when the last one was."""
    count, last = session.execute(
        select(func.count(), func.max(PaperRow.first_seen_at)).where(
            PaperRow.first_seen_at >= start
        )
    ).one()
    return int(count), last if last is None else last.replace(tzinfo=UTC)


def count_papers(session: Session) -> int:
    """How many papers are stored."""
    return session.scalar(select(func.count()).select_from(PaperRow)) or 0


def _as_datetime(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.combine(value, time.min, tzinfo=UTC)


# --- HTTP validators ----------------------------------------------------------------


def get_validators(session: Session, url: str) -> tuple[str | None, str | None]:
    """The (ETag, Last-Modified) kept for a URL from its last good response."""
    row = session.get(HttpCacheRow, url)
    return (row.etag, row.last_modified) if row else (None, None)


MAX_ETAG, MAX_LAST_MODIFIED = 500, 100  # the columns' sizes


def put_validators(
    session: Session, url: str, etag: str | None, last_modified: str | None, now: datetime
) -> None:
    """Keep the validators of a good response, to make the next request conditional.

    A validator too long for its column is dropped, not cut: a cut one would never match.
    """
    if etag is not None and len(etag) > MAX_ETAG:
        etag = None
    if last_modified is not None and len(last_modified) > MAX_LAST_MODIFIED:
        last_modified = None
    row = session.get(HttpCacheRow, url)
    if row is None:
        session.add(HttpCacheRow(url=url, etag=etag, last_modified=last_modified, updated_at=now))
    else:
        row.etag, row.last_modified, row.updated_at = etag, last_modified, now


# --- Fetch log ------------------------------------------------------------------------


@dataclass(frozen=True)
class FetchRecord:
    """One logged fetch."""

    source: str
    day: date | None
    origin: str
    started_at: datetime
    papers: int
    new: int
    updated: int
    skipped: int
    error: str | None


def record_fetch(session: Session, record: FetchRecord) -> None:
    """Log one fetch, good or failed."""
    session.add(FetchRow(**record.__dict__))


def last_fetches(session: Session) -> dict[str, FetchRecord]:
    """The latest fetch of each source."""
    return _latest_fetches(session, successful_only=False)


def last_successful_fetches(session: Session) -> dict[str, FetchRecord]:
    """The latest fetch of each source that did not fail: beside a failure, when the
    source last worked (`digest status`)."""
    return _latest_fetches(session, successful_only=True)


def _latest_fetches(session: Session, *, successful_only: bool) -> dict[str, FetchRecord]:
    """The newest logged fetch of each source (ids grow with time), failed ones too or not."""
    newest = select(FetchRow.source, func.max(FetchRow.id).label("id")).group_by(FetchRow.source)
    if successful_only:
        newest = newest.where(FetchRow.error.is_(None))
    latest = newest.subquery()
    rows = session.scalars(select(FetchRow).join(latest, FetchRow.id == latest.c.id))
    return {
        row.source: FetchRecord(
            source=row.source,
            day=row.day,
            origin=row.origin,
            started_at=row.started_at,
            papers=row.papers,
            new=row.new,
            updated=row.updated,
            skipped=row.skipped,
            error=row.error,
        )
        for row in rows
    }
