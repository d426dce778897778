"""Hostile listings (issue 14): every stored field is bounded, and so is what is read.

A listing with a 25 MB abstract was stored whole, and `digest preview` then took 1.3 GB.
These tests edit the real saved pages into hostile ones (huge abstract, title, author
list, names, organisation, links) and check what the parsers hand on, what the fetcher
and `read_listing_file` accept, and what a hostile listing costs in memory against the
real one, from parsing to a rendered sample.
"""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from pytest_httpserver import HTTPServer

from digest.config import Settings
from digest.errors import FetchError, ParseError
from digest.jobs.mail import sample_digest_html
from digest.paper import (
    CUT,
    MAX_ABSTRACT,
    MAX_AUTHORS,
    MAX_CATEGORIES,
    MAX_NAME,
    MAX_ORGANIZATION,
    MAX_TITLE,
    Paper,
)
from digest.sources import PoliteClient, arxiv, hf, read_listing_file
from digest.store import open_database
from digest.store.papers import list_papers, save_papers
from digest.store.subscribers import create_subscriber, get_subscriber

DATA = Path(__file__).parent / "data" / "sources"
HF_API = DATA / "hf_api_daily_papers_2026-06-12.json"
ARXIV_RSS = DATA / "arxiv_rss_2026-09-24_excerpt.xml"
ARXIV_API = DATA / "arxiv_api_query_2026-06-14.xml"
NOW = datetime(2026, 6, 12, 9, 0, tzinfo=UTC)
MB = 1024 * 1024


def words(count: int, word: str = "diffusion") -> str:
    """`count` short words: the shape that costs most to split (one object per word)."""
    return " ".join([word] * count)


def assert_bounded(paper: Paper) -> None:
    """Every field of `paper` within the limits, each cut one marked."""
    assert len(paper.title) <= MAX_TITLE and len(paper.abstract) <= MAX_ABSTRACT
    assert len(paper.authors) <= MAX_AUTHORS
    assert all(len(name) <= MAX_NAME for name in paper.authors)
    assert paper.organization is None or len(paper.organization) <= MAX_ORGANIZATION
    assert len(paper.categories) <= MAX_CATEGORIES
    links = (paper.url_abs, paper.url_pdf, paper.url_hf, paper.url_code, paper.url_project)
    assert all(link is None or len(link) <= 500 for link in links)


def hostile_hf_api(abstract_words: int = 2_000_000) -> bytes:
    """The real API answer with its first entry made as large as it can be made."""
    entries = json.loads(HF_API.read_bytes())
    paper = entries[0]["paper"]
    paper["title"] = words(200_000, "Title")
    paper["summary"] = words(abstract_words)
    paper["authors"] = [{"name": words(5_000, "Ada")}] + [
        {"name": f"Author {n}"} for n in range(MAX_AUTHORS * 3)
    ]
    entries[0]["organization"] = {"fullname": words(100_000, "Org")}
    paper["githubRepo"] = "https://github.com/" + "x" * 100_000
    return json.dumps(entries).encode()


# --- every stored field is bounded ---------------------------------------------------


@pytest.mark.parametrize(
    "path", sorted(p for p in DATA.iterdir() if p.suffix in (".json", ".html", ".xml"))
)
def test_real_listings_are_never_cut(path: Path) -> None:
    # The limits are generous: nothing real is cut (the 533 authors of the 2024 day page
    # included), so the marker only ever means a hostile or broken listing.
    for paper in read_listing_file(path).papers:
        fields = (paper.title, paper.abstract, paper.organization or "", *paper.authors)
        assert not any(field.endswith(CUT) for field in fields), paper.id


def test_hostile_hf_entry_is_bounded_and_marked() -> None:
    normal = hf.parse_api(HF_API.read_bytes(), "normal")
    listing = hf.parse_api(hostile_hf_api(), "hostile")
    paper = listing.papers[0]
    assert_bounded(paper)
    assert paper.title.endswith(CUT) and paper.title.startswith("Title Title")
    assert paper.abstract.endswith(CUT) and len(paper.abstract) > MAX_ABSTRACT - 20
    assert len(paper.authors) == MAX_AUTHORS and paper.authors[-1] == CUT
    assert paper.authors[0].endswith(CUT) and paper.authors[1] == "Author 0"
    assert paper.organization is not None and paper.organization.endswith(CUT)
    assert paper.url_code is None  # a link too long to store is dropped, never cut
    # The other entries read as they do from the real answer.
    assert listing.papers[1:] == normal.papers[1:]


def test_hostile_arxiv_rss_item_is_bounded_and_marked() -> None:
    root = etree.fromstring(ARXIV_RSS.read_bytes())
    item = root.find("channel/item")
    assert item is not None
    item.find("title").text = words(100_000, "Title")  # type: ignore[union-attr]
    description = item.find("description")
    assert description is not None
    prefix = description.text.split("Abstract:")[0]  # type: ignore[union-attr]
    description.text = prefix + "Abstract: " + words(300_000)  # lxml: < 10 MB a node
    creator = item.find("{http://purl.org/dc/elements/1.1/}creator")
    assert creator is not None
    creator.text = ", ".join([words(1_000, "Ada")] + [f"Author {n}" for n in range(5_000)])
    for n in range(200):
        etree.SubElement(item, "category").text = f"cs.X{n}"
    etree.SubElement(item, "category").text = "c" * 1_000
    listing = arxiv.parse_feed(etree.tostring(root), "hostile")
    paper = next(p for p in listing.papers if p.title.startswith("Title"))
    assert_bounded(paper)
    assert paper.title.endswith(CUT) and paper.abstract.endswith(CUT)
    assert len(paper.abstract) > MAX_ABSTRACT - 20
    assert paper.authors[0].endswith(CUT) and paper.authors[1] == "Author 0"
    assert len(paper.authors) == MAX_AUTHORS and paper.authors[-1] == CUT
    assert len(paper.categories) == MAX_CATEGORIES and "c" * 1_000 not in paper.categories


def test_hostile_arxiv_api_entry_is_bounded() -> None:
    atom = "{http://www.w3.org/2005/Atom}"
    root = etree.fromstring(ARXIV_API.read_bytes())
    entry = root.find(f"{atom}entry")
    assert entry is not None
    entry.find(f"{atom}summary").text = words(300_000)  # type: ignore[union-attr]
    for n in range(MAX_AUTHORS + 10):
        etree.SubElement(etree.SubElement(entry, f"{atom}author"), f"{atom}name").text = (
            f"Author {n} " + "x" * 500
        )
    paper = arxiv.parse_feed(etree.tostring(root), "hostile").papers[0]
    assert_bounded(paper)
    assert paper.abstract.endswith(CUT)
    assert len(paper.authors) == MAX_AUTHORS and paper.authors[-1] == CUT


# --- what is read at all -------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "limit", "what"),
    [(b"[", hf.MAX_BYTES, "8 MB"), (b"<!DOCTYPE html>", hf.MAX_BYTES, "8 MB")],
)
def test_a_saved_file_larger_than_any_listing_is_refused(
    tmp_path: Path, start: bytes, limit: int, what: str
) -> None:
    path = tmp_path / "huge"
    path.write_bytes(start + b" " * limit)
    with pytest.raises(ParseError, match=f"larger than {what}, more than any hf listing"):
        read_listing_file(path)


def test_a_saved_feed_larger_than_any_listing_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.xml"
    with path.open("wb") as handle:
        handle.write(b"<?xml version='1.0'?><rss>")
        handle.truncate(arxiv.MAX_BYTES + 1)  # sparse: no 32 MB written
    with pytest.raises(ParseError, match="larger than 32 MB, more than any arxiv listing"):
        read_listing_file(path)


def test_hf_fetch_refuses_an_answer_larger_than_any_day(httpserver: HTTPServer) -> None:
    huge = b"[" + b" " * hf.MAX_BYTES + b"]"
    httpserver.expect_request("/api/daily_papers").respond_with_data(huge)
    httpserver.expect_request("/papers/date/2026-06-12").respond_with_data(huge)
    client = PoliteClient(user_agent="digest-tests/1", retries=0)
    with client, pytest.raises(FetchError) as raised:
        hf.fetch(client, httpserver.url_for("/"), NOW.date())
    # Both ways in are refused, each for its size, without parsing anything.
    assert raised.value.what.count("larger than 8 MB, more than any listing: refused") == 2


# --- what a hostile listing costs ------------------------------------------------------


def _peak_of(run: Callable[[], object]) -> int:
    """Peak bytes traced while `run` runs, over what was allocated before."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        start = tracemalloc.get_traced_memory()[0]
        run()
        return tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()


def _parse_store_and_sample(make_settings: Any, folder: Path, content: bytes) -> Callable[[], str]:
    """Parse `content`, store it in a fresh database and render a matching sample."""
    settings: Settings = make_settings(service={"data_dir": str(folder)})
    database = open_database(settings)
    with database.session() as session:
        created = create_subscriber(
            session,
            "ada@example.org",
            "diffusion\nauthor:Ada\norg:Org",
            send_time="08:00",
            timezone="UTC",
            now=NOW,
            status="active",
        )
        subscriber = get_subscriber(session, created.id)
    assert subscriber is not None

    def run() -> str:
        listing = hf.parse_api(content, folder.name)
        with database.session() as session:
            save_papers(session, listing.papers, NOW - timedelta(days=1))
        del listing
        return sample_digest_html(settings, database, subscriber, now=NOW)

    return run


def test_a_hostile_listing_costs_at_most_a_few_mb_more_than_a_real_one(
    make_settings: Any, tmp_path: Path
) -> None:
    # 2 MB of abstract, one object per word if split whole; plus a huge title, author
    # list, names and organisation. Parsed, stored, then matched and rendered as a
    # sample: everything a fetch and a manage-page sample do with it.
    normal = HF_API.read_bytes()
    hostile = hostile_hf_api(abstract_words=200_000)
    _parse_store_and_sample(make_settings, tmp_path / "warm", normal)()  # imports, caches
    normal_peak = _peak_of(_parse_store_and_sample(make_settings, tmp_path / "normal", normal))
    hostile_run = _parse_store_and_sample(make_settings, tmp_path / "hostile", hostile)
    hostile_peak = _peak_of(hostile_run)
    extra_input = len(hostile) - len(normal)
    # Reading the input costs about twice its size (the text, then the parsed JSON);
    # nothing after it may grow with the input: a few MB more in all.
    assert hostile_peak - normal_peak < 2 * extra_input + 3 * MB, (
        f"normal {normal_peak / MB:.1f} MB, hostile {hostile_peak / MB:.1f} MB "
        f"for {extra_input / MB:.1f} MB more input"
    )


def test_what_a_hostile_listing_stores_is_small(settings: Settings) -> None:
    database = open_database(settings)
    with database.session() as session:
        save_papers(session, hf.parse_api(hostile_hf_api(), "hostile").papers, NOW)
    with database.session() as session:
        stored = {paper.id: paper for paper in list_papers(session)}
    hostile = stored[json.loads(HF_API.read_bytes())[0]["paper"]["id"]]
    size = sum(
        len(text or "")
        for text in (hostile.title, hostile.abstract, hostile.organization, *hostile.authors)
    )
    # About 10 MB of text came in; what is kept is at most the limits (1,000 names of at
    # most 100 characters being the largest part).
    assert size < MAX_TITLE + MAX_ABSTRACT + MAX_ORGANIZATION + MAX_AUTHORS * MAX_NAME
    assert size < 40_000, f"{size} characters stored"
