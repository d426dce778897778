"""The paper store's upsert rules, validators and fetch log, on a real SQLite file."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from digest.paper import Paper
from digest.sources import arxiv, hf
from digest.store import Database
from digest.store.papers import (
    FetchRecord,
    SaveReport,
    count_papers,
    get_validators,
    last_fetches,
    latest_day,
    list_papers,
    neighbour_days,
    papers_first_seen_between,
    papers_of_day,
    put_validators,
    record_fetch,
    save_papers,
    trending_order,
)

DATA = Path(__file__).parent / "data" / "sources"
T0 = datetime(2026, 6, 12, 10, 0, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)
T2 = T0 + timedelta(days=1)


@pytest.fixture
def database(store_database: Database) -> Database:
    """Every test here runs on SQLite and on PostgreSQL."""
    return store_database


@pytest.fixture(scope="module")
def hf_papers() -> tuple[Paper, ...]:
    return hf.parse_api((DATA / "hf_api_daily_papers_2026-06-12.json").read_bytes(), "api").papers


@pytest.fixture(scope="module")
def arxiv_papers() -> tuple[Paper, ...]:
    feed = (DATA / "arxiv_rss_2026-09-24_excerpt.xml").read_bytes()
    return arxiv.parse_feed(feed, "rss", include_cross=True).papers


def save(database: Database, papers: object, now: datetime = T0) -> SaveReport:
    with database.session() as session:
        return save_papers(session, papers, now)  # type: ignore[arg-type]


def stored(database: Database) -> dict[str, Paper]:
    with database.session() as session:
        return {paper.id: paper for paper in list_papers(session)}


def test_new_papers_are_stored_once(database: Database, hf_papers: tuple[Paper, ...]) -> None:
    assert save(database, hf_papers) == SaveReport(new=30, updated=0, unchanged=0)
    assert save(database, hf_papers, T1) == SaveReport(new=0, updated=0, unchanged=30)
    with database.session() as session:
        assert count_papers(session) == 30


def test_stored_paper_reads_back_equal(database: Database, hf_papers: tuple[Paper, ...]) -> None:
    save(database, hf_papers)
    back = stored(database)
    for paper in hf_papers:
        assert back[paper.id] == paper  # first_seen_at is not part of equality
        assert back[paper.id].first_seen_at == T0
        assert back[paper.id].first_seen_at.tzinfo is UTC


def test_a_batch_repeating_a_paper_counts_it_once(
    database: Database, hf_papers: tuple[Paper, ...]
) -> None:
    first = hf_papers[0]
    report = save(database, [first, replace(first, upvotes=5)])
    assert report == SaveReport(new=1)
    assert stored(database)[first.id].upvotes == 5  # the last sighting in a batch wins


def test_mutable_fields_are_updated(database: Database, hf_papers: tuple[Paper, ...]) -> None:
    save(database, hf_papers)
    paper = hf_papers[3]
    later = replace(
        paper,
        upvotes=(paper.upvotes or 0) + 10,
        comments=9,
        url_code="https://github.com/example/new",
        url_project="https://example.org/project",
    )
    assert save(database, [later, hf_papers[4]], T1) == SaveReport(updated=1, unchanged=1)
    kept = stored(database)[paper.id]
    assert kept.upvotes == (paper.upvotes or 0) + 10
    assert kept.comments == 9
    assert kept.url_code == "https://github.com/example/new"
    assert kept.url_project == "https://example.org/project"
    assert kept.first_seen_at == T0  # an update is not a new sighting


def test_unknown_values_never_erase_known_ones(
    database: Database, hf_papers: tuple[Paper, ...]
) -> None:
    save(database, hf_papers)
    paper = hf_papers[10]
    assert paper.upvotes and paper.url_code and paper.organization
    vague = replace(paper, upvotes=None, comments=None, url_code=None, organization=None)
    assert save(database, [vague], T1) == SaveReport(unchanged=1)
    assert stored(database)[paper.id] == paper


def test_first_sources_title_and_abstract_are_kept_and_sources_merged(
    database: Database, arxiv_papers: tuple[Paper, ...]
) -> None:
    seen_on_arxiv = arxiv_papers[0]
    save(database, [seen_on_arxiv])
    seen_on_hf = Paper(
        id=seen_on_arxiv.id,
        title="The Drift Contract:\n  Spectral Updates (HF's copy)",
        abstract="A different abstract.",
        authors=("Someone Else",),
        organization="Some Lab",
        published=date(2026, 9, 22),
        listed=date(2026, 9, 25),
        upvotes=12,
        comments=1,
        url_hf=f"https://huggingface.co/papers/{seen_on_arxiv.id}",
        sources=("hf",),
    )
    assert save(database, [seen_on_hf], T1) == SaveReport(updated=1)
    merged = stored(database)[seen_on_arxiv.id]
    assert merged.title == seen_on_arxiv.title
    assert merged.abstract == seen_on_arxiv.abstract
    assert merged.authors == seen_on_arxiv.authors
    assert merged.listed == seen_on_arxiv.listed  # the first listing day stays
    assert merged.sources == ("arxiv", "hf")
    # What the first sighting lacked is filled in; what changes over time is updated.
    assert merged.organization == "Some Lab"
    assert merged.published == date(2026, 9, 22)
    assert merged.url_hf == f"https://huggingface.co/papers/{seen_on_arxiv.id}"
    assert (merged.upvotes, merged.comments) == (12, 1)
    # Seeing it again from either source changes nothing more.
    assert save(database, [seen_on_hf, seen_on_arxiv], T2) == SaveReport(unchanged=1)


def test_empty_abstract_is_filled_by_a_later_sighting(
    database: Database, hf_papers: tuple[Paper, ...]
) -> None:
    from_card = replace(hf_papers[0], abstract="", authors=())
    save(database, [from_card])
    assert save(database, [hf_papers[0]], T1) == SaveReport(updated=1)
    assert stored(database)[hf_papers[0].id] == hf_papers[0]


def test_list_papers_newest_first_and_since(
    database: Database, hf_papers: tuple[Paper, ...], arxiv_papers: tuple[Paper, ...]
) -> None:
    save(database, hf_papers[:2], T0)
    save(database, arxiv_papers, T2)
    with database.session() as session:
        everything = list_papers(session)
        assert [p.id for p in everything] == sorted(p.id for p in arxiv_papers) + sorted(
            p.id for p in hf_papers[:2]
        )
        assert {p.id for p in list_papers(session, T2.date())} == {p.id for p in arxiv_papers}
        assert list_papers(session, T2 + timedelta(seconds=1)) == []
        window = papers_first_seen_between(session, T0, T2)
        assert [p.id for p in window] == sorted(p.id for p in hf_papers[:2])
        assert len(papers_first_seen_between(session, None, T2 + timedelta(hours=1))) == 5


def test_validators_round_trip(database: Database) -> None:
    url = "https://rss.arxiv.org/rss/cs.LG"
    with database.session() as session:
        assert get_validators(session, url) == (None, None)
        put_validators(session, url, '"v1"', "Thu, 24 Sep 2026 08:58:05 GMT", T0)
    with database.session() as session:
        assert get_validators(session, url) == ('"v1"', "Thu, 24 Sep 2026 08:58:05 GMT")
        put_validators(session, url, '"v2"', None, T1)
    with database.session() as session:
        assert get_validators(session, url) == ('"v2"', None)


def test_validators_too_long_for_their_columns_are_dropped(database: Database) -> None:
    url = "https://huggingface.co/api/daily_papers?date=2026-06-12"
    with database.session() as session:
        put_validators(session, url, '"' + "e" * 600 + '"', "x" * 200, T0)
    with database.session() as session:
        assert get_validators(session, url) == (None, None)


def test_fetch_log_keeps_the_latest_per_source(database: Database) -> None:
    def record(source: str, started: datetime, error: str | None = None) -> FetchRecord:
        return FetchRecord(source, date(2026, 6, 12), "origin", started, 3, 2, 1, 0, error)

    with database.session() as session:
        record_fetch(session, record("hf", T0))
        record_fetch(session, record("arxiv", T0))
        record_fetch(session, record("hf", T1, "hf: cannot fetch x: HTTP 503"))
    with database.session() as session:
        latest = last_fetches(session)
    assert latest["hf"] == record("hf", T1, "hf: cannot fetch x: HTTP 503")
    assert latest["arxiv"] == record("arxiv", T0)


def test_a_failed_transaction_stores_nothing(
    database: Database, hf_papers: tuple[Paper, ...]
) -> None:
    with pytest.raises(RuntimeError), database.session() as session:
        save_papers(session, hf_papers, T0)
        raise RuntimeError("something after saving failed")
    with database.session() as session:
        assert count_papers(session) == 0


def test_a_row_stored_before_the_limits_is_read_within_them(database: Database) -> None:
    # Rows kept by a version that stored whole abstracts (25 MB, say) are bounded as read,
    # so a preview or a digest never carries them whole.
    from sqlalchemy import update

    from digest.paper import CUT, MAX_ABSTRACT
    from digest.store.models import PaperRow

    with database.session() as session:
        save_papers(session, [Paper(id="2606.00001", title="T", abstract="short")], T0)
        session.execute(
            update(PaperRow).where(PaperRow.id == "2606.00001").values(abstract="word " * 400_000)
        )
    with database.session() as session:
        (paper,) = list_papers(session)
    assert len(paper.abstract) <= MAX_ABSTRACT and paper.abstract.endswith(CUT)


def test_a_paper_remembers_its_first_hugging_face_listing(
    database: Database, hf_papers: tuple[Paper, ...]
) -> None:
    paper = hf_papers[0]
    on_arxiv = replace(paper, sources=("arxiv",), listed=date(2026, 6, 11), upvotes=None)
    save(database, [on_arxiv], T0)
    assert stored(database)[paper.id].hf_seen_at is None
    assert not stored(database)[paper.id].on_hf
    # Hugging Face lists it the next day: trending counts it from then, under HF's day.
    assert save(database, [paper], T2) == SaveReport(new=0, updated=1, unchanged=0)
    back = stored(database)[paper.id]
    assert (back.hf_listed, back.hf_seen_at, back.first_seen_at) == (paper.listed, T2, T0)
    assert back.listed == date(2026, 6, 11)  # the first listing day stays
    # Seen there again later (a refetch): the first HF sighting stays, upvotes move on.
    later = replace(paper, listed=date(2026, 6, 13), upvotes=(paper.upvotes or 0) + 5)
    save(database, [later], T2 + timedelta(hours=5))
    back = stored(database)[paper.id]
    assert (back.hf_listed, back.hf_seen_at, back.upvotes) == (paper.listed, T2, later.upvotes)


def test_a_paper_first_seen_on_hugging_face_is_listed_there_at_once(
    database: Database, hf_papers: tuple[Paper, ...]
) -> None:
    save(database, hf_papers, T0)
    back = stored(database)
    assert {(p.hf_listed, p.hf_seen_at) for p in back.values()} == {(date(2026, 6, 12), T0)}


# --- the /papers day queries: papers_of_day, neighbour_days, latest_day ----------------

HF_DAY = date(2026, 6, 12)  # the saved Hugging Face listing's day
HF_PAGE_DAY = date(2024, 8, 1)  # the saved Hugging Face page's day
ARXIV_DAY = date(2026, 9, 24)  # the saved arXiv RSS excerpt's day: arXiv papers only
ARXIV_ATOM_DAY = date(2026, 9, 25)  # the saved arXiv Atom excerpt's day


def _listing_days(database: Database, hf_papers: tuple[Paper, ...]) -> None:
    """Every saved listing with a day: two Hugging Face days and two arXiv-only days."""
    page = hf.parse_page((DATA / "hf_papers_page_2024-08-01.html").read_bytes(), "page")
    rss = (DATA / "arxiv_rss_2026-09-24_excerpt.xml").read_bytes()
    atom = (DATA / "arxiv_atom_2026-09-25_excerpt.xml").read_bytes()
    save(database, page.papers, T0)
    save(database, hf_papers, T0)
    save(database, arxiv.parse_feed(rss, "rss", include_cross=True).papers, T1)
    save(database, arxiv.parse_feed(atom, "atom", include_cross=True).papers, T1)


def _trending_first(a: Paper, b: Paper) -> bool:
    """Whether `a` may come before `b`: more upvotes, or as many and more comments, or
    as many of both and a lower id."""
    votes_a, votes_b = a.upvotes or 0, b.upvotes or 0
    if votes_a != votes_b:
        return votes_a > votes_b
    if (a.comments or 0) != (b.comments or 0):
        return (a.comments or 0) > (b.comments or 0)
    return a.id < b.id


def test_papers_of_a_hugging_face_day_are_ranked_by_upvotes_comments_then_id(
    database: Database, hf_papers: tuple[Paper, ...]
) -> None:
    _listing_days(database, hf_papers)
    with database.session() as session:
        ranked = papers_of_day(session, HF_DAY)
    assert {p.id for p in ranked} == {p.id for p in hf_papers}
    assert [(p.id, p.upvotes) for p in ranked[:3]] == [
        ("2606.13681", 118),
        ("2606.13392", 103),
        ("2606.08063", 74),
    ]
    # The listing has ties on upvotes (eight papers at 2 upvotes and 2 comments, two at
    # 7 upvotes with 2 and 3 comments): every neighbouring pair is in order.
    for before, after in itertools.pairwise(ranked):
        assert _trending_first(before, after), (before.id, after.id)
    assert all(p.hf_listed == HF_DAY and p.on_hf for p in ranked)


def test_a_day_with_only_arxiv_papers_lists_them_newest_first(
    database: Database, hf_papers: tuple[Paper, ...]
) -> None:
    _listing_days(database, hf_papers)
    with database.session() as session:
        listed = papers_of_day(session, ARXIV_DAY)
    # No submission dates in the RSS excerpt: the ids, descending, decide.
    assert [p.id for p in listed] == ["2609.26820", "2609.26811", "2205.06398"]
    assert not any(p.on_hf for p in listed)


def test_a_day_on_both_sources_lists_hugging_face_first_then_arxiv_only_papers(
    database: Database, hf_papers: tuple[Paper, ...], arxiv_papers: tuple[Paper, ...]
) -> None:
    on_arxiv_that_day = [replace(p, listed=HF_DAY) for p in arxiv_papers]
    # One paper HF lists was on arXiv the day before: it shows on its HF day only.
    first_on_arxiv = replace(hf_papers[5], sources=("arxiv",), listed=date(2026, 6, 11))
    save(database, [first_on_arxiv, *on_arxiv_that_day], T0)
    save(database, hf_papers, T1)
    with database.session() as session:
        listed = papers_of_day(session, HF_DAY)
        assert papers_of_day(session, date(2026, 6, 11)) == []
    assert [p.id for p in listed[:30]] == [p.id for p in sorted(listed[:30], key=trending_order)]
    assert {p.id for p in listed[:30]} == {p.id for p in hf_papers}
    assert [p.id for p in listed[30:]] == ["2609.26820", "2609.26811", "2205.06398"]


def test_a_day_without_papers_is_empty(database: Database, hf_papers: tuple[Paper, ...]) -> None:
    with database.session() as session:
        assert papers_of_day(session, HF_DAY) == []
    _listing_days(database, hf_papers)
    with database.session() as session:
        assert papers_of_day(session, date(2026, 6, 13)) == []


def test_neighbour_days_are_the_nearest_days_with_papers(
    database: Database, hf_papers: tuple[Paper, ...]
) -> None:
    with database.session() as session:
        assert neighbour_days(session, HF_DAY) == (None, None)
    _listing_days(database, hf_papers)
    with database.session() as session:
        assert neighbour_days(session, HF_PAGE_DAY) == (None, HF_DAY)
        assert neighbour_days(session, HF_DAY) == (HF_PAGE_DAY, ARXIV_DAY)
        assert neighbour_days(session, ARXIV_DAY) == (HF_DAY, ARXIV_ATOM_DAY)
        assert neighbour_days(session, ARXIV_ATOM_DAY) == (ARXIV_DAY, None)
        # A day without papers has neighbours too.
        assert neighbour_days(session, date(2026, 7, 1)) == (HF_DAY, ARXIV_DAY)


def test_a_paper_listed_on_hugging_face_later_moves_to_that_day(
    database: Database, hf_papers: tuple[Paper, ...]
) -> None:
    paper = hf_papers[0]
    save(database, [replace(paper, sources=("arxiv",), listed=date(2026, 6, 10))], T0)
    with database.session() as session:
        assert latest_day(session, HF_DAY) == date(2026, 6, 10)
    save(database, [paper], T1)
    with database.session() as session:
        assert latest_day(session, HF_DAY) == HF_DAY
        assert neighbour_days(session, HF_DAY) == (None, None)  # 10 June has none left


def test_latest_day_is_the_most_recent_day_with_papers_until_a_day(
    database: Database, hf_papers: tuple[Paper, ...]
) -> None:
    with database.session() as session:
        assert latest_day(session, HF_DAY) is None
    _listing_days(database, hf_papers)
    with database.session() as session:
        assert latest_day(session, HF_DAY) == HF_DAY
        assert latest_day(session, HF_DAY - timedelta(days=1)) == HF_PAGE_DAY
        assert latest_day(session, date(2026, 9, 30)) == ARXIV_ATOM_DAY
        assert latest_day(session, ARXIV_DAY) == ARXIV_DAY
        assert latest_day(session, HF_PAGE_DAY - timedelta(days=1)) is None
