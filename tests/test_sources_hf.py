"""Hugging Face parsers on real saved pages: the API answer, a day page, a paper page."""

from __future__ import annotations

import copy
import html
import json
import re
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import html as lxml_html

from digest.errors import ParseError
from digest.paper import normalise_space, parse_arxiv_id
from digest.sources import Listing, detect_kind, hf, read_listing_file

DATA = Path(__file__).parent / "data" / "sources"
API_FILE = DATA / "hf_api_daily_papers_2026-06-12.json"
PAGE_FILE = DATA / "hf_papers_page_2024-08-01.html"
DETAIL_FILE = DATA / "hf_paper_detail_2509.24002_prettified.html"
API_BYTES = API_FILE.read_bytes()
PAGE_BYTES = PAGE_FILE.read_bytes()
DETAIL_BYTES = DETAIL_FILE.read_bytes()
API_DAY = date(2026, 6, 12)
PAGE_DAY = date(2024, 8, 1)

_PROPS = re.compile(r'(data-target="DailyPapers" data-props=")([^"]*)(")')


def page_with_props(props: Any, template: str | None = None) -> str:
    """The real 2024 day page with its embedded DailyPapers JSON replaced by `props`."""
    template = template or PAGE_BYTES.decode()
    escaped = html.escape(json.dumps(props), quote=True)
    return _PROPS.sub(lambda found: found.group(1) + escaped + found.group(3), template, count=1)


def page_props() -> dict[str, Any]:
    """The JSON embedded in the real 2024 day page."""
    found = _PROPS.search(PAGE_BYTES.decode())
    assert found is not None
    return json.loads(html.unescape(found.group(2)))


def page_without_embedded_data() -> BeautifulSoup:
    """The real day page with its hydration data gone; the cards (inside that div) stay."""
    soup = BeautifulSoup(PAGE_BYTES, "lxml")
    div = soup.find("div", attrs={"data-target": "DailyPapers"})
    del div["data-target"], div["data-props"]
    return soup


def by_id(listing: Listing) -> dict[str, Any]:
    return {paper.id: paper for paper in listing.papers}


# --- The JSON API -----------------------------------------------------------------------


def test_api_fixture_has_thirty_papers_of_its_day() -> None:
    listing = hf.parse_api(API_BYTES, "api.json")
    assert listing.source == "hf"
    assert listing.origin == "api.json"
    assert listing.day == API_DAY
    assert len(listing.papers) == 30
    assert listing.skipped == 0
    assert listing.note == ""
    assert sum(1 for paper in listing.papers if paper.organization) == 16
    assert {paper.listed for paper in listing.papers} == {API_DAY}
    assert {paper.sources for paper in listing.papers} == {("hf",)}
    # The API's order is kept (it is not sorted by upvotes).
    assert [paper.id for paper in listing.papers[:3]] == ["2606.00467", "2606.12730", "2606.13594"]
    assert listing.papers[-1].id == "2606.13106"


def test_api_fixture_named_paper_fields() -> None:
    paper = by_id(hf.parse_api(API_BYTES, "api.json"))["2606.13681"]
    assert paper.title == (
        "EvoArena: Tracking Memory Evolution for Robust LLM Agents in Dynamic Environments"
    )
    assert paper.upvotes == 118
    assert paper.comments == 3
    assert paper.organization == "Massachusetts Institute of Technology"
    assert paper.published == date(2026, 6, 11)
    assert paper.listed == API_DAY
    assert len(paper.authors) == 14
    assert paper.url_code == "https://github.com/Aiden0526/EvoArena"
    assert paper.url_project == "https://aiden0526.github.io/EvoArena/"
    assert paper.url_abs == "https://arxiv.org/abs/2606.13681"
    assert paper.url_pdf == "https://arxiv.org/pdf/2606.13681"
    assert paper.url_hf == "https://huggingface.co/papers/2606.13681"
    assert paper.categories == ()


def test_api_fixture_first_paper_exactly() -> None:
    raw = json.loads(API_BYTES)[0]
    paper = hf.parse_api(API_BYTES, "api.json").papers[0]
    assert paper.id == "2606.00467"
    assert paper.title == (
        "On the Limits of LLM Adaptability: Impact of Model-Internalized Priors on "
        "Annotation Task Performance"
    )
    assert paper.abstract == normalise_space(raw["paper"]["summary"])
    assert paper.abstract.startswith("Large Language Models (LLMs) are increasingly used")
    assert paper.authors == ("Etienne Casanova", "Rafal Kocielnik", "R. Michael Alvarez")
    assert paper.organization == "California institute of technology"
    # paper.publishedAt is the arXiv date; the entry's own publishedAt is shifted to US time.
    assert paper.published == date(2026, 5, 30)
    assert paper.upvotes == 0
    assert paper.comments == 2
    assert paper.url_code is None
    assert paper.url_project is None


def test_api_keeps_hidden_authors_in_order() -> None:
    paper = by_id(hf.parse_api(API_BYTES, "api.json"))["2606.12575"]
    assert paper.authors[2:5] == ("David Liu", "Dengyang Jiang", "Liangchen Li")
    assert len(paper.authors) == 10


def test_api_for_the_day_asked_for() -> None:
    listing = hf.parse_api(API_BYTES, "url", API_DAY)
    assert listing.day == API_DAY
    assert len(listing.papers) == 30


def test_api_answer_for_another_day_is_no_listing() -> None:
    listing = hf.parse_api(API_BYTES, "url", date(2026, 6, 13))
    assert listing.papers == ()
    assert listing.day == date(2026, 6, 13)
    assert listing.note == "no listing for that day (the site answered with 2026-06-12)"


def test_api_empty_list_is_no_listing() -> None:
    listing = hf.parse_api(b"[]", "url", date(2026, 6, 13))
    assert listing.papers == ()
    assert listing.skipped == 0
    assert listing.note == "no listing for that day (no papers listed)"


def test_api_title_line_wraps_are_normalised() -> None:
    entries = json.loads(API_BYTES)
    entries[1]["paper"]["title"] = "Rethinking Psychometric Evaluation\n  of LLMs"
    listing = hf.parse_api(json.dumps(entries), "api.json")
    assert listing.papers[1].title == "Rethinking Psychometric Evaluation of LLMs"


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda entry: entry["paper"].pop("id"), "paper.id is missing"),
        (lambda entry: entry["paper"].update(id="not-an-id"), "is not an arXiv id"),
        (lambda entry: entry["paper"].update(title=["a", "list"]), "paper.title is not text"),
        (lambda entry: entry["paper"].update(upvotes="many"), "paper.upvotes is not a count"),
        (lambda entry: entry["paper"].update(authors="Someone"), "paper.authors is not a list"),
        (lambda entry: entry["paper"].update(publishedAt="yesterday"), "is not a date"),
        (lambda entry: entry.pop("paper"), "entry.paper is not an object"),
    ],
)
def test_api_one_malformed_entry_is_skipped_and_counted(
    mutate: Any, problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    entries = json.loads(API_BYTES)
    mutate(entries[4])
    listing = hf.parse_api(json.dumps(entries), "api.json")
    assert len(listing.papers) == 29
    assert listing.skipped == 1
    assert "2606.10423" not in by_id(listing)
    assert problem in caplog.text
    assert "entry 5" in caplog.text


def test_api_entry_that_is_not_an_object_is_skipped() -> None:
    entries = json.loads(API_BYTES)
    entries.insert(0, "not an entry")
    listing = hf.parse_api(json.dumps(entries), "api.json")
    assert (len(listing.papers), listing.skipped) == (30, 1)


def test_api_missing_optional_fields_are_none() -> None:
    entries = json.loads(API_BYTES)
    for key in ("upvotes", "githubRepo", "projectPage", "publishedAt", "summary"):
        entries[0]["paper"].pop(key, None)
    entries[0].pop("organization")
    entries[0]["paper"].pop("organization")
    entries[0].pop("numComments")
    paper = hf.parse_api(json.dumps(entries), "api.json").papers[0]
    assert (paper.upvotes, paper.comments, paper.organization, paper.published) == (None,) * 4
    assert paper.abstract == ""


def test_api_unusable_links_are_dropped_not_stored() -> None:
    entries = json.loads(API_BYTES)
    entries[1]["paper"]["githubRepo"] = "javascript:alert(1)"
    entries[1]["paper"]["projectPage"] = "https://example.org/" + "x" * 600
    paper = hf.parse_api(json.dumps(entries), "api.json").papers[1]
    assert paper.url_code is None
    assert paper.url_project is None


def test_api_every_entry_malformed_is_a_parse_error() -> None:
    entries = [{"paper": {"title": "no id"}}, {"paper": {"id": "2606.00001"}}]
    with pytest.raises(ParseError) as raised:
        hf.parse_api(json.dumps(entries), "api.json")
    assert raised.value.what == (
        "none of the 2 API entries could be read (entry 1: paper.id is missing)"
    )


@pytest.mark.parametrize(
    ("content", "what"),
    [
        (b"", "the response is empty"),
        (b"  \n", "the response is empty"),
        (b"<html><body>Too many requests</body></html>", "is not valid JSON"),
        (API_BYTES[: len(API_BYTES) // 2], "is not valid JSON"),
        (b'{"dailyPapers": []}', "expected a JSON array of daily papers, got a dict"),
        (b'{"error": "Invalid date"}', 'the API answered with an error: "Invalid date"'),
        (b"[" * 100_000, "nested too deeply"),
    ],
)
def test_api_bad_input_is_a_parse_error(content: bytes, what: str) -> None:
    with pytest.raises(ParseError) as raised:
        hf.parse_api(content, "https://hf.test/api/daily_papers?date=2026-06-12")
    error = raised.value
    assert error.source == "hf"
    assert error.where == "https://hf.test/api/daily_papers?date=2026-06-12"
    assert what in error.what
    assert str(error).startswith("hf: cannot read https://hf.test/api/daily_papers")


# --- The day page -----------------------------------------------------------------------


def test_day_page_has_thirteen_papers_from_embedded_data() -> None:
    listing = hf.parse_page(PAGE_BYTES, "page.html")
    assert listing.day == PAGE_DAY
    assert len(listing.papers) == 13
    assert listing.skipped == 0
    assert listing.note == ""
    assert listing.papers[0].id == "2407.21783"
    assert listing.papers[-1].id == "2404.01300"
    assert all(paper.abstract for paper in listing.papers)
    assert {paper.listed for paper in listing.papers} == {PAGE_DAY}


def test_day_page_named_paper_fields() -> None:
    paper = by_id(hf.parse_page(PAGE_BYTES, "page.html"))["2407.21770"]
    # The embedded title keeps arXiv's hard line wrap ("Modality-Aware\n  Experts").
    assert paper.title == (
        "MoMa: Efficient Early-Fusion Pre-training with Mixture of Modality-Aware Experts"
    )
    assert paper.upvotes == 19
    assert paper.comments == 5
    assert len(paper.authors) == 8
    assert paper.published == date(2024, 7, 31)
    assert paper.organization is None
    assert paper.url_hf == "https://huggingface.co/papers/2407.21770"
    assert "\n" not in paper.abstract


def test_day_page_for_another_day_is_no_listing() -> None:
    listing = hf.parse_page(PAGE_BYTES, "page.html", date(2024, 8, 2))
    assert listing.papers == ()
    assert listing.note == "no listing for that day (the site answered with 2024-08-01)"


def test_day_page_cards_are_the_fallback_without_embedded_data() -> None:
    soup = page_without_embedded_data()
    listing = hf.parse_page(str(soup), "page.html", PAGE_DAY)
    expected = hf.parse_page(PAGE_BYTES, "page.html")
    assert [p.id for p in listing.papers] == [p.id for p in expected.papers]
    assert [p.title for p in listing.papers] == [p.title for p in expected.papers]
    assert [p.upvotes for p in listing.papers] == [p.upvotes for p in expected.papers]
    assert [p.comments for p in listing.papers] == [p.comments for p in expected.papers]
    assert {p.abstract for p in listing.papers} == {""}
    assert {p.listed for p in listing.papers} == {PAGE_DAY}
    assert listing.note == "read from the paper cards: no abstracts or authors"


def test_day_page_broken_embedded_data_falls_back_to_cards() -> None:
    broken = _PROPS.sub(r"\1{&quot;date&quot;:\3", PAGE_BYTES.decode(), count=1)
    listing = hf.parse_page(broken, "page.html")
    assert len(listing.papers) == 13
    assert listing.note.startswith("read from the paper cards")
    assert "is not valid JSON" in listing.note


def test_day_page_broken_embedded_data_without_cards_is_a_parse_error() -> None:
    soup = BeautifulSoup(PAGE_BYTES, "lxml")
    for article in soup.find_all("article"):
        article.decompose()
    soup.find("div", attrs={"data-target": "DailyPapers"})["data-props"] = '{"date": "2024'
    with pytest.raises(ParseError, match='DailyPapers" data-props is not valid JSON'):
        hf.parse_page(str(soup), "page.html")


def test_day_page_embeds_api_shaped_entries() -> None:
    props = page_props()
    props["date"] = "2026-06-12T00:00:00.000Z"
    props["dailyPapers"] = json.loads(API_BYTES)
    listing = hf.parse_page(page_with_props(props), "page.html", API_DAY)
    assert len(listing.papers) == 30
    assert listing.papers == hf.parse_api(API_BYTES, "page.html").papers


def test_day_page_one_malformed_entry_is_skipped() -> None:
    props = page_props()
    props["dailyPapers"][2]["paper"]["id"] = None
    listing = hf.parse_page(page_with_props(props), "page.html")
    assert (len(listing.papers), listing.skipped) == (12, 1)


# --- The paper page (a listing of one) --------------------------------------------------


def test_paper_page_is_a_listing_of_one() -> None:
    listing = hf.parse_page(DETAIL_BYTES, "detail.html")
    assert listing.day == date(2025, 10, 1)
    assert listing.skipped == 0
    (paper,) = listing.papers
    assert paper.id == "2509.24002"
    assert paper.title == (
        "MCPMark: A Benchmark for Stress-Testing Realistic and Comprehensive MCP Use"
    )
    assert paper.abstract.startswith("MCP standardizes how LLMs interact with external systems")
    assert len(paper.authors) == 15
    assert paper.authors[0] == "Zijian Wu"
    assert paper.authors[-1] == "Michael Qizhe Shieh"
    assert paper.organization == "National University of Singapore"
    assert paper.upvotes == 118
    assert paper.comments == 2
    assert paper.published == date(2025, 9, 28)
    assert paper.listed == date(2025, 10, 1)
    assert paper.url_code == "https://github.com/eval-sys/mcpmark"
    assert paper.url_project == "https://mcpmark.ai/"


# --- Pages we cannot read ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "what"),
    [
        (b"", "the page is empty"),
        (API_BYTES, "not an HTML page"),
        (PAGE_BYTES[: len(PAGE_BYTES) // 2], "the page is truncated"),
        (
            b"<!DOCTYPE html><html><head><title>Human Verification</title></head>"
            b"<body><script src='/challenge.js'></script></body></html>",
            "unknown page layout",
        ),
    ],
)
def test_page_bad_input_is_a_parse_error(content: bytes, what: str) -> None:
    with pytest.raises(ParseError) as raised:
        hf.parse_page(content, "saved/page.html")
    assert raised.value.source == "hf"
    assert raised.value.where == "saved/page.html"
    assert what in raised.value.what


def test_page_whose_cards_all_fail_is_a_parse_error() -> None:
    soup = page_without_embedded_data()
    for link in soup.select('article h3 a[href^="/papers/"]'):
        link["href"] = "/papers/not-an-id"
    with pytest.raises(ParseError, match="none of the 13 paper cards could be read"):
        hf.parse_page(str(soup), "page.html")


# --- Reading saved files ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind", "count"),
    [
        ("hf_api_daily_papers_2026-06-12.json", "json", 30),
        ("hf_papers_page_2024-08-01.html", "html", 13),
        ("hf_paper_detail_2509.24002_prettified.html", "html", 1),
    ],
)
def test_read_listing_file_detects_hf_files(name: str, kind: str, count: int) -> None:
    assert detect_kind((DATA / name).read_bytes()[:4096]) == kind
    for source in (None, "hf"):
        listing = read_listing_file(DATA / name, source)
        assert (listing.source, listing.origin, len(listing.papers)) == (
            "hf",
            str(DATA / name),
            count,
        )


def test_read_listing_file_refuses_the_wrong_source() -> None:
    with pytest.raises(ParseError) as raised:
        read_listing_file(API_FILE, "arxiv")
    assert str(raised.value) == f"arxiv: cannot read {API_FILE}: not an arxiv listing: it is JSON"


@pytest.mark.parametrize(
    ("content", "what"),
    [
        (b"", "the file is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "not a listing digest knows"),
        (b"title,abstract\nA,B\n", "not a listing digest knows"),
    ],
)
def test_read_listing_file_bad_files(tmp_path: Path, content: bytes, what: str) -> None:
    path = tmp_path / "saved"
    path.write_bytes(content)
    with pytest.raises(ParseError) as raised:
        read_listing_file(path)
    assert raised.value.where == str(path)
    assert what in raised.value.what


def test_read_listing_file_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match="cannot read the file"):
        read_listing_file(tmp_path / "nope.json", "hf")


# --- Fuzzing: only ParseError, ever -----------------------------------------------------

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def check_only_parse_error(parse: Any, content: bytes | str) -> None:
    """Parsing either gives a sound Listing or raises ParseError naming hf and the origin."""
    try:
        listing = parse(content, "fuzzed")
    except ParseError as error:
        assert (error.source, error.where) == ("hf", "fuzzed")
        assert error.what
        return
    assert isinstance(listing, Listing)
    assert listing.skipped >= 0
    for paper in listing.papers:
        assert parse_arxiv_id(paper.id) == paper.id
        assert paper.title and paper.title == normalise_space(paper.title)
        assert paper.upvotes is None or paper.upvotes >= 0


def _containers(tree: Any, found: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, key) pair in a JSON tree."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            found.append((tree, key))
            _containers(value, found)
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            found.append((tree, index))
            _containers(value, found)
    return found


def _entry_level_places(entries: list[Any], entry: int, level: str) -> Any:
    """The object at `level` ("entry", "paper", "author") of entry `entry`, if any."""
    if not entries:
        return None
    found = entries[entry % len(entries)]
    if level == "entry" or not isinstance(found, dict):
        return found
    found = found.get("paper")
    if level == "paper" or not isinstance(found, dict):
        return found
    authors = found.get("authors")
    return authors[entry % len(authors)] if isinstance(authors, list) and authors else None


@st.composite
def mutated_json(draw: Any, original: Any, entries_key: str | None = None) -> Any:
    """The JSON tree with a few keys deleted or values replaced by arbitrary JSON.

    Half the edits aim at the fields parsers read (an entry, its paper, an author);
    the rest hit any place in the tree.
    """
    tree = copy.deepcopy(original)
    entries = tree.get(entries_key) if entries_key else tree
    for _ in range(draw(st.integers(1, 5))):
        if draw(st.booleans()) and isinstance(entries, list):
            level = draw(st.sampled_from(["entry", "paper", "author"]))
            target = _entry_level_places(entries, draw(st.integers(0, 1000)), level)
            places = [(target, key) for key in target] if isinstance(target, dict) else []
        else:
            places = _containers(tree, [])
        if not places:
            continue
        container, key = places[draw(st.integers(0, len(places) - 1))]
        if draw(st.booleans()):
            del container[key]
        else:
            container[key] = draw(JSON_VALUES)
    return tree


API_TREE = json.loads(API_BYTES)
PAGE_TREE = page_props()
PAGE_TEXT = PAGE_BYTES.decode()
PAGE_DOC = lxml_html.fromstring(PAGE_BYTES)


@FUZZ
@given(st.binary(max_size=2000) | st.text(max_size=2000))
def test_fuzz_arbitrary_input(content: bytes | str) -> None:
    check_only_parse_error(hf.parse_api, content)
    check_only_parse_error(hf.parse_page, content)


@FUZZ
@given(st.integers(0, len(API_BYTES)), st.integers(0, len(DETAIL_BYTES)))
def test_fuzz_truncations(api_cut: int, page_cut: int) -> None:
    check_only_parse_error(hf.parse_api, API_BYTES[:api_cut])
    check_only_parse_error(hf.parse_page, DETAIL_BYTES[:page_cut])


@FUZZ
@given(st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=20))
def test_fuzz_byte_flips(flips: list[tuple[float, int]]) -> None:
    for original, parse in ((API_BYTES, hf.parse_api), (DETAIL_BYTES, hf.parse_page)):
        data = bytearray(original)
        for where, byte in flips:
            data[int(where * len(data))] = byte
        check_only_parse_error(parse, bytes(data))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_json(API_TREE))
def test_fuzz_api_deleted_keys_and_wrong_types(tree: Any) -> None:
    check_only_parse_error(hf.parse_api, json.dumps(tree))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_json(PAGE_TREE, "dailyPapers"))
def test_fuzz_page_embedded_data(tree: Any) -> None:
    check_only_parse_error(hf.parse_page, page_with_props(tree, PAGE_TEXT))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=5))
def test_fuzz_page_deleted_elements(picks: list[float]) -> None:
    document = copy.deepcopy(PAGE_DOC)
    for pick in picks:
        elements = [e for e in document.iter() if e.getparent() is not None]
        if not elements:
            break
        element = elements[int(pick * len(elements))]
        element.getparent().remove(element)
    check_only_parse_error(hf.parse_page, lxml_html.tostring(document, doctype="<!DOCTYPE html>"))


# Every field a parser reads, replaced by every wrong kind of JSON value (or deleted).
# The edits are few (hundreds) and cheap, so each test tries all of its edits in a loop
# (no sampling) and reports every edit that fails, not one test per edit.
WRONG_VALUES = [None, 0, -1, 1.5, True, "", "x", [], [1], {}, {"a": 1}]
_DELETE = object()


def _label(where: str, key: Any, value: Any) -> str:
    return f"{where}[{key!r}] {'deleted' if value is _DELETE else f'= {value!r}'}"


def assert_every_edit_passes(edits: list[tuple[str, Any]], check: Callable[[Any], None]) -> None:
    """Run `check` on each (label, edit); fail listing every edit it failed on, and how.

    Any exception counts: one a parser let through (not a ParseError) or a failed check.
    """
    assert edits, "no edits to try"
    failed = []
    for label, edit in edits:
        try:
            check(edit)
        except Exception as error:
            failed.append(f"{label}: {type(error).__name__}: {error}".splitlines()[0])
    if failed:
        pytest.fail(f"{len(failed)} of {len(edits)} edits failed:\n" + "\n".join(failed))


def minimal_page(target: str, props: Any) -> str:
    """A smallest HTML page carrying hydration data, as the site's pages do."""
    escaped = html.escape(json.dumps(props), quote=True)
    return (
        f'<!DOCTYPE html><html><body><div class="SVELTE_HYDRATER contents" '
        f'data-target="{target}" data-props="{escaped}"></div></body></html>'
    )


def _every_edit(tree: Any) -> list[tuple[Any, Any, Any]]:
    """(container, key, new value) for every key of `tree` and every wrong value."""
    return [(tree, key, value) for key in list(tree) for value in [_DELETE, *WRONG_VALUES]]


def _apply(container: Any, key: Any, value: Any) -> None:
    if value is _DELETE:
        del container[key]
    else:
        container[key] = value


def _entry_edits(entry: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """Edits to an entry, its paper and its first author, as (path, key, value)."""
    return [
        *(("entry", key, value) for _, key, value in _every_edit(entry)),
        *(("paper", key, value) for _, key, value in _every_edit(entry["paper"])),
        *(("author", key, value) for _, key, value in _every_edit(entry["paper"]["authors"][0])),
    ]


def _edited_entry(entry: dict[str, Any], path: str, key: Any, value: Any) -> dict[str, Any]:
    edited = copy.deepcopy(entry)
    target = {
        "entry": edited,
        "paper": edited["paper"],
        "author": edited["paper"]["authors"][0],
    }[path]
    _apply(target, key, value)
    return edited


API_ENTRY = json.loads(API_BYTES)[10]  # has organisation, code and project links


def test_a_count_too_big_to_store_skips_the_entry_and_nul_characters_go() -> None:
    entries = json.loads(API_BYTES)
    entries[0]["paper"]["upvotes"] = 10**20  # no database integer holds it
    entries[1]["paper"]["title"] = "Null\x00 bytes in a title"  # PostgreSQL text cannot
    listing = hf.parse_api(json.dumps(entries), "api.json")
    assert (len(listing.papers), listing.skipped) == (29, 1)
    assert any(p.title == "Null bytes in a title" for p in listing.papers)


def test_links_with_control_characters_are_dropped_not_stored() -> None:
    entries = json.loads(API_BYTES)
    entries[10]["paper"]["githubRepo"] = "https://github.com/a/b\x00c"
    entries[11]["paper"]["githubRepo"] = "https://github.com/a/b\x7fc"
    listing = hf.parse_api(json.dumps(entries), "api.json")
    assert len(listing.papers) == 30
    assert listing.papers[10].url_code is None and listing.papers[11].url_code is None


@pytest.mark.parametrize("level", ["entry", "paper", "author"])
def test_every_api_field_with_every_wrong_type(level: str) -> None:
    good = json.loads(API_BYTES)[11]

    def check(edit: tuple[Any, Any]) -> None:
        edited = _edited_entry(API_ENTRY, level, *edit)
        check_only_parse_error(hf.parse_api, json.dumps([edited, good]))
        listing = hf.parse_api(json.dumps([edited, good]), "api.json")
        assert len(listing.papers) + listing.skipped == 2  # the good entry always survives

    edits = [
        (_label(level, key, value), (key, value))
        for where, key, value in _entry_edits(API_ENTRY)
        if where == level
    ]
    assert_every_edit_passes(edits, check)


def test_every_day_page_field_with_every_wrong_type() -> None:
    def check(edit: tuple[Any, Any]) -> None:
        props = page_props()
        _apply(props, *edit)
        check_only_parse_error(hf.parse_page, minimal_page("DailyPapers", props))

    edits = [
        (_label("props", key, value), (key, value)) for _, key, value in _every_edit(page_props())
    ]
    assert_every_edit_passes(edits, check)


def _detail_props_text() -> str:
    soup = BeautifulSoup(DETAIL_BYTES, "lxml")
    return soup.find("div", attrs={"data-target": "PaperContent"})["data-props"]


DETAIL_PROPS = _detail_props_text()


def detail_props() -> dict[str, Any]:
    """The PaperContent data of the real paper page (a fresh copy)."""
    return json.loads(DETAIL_PROPS)


@pytest.mark.parametrize("level", ["props", "paper"])
def test_every_paper_page_field_with_every_wrong_type(level: str) -> None:
    def check(edit: tuple[Any, Any]) -> None:
        props = detail_props()
        _apply(props if level == "props" else props["paper"], *edit)
        check_only_parse_error(hf.parse_page, minimal_page("PaperContent", props))

    original = detail_props()
    target = original if level == "props" else original["paper"]
    edits = [(_label(level, key, value), (key, value)) for _, key, value in _every_edit(target)]
    assert_every_edit_passes(edits, check)


PREFIXES = [
    b"",
    b"\xef\xbb\xbf",
    b"<?xml version='1.0'?>",
    b"<!DOCTYPE html>",
    b"<html>",
    b"[",
    b"{",
    b"<rss version='2.0'><channel>",
    b"<feed xmlns='http://www.w3.org/2005/Atom'>",
]


@FUZZ
@given(st.sampled_from(PREFIXES), st.binary(max_size=600))
def test_fuzz_read_listing_file(tmp_path_factory: Any, prefix: bytes, body: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "listing"
    path.write_bytes(prefix + body)
    try:
        listing = read_listing_file(path)
    except ParseError as error:
        assert error.where == str(path)
        assert error.source in ("hf", "arxiv", "file")
    else:
        assert listing.source in ("hf", "arxiv")
