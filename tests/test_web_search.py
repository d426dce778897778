"""The search page, `GET /papers/search?q=...`, through Flask's test client on the real
app and store (the results on SQLite and PostgreSQL), with the real papers stored.

It shows what the matcher chooses among the stored papers, best first, with the same
highlights as the emails; refuses a list the signup form refuses with the same sentence
and markup; escapes whatever a paper says; and answers GET and HEAD only.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from render_samples import load_papers

from digest.errors import InterestSyntaxError
from digest.match import match_subscriber, parse_interests
from digest.match.query import MAX_CHARS
from digest.paper import Paper
from digest.store import Database
from digest.store import search as store_search
from digest.store.papers import save_papers
from digest.web import create_app, search
from digest.web.forms import _describe
from tests.web_support import NOW, SECRET, Clock, Site

SEEN = NOW - timedelta(hours=2)


@pytest.fixture
def papers() -> list[Paper]:
    return load_papers()


@pytest.fixture
def site(make_site: Any, papers: list[Paper]) -> Site:
    """The app on SQLite with the real papers stored, first seen two hours ago."""
    site = make_site()
    with site.database.session() as session:
        save_papers(session, papers, SEEN)
    return site


@pytest.fixture
def backend_site(
    make_settings: Any, store_database: Database, papers: list[Paper]
) -> Iterator[Site]:
    """The app on each database backend, with the real papers stored."""
    settings = make_settings(web={"secret_key": SECRET}, service={"base_url": "http://digest.test"})
    app = create_app(settings, database=store_database, clock=Clock())
    with store_database.session() as session:
        save_papers(session, papers, SEEN)
    yield Site(app, settings, store_database, Clock())
    app.extensions["digest"].courier.stop()  # the store fixture disposes of the database


VOID = {"input", "img", "br", "hr", "meta", "link"}


class Page(HTMLParser):
    """What a search page shows: the texts of the parts the tests read, and the field."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.texts: dict[str, list[str]] = {}
        self.input: dict[str, str | None] = {}
        self._open: list[tuple[str, str, list[str]]] = []
        self.feed(html)

    def _kind(self, tag: str, values: dict[str, str | None]) -> str:
        if tag == "h3":
            return "title"
        if tag == "mark":
            return "mark"
        if tag == "code" and any(opened == "article" for opened, _, _ in self._open):
            return "label"
        if values.get("role") == "alert":
            return "alert"
        if values.get("class") == "error":
            return f"error {values.get('id')}"
        if tag == "a":
            return f"link {values.get('href')}"
        return ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "input" and values.get("name") == "q":
            self.input = values
        if tag not in VOID:
            self._open.append((tag, self._kind(tag, values), []))

    def handle_data(self, data: str) -> None:
        for _, _, parts in self._open:
            parts.append(data)

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            opened, kind, parts = self._open.pop()
            if kind:
                self.texts.setdefault(kind, []).append(" ".join("".join(parts).split()))
            if opened == tag:
                break

    @property
    def title(self) -> list[str]:
        """The results' titles, in order."""
        return self.texts.get("title", [])

    @property
    def mark(self) -> list[str]:
        """The marked words, in order."""
        return self.texts.get("mark", [])

    @property
    def label(self) -> list[str]:
        """The matched interests named on the results."""
        return self.texts.get("label", [])

    @property
    def alert(self) -> list[str]:
        """What the page says with role=alert."""
        return self.texts.get("alert", [])

    @property
    def errors(self) -> dict[str, str]:
        """Each error message by its id."""
        return {kind[6:]: texts[0] for kind, texts in self.texts.items() if kind[:6] == "error "}

    @property
    def links(self) -> dict[str, str]:
        """Each link's href by its text."""
        return {texts[-1]: kind[5:] for kind, texts in self.texts.items() if kind[:5] == "link "}


def find(site: Site, query: str, **kwargs: Any) -> Any:
    return site.get("/papers/search", query_string={"q": query}, **kwargs)


# --- results -------------------------------------------------------------------------


def test_an_empty_search_is_just_the_box(site: Site) -> None:
    for answer in (site.get("/papers/search"), find(site, "  \n ")):
        assert answer.status_code == 200
        page = Page(answer.get_data(as_text=True))
        assert page.input["type"] == "search"
        assert page.input["aria-invalid"] == "false"
        assert page.input["aria-describedby"] == "q-help"
        assert page.title == [] and page.alert == []
        assert "results-heading" not in answer.get_data(as_text=True)


def test_results_are_what_the_matcher_chooses_best_first(
    backend_site: Site, papers: list[Paper]
) -> None:
    query = "diffusion, large language model, -survey"
    answer = find(backend_site, query)
    assert answer.status_code == 200
    page = Page(answer.get_data(as_text=True))
    chosen = match_subscriber(parse_interests(query), papers, search.SHOWN)
    assert chosen.matches and chosen.more  # enough to show only the best
    assert page.title == [" ".join(match.paper.title.split()) for match in chosen.matches]
    total = len(chosen.matches) + chosen.more
    text = " ".join(answer.get_data(as_text=True).split())
    assert f"{total} papers matched" in text
    assert f"the best {search.SHOWN} are shown" in text
    # Why each matched: the interests named, the words marked.
    assert set(page.label) == {"diffusion", "large language model"}
    assert {mark.lower() for mark in page.mark} >= {"diffusion", "large language models"}


def test_the_signup_link_carries_the_interests(site: Site) -> None:
    page = Page(find(site, "diffusion,  title:agents").get_data(as_text=True))
    link = urlsplit(page.links["Get these by email"])
    assert link.path == "/"
    assert parse_qs(link.query) == {"interests": ["diffusion\ntitle:agents"]}


def test_trending_is_not_searched_and_the_page_says_so(site: Site, papers: list[Paper]) -> None:
    answer = find(site, "trending, agents")
    page = Page(answer.get_data(as_text=True))
    assert "Trending is not searched here" in answer.get_data(as_text=True)
    chosen = match_subscriber(parse_interests("agents"), papers, search.SHOWN)
    assert page.title == [" ".join(match.paper.title.split()) for match in chosen.matches]


def test_only_the_papers_of_the_search_window_are_searched(site: Site, papers: list[Paper]) -> None:
    old = replace(papers[0], id="2601.00001", title="Agents of an older month")
    with site.database.session() as session:
        save_papers(session, [old], NOW - search.SEARCH_WINDOW - timedelta(hours=1))
    answer = find(site, "title:agents")
    titles = Page(answer.get_data(as_text=True)).title
    assert titles and "Agents of an older month" not in titles
    text = " ".join(answer.get_data(as_text=True).split())
    assert f"Searched the {len(papers)} papers first seen in the last 30 days" in text


def test_too_many_candidates_are_cut_and_the_page_says_so(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search, "CANDIDATE_LIMIT", 5)
    html = " ".join(find(site, "the").get_data(as_text=True).split())
    found = re.search(r"might match ([\d,]+) papers: only the newest 5 of them were checked", html)
    assert found and int(found.group(1).replace(",", "")) > 100


def test_an_index_query_over_its_budget_is_given_up_and_the_page_says_so(
    site: Site, papers: list[Paper], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search, "CANDIDATE_LIMIT", 20)
    monkeypatch.setattr(store_search, "INDEX_BUDGET", 0.000_001)
    words = [first + second for first in "abcdefghijklmnopqrstuvwxyz" for second in "aeiouy"]
    costly = ", ".join(" ".join(words[start : start + 12]) for start in range(0, 144, 12))
    text = " ".join(find(site, costly).get_data(as_text=True).split())
    assert "These interests ask too much of the search index: only the newest 20 papers" in text
    assert f"Searched the {len(papers)} papers" in text


def test_a_search_beyond_the_concurrent_limit_is_asked_to_wait(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search, "SLOT_WAIT", 0.05)  # the slots stay taken: no need to wait
    taken = [search._search_slots.acquire(blocking=False) for _ in range(search.SEARCHES)]
    try:
        assert all(taken)
        answer = find(site, "agents")
        assert (answer.status_code, answer.headers["Retry-After"]) == (503, "5")
        assert "Busy searching" in answer.get_data(as_text=True)
        assert find(site, "title:").status_code == 400  # a mistake is answered all the same
    finally:
        for _ in taken:
            search._search_slots.release()
    assert find(site, "agents").status_code == 200


def test_a_search_waits_a_moment_for_a_slot_rather_than_being_refused(site: Site) -> None:
    search._search_slots.acquire()
    search._search_slots.acquire()
    freed = threading.Timer(
        0.3, lambda: (search._search_slots.release(), search._search_slots.release())
    )
    freed.start()
    try:
        assert find(site, "agents").status_code == 200  # served once a slot was free
    finally:
        freed.join()


# --- mistakes, as the signup form shows them -------------------------------------------


def _refused(site: Site, query: str) -> str:
    """The sentence the page refusing `query` shows, after checking that it shows it as
    the signup form shows a mistake: an alert, the field marked, the error its own."""
    answer = find(site, query)
    assert answer.status_code == 400
    page = Page(answer.get_data(as_text=True))
    assert page.alert == ["Please correct the field marked below."]
    assert page.input["aria-invalid"] == "true"
    assert page.input["aria-describedby"] == "q-help q-error"
    assert "autofocus" in page.input
    assert page.title == []
    [(error, sentence)] = page.errors.items()
    assert error == "q-error"
    return sentence


@pytest.mark.parametrize(
    "query", ['diffusion, "world model', "title:", "agents, -x AND", "trending:99", "-survey"]
)
def test_a_mistake_is_shown_as_the_signup_form_shows_it(site: Site, query: str) -> None:
    sentence = _refused(site, query)
    signup = Page(site.signup(interests=query).get_data(as_text=True))
    assert signup.errors["interests-error"] == sentence
    with pytest.raises(InterestSyntaxError) as raised:
        parse_interests(query, max_trending=site.settings.match.max_papers)
    assert sentence == _describe(raised.value)


def test_a_list_too_long_is_refused_with_the_parsers_message(site: Site) -> None:
    query = ", ".join(["agents"] * 300)
    assert _refused(site, query) == (
        f"The list is {len(query):,} characters long; shorten it to at most {MAX_CHARS:,}."
    )


# --- what a paper says is text, never markup ---------------------------------------------


def test_hostile_paper_text_and_interests_are_escaped(site: Site, papers: list[Paper]) -> None:
    hostile = replace(
        papers[0],
        id="2606.99999",
        title='<script>alert("title")</script> Agents <img src=x onerror=alert(1)>',
        abstract="Agents </mark><script>alert('abstract')</script> & more",
        authors=("<b>Eve</b>",),
        organization='"><iframe src=//evil>',
        url_code="javascript:alert(1)",
    )
    with site.database.session() as session:
        save_papers(session, [hostile], SEEN)
    answer = find(site, 'title:agents, "</mark><script>"')
    html = answer.get_data(as_text=True)
    assert answer.status_code == 200
    for markup in ("<script", "<img", "<iframe", "<b>Eve", "javascript:", "</mark><script"):
        assert markup not in html
    assert "&lt;script&gt;alert(&#34;title&#34;)&lt;/script&gt;" in html
    page = Page(html)
    assert any("<script>" in title for title in page.title)  # shown, as text


# --- methods ---------------------------------------------------------------------------


def test_only_get_and_head_are_answered(site: Site) -> None:
    shown = find(site, "agents")
    head = site.client.head("/papers/search", query_string={"q": "agents"})
    assert (head.status_code, head.get_data()) == (200, b"")
    for method in ("post", "put", "delete", "patch"):
        answer = getattr(site.client, method)("/papers/search", data={"q": "agents"})
        assert answer.status_code == 405
        assert set(answer.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}
    assert shown.headers["Cache-Control"] == "no-store"
    assert "<form" in shown.get_data(as_text=True) and "csrf_token" not in shown.get_data(
        as_text=True
    )
