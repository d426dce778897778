"""The /papers pages' fingerprints, feed days and top papers (digest.store.paper_pages),
on SQLite and PostgreSQL, with the saved listings of tests/data/sources."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from digest.paper import Paper
from digest.sources import arxiv, hf
from digest.store import Database
from digest.store.paper_pages import (
    arrivals,
    day_fingerprint,
    hf_days,
    hf_fingerprint,
    top_hf_papers,
)
from digest.store.papers import papers_of_day, save_papers

DATA = Path(__file__).parent / "data" / "sources"
T0 = datetime(2026, 6, 12, 10, 0, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)
HF_DAY = date(2026, 6, 12)
HF_PAGE_DAY = date(2024, 8, 1)
ARXIV_DAY = date(2026, 9, 24)


@pytest.fixture
def database(store_database: Database) -> Database:
    """Every test here runs on SQLite and on PostgreSQL."""
    return store_database


@pytest.fixture(scope="module")
def hf_papers() -> tuple[Paper, ...]:
    return hf.parse_api((DATA / "hf_api_daily_papers_2026-06-12.json").read_bytes(), "api").papers


@pytest.fixture(scope="module")
def hf_page_papers() -> tuple[Paper, ...]:
    return hf.parse_page((DATA / "hf_papers_page_2024-08-01.html").read_bytes(), "page").papers


@pytest.fixture(scope="module")
def arxiv_papers() -> tuple[Paper, ...]:
    feed = (DATA / "arxiv_rss_2026-09-24_excerpt.xml").read_bytes()
    return arxiv.parse_feed(feed, "rss", include_cross=True).papers


def save(database: Database, papers: object, now: datetime = T0) -> None:
    with database.session() as session:
        save_papers(session, papers, now)  # type: ignore[arg-type]


def read(database: Database, query: object, *args: object) -> object:
    with database.session() as session:
        return query(session, *args)  # type: ignore[operator]


# --- arrivals: which days exist -------------------------------------------------------


def test_arrivals_of_an_empty_store(database: Database) -> None:
    assert read(database, arrivals) == (None, 0, None, 0)


def test_arrivals_change_with_every_new_paper_even_at_the_same_instant(
    database: Database, hf_papers: tuple[Paper, ...], arxiv_papers: tuple[Paper, ...]
) -> None:
    save(database, hf_papers[:10], T0)
    first = read(database, arrivals)
    assert first == (T0, 10, T0, 10)
    # The scheduler saves several listings of one run at the same `now`.
    save(database, arxiv_papers, T0)
    assert read(database, arrivals) == (T0, 13, T0, 10)
    save(database, hf_papers[10:], T1)
    assert read(database, arrivals) == (T1, 20, T1, 20)


def test_arrivals_change_when_hugging_face_first_lists_a_known_paper(
    database: Database, hf_papers: tuple[Paper, ...]
) -> None:
    on_arxiv = replace(hf_papers[0], sources=("arxiv",), listed=date(2026, 6, 10))
    save(database, [on_arxiv, *hf_papers[1:5]], T0)
    before = read(database, arrivals)
    save(database, [hf_papers[0]], T0)  # the same instant: the count tells
    assert read(database, arrivals) == (T0, 5, T0, 5) != before


def test_arrivals_stay_when_nothing_arrives(
    database: Database, hf_papers: tuple[Paper, ...]
) -> None:
    save(database, hf_papers, T0)
    before = read(database, arrivals)
    later = [replace(p, upvotes=(p.upvotes or 0) + 1) for p in hf_papers]
    save(database, later, T1)  # upvotes move: the days' fingerprints tell, not arrivals
    save(database, hf_papers, T1)
    assert read(database, arrivals) == before


# --- fingerprints: what a day's rows hold -----------------------------------------------


def test_a_day_fingerprint_changes_with_upvotes_saved_at_the_same_instant(
    database: Database, hf_papers: tuple[Paper, ...]
) -> None:
    save(database, hf_papers, T0)
    before = read(database, day_fingerprint, HF_DAY)
    assert before[0] == 30
    paper = hf_papers[3]
    save(database, [replace(paper, upvotes=(paper.upvotes or 0) + 1)], T0)
    after_votes = read(database, day_fingerprint, HF_DAY)
    assert after_votes != before
    save(database, [replace(paper, upvotes=(paper.upvotes or 0) + 1, comments=9)], T0)
    assert read(database, day_fingerprint, HF_DAY) != after_votes


def test_a_day_fingerprint_changes_when_a_field_is_filled_or_a_link_changes(
    database: Database, hf_papers: tuple[Paper, ...]
) -> None:
    paper = hf_papers[0]
    save(database, [replace(paper, abstract="", organization=None, url_code=None)], T0)
    seen = {read(database, day_fingerprint, HF_DAY)}
    for later in (
        replace(paper, organization=None, url_code=None),  # the abstract is filled in
        replace(paper, url_code=None),  # the organisation too
        replace(paper, url_code="https://github.com/example/code"),
        replace(paper, url_code="https://github.com/example/other-code"),
    ):
        save(database, [later], T0)
        fingerprint = read(database, day_fingerprint, HF_DAY)
        assert fingerprint not in seen, later
        seen.add(fingerprint)


def test_a_day_fingerprint_covers_that_day_only(
    database: Database,
    hf_papers: tuple[Paper, ...],
    hf_page_papers: tuple[Paper, ...],
    arxiv_papers: tuple[Paper, ...],
) -> None:
    save(database, [*hf_papers, *hf_page_papers], T0)
    save(database, arxiv_papers, T0)
    page_day = read(database, day_fingerprint, HF_PAGE_DAY)
    arxiv_day = read(database, day_fingerprint, ARXIV_DAY)
    assert (page_day[0], arxiv_day[0]) == (13, 3)
    save(database, [replace(p, upvotes=(p.upvotes or 0) + 5) for p in hf_papers], T1)
    assert read(database, day_fingerprint, HF_PAGE_DAY) == page_day
    assert read(database, day_fingerprint, ARXIV_DAY) == arxiv_day
    assert read(database, day_fingerprint, date(2026, 6, 13))[0] == 0


def test_a_paper_moving_to_its_hugging_face_day_changes_both_days(
    database: Database, hf_papers: tuple[Paper, ...], arxiv_papers: tuple[Paper, ...]
) -> None:
    paper = hf_papers[0]
    on_arxiv = replace(paper, sources=("arxiv",), listed=ARXIV_DAY)
    save(database, [on_arxiv, *arxiv_papers, *hf_papers[1:]], T0)
    before = (read(database, day_fingerprint, ARXIV_DAY), read(database, day_fingerprint, HF_DAY))
    save(database, [paper], T0)
    after = (read(database, day_fingerprint, ARXIV_DAY), read(database, day_fingerprint, HF_DAY))
    assert (after[0][0], after[1][0]) == (before[0][0] - 1, before[1][0] + 1)


def test_the_hugging_face_fingerprint_ignores_arxiv_only_papers(
    database: Database, hf_papers: tuple[Paper, ...], arxiv_papers: tuple[Paper, ...]
) -> None:
    save(database, hf_papers, T0)
    before = read(database, hf_fingerprint, [HF_DAY])
    save(database, [replace(p, listed=HF_DAY) for p in arxiv_papers], T0)
    assert read(database, hf_fingerprint, [HF_DAY]) == before
    save(database, [replace(hf_papers[0], upvotes=500)], T0)
    assert read(database, hf_fingerprint, [HF_DAY]) != before


# --- the feed's days and papers ----------------------------------------------------------


def test_hf_days_are_the_latest_hugging_face_days_until_a_day(
    database: Database,
    hf_papers: tuple[Paper, ...],
    hf_page_papers: tuple[Paper, ...],
    arxiv_papers: tuple[Paper, ...],
) -> None:
    assert read(database, hf_days, HF_DAY, 7) == []
    other_days = [replace(p, listed=HF_DAY - timedelta(days=n)) for n, p in enumerate(hf_papers)]
    save(database, [*other_days[1:], *hf_page_papers], T0)
    save(database, [hf_papers[0]], T0)  # the listing's day again: counted once
    save(database, arxiv_papers, T0)  # arXiv-only days are no trending days
    days = read(database, hf_days, date(2026, 12, 31), 7)
    assert days == [HF_DAY - timedelta(days=n) for n in range(7)]
    assert read(database, hf_days, HF_DAY - timedelta(days=28), 7) == [
        HF_DAY - timedelta(days=28),
        HF_DAY - timedelta(days=29),
        HF_PAGE_DAY,
    ]


def test_top_hf_papers_are_the_first_of_the_day_page(
    database: Database, hf_papers: tuple[Paper, ...], arxiv_papers: tuple[Paper, ...]
) -> None:
    save(database, [*hf_papers, *(replace(p, listed=HF_DAY) for p in arxiv_papers)], T0)
    with database.session() as session:
        top = top_hf_papers(session, HF_DAY, 10)
        page = papers_of_day(session, HF_DAY)
        assert top_hf_papers(session, ARXIV_DAY, 10) == []
    assert [p.id for p in top] == [p.id for p in page[:10]]
    assert top[0].id == "2606.13681" and top[0].hf_seen_at == T0
