"""The day's papers on the web: /papers, /papers/YYYY-MM-DD and /papers/feed.xml.

`/papers` shows the most recent day with papers, on or before today (the app's clock in
the service's time zone), at a URL that stays; `/papers/<day>` shows one day, and a day
without papers says so. Each page lists the papers Hugging Face Daily Papers listed
that day, by upvotes, then those only on arXiv, with links to the days before and
after. The feed holds the top papers of the last days Hugging Face listed papers on.

Caching. A spike of visitors must not render the same page again and again, so a page
is rendered once per change of what it shows and kept in memory (`PageCache`, bounded
in bytes, per process). Its key is the data it shows, in brief: the day, its neighbour
days and a fingerprint of the day's rows (`digest.store.paper_pages`); those are read
on every request, from indexes and the day's rows only, and a new paper or a changed
upvote changes them at once. The slower answers (which day is the latest, which days
are the neighbours, which days the feed covers) change only when papers arrive, so they
are kept under `arrivals` and worked out once per arrival. The same bytes go to every
visitor: public, cacheable for a minute, with a strong ETag and 304 for a client that
has them (`page_response`). /papers and /papers/<its day> are one page, kept once.

The signup box and CSRF. Every form carries a Flask-WTF token, which is bound to the
visitor's session (a signed token of a random value kept in the session cookie) and
checked on every POST by `CSRFProtect`. A page shared by every visitor, and by caches
between them, must hold no such token and set no cookie: another visitor would get the
token and session of the first (a forged sign-up in their name then passes, and a
shared cache would hand the cookie out). Nor can the box post without a token: the
signup endpoint refuses that, and a token anyone can fetch protects nothing. So the box
is its own small document, `/papers/signup-box`, shown in a frame of the page: answered
to each visitor with their own session and token, never stored by anyone (no-store),
framed by our own pages only, and its form posts to the signup page in the whole window
(target=_top), which then shows the check-your-email page, or the signup page with what
was wrong. The cached page holds only the frame's address. The box's form is the same
for everyone but the token, so it too is rendered once, with a slot each answer fills
with its visitor's token. Without script the frame has a fixed height (and scrolls);
`signup-box.js` fits it to the form.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import date, time
from typing import TypeVar
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, current_app, render_template, url_for
from flask_wtf.csrf import generate_csrf
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from digest.match import INTEREST_EXAMPLES
from digest.paper import Paper, arxiv_abs_url
from digest.render.snippet import clean_text, excerpt
from digest.render.view import Link, long_date, paper_view, web_url
from digest.store.paper_pages import (
    Fingerprint,
    arrivals,
    day_fingerprint,
    hf_days,
    hf_fingerprint,
    top_hf_papers,
)
from digest.store.papers import latest_day, neighbour_days, papers_of_day
from digest.web import FRAMED_PAGE_HEADERS, context
from digest.web.feed import AUTHORS_SHOWN, MEDIA_TYPE, FeedDay, atom_feed
from digest.web.forms import SignupForm
from digest.web.page_cache import Page, PageCache, page_response

blueprint = Blueprint("papers", __name__)
blueprint.add_app_template_filter(long_date)

# app.config["PAPERS_CACHE_BYTES"]: how much rendered pages one process keeps (0: none,
# every request renders: the benchmark's baseline). A busy arXiv day is about 1 MB.
CACHE_BYTES = 32 * 1024 * 1024
FACT_SIZE = 200  # what a kept day or list of days costs, roughly, in bytes
SNIPPET_CHARS = 300
FEED_DAYS = 7
FEED_PAPERS = 10
# Where each visitor's CSRF token goes in the signup box kept for all (not a token's shape).
TOKEN_SLOT = "{csrf token slot}"
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# What HTML calls a parse error beyond what `clean_text` replaces: C1 controls and the
# noncharacters (U+FDD0..U+FDEF, and the last two code points of every plane).
_NOT_IN_PAGES = re.compile(
    "[\x80-\x9f\ufdd0-\ufdef"
    + "".join(chr(plane + 0xFFFE) + chr(plane + 0xFFFF) for plane in range(0, 0x110000, 0x10000))
    + "]"
)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Card:
    """What the page shows of one paper."""

    rank: int
    id: str
    title: str
    url: str
    authors: str
    organization: str
    on_hf: bool
    upvotes: int
    comments: int
    snippet: str
    links: tuple[Link, ...]


def card(paper: Paper, rank: int) -> Card:
    """A paper as the page shows it: text cleaned of control characters, a short byline
    and abstract (cut at a word), only http(s) links."""
    view = paper_view(paper)
    return Card(
        rank=rank,
        id=paper.id,
        title=readable(view.title),
        url=web_url(paper.url_abs) or arxiv_abs_url(paper.id),
        authors=byline(paper.authors),
        organization=readable(view.organization),
        on_hf=paper.on_hf,
        upvotes=max(paper.upvotes or 0, 0),
        comments=max(paper.comments or 0, 0),
        snippet=readable(excerpt(paper.abstract, limit=SNIPPET_CHARS, follow_marks=False).text),
        links=view.links,
    )


def readable(text: str) -> str:
    """`text` with every character HTML does not want (controls, noncharacters, lone
    surrogates) replaced, each by one character."""
    text = clean_text(text)
    return _NOT_IN_PAGES.sub(" ", text) if _NOT_IN_PAGES.search(text) else text


def byline(authors: tuple[str, ...]) -> str:
    """The first `AUTHORS_SHOWN` authors, then "et al." when there are more."""
    shown = ", ".join(readable(name) for name in authors[:AUTHORS_SHOWN])
    return shown + " et al." if len(authors) > AUTHORS_SHOWN else shown


# --- the cache ---------------------------------------------------------------------------


def _cache() -> PageCache:
    """This app's page cache, made on first use with app.config["PAPERS_CACHE_BYTES"]."""
    extensions = current_app.extensions
    cache = extensions.get("digest_papers_cache")
    if cache is None:
        limit = current_app.config.get("PAPERS_CACHE_BYTES", CACHE_BYTES)
        cache = extensions.setdefault("digest_papers_cache", PageCache(limit))
    return cache


def _kept(key: Hashable, work_out: Callable[[], T]) -> T:
    """`work_out()`, kept under `key` (which names everything it depends on)."""
    # Boxed: the cache takes None for "not kept", and None is a fine answer here.
    boxed: tuple[T] = _cache().get_or_make(key, lambda: (work_out(),), lambda _: FACT_SIZE)
    return boxed[0]


def _kept_page(key: Hashable, render: Callable[[], Page]) -> Page:
    page: Page = _cache().get_or_make(key, render, lambda page: page.size)
    return page


# --- pages -------------------------------------------------------------------------------


def _today() -> date:
    ctx = context()
    return ctx.clock().astimezone(ZoneInfo(ctx.settings.service.timezone)).date()


def _day_from_url(text: str) -> date:
    """The day a URL names (YYYY-MM-DD, a real date), else the 404 page."""
    if _DAY.fullmatch(text):
        try:
            return date.fromisoformat(text)
        except ValueError:  # 2026-02-30
            pass
    abort(404)


@blueprint.route("/papers", provide_automatic_options=False)
def latest() -> Response:
    """The most recent day with papers, on or before today (today's, empty, if none)."""
    today = _today()
    with context().database.session() as session:
        seen = arrivals(session)
        day = _kept(("latest", today, seen), lambda: latest_day(session, today)) or today
        page = _day_page(session, day, seen)
    return page_response(page)


@blueprint.route("/papers/<day>", provide_automatic_options=False)
def of_day(day: str) -> Response:
    """The papers of one day; a day without papers says so, with links to those around."""
    wanted = _day_from_url(day)
    with context().database.session() as session:
        page = _day_page(session, wanted, arrivals(session))
    return page_response(page)


def _day_page(session: Session, day: date, seen: Fingerprint) -> Page:
    neighbours = _kept(("neighbours", day, seen), lambda: neighbour_days(session, day))
    key = ("day", day, neighbours, day_fingerprint(session, day))
    return _kept_page(key, lambda: _render_day(session, day, neighbours))


def _render_day(session: Session, day: date, neighbours: tuple[date | None, date | None]) -> Page:
    papers = papers_of_day(session, day)
    cards = [card(paper, rank) for rank, paper in enumerate(papers, 1)]
    on_hf = [c for c, paper in zip(cards, papers, strict=True) if paper.hf_listed == day]
    html = render_template(
        "papers.html",
        day=day,
        day_words=long_date(day),
        on_hf=on_hf,
        on_arxiv=cards[len(on_hf) :],
        previous=neighbours[0],
        next=neighbours[1],
    )
    return Page.of(html.encode("utf-8"), "text/html")


@blueprint.route("/papers/feed.xml", provide_automatic_options=False)
def feed() -> Response:
    """The top papers of the last days Hugging Face listed papers on, as Atom."""
    today = _today()
    with context().database.session() as session:
        seen = arrivals(session)
        days = _kept(("feed days", today, seen), lambda: hf_days(session, today, FEED_DAYS))
        key = ("feed", tuple(days), hf_fingerprint(session, days) if days else ())
        page = _kept_page(key, lambda: _render_feed(session, days))
    return page_response(page)


def _render_feed(session: Session, days: list[date]) -> Page:
    listed = [FeedDay(day, top_hf_papers(session, day, FEED_PAPERS)) for day in days]
    ctx = context()
    base = ctx.settings.service.base_url.rstrip("/")
    body = atom_feed(
        listed,
        title=f"{ctx.settings.mail.from_name}: trending papers",
        feed_url=base + url_for("papers.feed"),
        page_url=base + url_for("papers.latest"),
    )
    return Page.of(body, MEDIA_TYPE)


# --- the signup box ----------------------------------------------------------------------


def _papers_signup_form() -> SignupForm:
    """The box's form: a fresh sign-up, at the service's default time and time zone,
    with the day's trending papers ticked (they are what these pages show)."""
    settings = context().settings
    form = SignupForm(
        keep_zones=(settings.service.timezone,), max_trending=settings.match.max_papers
    )
    form.send_time.data = time.fromisoformat(settings.schedule.default_send_time)
    form.timezone.data = settings.service.timezone
    form.trending.data = True
    return form


@blueprint.route("/papers/signup-box", provide_automatic_options=False)
def signup_box() -> tuple[str, int, dict[str, str]]:
    """The signup form shown in a frame of the papers pages, with this visitor's own
    CSRF token (so the answer is never cached: the default no-store stays); only our
    pages may frame it.

    The form is the same for everyone but for the token, and its time zone list makes it
    slow to render: it is rendered once, with a slot where each visitor's token goes.
    """
    form: str = _cache().get_or_make(("signup box",), _box_with_token_slot, len)
    return form.replace(TOKEN_SLOT, generate_csrf()), 200, FRAMED_PAGE_HEADERS


def _box_with_token_slot() -> str:
    """The box rendered for this request, its CSRF token replaced by `TOKEN_SLOT`."""
    page = render_template(
        "papers_signup_box.html", form=_papers_signup_form(), examples=INTEREST_EXAMPLES
    )
    token = generate_csrf()  # the token the form shows: Flask-WTF keeps one per request
    if page.count(token) != 1:  # never keep a page that would show one visitor's token
        raise RuntimeError("the signup box must show its CSRF token exactly once")
    return page.replace(token, TOKEN_SLOT)
