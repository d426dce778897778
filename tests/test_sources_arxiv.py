"""arXiv parsers on real saved feeds: RSS, the Atom variant, and an API answer."""

from __future__ import annotations

import copy
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from digest.errors import ConfigError, ParseError
from digest.paper import normalise_space, parse_arxiv_id
from digest.sources import Listing, arxiv, detect_kind, read_listing_file

DATA = Path(__file__).parent / "data" / "sources"
RSS_FILE = DATA / "arxiv_rss_2026-09-24_excerpt.xml"
ATOM_FILE = DATA / "arxiv_atom_2026-09-25_excerpt.xml"
API_FILE = DATA / "arxiv_api_query_2026-06-14.xml"
RSS = RSS_FILE.read_bytes()
ATOM = ATOM_FILE.read_bytes()
API = API_FILE.read_bytes()


def by_id(listing: Listing) -> dict[str, Any]:
    return {paper.id: paper for paper in listing.papers}


# --- RSS --------------------------------------------------------------------------------


def test_rss_takes_new_and_leaves_out_cross_and_replace() -> None:
    listing = arxiv.parse_feed(RSS, "rss.xml")
    assert listing.source == "arxiv"
    assert listing.day == date(2026, 9, 24)
    assert [paper.id for paper in listing.papers] == ["2609.26811", "2609.26820"]
    assert listing.skipped == 0
    assert listing.left_out == 2
    assert listing.note == "left out 1 cross, 1 replace"


def test_rss_with_cross_lists() -> None:
    listing = arxiv.parse_feed(RSS, "rss.xml", include_cross=True)
    assert [paper.id for paper in listing.papers] == ["2609.26811", "2609.26820", "2205.06398"]
    assert (listing.skipped, listing.left_out) == (0, 1)
    cross = by_id(listing)["2205.06398"]
    assert cross.title == "Outlier Detection for Multi-Network Data"
    assert cross.authors == ("Pritam Dey", "Zhengwu Zhang", "David B. Dunson")
    assert cross.categories == ("stat.ME", "stat.AP", "stat.ML")
    # A replacement is never fresh, with or without cross-lists.
    assert "2009.13987" not in by_id(listing)


def test_rss_named_paper_fields() -> None:
    paper = by_id(arxiv.parse_feed(RSS, "rss.xml"))["2609.26820"]
    assert paper.title == (
        "Signal2Symbol: Neuro-Symbolic Temporal Reasoning for Explainable Physiological "
        "Time-Series Anomaly Detection"
    )
    assert paper.authors == ("Naser Mansour", "Sidahmed Benabderrahmane", "Ameer Rahwan")
    assert paper.categories == ("cs.LG", "cs.AI")
    assert paper.abstract.startswith("Physiological time series such as electrocardiograms")
    assert paper.abstract.endswith("compact, interpretable summaries of local detections.")
    assert "Announce Type" not in paper.abstract
    assert paper.listed == date(2026, 9, 24)
    assert paper.published is None
    assert paper.url_abs == "https://arxiv.org/abs/2609.26820"
    assert paper.url_pdf == "https://arxiv.org/pdf/2609.26820"
    assert paper.url_hf is None
    assert (paper.upvotes, paper.comments, paper.organization) == (None, None, None)
    assert paper.sources == ("arxiv",)


def test_rss_single_author() -> None:
    paper = by_id(arxiv.parse_feed(RSS, "rss.xml"))["2609.26811"]
    assert paper.authors == ("Fabien Polly",)
    assert paper.categories == ("cs.LG",)


def test_rss_parsed_by_namespace_uri_not_prefix() -> None:
    renamed = (
        RSS.replace(b"xmlns:arxiv=", b"xmlns:ax=")
        .replace(b"<arxiv:", b"<ax:")
        .replace(b"</arxiv:", b"</ax:")
        .replace(b"xmlns:dc=", b"xmlns:dublin=")
        .replace(b"<dc:", b"<dublin:")
        .replace(b"</dc:", b"</dublin:")
    )
    assert b"arxiv:announce_type" not in renamed
    assert arxiv.parse_feed(renamed, "rss.xml") == arxiv.parse_feed(RSS, "rss.xml")


def test_rss_wrong_namespace_is_not_mistaken_for_arxiv() -> None:
    # Same prefix, other URI: the announce type element is not arXiv's, so the
    # description's "Announce Type:" is what counts.
    moved = RSS.replace(b'xmlns:arxiv="http://arxiv.org/schemas/atom"', b'xmlns:arxiv="urn:x"')
    moved = moved.replace(b"<arxiv:announce_type>new<", b"<arxiv:announce_type>replace<")
    listing = arxiv.parse_feed(moved, "rss.xml")
    assert [paper.id for paper in listing.papers] == ["2609.26811", "2609.26820"]


def test_rss_item_without_announce_type_is_skipped_and_counted() -> None:
    root = etree.fromstring(RSS)
    item = root.find("channel").findall("item")[1]
    item.remove(item.find("{http://arxiv.org/schemas/atom}announce_type"))
    description = item.find("description")
    description.text = description.text.split("Abstract:", 1)[1]
    listing = arxiv.parse_feed(etree.tostring(root), "rss.xml")
    assert [paper.id for paper in listing.papers] == ["2609.26811"]
    assert (listing.skipped, listing.left_out) == (1, 2)


def test_rss_item_without_id_is_skipped() -> None:
    root = etree.fromstring(RSS)
    item = root.find("channel").findall("item")[0]
    item.remove(item.find("guid"))
    item.remove(item.find("link"))
    listing = arxiv.parse_feed(etree.tostring(root), "rss.xml")
    assert [paper.id for paper in listing.papers] == ["2609.26820"]
    assert listing.skipped == 1


def test_rss_every_item_malformed_is_a_parse_error() -> None:
    root = etree.fromstring(RSS)
    for item in root.find("channel").findall("item"):
        item.remove(item.find("title"))
    with pytest.raises(ParseError, match="none of the 4 entries could be read"):
        arxiv.parse_feed(etree.tostring(root), "rss.xml")


def test_rss_without_items_is_an_empty_listing() -> None:
    root = etree.fromstring(RSS)
    for item in root.find("channel").findall("item"):
        item.getparent().remove(item)
    listing = arxiv.parse_feed(etree.tostring(root), "rss.xml")
    assert listing.papers == ()
    assert listing.day == date(2026, 9, 24)
    assert listing.note == ("no announcements for 2026-09-24 (none on weekends and holidays)")


# --- Atom (rss.arxiv.org/atom) ----------------------------------------------------------


def test_atom_feed() -> None:
    listing = arxiv.parse_feed(ATOM, "atom.xml")
    assert listing.day == date(2026, 9, 25)
    assert [paper.id for paper in listing.papers] == ["2609.28553"]
    assert (listing.skipped, listing.left_out) == (0, 2)
    paper = listing.papers[0]
    assert paper.title == (
        "SMILESGNN: Interpretable Clinical Toxicity Prediction via SMILES-Graph "
        "Cross-Attention Fusion"
    )
    assert paper.authors[0] == "Quang Minh Nguyen"
    assert len(paper.authors) == 6
    assert paper.categories == ("cs.LG", "cs.AI")
    assert paper.abstract.startswith("Drug toxicity prediction is critical")
    assert paper.listed == date(2026, 9, 25)
    assert paper.published is None


def test_atom_feed_with_cross_lists() -> None:
    listing = arxiv.parse_feed(ATOM, "atom.xml", include_cross=True)
    assert [paper.id for paper in listing.papers] == ["2609.28553", "2402.10149"]
    assert by_id(listing)["2402.10149"].categories == ("hep-ph", "cs.LG", "hep-ex")


def test_atom_with_prefixed_atom_namespace() -> None:
    prefixed = (
        ATOM.replace(
            b'xmlns="http://www.w3.org/2005/Atom"', b'xmlns:a="http://www.w3.org/2005/Atom"'
        )
        .replace(b"<", b"<a:")
        .replace(b"<a:/", b"</a:")
        .replace(b"<a:?", b"<?")
        .replace(b"<a:arxiv:", b"<arxiv:")
        .replace(b"</a:arxiv:", b"</arxiv:")
        .replace(b"<a:dc:", b"<dc:")
        .replace(b"</a:dc:", b"</dc:")
    )
    assert arxiv.parse_feed(prefixed, "atom.xml") == arxiv.parse_feed(ATOM, "atom.xml")


# --- The arXiv API ----------------------------------------------------------------------


def test_api_answer_takes_every_entry() -> None:
    listing = arxiv.parse_feed(API, "api.xml")
    assert listing.day == date(2026, 6, 14)
    assert [paper.id for paper in listing.papers] == [
        "2606.13677",
        "2606.13591",
        "2606.13568",
        "2606.13515",
        "2606.13501",
    ]
    assert (listing.skipped, listing.left_out, listing.note) == (0, 0, "")


def test_api_answer_named_paper_fields() -> None:
    paper = by_id(arxiv.parse_feed(API, "api.xml"))["2606.13677"]
    assert paper.title == "Mana: Dexterous Manipulation of Articulated Tools"
    assert paper.authors == ("Zhao-Heng Yin", "Guanya Shi", "Pieter Abbeel", "C. Karen Liu")
    # The primary category comes first.
    assert paper.categories == ("cs.RO", "cs.AI", "cs.CV", "cs.LG")
    assert paper.published == date(2026, 6, 11)
    assert paper.listed is None
    assert "(<1 minute per tool)" in paper.abstract
    assert paper.url_abs == "https://arxiv.org/abs/2606.13677"


def test_api_primary_category_first_even_when_listed_later() -> None:
    paper = by_id(arxiv.parse_feed(API, "api.xml"))["2606.13501"]
    assert paper.categories[0] == "cs.DC"
    assert len(paper.categories) == len(set(paper.categories))


def test_api_error_answer_is_a_parse_error() -> None:
    error_feed = b"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"
      xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">
  <id>http://arxiv.org/api/errors</id>
  <opensearch:totalResults>1</opensearch:totalResults>
  <entry>
    <id>http://arxiv.org/api/errors#incorrect_id_format_for_1234.12345</id>
    <title>Error</title>
    <summary>incorrect id format for 1234.12345</summary>
  </entry>
</feed>"""
    with pytest.raises(ParseError) as raised:
        arxiv.parse_feed(error_feed, "https://export.arxiv.org/api/query?id_list=x")
    assert raised.value.what == (
        'the arXiv API answered with an error: "incorrect id format for 1234.12345"'
    )


# --- Documents we cannot read -----------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "what"),
    [
        (b"", "the feed is empty"),
        (b'{"not": "xml"}', "not well-formed XML"),
        (RSS[: len(RSS) // 2], "not well-formed XML"),
        (b"<!DOCTYPE html><html><body><p>Rate exceeded.</p></body></html>", "is <html>"),
        (b"<html><body>Rate exceeded.</body></html>", "the document is <html>"),
        (b"<opml version='2.0'><body/></opml>", "not an arXiv feed: the document is <opml>"),
        (b"<rss version='2.0'></rss>", "the RSS feed has no <channel>"),
    ],
)
def test_bad_feeds_are_parse_errors(content: bytes, what: str) -> None:
    with pytest.raises(ParseError) as raised:
        arxiv.parse_feed(content, "https://rss.test/rss/cs.LG")
    assert raised.value.source == "arxiv"
    assert raised.value.where == "https://rss.test/rss/cs.LG"
    assert what in raised.value.what


def test_external_entities_are_not_resolved(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    feed = RSS.replace(
        b"<?xml version='1.0' encoding='UTF-8'?>",
        f"<?xml version='1.0' encoding='UTF-8'?>"
        f'<!DOCTYPE rss [<!ENTITY leak SYSTEM "file://{secret}">]>'.encode(),
    ).replace(b"<title>Outlier Detection", b"<title>&leak; Outlier Detection")
    try:
        listing = arxiv.parse_feed(feed, "rss.xml", include_cross=True)
    except ParseError:
        return
    assert all("TOP-SECRET" not in paper.title for paper in listing.papers)


def test_feed_url() -> None:
    assert arxiv.feed_url("https://rss.arxiv.org/", ["cs.LG", "cs.CL"]) == (
        "https://rss.arxiv.org/rss/cs.LG+cs.CL"
    )
    with pytest.raises(ConfigError, match="categories is empty"):
        arxiv.feed_url("https://rss.arxiv.org", [])


@pytest.mark.parametrize(("path", "count"), [(RSS_FILE, 2), (ATOM_FILE, 1), (API_FILE, 5)])
def test_read_listing_file_detects_arxiv_files(path: Path, count: int) -> None:
    assert detect_kind(path.read_bytes()[:4096]) == "xml"
    for source in (None, "arxiv"):
        listing = read_listing_file(path, source)
        assert (listing.source, listing.origin, len(listing.papers)) == ("arxiv", str(path), count)
    with pytest.raises(ParseError, match="not an hf listing: it is an XML feed"):
        read_listing_file(path, "hf")


def test_read_listing_file_include_cross() -> None:
    assert len(read_listing_file(RSS_FILE, include_cross=True).papers) == 3


# --- Fuzzing: only ParseError, ever -----------------------------------------------------

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEEDS = [RSS, ATOM, API]
TREES = [etree.fromstring(feed) for feed in FEEDS]


def check_only_parse_error(content: bytes | str) -> None:
    """Parsing either gives a sound Listing or raises ParseError naming arxiv and the origin."""
    for include_cross in (False, True):
        try:
            listing = arxiv.parse_feed(content, "fuzzed", include_cross=include_cross)
        except ParseError as error:
            assert (error.source, error.where) == ("arxiv", "fuzzed")
            assert error.what
            continue
        assert isinstance(listing, Listing)
        assert listing.skipped >= 0 and listing.left_out >= 0
        for paper in listing.papers:
            assert parse_arxiv_id(paper.id) == paper.id
            assert paper.title and paper.title == normalise_space(paper.title)
            assert all(paper.authors) and all(paper.categories)


@FUZZ
@given(st.binary(max_size=2000) | st.text(max_size=2000))
def test_fuzz_arbitrary_input(content: bytes | str) -> None:
    check_only_parse_error(content)


@FUZZ
@given(st.sampled_from(range(len(FEEDS))), st.floats(0, 1))
def test_fuzz_truncations(which: int, cut: float) -> None:
    feed = FEEDS[which]
    check_only_parse_error(feed[: int(cut * len(feed))])


@FUZZ
@given(
    st.sampled_from(range(len(FEEDS))),
    st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=12),
)
def test_fuzz_byte_flips(which: int, flips: list[tuple[float, int]]) -> None:
    data = bytearray(FEEDS[which])
    for where, byte in flips:
        data[int(where * len(data))] = byte
    check_only_parse_error(bytes(data))


@FUZZ
@given(
    st.sampled_from(range(len(TREES))),
    st.lists(
        st.tuples(
            st.floats(0, 1, exclude_max=True),
            st.sampled_from(["delete", "empty", "text", "attribute"]),
            st.text(max_size=30),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_fuzz_deleted_and_changed_elements(which: int, edits: list[tuple[float, str, str]]) -> None:
    root = copy.deepcopy(TREES[which])
    for pick, action, value in edits:
        elements = [e for e in root.iter() if e is not root and isinstance(e.tag, str)]
        if not elements:
            break
        element = elements[int(pick * len(elements))]
        clean = "".join(ch for ch in value if ch.isprintable())
        if action == "delete":
            element.getparent().remove(element)
        elif action == "empty":
            element.text = None
            for child in list(element):
                element.remove(child)
        elif action == "text":
            element.text = clean
        else:
            for name in list(element.attrib):
                element.set(name, clean)
    check_only_parse_error(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _element_paths(root: etree._Element) -> list[int]:
    return [i for i, e in enumerate(root.iter()) if e is not root and isinstance(e.tag, str)]


@pytest.mark.parametrize("which", range(len(FEEDS)), ids=["rss", "atom", "api"])
@pytest.mark.parametrize("action", ["delete", "empty", "garbage"])
def test_every_element_deleted_or_emptied(which: int, action: str) -> None:
    """Each element of each real feed, in turn, deleted, emptied or filled with junk."""
    for index in _element_paths(TREES[which]):
        root = copy.deepcopy(TREES[which])
        element = list(root.iter())[index]
        if action == "delete":
            element.getparent().remove(element)
        elif action == "empty":
            element.text = None
            for child in list(element):
                element.remove(child)
            for name in list(element.attrib):
                del element.attrib[name]
        else:
            element.text = "\u00a0?? 2026-13-45 arXiv: Announce Type: "
            for name in list(element.attrib):
                element.set(name, "::")
        check_only_parse_error(etree.tostring(root))
