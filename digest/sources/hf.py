"""Hugging Face Daily Papers: the papers picked for one day.

Three ways in, most stable first (`fetch` falls back along them):
1. the JSON API, `/api/daily_papers?date=YYYY-MM-DD`: a list of entries
   `{paper: {id, title, summary, authors, publishedAt, submittedOnDailyAt, upvotes,
   githubRepo, projectPage, ...}, numComments, organization, ...}`;
2. the day page, `/papers/date/YYYY-MM-DD`, whose `div[data-target="DailyPapers"]` carries
   the same entries as JSON in its `data-props` (with `date`, the day it shows);
3. that page's paper cards (`article` > `h3 > a[href^="/papers/"]`): id, title, upvotes
   and comment count only, for when the embedded data is gone after a redesign.
A paper page (`/papers/ID`, `data-target="PaperContent"`) reads as a listing of one.

An empty or invalid day redirects the page to `/papers` (today's listing): that is
reported as "no listing for that day", never as papers of another day.
The `parse_*` functions are pure (text in, `Listing` out); `fetch` adds HTTP around them.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date
from typing import Any
from urllib.parse import urlsplit

from bs4 import BeautifulSoup, Tag

from digest.errors import FetchError, ParseError
from digest.paper import (
    CUT,
    HF_SOURCE,
    MAX_ABSTRACT,
    MAX_AUTHORS,
    MAX_NAME,
    MAX_TITLE,
    Paper,
    arxiv_abs_url,
    arxiv_pdf_url,
    hf_paper_url,
    normalise_space,
    parse_arxiv_id,
)
from digest.sources.http import PoliteClient
from digest.sources.listing import (
    Listing,
    Malformed,
    ValidatorLookup,
    decode_text,
    mapping,
    no_validators,
    optional_count,
    optional_iso_date,
    optional_text,
    optional_url,
    organization_name,
    text,
)

SOURCE = HF_SOURCE
NO_LISTING = "no listing for that day"
MAX_ID = 64  # the store's id column
# The largest answer or page read: a real day is 150-250 KB (30 papers), so this is room
# for some 1,000 papers. Parsing costs many times the size (BeautifulSoup keeps about 60
# bytes per byte of a page made of tiny tags), so the bound is on what is read at all.
MAX_BYTES = 8 * 1024 * 1024

log = logging.getLogger(__name__)

_HTML_START = re.compile(r"<!doctype\s+html|<html[\s>]", re.IGNORECASE)
_HTML_END = re.compile(r"</html\s*>", re.IGNORECASE)


def api_url(base_url: str, day: date) -> str:
    """The JSON API address of a day's listing."""
    return f"{base_url.rstrip('/')}/api/daily_papers?date={day.isoformat()}"


def page_url(base_url: str, day: date) -> str:
    """The web page of a day's listing."""
    return f"{base_url.rstrip('/')}/papers/date/{day.isoformat()}"


# --- Entries (the API's shape, also embedded in the pages) ---------------------------


def _authors(value: Any) -> tuple[str, ...]:
    """Author names in order. Authors HF marks `hidden` are kept: arXiv lists them.

    A list longer than MAX_AUTHORS keeps its first names and CUT last; the rest are not
    even read.
    """
    if value is None:
        return ()
    if not isinstance(value, list):
        raise Malformed("paper.authors is not a list")
    names = []
    for number, author in enumerate(value[:MAX_AUTHORS], start=1):
        name = mapping(author, f"author {number}").get("name")
        names.append(text(name, f"author {number}", MAX_NAME))
    if len(value) > MAX_AUTHORS:
        names[-1] = CUT
    return tuple(names)


def _paper_id(value: Any) -> str:
    if not isinstance(value, str):
        raise Malformed("paper.id is missing" if value is None else "paper.id is not text")
    paper_id = parse_arxiv_id(value)
    if paper_id is None or len(paper_id) > MAX_ID:
        raise Malformed(f'paper.id "{value[:40]}" is not an arXiv id')
    return paper_id


def _paper_from_record(
    record: Mapping[str, Any],
    *,
    organization: Any = None,
    comments: Any = None,
    fallback_title: Any = None,
) -> tuple[Paper, date | None]:
    """A Paper from HF's `paper` object, and the day it was put on the daily list."""
    paper_id = _paper_id(record.get("id"))
    title = record.get("title")
    paper = Paper(
        id=paper_id,
        title=text(fallback_title if title is None else title, "paper.title", MAX_TITLE),
        abstract=optional_text(record.get("summary"), "paper.summary", MAX_ABSTRACT) or "",
        authors=_authors(record.get("authors")),
        organization=organization_name(organization)
        or organization_name(record.get("organization")),
        published=optional_iso_date(record.get("publishedAt"), "paper.publishedAt"),
        upvotes=optional_count(record.get("upvotes"), "paper.upvotes"),
        comments=optional_count(comments, "numComments"),
        url_abs=arxiv_abs_url(paper_id),
        url_pdf=arxiv_pdf_url(paper_id),
        url_hf=hf_paper_url(paper_id),
        url_code=optional_url(record.get("githubRepo")),
        url_project=optional_url(record.get("projectPage")),
        sources=(SOURCE,),
    )
    on_daily = optional_iso_date(record.get("submittedOnDailyAt"), "paper.submittedOnDailyAt")
    return paper, on_daily


def _paper_from_entry(entry: Any) -> tuple[Paper, date | None]:
    entry = mapping(entry, "entry")
    return _paper_from_record(
        mapping(entry.get("paper"), "entry.paper"),
        organization=entry.get("organization"),
        comments=entry.get("numComments"),
        fallback_title=entry.get("title"),
    )


def _unique(papers: Sequence[Paper]) -> tuple[Paper, ...]:
    """Each id once, first sighting kept, order kept."""
    seen: dict[str, Paper] = {}
    for paper in papers:
        seen.setdefault(paper.id, paper)
    return tuple(seen.values())


def _no_listing(origin: str, day: date | None, why: str) -> Listing:
    return Listing(SOURCE, origin, day, (), note=f"{NO_LISTING} ({why})")


def _read_entries(
    entries: list[Any],
    origin: str,
    *,
    requested: date | None,
    shown: date | None,
    where: str,
) -> Listing:
    """Read a list of API-shaped entries; skip (and count) the ones that do not read.

    `requested` is the day asked for (when fetching), `shown` the day the page says it
    shows. If the answer is for another day, there is no listing for the requested one.
    """
    papers: list[Paper] = []
    on_daily: list[date] = []
    problems: list[str] = []
    for number, entry in enumerate(entries, start=1):
        try:
            paper, day = _paper_from_entry(entry)
        except Malformed as problem:
            problems.append(f"entry {number}: {problem}")
            log.warning("%s: %s: skipped %s", SOURCE, origin, problems[-1])
            continue
        papers.append(paper)
        if day is not None:
            on_daily.append(day)
    if entries and not papers:
        raise ParseError(
            SOURCE,
            origin,
            f"none of the {len(entries)} {where} entries could be read ({problems[0]})",
        )
    listed = shown or (Counter(on_daily).most_common(1)[0][0] if on_daily else None)
    if requested is not None:
        if shown is not None and shown != requested:
            return _no_listing(origin, requested, f"the site answered with {shown.isoformat()}")
        if shown is None and on_daily and requested not in on_daily:
            return _no_listing(origin, requested, f"the site answered with {listed}")
        listed = requested
    if not papers:
        return _no_listing(origin, listed, "no papers listed")
    dated = tuple(replace(paper, listed=listed) for paper in _unique(papers))
    return Listing(SOURCE, origin, listed, dated, skipped=len(problems))


# --- The JSON API -----------------------------------------------------------------------


def _load_json(content: str, origin: str, what: str) -> Any:
    try:
        return json.loads(content)
    except RecursionError:
        raise ParseError(SOURCE, origin, f"{what} is nested too deeply") from None
    except ValueError as error:
        raise ParseError(SOURCE, origin, f"{what} is not valid JSON ({error})") from None


def parse_api(content: bytes | str, origin: str, day: date | None = None) -> Listing:
    """Read the JSON API's answer (`/api/daily_papers?date=...`).

    `day` is the day asked for; without it (a saved file) the day is the one most
    entries were put on the daily list (`submittedOnDailyAt`).
    """
    body = decode_text(content)
    if not body.strip():
        raise ParseError(SOURCE, origin, "the response is empty")
    data = _load_json(body, origin, "the response")
    if isinstance(data, Mapping) and isinstance(data.get("error"), str):
        raise ParseError(SOURCE, origin, f'the API answered with an error: "{data["error"]}"')
    if not isinstance(data, list):
        raise ParseError(
            SOURCE, origin, f"expected a JSON array of daily papers, got a {type(data).__name__}"
        )
    return _read_entries(data, origin, requested=day, shown=None, where="API")


# --- Pages ------------------------------------------------------------------------------


def _hydration_props(soup: BeautifulSoup, target: str, origin: str) -> Any | None:
    """The JSON in `data-props` of the Svelte hydration div `target`, None if absent."""
    found = soup.find("div", attrs={"data-target": target})
    if not isinstance(found, Tag):
        return None
    props = found.get("data-props")
    if not isinstance(props, str):
        raise ParseError(SOURCE, origin, f'the "{target}" element has no data-props')
    return _load_json(props, origin, f'the "{target}" data-props')


def _props_day(props: Mapping[str, Any], origin: str) -> date | None:
    try:
        return optional_iso_date(props.get("date"), "date")
    except Malformed as problem:
        raise ParseError(SOURCE, origin, f"the DailyPapers data's {problem}") from None


def _read_daily_props(props: Any, origin: str, requested: date | None) -> Listing:
    if not isinstance(props, Mapping) or not isinstance(props.get("dailyPapers"), list):
        raise ParseError(SOURCE, origin, 'the "DailyPapers" data has no "dailyPapers" list')
    shown = _props_day(props, origin)
    return _read_entries(
        props["dailyPapers"], origin, requested=requested, shown=shown, where="DailyPapers"
    )


def _read_paper_page(props: Any, origin: str) -> Listing:
    """A single paper's page: a listing of one, on the day it was on the daily list."""
    if not isinstance(props, Mapping) or not isinstance(props.get("paper"), Mapping):
        raise ParseError(SOURCE, origin, 'the "PaperContent" data has no "paper" object')
    comments = props.get("comments")
    try:
        paper, on_daily = _paper_from_record(
            props["paper"],
            organization=props.get("submitterOrganization"),
            comments=len(comments) if isinstance(comments, list) else None,
        )
    except Malformed as problem:
        raise ParseError(SOURCE, origin, f"the paper page's {problem}") from None
    return Listing(SOURCE, origin, on_daily, (replace(paper, listed=on_daily),))


def _card_count(element: Tag | None) -> int | None:
    if element is None:
        return None
    shown = element.get_text(" ")
    if len(shown) > 64:  # no count is that long; don't split megabytes into words
        return None
    digits = normalise_space(shown)
    return int(digits) if digits.isascii() and digits.isdigit() else None


def _paper_from_card(article: Tag, link: Tag) -> Paper:
    href = link.get("href")
    if not isinstance(href, str):
        raise Malformed("the card's link has no address")
    paper_id = _paper_id(href.removeprefix("/papers/").split("#")[0].split("?")[0])
    upvotes = next(
        (
            count
            for count in map(_card_count, article.select("div.leading-none"))
            if count is not None
        ),
        None,
    )
    return Paper(
        id=paper_id,
        title=text(link.get_text(" "), "the card's title", MAX_TITLE),
        abstract="",  # cards carry no abstract; a later API sighting fills it in
        upvotes=upvotes,
        comments=_card_count(article.select_one('a[href$="#community"]')),
        url_abs=arxiv_abs_url(paper_id),
        url_pdf=arxiv_pdf_url(paper_id),
        url_hf=hf_paper_url(paper_id),
        sources=(SOURCE,),
    )


def _read_cards(soup: BeautifulSoup, origin: str, requested: date | None) -> Listing | None:
    """The paper cards of a day page (2024 layout), None when there are none."""
    cards = []
    for article in soup.find_all("article"):
        link = article.select_one('h3 a[href^="/papers/"]')
        if link is not None:
            cards.append((article, link))
    if not cards:
        return None
    papers: list[Paper] = []
    problems: list[str] = []
    for number, (article, link) in enumerate(cards, start=1):
        try:
            papers.append(_paper_from_card(article, link))
        except Malformed as problem:
            problems.append(f"card {number}: {problem}")
            log.warning("%s: %s: skipped %s", SOURCE, origin, problems[-1])
    if not papers:
        raise ParseError(
            SOURCE, origin, f"none of the {len(cards)} paper cards could be read ({problems[0]})"
        )
    dated = tuple(replace(paper, listed=requested) for paper in _unique(papers))
    return Listing(
        SOURCE,
        origin,
        requested,
        dated,
        skipped=len(problems),
        note="read from the paper cards: no abstracts or authors",
    )


def _check_html(body: str, origin: str) -> None:
    if not body.strip():
        raise ParseError(SOURCE, origin, "the page is empty")
    if not _HTML_START.search(body[:4096]):
        raise ParseError(SOURCE, origin, "not an HTML page (no <html> or <!DOCTYPE html>)")
    if not _HTML_END.search(body, max(0, len(body) - 65536)):
        raise ParseError(SOURCE, origin, "the page is truncated (it has no closing </html>)")


def parse_page(content: bytes | str, origin: str, day: date | None = None) -> Listing:
    """Read a Hugging Face papers page: a day page (embedded data, else cards) or a paper.

    `day` is the day asked for; a day page showing another day gives an empty listing
    with the note "no listing for that day".
    """
    body = decode_text(content)
    _check_html(body, origin)
    soup = BeautifulSoup(body, "lxml")
    try:
        daily = _hydration_props(soup, "DailyPapers", origin)
        if daily is not None:
            return _read_daily_props(daily, origin, day)
    except ParseError as problem:
        # The embedded data is the better source; the cards are the fallback.
        cards = _read_cards(soup, origin, day)
        if cards is None:
            raise
        return replace(cards, note=f"{cards.note}; {problem.what}")
    paper = _hydration_props(soup, "PaperContent", origin)
    if paper is not None:
        return _read_paper_page(paper, origin)
    cards = _read_cards(soup, origin, day)
    if cards is not None:
        return cards
    raise ParseError(
        SOURCE,
        origin,
        "unknown page layout: no DailyPapers data, no PaperContent data and no paper cards "
        "(a bot challenge, or the site changed)",
    )


# --- Fetching ---------------------------------------------------------------------------


def _fetch_api(client: PoliteClient, url: str, day: date, known: ValidatorLookup) -> Listing:
    response = client.get(url, source=SOURCE, validators=known(url), max_bytes=MAX_BYTES)
    if response.not_modified:
        return Listing(SOURCE, url, day, (), not_modified=True)
    listing = parse_api(response.content, url, day)
    return replace(listing, validators=response.validators())


def _fetch_page(client: PoliteClient, url: str, day: date, known: ValidatorLookup) -> Listing:
    response = client.get(url, source=SOURCE, validators=known(url), max_bytes=MAX_BYTES)
    if response.not_modified:
        return Listing(SOURCE, url, day, (), not_modified=True)
    landed = urlsplit(response.final_url).path.rstrip("/") or "/"
    if landed != urlsplit(url).path.rstrip("/"):
        return _no_listing(url, day, f"redirected to {landed}")
    listing = parse_page(response.content, url, day)
    return replace(listing, validators=response.validators())


def fetch(
    client: PoliteClient, base_url: str, day: date, *, known: ValidatorLookup = no_validators
) -> Listing:
    """Fetch one day's listing: the API first, then the day page if the API fails.

    Raises FetchError or ParseError (naming both failures) when neither way works.
    """
    api = api_url(base_url, day)
    try:
        return _fetch_api(client, api, day, known)
    except (FetchError, ParseError) as error:
        api_error = error
        log.debug("%s; trying the day page", error)
    page = page_url(base_url, day)
    also = f"(and the API failed: {api_error.what})"
    try:
        listing = _fetch_page(client, page, day, known)
    except FetchError as error:
        raise FetchError(SOURCE, page, f"{error.what} {also}") from None
    except ParseError as error:
        raise ParseError(SOURCE, page, f"{error.what} {also}") from None
    if listing.papers:
        fallback = f"from the day page; the API failed: {api_error.what}"
        listing = replace(listing, note=f"{fallback}; {listing.note}" if listing.note else fallback)
    return listing
