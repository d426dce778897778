"""Fetch: sources -> store.

`fetch_sources` runs sources -> store: it fetches each source (or reads a saved file),
parses the whole listing first, then stores its papers, the response's cache validators
and a line in the fetch log in one transaction. A source that fails is logged with its
error and does not stop the others.

With arXiv's sources it then fetches the seed papers readers named (`like:ID`) that the
store lacks, from the arXiv API (`fetch_seed_papers`): a seed counts once its paper is
stored. Failures there are logged, and fail nothing else.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from itertools import groupby
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from digest.config import Settings
from digest.errors import DigestError, FetchError, ParseError, StoreError
from digest.learn.models import refresh_readers_of
from digest.paper import Paper
from digest.sources import (
    SOURCES,
    Listing,
    PoliteClient,
    ValidatorLookup,
    Validators,
    arxiv,
    fetch_listing,
    hf,
)
from digest.sources import read_listing_file as read_file
from digest.store import Database
from digest.store.feedback import missing_seed_papers
from digest.store.papers import (
    FetchRecord,
    SaveReport,
    get_validators,
    last_fetches,
    list_papers,
    put_validators,
    record_fetch,
    save_papers,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FetchReport:
    """What fetching one source (or one file) did; `error` is set when it failed."""

    source: str
    day: date | None
    origin: str
    papers: int = 0
    new: int = 0
    updated: int = 0
    skipped: int = 0
    not_modified: bool = False
    note: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True unless the fetch failed."""
        return self.error is None

    def summary(self) -> str:
        """One line for a person: `hf 2026-06-12: 30 papers, 28 new, 2 updated, 0 skipped`."""
        label = f"{self.source} {self.day.isoformat()}" if self.day else self.source
        if self.error is not None:
            # Errors name their source first ("hf: cannot fetch ..."); say it once.
            return f"{label}: failed: {self.error.removeprefix(self.source + ': ')}"
        if self.not_modified:
            return f"{label}: not modified since last fetch"
        if not self.papers and self.note:
            return f"{label}: {self.note}"
        noun = "paper" if self.papers == 1 else "papers"
        line = (
            f"{label}: {self.papers} {noun}, {self.new} new, "
            f"{self.updated} updated, {self.skipped} skipped"
        )
        return f"{line} ({self.note})" if self.note else line


def _store_listing(database: Database, listing: Listing, now: datetime) -> FetchReport:
    """Save a parsed listing, its validators and its log line in one transaction.

    If the database refuses any of it, nothing of the listing is kept and the failure is
    logged and reported like any other, so the other sources still run.
    """
    try:
        return _save_listing(database, listing, now)
    except (SQLAlchemyError, OverflowError, ValueError) as error:
        detail = getattr(error, "orig", None) or error
        failure = StoreError(f"{listing.source}: cannot store the listing: {detail}")
        return _record_failure(database, listing.source, listing.day, listing.origin, failure, now)


def _save_listing(database: Database, listing: Listing, now: datetime) -> FetchReport:
    with database.session() as session:
        day = listing.day
        if listing.not_modified and day is None:
            previous = last_fetches(session).get(listing.source)
            day = previous.day if previous is not None else None
        saved = save_papers(session, listing.papers, now)
        if listing.validators:
            found = listing.validators
            put_validators(session, found.url, found.etag, found.last_modified, now)
        record_fetch(
            session,
            FetchRecord(
                source=listing.source,
                day=day,
                origin=listing.origin,
                started_at=now,
                papers=len(listing.papers),
                new=saved.new,
                updated=saved.updated,
                skipped=listing.skipped,
                error=None,
            ),
        )
    return FetchReport(
        source=listing.source,
        day=day,
        origin=listing.origin,
        papers=len(listing.papers),
        new=saved.new,
        updated=saved.updated,
        skipped=listing.skipped,
        not_modified=listing.not_modified,
        note=listing.note,
    )


def _record_failure(
    database: Database,
    source: str,
    day: date | None,
    origin: str,
    error: DigestError,
    now: datetime,
) -> FetchReport:
    """Log a failed fetch (nothing else is written) and report it."""
    if isinstance(error, FetchError):
        origin = error.url
    elif isinstance(error, ParseError):
        origin = error.where
        if error.source in SOURCES:  # a file whose kind was recognised names its source
            source = error.source
    log.debug("fetch failed: %s", error)
    with database.session() as session:
        record_fetch(
            session,
            FetchRecord(
                source=source,
                day=day,
                origin=origin,
                started_at=now,
                papers=0,
                new=0,
                updated=0,
                skipped=0,
                error=str(error),
            ),
        )
    return FetchReport(source=source, day=day, origin=origin, error=str(error))


def _validator_lookup(database: Database) -> ValidatorLookup:
    def known(url: str) -> Validators | None:
        with database.session() as session:
            etag, last_modified = get_validators(session, url)
        found = Validators(url, etag, last_modified)
        return found if found else None

    return known


def _planned_origin(name: str, settings: Settings, day: date) -> str:
    if name == "hf":
        return hf.api_url(settings.sources.hf.base_url, day)
    try:
        return arxiv.feed_url(settings.sources.arxiv.feed_url, settings.sources.arxiv.categories)
    except DigestError:
        return settings.sources.arxiv.feed_url


def _chosen_sources(settings: Settings, source: str) -> list[str]:
    if source == "all":
        enabled = {"hf": settings.sources.hf.enabled, "arxiv": settings.sources.arxiv.enabled}
        return [name for name in SOURCES if enabled[name]]
    if source not in SOURCES:
        raise DigestError(f'unknown source "{source}": use hf, arxiv or all')
    return [source]


def fetch_sources(
    settings: Settings,
    database: Database,
    *,
    source: str = "all",
    day: date | None = None,
    file: str | os.PathLike[str] | None = None,
    now: datetime | None = None,
    client: PoliteClient | None = None,
) -> list[FetchReport]:
    """Fetch sources (or read one saved `file`) into the store; one report per source.

    `source` is `hf`, `arxiv` or `all` (the enabled ones; with a file, whatever the file
    is). `day` is the Hugging Face day (default: today in UTC); arXiv's feed always has
    the latest announcements. A failing source is reported (and logged in the store)
    without stopping the others. `client` lets the scheduler keep one polite client.
    With `all` or `arxiv` (not a file), the seed papers missing from the store are then
    fetched too (`fetch_seed_papers`, whether or not the arXiv announcements are
    enabled: readers named them), with a last report when some were missing.

    Papers are stamped first seen at `now`, or without it at the moment each listing is
    saved: a manual fetch that takes minutes (retries, slow servers) alongside a running
    service must not stamp its papers with a time a digest run has already covered.
    (The scheduler passes its clock's `now`; its jobs never overlap a digest run.)
    """
    fixed = now is not None
    now = now or datetime.now(UTC)
    if file is not None:
        return [_read_into_store(settings, database, source, file, now)]
    day = day or now.astimezone(UTC).date()
    names = _chosen_sources(settings, source)
    own_client = client is None
    client = client or PoliteClient.from_settings(settings)
    reports = []
    try:
        for name in names:
            try:
                listing = fetch_listing(
                    name, settings, client, day, known=_validator_lookup(database)
                )
            except DigestError as error:
                reports.append(
                    _record_failure(
                        database,
                        name,
                        day if name == "hf" else None,
                        _planned_origin(name, settings, day),
                        error,
                        now,
                    )
                )
                continue
            reports.append(_store_listing(database, listing, now if fixed else datetime.now(UTC)))
        if source in ("all", "arxiv"):
            seeds = fetch_seed_papers(settings, database, client, now if fixed else None)
            if seeds is not None:
                reports.append(seeds)
    finally:
        if own_client:
            client.close()
    return reports


def _read_into_store(
    settings: Settings,
    database: Database,
    source: str,
    file: str | os.PathLike[str],
    now: datetime,
) -> FetchReport:
    if source != "all" and source not in SOURCES:
        raise DigestError(f'unknown source "{source}": use hf, arxiv or all')
    try:
        listing = read_file(
            file,
            None if source == "all" else source,
            include_cross=settings.sources.arxiv.include_cross,
        )
    except DigestError as error:
        return _record_failure(
            database, source if source != "all" else "file", None, str(file), error, now
        )
    return _store_listing(database, listing, now)


# --- Seed papers ----------------------------------------------------------------------

SEEDS = "seeds"  # the report's name: no source of listings, but papers from arXiv's API
# A seed paper submitted longer ago than this is stamped first seen on its submission
# day, not now: an old paper one reader likes is no news for every reader's next digest
# (digests take the papers first seen since the last one). A recent one is news anyway.
RECENT = timedelta(days=7)
_SHOWN_IDS = 10  # unknown ids named in the log line, at most


def fetch_seed_papers(
    settings: Settings, database: Database, client: PoliteClient, now: datetime | None = None
) -> FetchReport | None:
    """Fetch from the arXiv API the seed papers (`like:ID`) the store does not hold yet,
    `arxiv.MAX_ID_LIST` per request through the polite client, and store them.

    None when no seed paper is missing. A request that fails is logged (one line) and
    the others still run; ids arXiv does not know stay missing (one line names them), to
    be asked again on the next fetch. Papers are stamped first seen at `now` (None: when
    saved), or on their submission day when older than `RECENT`.
    """
    with database.session() as session:
        missing = missing_seed_papers(session)
    if not missing:
        return None
    found: dict[str, Paper] = {}
    failed: set[str] = set()
    for start in range(0, len(missing), arxiv.MAX_ID_LIST):
        asked = missing[start : start + arxiv.MAX_ID_LIST]
        try:
            listing = arxiv.fetch_papers(client, settings.sources.arxiv, asked)
        except DigestError as error:
            failed.update(asked)
            log.warning("seed papers: %s", error)
            continue
        wanted = set(asked)
        found.update((paper.id, paper) for paper in listing.papers if paper.id in wanted)
    unknown = [paper_id for paper_id in missing if paper_id not in found and paper_id not in failed]
    if unknown:
        shown = ", ".join(unknown[:_SHOWN_IDS])
        more = f" and {len(unknown) - _SHOWN_IDS} more" if len(unknown) > _SHOWN_IDS else ""
        log.warning(
            "seed papers: arXiv knows no paper %s%s (named with like:); they stay missing",
            shown,
            more,
        )
    origin = settings.sources.arxiv.api_url
    notes = [f"seed papers named with like:, {len(missing)} missing"]
    if unknown:
        notes.append(f"{len(unknown)} unknown to arXiv")
    if failed:
        notes.append(f"{len(failed)} not fetched (see the log)")
    report = FetchReport(source=SEEDS, day=None, origin=origin, note="; ".join(notes))
    if not found:
        return report
    try:
        saved = _save_seed_papers(database, list(found.values()), now)
    except (SQLAlchemyError, OverflowError, ValueError) as error:
        log.warning("seed papers: cannot store them: %s", getattr(error, "orig", None) or error)
        return replace(report, note=report.note + "; not stored (see the log)")
    # Stored now, the seeds count: the models of the readers who named them are refitted.
    refresh_readers_of(database, sorted(found), now or datetime.now(UTC))
    return replace(report, papers=len(found), new=saved.new, updated=saved.updated)


def _save_seed_papers(database: Database, papers: list[Paper], now: datetime | None) -> SaveReport:
    """Store seed papers in one transaction, each stamped as `fetch_seed_papers` says."""
    now = now or datetime.now(UTC)

    def stamp(paper: Paper) -> datetime:
        if paper.published is None:
            return now
        submitted = datetime.combine(paper.published, time(), UTC)
        return now if submitted >= now - RECENT else submitted

    new = updated = unchanged = 0
    with database.session() as session:
        for seen_at, group in groupby(sorted(papers, key=stamp), key=stamp):
            saved = save_papers(session, list(group), seen_at)
            new, updated, unchanged = (
                new + saved.new,
                updated + saved.updated,
                unchanged + saved.unchanged,
            )
    return SaveReport(new=new, updated=updated, unchanged=unchanged)


# --- Reading the store ---------------------------------------------------------------


def stored_papers(database: Database, since: date | datetime | None = None) -> list[Paper]:
    """Stored papers, newest first; `since` keeps those first seen on or after it."""
    with database.session() as session:
        return list_papers(session, since)


def paper_to_dict(paper: Paper) -> dict[str, Any]:
    """A paper as plain JSON-ready values (dates ISO 8601, lists for tuples)."""
    return {
        "id": paper.id,
        "title": paper.title,
        "abstract": paper.abstract,
        "authors": list(paper.authors),
        "organization": paper.organization,
        "categories": list(paper.categories),
        "published": paper.published.isoformat() if paper.published else None,
        "listed": paper.listed.isoformat() if paper.listed else None,
        "upvotes": paper.upvotes,
        "comments": paper.comments,
        "url_abs": paper.url_abs,
        "url_pdf": paper.url_pdf,
        "url_hf": paper.url_hf,
        "url_code": paper.url_code,
        "url_project": paper.url_project,
        "sources": list(paper.sources),
        "first_seen_at": paper.first_seen_at.isoformat() if paper.first_seen_at else None,
    }
