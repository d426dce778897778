"""The search page: try interests on the stored papers before subscribing.

`GET /papers/search?q=...` takes an interest list written as on the signup form and
shows what it would have brought: the papers first seen in the last `SEARCH_WINDOW`
(as far back as a digest reaches) that it matches, best first, each with the interests
that chose it and the matched words highlighted. A GET form: a search changes nothing,
so it needs no CSRF token and its address can be shared.

The full-text index narrows the papers down (`digest.store.search`), then the same
matcher as the digests chooses, orders and explains, so the page shows exactly what a
digest would. The work is bounded: at most `CANDIDATE_LIMIT` papers (the newest the
index found) are matched; an index query is given up after a second (the newest papers
of the window are matched instead), the page saying so either way; and at most
`SEARCHES` searches run at once in a process (a further one is asked to try again in a
moment).

A list's trending rule (`trending`) is not searched: trending picks the most upvoted
papers of a reader's day, which a search over weeks of papers cannot show as a digest
would; the page says so and links to the papers by day instead.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from flask import Blueprint, render_template, request, url_for
from markupsafe import escape
from wtforms import Form, SearchField

from digest.errors import InterestSyntaxError
from digest.jobs.digests import MAX_WINDOW
from digest.match import INTEREST_EXAMPLES, Interests, Selection, match_subscriber, parse_interests
from digest.match.prefilter import search_query
from digest.render.view import HtmlStyle, card_context, html_fields, match_view, paper_view
from digest.store import Database
from digest.store.search import Candidates, search_papers
from digest.web import context
from digest.web.forms import _describe

blueprint = Blueprint("search", __name__)

SEARCH_WINDOW = MAX_WINDOW  # the papers searched: those a digest could still bring
CANDIDATE_LIMIT = 1_000  # papers matched at most, the newest the index found
SHOWN = 50  # results shown at most, best first
SEARCHES = 2  # searches run at once per process
# How long a search waits for a slot before it is asked to come back: a burst of
# visitors queues for a moment instead of being turned away (a search takes well
# under a second; 12 at once were 10 refusals without the wait).
SLOT_WAIT = 3.0
_search_slots = threading.BoundedSemaphore(SEARCHES)
# How a result's highlighted fields are written: escaped text, <mark>ed words, and the
# matched interests as code, as the syntax table shows interests.
STYLE = HtmlStyle(
    escape=lambda value: str(escape(value)), mark=("<mark>", "</mark>"), label=("<code>", "</code>")
)
QUERY_HELP = "As on the signup form: interests separated by commas, such as diffusion, -survey."


class SearchForm(Form):
    """The search box: one field, read from the query string (no CSRF: nothing changes)."""

    q = SearchField("Interests", description=QUERY_HELP)


@dataclass(frozen=True, slots=True)
class SearchResult:
    """What a search found: the matcher's selection among the candidates."""

    selection: Selection
    candidates: Candidates

    @property
    def matched(self) -> int:
        """How many papers matched, shown or not."""
        return len(self.selection.matches) + self.selection.more


def search_stored_papers(
    database: Database, interests: Interests, now: datetime, *, shown: int = SHOWN
) -> SearchResult:
    """The best `shown` papers of the search window for the keyword entries of
    `interests`, as a digest would choose them, and how many more matched."""
    keywords = replace(interests, trending=None, trending_first=False)
    with database.session() as session:
        candidates = search_papers(
            session, search_query(keywords), since=now - SEARCH_WINDOW, limit=CANDIDATE_LIMIT
        )
    return SearchResult(match_subscriber(keywords, candidates.papers, shown), candidates)


def result_cards(selection: Selection) -> list[dict[str, Any]]:
    """Each chosen paper as the template shows it: its card's fields, HTML where marked."""
    cards = []
    for match in selection.matches:
        view = paper_view(match.paper)
        cards.append(card_context(view, html_fields(view, match_view(view, match.hits), STYLE)))
    return cards


@blueprint.route("/papers/search")
def search() -> tuple[str, int] | tuple[str, int, dict[str, str]]:
    """The search box, and what the interests in `q` find (or why they cannot be read)."""
    form = SearchForm(request.args)
    text = (form.q.data or "").replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        return _page(form), 200
    try:
        # As the signup form reads it, so that what is found here can be subscribed to.
        interests = parse_interests(text, max_trending=context().settings.match.max_papers)
    except InterestSyntaxError as error:
        form.q.errors = [_describe(error)]
        return _page(form), 400
    if not _search_slots.acquire(timeout=SLOT_WAIT):
        return _busy()
    try:
        result = search_stored_papers(context().database, interests, context().clock())
    finally:
        _search_slots.release()
    return _page(form, interests, result), 200


def _page(
    form: SearchForm, interests: Interests | None = None, result: SearchResult | None = None
) -> str:
    return render_template(
        "search.html",
        form=form,
        examples=INTEREST_EXAMPLES,
        window_days=SEARCH_WINDOW.days,
        result=result,
        cards=result_cards(result.selection) if result else [],
        signup_url=url_for("subscribe.signup", interests=interests.text) if interests else "",
        trending=interests is not None and interests.trending is not None,
    )


def _busy() -> tuple[str, int, dict[str, str]]:
    page = render_template(
        "error.html",
        title="Busy searching",
        message="Several searches are running just now. Please try again in a few seconds.",
    )
    return page, 503, {"Retry-After": "5"}
