"""The day's papers on the web (/papers, /papers/<day>, the feed and the signup box),
through the Flask test client, on papers saved from the real listings of
tests/data/sources: the pages, their caching (ETag, 304, a new render exactly when the
data changes), the box's CSRF tokens, and hostile text in papers.

The feed is read by feedparser and checked against the RELAX NG schema of RFC 4287
(tests/data/atom/README.md says where it comes from) and the two rules the schema
states in Schematron.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

import feedparser
import html5lib
import pytest
from flask import template_rendered
from lxml import etree

from digest.paper import Paper
from digest.sources import arxiv, hf
from digest.store.papers import papers_of_day, save_papers
from digest.web import CONTENT_SECURITY_POLICY
from tests.web_support import NOW, Clock, Site, csrf_token

DATA = Path(__file__).parent / "data"
SOURCES = DATA / "sources"
ATOM_SCHEMA = DATA / "atom" / "atom.rng"
ATOM = "{http://www.w3.org/2005/Atom}"

HF_DAY = date(2026, 6, 12)  # the saved Hugging Face listing's day, and NOW's
HF_PAGE_DAY = date(2024, 8, 1)  # the saved Hugging Face page's day
ARXIV_DAY = date(2026, 9, 24)  # the saved arXiv RSS excerpt's: arXiv papers only
ARXIV_ATOM_DAY = date(2026, 9, 25)
TOP = "2606.13681"  # the listing's most upvoted paper (118)
HOSTILE = '<script>alert("x")</script> ]]> & \x07\x1b[2J\ufffe end'


def hf_listing() -> tuple[Paper, ...]:
    return hf.parse_api(
        (SOURCES / "hf_api_daily_papers_2026-06-12.json").read_bytes(), "api"
    ).papers


def hf_page() -> tuple[Paper, ...]:
    return hf.parse_page((SOURCES / "hf_papers_page_2024-08-01.html").read_bytes(), "page").papers


def arxiv_feed(name: str = "arxiv_rss_2026-09-24_excerpt.xml") -> tuple[Paper, ...]:
    return arxiv.parse_feed((SOURCES / name).read_bytes(), name, include_cross=True).papers


def store(site: Site, papers: Any, now: datetime = NOW - timedelta(hours=2)) -> None:
    with site.database.session() as session:
        save_papers(session, papers, now)


def all_listings(site: Site) -> None:
    """Two Hugging Face days and two arXiv-only days (and so neighbours both ways)."""
    store(site, [*hf_page(), *hf_listing()])
    store(site, [*arxiv_feed(), *arxiv_feed("arxiv_atom_2026-09-25_excerpt.xml")])


def page_of(response: Any) -> Element:
    """The page parsed as a browser would, refusing any parse error."""
    assert response.status_code == 200, response.status_code
    parser = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False)
    return parser.parse(response.get_data(as_text=True))


def text_of(element: Element | None) -> str:
    assert element is not None
    return " ".join("".join(element.itertext()).split())


def cards(page: Element, section: str) -> list[Element]:
    return page.findall(f".//section[@aria-labelledby='{section}']//li[@class='paper']")


@contextmanager
def renders(site: Site) -> Iterator[list[str]]:
    """The names of the templates the app renders meanwhile (Flask's own signal)."""
    names: list[str] = []

    def record(sender: Any, template: Any, context: Any, **extra: Any) -> None:
        names.append(template.name)

    template_rendered.connect(record, site.app)
    try:
        yield names
    finally:
        template_rendered.disconnect(record, site.app)


# --- the pages ---------------------------------------------------------------------------


def test_papers_shows_today_ranked_by_upvotes_with_each_papers_details(site: Site) -> None:
    all_listings(site)
    page = page_of(site.get("/papers"))
    assert text_of(page.find(".//h1")) == "Papers of Friday 12 June 2026"
    shown = cards(page, "on-hf")
    assert page.find(".//section[@aria-labelledby='on-arxiv']") is None
    listing = {paper.id: paper for paper in hf_listing()}
    with site.database.session() as session:
        ranked = [paper.id for paper in papers_of_day(session, HF_DAY)]
    assert [card.get("id") for card in shown] == [f"paper-{id}" for id in ranked]
    assert ranked[0] == TOP
    assert [text_of(card.find(".//span[@class='rank']")) for card in shown] == [
        str(n) for n in range(1, 31)
    ]
    top, paper = shown[0], listing[TOP]
    title = top.find(".//h3/a")
    assert title is not None and title.get("href") == f"https://arxiv.org/abs/{TOP}"
    assert text_of(title) == paper.title
    assert text_of(top.find(".//p[@class='counts']")) == "118 upvotes · 3 comments"
    links = {text_of(a): a.get("href") for a in top.findall(".//ul[@class='links']//a")}
    assert links["Abstract"] == paper.url_abs and links["PDF"] == paper.url_pdf
    assert links["Hugging Face"] == paper.url_hf
    assert ("Code" in links) == bool(paper.url_code)
    assert ("Project page" in links) == bool(paper.url_project)


def test_a_card_shortens_long_author_lists_and_abstracts(site: Site) -> None:
    store(site, hf_listing())
    page = page_of(site.get(f"/papers/{HF_DAY}"))
    for paper in hf_listing():
        card = page.find(f".//li[@id='paper-{paper.id}']")
        assert card is not None
        byline = text_of(card.find(".//p[@class='byline']"))
        shown = ", ".join(paper.authors[:6]) + (" et al." if len(paper.authors) > 6 else "")
        assert byline.startswith(" ".join(shown.split())), paper.id
        if paper.organization:
            assert text_of(card.find(".//span[@class='organization']")) == paper.organization
        abstract = text_of(card.find(".//p[@class='abstract']"))
        assert len(abstract) <= 301
        if len(paper.abstract) > 300:
            assert abstract.endswith("…")
            assert paper.abstract.startswith(abstract[:-1])  # cut at a word, not in one
            assert paper.abstract[len(abstract) - 1] in " ,.;:"
    assert any(len(p.authors) > 6 for p in hf_listing())  # the listing does have some


def test_a_day_with_only_arxiv_papers(site: Site) -> None:
    all_listings(site)
    page = page_of(site.get(f"/papers/{ARXIV_DAY}"))
    assert text_of(page.find(".//h1")) == "Papers of Thursday 24 September 2026"
    assert page.find(".//section[@aria-labelledby='on-hf']") is None
    shown = cards(page, "on-arxiv")
    assert [card.get("id") for card in shown] == [
        "paper-2609.26820",
        "paper-2609.26811",
        "paper-2205.06398",
    ]
    assert all(card.find(".//p[@class='counts']") is None for card in shown)  # no upvotes
    links = [text_of(a) for a in shown[0].findall(".//ul[@class='links']//a")]
    assert links == ["Abstract", "PDF"]


def test_a_day_on_both_sources_has_both_sections_numbered_on(site: Site) -> None:
    store(site, [*hf_listing(), *(replace(p, listed=HF_DAY) for p in arxiv_feed())])
    page = page_of(site.get("/papers"))
    assert len(cards(page, "on-hf")) == 30
    also = cards(page, "on-arxiv")
    assert [text_of(card.find(".//span[@class='rank']")) for card in also] == ["31", "32", "33"]
    headings = [text_of(h) for h in page.findall(".//main//h2")]
    assert headings == ["Get these in your inbox", "On Hugging Face Daily Papers", "Also on arXiv"]


def test_days_link_to_the_days_before_and_after_that_have_papers(site: Site) -> None:
    all_listings(site)

    def neighbours(path: str) -> dict[str, str | None]:
        page = page_of(site.get(path))
        found = {}
        for rel in ("prev", "next"):
            links = {a.get("href") for a in page.findall(f".//a[@rel='{rel}']")}
            heads = {a.get("href") for a in page.findall(f".//head/link[@rel='{rel}']")}
            assert links == heads and len(links) <= 1, (path, rel)
            found[rel] = next(iter(links), None)
        return found

    assert neighbours("/papers") == {
        "prev": f"/papers/{HF_PAGE_DAY}",
        "next": f"/papers/{ARXIV_DAY}",
    }
    assert neighbours(f"/papers/{HF_PAGE_DAY}") == {"prev": None, "next": f"/papers/{HF_DAY}"}
    assert neighbours(f"/papers/{ARXIV_ATOM_DAY}") == {"prev": f"/papers/{ARXIV_DAY}", "next": None}


def test_a_day_without_papers_says_so_with_its_neighbours(site: Site) -> None:
    all_listings(site)
    response = site.get("/papers/2026-07-01")
    page = page_of(response)
    assert text_of(page.find(".//h1")) == "Papers of Wednesday 1 July 2026"
    assert "No papers were listed on this day." in text_of(page.find(".//main"))
    assert page.findall(".//li[@class='paper']") == []
    assert page.find(".//a[@rel='prev']").get("href") == f"/papers/{HF_DAY}"  # type: ignore[union-attr]
    assert page.find(".//a[@rel='next']").get("href") == f"/papers/{ARXIV_DAY}"  # type: ignore[union-attr]


def test_papers_with_no_papers_at_all_is_an_honest_empty_page(site: Site) -> None:
    page = page_of(site.get("/papers"))
    assert text_of(page.find(".//h1")) == "Papers of Friday 12 June 2026"
    assert "No papers have been collected yet" in text_of(page.find(".//main"))
    assert page.findall(".//a[@rel='prev']") == page.findall(".//a[@rel='next']") == []
    assert page.find(".//iframe[@class='signup-frame']") is not None  # signing up works


def test_papers_goes_by_the_apps_clock_in_the_service_time_zone(make_site: Any) -> None:
    # 11 June, 12:00 UTC is already 12 June on Kiritimati (UTC+14).
    clock = Clock(datetime(2026, 6, 11, 12, 0, tzinfo=UTC))
    ahead = make_site(clock=clock, service={"timezone": "Pacific/Kiritimati"})
    behind = make_site(clock=clock)
    for site in (ahead, behind):
        all_listings(site)
    assert "Friday 12 June 2026" in text_of(page_of(ahead.get("/papers")).find(".//h1"))
    assert "Thursday 1 August 2024" in text_of(page_of(behind.get("/papers")).find(".//h1"))
    clock.advance(hours=12)  # 12 June in UTC too: the same URL, the new day
    assert "Friday 12 June 2026" in text_of(page_of(behind.get("/papers")).find(".//h1"))


def test_papers_before_any_day_shows_today_empty_with_the_next_day(make_site: Any) -> None:
    site = make_site(clock=Clock(datetime(2020, 1, 1, 9, 0, tzinfo=UTC)))
    all_listings(site)
    page = page_of(site.get("/papers"))
    assert "No papers were listed on this day." in text_of(page.find(".//main"))
    assert page.find(".//a[@rel='next']").get("href") == f"/papers/{HF_PAGE_DAY}"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "day",
    [
        "2026-6-12",
        "2026-02-30",
        "2026-13-01",
        "20260612",
        "2026-W24-5",
        "2026-06-12x",
        " 2026-06-12",
        "0000-01-01",
        "\u0662\u0660\u0662\u0666-\u0660\u0666-\u0661\u0662",  # Arabic-Indic digits
        "yesterday",
        "feed.atom",
    ],
)
def test_a_malformed_or_impossible_day_is_not_found(site: Site, day: str) -> None:
    response = site.get(f"/papers/{day}")
    assert response.status_code == 404
    assert "404 Not Found" in response.get_data(as_text=True)  # our page, not a traceback
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "path", ["/papers", f"/papers/{HF_DAY}", "/papers/feed.xml", "/papers/signup-box"]
)
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_only_get_and_head_are_allowed(site: Site, path: str, method: str) -> None:
    response = site.client.open(path, method=method)
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD"}


# --- caching -----------------------------------------------------------------------------


def test_pages_are_public_and_cacheable_with_a_strong_etag_and_304(site: Site) -> None:
    store(site, hf_listing())
    for path in ("/papers", f"/papers/{HF_DAY}", "/papers/feed.xml"):
        first = site.get(path)
        etag = first.headers["ETag"]
        assert etag.startswith('"') and not etag.startswith("W/"), path
        assert first.headers["Cache-Control"] == "public, max-age=60"
        assert "Set-Cookie" not in first.headers and "Cookie" not in first.headers.get("Vary", "")
        # The app's security headers still apply.
        assert first.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert first.headers["X-Frame-Options"] == "DENY"
        again = site.get(path, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.get_data() == b""
        assert again.headers["ETag"] == etag
        other = site.get(path, headers={"If-None-Match": '"something-else"'})
        assert other.status_code == 200 and other.get_data() == first.get_data()
        head = site.client.head(path)
        assert head.status_code == 200 and head.get_data() == b""
        assert head.headers["ETag"] == etag
        assert head.headers["Content-Length"] == str(len(first.get_data()))
        assert site.client.head(path, headers={"If-None-Match": etag}).status_code == 304


def test_papers_and_its_day_are_one_page_rendered_once(site: Site) -> None:
    store(site, hf_listing())
    with renders(site) as rendered:
        latest = site.get("/papers")
        day = site.get(f"/papers/{HF_DAY}")
        for _ in range(5):
            site.get("/papers")
            site.get("/papers/feed.xml")
    assert latest.get_data() == day.get_data()
    assert latest.headers["ETag"] == day.headers["ETag"]
    assert rendered.count("papers.html") == 1


def test_a_new_paper_or_a_changed_upvote_changes_the_page_at_once(site: Site) -> None:
    papers = hf_listing()
    store(site, papers[1:])
    before = site.get("/papers")
    feed = site.get("/papers/feed.xml")
    # The scheduler saves its run's listings with one `now`: the same instant as before.
    store(site, papers[:1])
    added = site.get("/papers", headers={"If-None-Match": before.headers["ETag"]})
    assert added.status_code == 200 and f"paper-{papers[0].id}" in added.get_data(as_text=True)
    assert papers[0].upvotes == 0  # not in the feed's top 10: the feed stays
    assert (
        site.get("/papers/feed.xml", headers={"If-None-Match": feed.headers["ETag"]}).status_code
        == 304
    )
    last = next(p for p in papers if p.upvotes == 0)
    assert cards(page_of(added), "on-hf")[-1].get("id") == f"paper-{last.id}"
    store(site, [replace(last, upvotes=500)])
    moved = site.get("/papers", headers={"If-None-Match": added.headers["ETag"]})
    assert moved.status_code == 200
    top = cards(page_of(moved), "on-hf")[0]
    assert top.get("id") == f"paper-{last.id}"
    assert text_of(top.find(".//p[@class='counts']")).startswith("500 upvotes")
    moved_feed = site.get("/papers/feed.xml", headers={"If-None-Match": feed.headers["ETag"]})
    assert moved_feed.status_code == 200
    assert (
        etree.fromstring(moved_feed.get_data()).findtext(f"{ATOM}entry/{ATOM}id").endswith(last.id)
    )


def test_a_change_on_another_day_leaves_a_day_page_alone(site: Site) -> None:
    all_listings(site)
    before = site.get(f"/papers/{HF_PAGE_DAY}")
    with renders(site) as rendered:
        store(site, [replace(p, upvotes=(p.upvotes or 0) + 1) for p in hf_listing()])
        again = site.get(
            f"/papers/{HF_PAGE_DAY}", headers={"If-None-Match": before.headers["ETag"]}
        )
    assert again.status_code == 304 and rendered == []


def test_a_new_day_changes_its_neighbours_links(site: Site) -> None:
    store(site, hf_listing())
    before = site.get(f"/papers/{HF_DAY}")
    assert 'rel="next"' not in before.get_data(as_text=True)
    store(site, arxiv_feed())  # a later day: 12 June now has a next day
    after = site.get(f"/papers/{HF_DAY}")
    assert after.headers["ETag"] != before.headers["ETag"]
    assert page_of(after).find(".//a[@rel='next']").get("href") == f"/papers/{ARXIV_DAY}"  # type: ignore[union-attr]


def test_the_cache_keeps_at_most_its_size(make_site: Any) -> None:
    site = make_site()
    site.app.config["PAPERS_CACHE_BYTES"] = 60_000
    all_listings(site)
    for day in (HF_PAGE_DAY, HF_DAY, ARXIV_DAY, ARXIV_ATOM_DAY, date(2026, 1, 1)):
        assert site.get(f"/papers/{day}").status_code == 200
    cache = site.app.extensions["digest_papers_cache"]
    assert 0 < cache.bytes <= 60_000
    with renders(site) as rendered:  # the oldest page went; the newest is kept
        site.get(f"/papers/{HF_PAGE_DAY}")
        site.get("/papers/2026-01-01")
    assert rendered == ["papers.html"]


def test_with_the_cache_off_every_request_renders_the_same_page(make_site: Any) -> None:
    site = make_site()
    site.app.config["PAPERS_CACHE_BYTES"] = 0
    store(site, hf_listing())
    with renders(site) as rendered:
        pages = [site.get("/papers") for _ in range(3)]
    assert rendered.count("papers.html") == 3
    assert len({(p.get_data(), p.headers["ETag"]) for p in pages}) == 1


# --- the signup box and CSRF ---------------------------------------------------------------


def test_the_page_carries_no_token_and_no_session(site: Site) -> None:
    store(site, hf_listing())
    ada, bob = site.app.test_client(), site.app.test_client()
    pages = [client.get("/papers") for client in (ada, bob)]
    assert pages[0].get_data() == pages[1].get_data()
    for page in pages:
        html = page.get_data(as_text=True)
        assert "csrf_token" not in html and "Set-Cookie" not in page.headers
        frame = page_of(page).find(".//iframe[@class='signup-frame']")
        assert frame is not None and frame.get("src") == "/papers/signup-box"
        assert frame.get("title")
    assert ada.get_cookie("session") is None and bob.get_cookie("session") is None


def test_two_visitors_get_their_own_box_and_never_each_others_token(site: Site) -> None:
    ada, bob = site.app.test_client(), site.app.test_client()
    boxes = {
        name: client.get("/papers/signup-box") for name, client in (("ada", ada), ("bob", bob))
    }
    tokens = {name: csrf_token(box.get_data(as_text=True)) for name, box in boxes.items()}
    assert tokens["ada"] != tokens["bob"]
    for box in boxes.values():
        assert box.headers["Cache-Control"] == "no-store"  # never kept by anyone
        assert "Set-Cookie" in box.headers
        # Framed by our own pages only.
        assert "frame-ancestors 'self'" in box.headers["Content-Security-Policy"]
        assert box.headers["X-Frame-Options"] == "SAMEORIGIN"
    data = {"email": "ada@example.org", "interests": "diffusion", "send_time": "08:00",
            "timezone": "UTC", "website": ""}  # fmt: skip
    # Each token is good in its own session only.
    assert bob.post("/", data={**data, "csrf_token": tokens["ada"]}).status_code == 400
    assert site.subscriber("ada@example.org") is None
    signed_up = ada.post("/", data={**data, "csrf_token": tokens["ada"]})
    assert signed_up.status_code == 303 and signed_up.location.endswith("/check-your-email")
    assert site.subscriber("ada@example.org").status == "pending"  # type: ignore[union-attr]


@pytest.mark.parametrize("cache_bytes", [None, 0])
def test_the_box_is_rendered_once_and_each_visitor_gets_only_their_token(
    make_site: Any, cache_bytes: int | None
) -> None:
    site = make_site()
    if cache_bytes is not None:
        site.app.config["PAPERS_CACHE_BYTES"] = cache_bytes
    visitors = [site.app.test_client() for _ in range(3)]
    with renders(site) as rendered:
        boxes = [visitor.get("/papers/signup-box").get_data(as_text=True) for visitor in visitors]
    tokens = [csrf_token(box) for box in boxes]
    assert len(set(tokens)) == 3
    assert all("csrf token slot" not in box for box in boxes)
    # The same form but for the token; rendered once, unless the cache is off.
    assert len({box.replace(token, "") for box, token in zip(boxes, tokens, strict=True)}) == 1
    assert rendered.count("papers_signup_box.html") == (1 if cache_bytes is None else 3)
    data = {"interests": "diffusion", "send_time": "08:00", "timezone": "UTC", "website": ""}
    for n, (visitor, token) in enumerate(zip(visitors, tokens, strict=True)):
        other = tokens[(n + 1) % 3]
        refused = visitor.post(
            "/", data={**data, "email": f"r{n}@example.org", "csrf_token": other}
        )
        assert refused.status_code == 400
        taken = visitor.post("/", data={**data, "email": f"r{n}@example.org", "csrf_token": token})
        assert taken.status_code == 303


def test_the_box_is_the_signup_form_posting_to_the_whole_window(make_site: Any) -> None:
    site = make_site(service={"timezone": "Europe/Berlin"}, schedule={"default_send_time": "06:45"})
    box = page_of(site.get("/papers/signup-box"))
    form = box.find(".//form")
    assert form is not None
    assert (form.get("action"), form.get("method"), form.get("target")) == ("/", "post", "_top")
    names = {field.get("name") for field in form.iter() if field.get("name")}
    assert names >= {"csrf_token", "email", "interests", "send_time", "timezone", "website"}
    assert box.find(".//input[@id='send_time']").get("value") == "06:45"  # type: ignore[union-attr]
    selected = box.find(".//select[@id='timezone']/option[@selected]")
    assert selected is not None and selected.get("value") == "Europe/Berlin"
    # These pages show the day's trending papers: the box offers them, ticked.
    assert box.find(".//input[@id='trending']").get("checked") is not None  # type: ignore[union-attr]
    front = page_of(site.get("/")).find(".//form")
    assert front is not None and front.get("target") is None  # the front page's own form
    assert front.find(".//input[@id='trending']").get("checked") is None  # type: ignore[union-attr]
    assert {f.get("name") for f in front.iter() if f.get("name")} == names


def test_the_front_page_and_the_header_link_to_the_papers(site: Site) -> None:
    front = page_of(site.get("/"))
    assert "See today's papers" in [
        text_of(a) for a in front.findall(".//main//a[@href='/papers']")
    ]
    for path in ("/", "/papers", "/check-your-email", "/no-such-page"):
        response = site.get(path)
        parser = html5lib.HTMLParser(namespaceHTMLElements=False)
        page = parser.parse(response.get_data(as_text=True))
        nav = page.find(".//header//nav")
        assert nav is not None and text_of(nav.find("a")) == "Papers", path
        assert nav.find("a").get("href") == "/papers"  # type: ignore[union-attr]


# --- hostile text ----------------------------------------------------------------------------


def hostile_paper() -> Paper:
    paper = hf_listing()[0]
    return replace(
        paper,
        title=f"Title {HOSTILE}",
        abstract=f"Abstract {HOSTILE} " + "word " * 80,
        authors=(f"Mallory {HOSTILE}", "Eve"),
        organization=f"Org {HOSTILE}",
        url_code="javascript:alert(1)",
        url_project='https://example.org/"><script>alert(1)</script>',
        upvotes=1000,
    )


def test_hostile_paper_text_is_shown_as_text(site: Site) -> None:
    store(site, [hostile_paper()])
    html = site.get("/papers").get_data(as_text=True)
    assert "<script>" not in html and "javascript:" not in html
    assert "&lt;script&gt;" in html
    assert "\x07" not in html and "\x1b" not in html
    card = page_of(site.get("/papers")).find(".//li[@class='paper']")  # strict parse passes
    assert card is not None
    assert text_of(card.find(".//h3")).startswith('Title <script>alert("x")</script> ]]> &')
    links = [text_of(a) for a in card.findall(".//ul[@class='links']//a")]
    assert "Code" not in links and "Project page" not in links


# --- the feed --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def atom_schema() -> etree.RelaxNG:
    return etree.RelaxNG(etree.parse(str(ATOM_SCHEMA)))


def assert_valid_atom(body: bytes, schema: etree.RelaxNG) -> etree._Element:
    """Well-formed, valid against RFC 4287's schema and its two Schematron rules, and
    read by feedparser without complaint."""
    document = etree.fromstring(body)
    assert schema.validate(document), schema.error_log
    namespaces = {"atom": ATOM[1:-1]}
    assert document.xpath("atom:author or not(atom:entry[not(atom:author)])", namespaces=namespaces)
    for entry in document.findall(f"{ATOM}entry"):
        assert entry.xpath("atom:link[@rel='alternate'] or atom:content", namespaces=namespaces)
    parsed = feedparser.parse(body)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    return document


def test_the_feed_holds_the_top_papers_of_the_last_seven_hugging_face_days(
    site: Site, atom_schema: etree.RelaxNG
) -> None:
    listing = hf_listing()
    # Eight earlier days of the same listing (the ids made unique for each day), and
    # arXiv-only days, which trending leaves out.
    for back in range(1, 9):
        day = HF_DAY - timedelta(days=back)
        store(site, [replace(p, id=f"{p.id}{back}", listed=day) for p in listing[:12]])
    store(site, [*listing, *arxiv_feed()])
    response = site.get("/papers/feed.xml")
    assert response.mimetype == "application/atom+xml"
    document = assert_valid_atom(response.get_data(), atom_schema)
    assert document.findtext(f"{ATOM}id") == "http://digest.test/papers/feed.xml"
    links = {link.get("rel"): link.get("href") for link in document.findall(f"{ATOM}link")}
    assert links == {
        "self": "http://digest.test/papers/feed.xml",
        "alternate": "http://digest.test/papers",
    }
    entries = document.findall(f"{ATOM}entry")
    assert len(entries) == 70  # 7 days, 10 papers each
    with site.database.session() as session:
        expected = [p.id for p in papers_of_day(session, HF_DAY)[:10]]
        expected += [
            p.id
            for back in range(1, 7)
            for p in papers_of_day(session, HF_DAY - timedelta(days=back))[:10]
        ]
    ids = [entry.findtext(f"{ATOM}id") for entry in entries]
    assert ids == [f"https://arxiv.org/abs/{id}" for id in expected]
    top = entries[0]
    assert top.findtext(f"{ATOM}title") == {p.id: p for p in listing}[TOP].title
    assert top.findtext(f"{ATOM}updated") == "2026-06-12T08:00:00Z"
    assert top.findtext(f"{ATOM}summary").startswith(
        "#1 on Hugging Face Daily Papers of Friday 12 June 2026, 118 upvotes."
    )  # type: ignore[union-attr]
    assert len(top.findall(f"{ATOM}author")) >= 1


def test_an_empty_feed_is_valid_too(site: Site, atom_schema: etree.RelaxNG) -> None:
    document = assert_valid_atom(site.get("/papers/feed.xml").get_data(), atom_schema)
    assert document.findall(f"{ATOM}entry") == []


def test_hostile_text_cannot_break_the_feed(site: Site, atom_schema: etree.RelaxNG) -> None:
    many = tuple(f"Author {n}" for n in range(20))
    second = replace(hf_listing()[1], authors=many, upvotes=999)
    store(site, [hostile_paper(), second, *hf_listing()[2:]])
    body = site.get("/papers/feed.xml").get_data()
    document = assert_valid_atom(body, atom_schema)
    assert b"<script>" not in body
    title = document.findtext(f"{ATOM}entry/{ATOM}title")
    assert title == 'Title <script>alert("x")</script> ]]> &   [2J  end'
    names = [
        entry.findall(f"{ATOM}author/{ATOM}name") for entry in document.findall(f"{ATOM}entry")
    ]
    assert [n.text for n in names[1]] == [*(f"Author {n}" for n in range(6)), "et al."]
    parsed = feedparser.parse(body)
    assert parsed.entries[0].title == title
