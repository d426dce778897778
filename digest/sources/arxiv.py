"""arXiv: the day's new announcements in the configured categories.

`fetch` reads the RSS feed `{feed_url}/rss/cs.LG+cs.CL` (one request for all categories);
`fetch_papers` asks the arXiv API (`{api_url}/api/query?id_list=...`) for given papers,
such as the seed papers readers name with `like:` (at most `MAX_ID_LIST` per request).
`parse_feed` also reads the Atom variant of that feed (`rss.arxiv.org/atom/...`) and the
Atom answers of the arXiv API (`export.arxiv.org/api/query`), so saved files of any of
the three can be loaded.

In the announcement feeds each entry has an announce type: `new` papers are fresh, and so
are `cross` lists from other categories when `include_cross` is set; `replace` (and
`replace-cross`) are revisions of old papers and are left out, not counted as malformed.
API answers are search results: every entry is taken.

Elements are found by namespace URI, never by prefix: feeds may bind other prefixes.
The feeds are empty on weekends and holidays; that is an empty listing, not an error.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import date
from email.utils import parsedate_to_datetime

from lxml import etree

from digest.config import ArxivSettings
from digest.errors import ConfigError, ParseError
from digest.paper import (
    CUT,
    MAX_ABSTRACT,
    MAX_AUTHORS,
    MAX_CATEGORIES,
    MAX_CATEGORY,
    MAX_NAME,
    MAX_TITLE,
    Paper,
    arxiv_abs_url,
    arxiv_pdf_url,
    clip,
    normalise_space,
    parse_arxiv_id,
)
from digest.sources.http import DEFAULT_MAX_BYTES, PoliteClient
from digest.sources.listing import (
    Listing,
    Malformed,
    ValidatorLookup,
    describe_day,
    iso_date,
    no_validators,
    text,
)

SOURCE = "arxiv"
MAX_ID = 64  # the store's id column
MAX_ID_LIST = 100  # papers asked of the API in one request: one modest page
# The largest feed read (the client's limit): a busy day of four big categories is a few
# MB. lxml keeps a document in a few times its size, and no text node past 10 MB.
MAX_BYTES = DEFAULT_MAX_BYTES

ATOM = "{http://www.w3.org/2005/Atom}"
ARXIV = "{http://arxiv.org/schemas/atom}"
DC = "{http://purl.org/dc/elements/1.1/}"
OPENSEARCH = "{http://a9.com/-/spec/opensearch/1.1/}"

FRESH = frozenset({"new"})
FRESH_WITH_CROSS = frozenset({"new", "cross"})

log = logging.getLogger(__name__)

_ANNOUNCE = re.compile(r"Announce Type:\s*([A-Za-z-]+)")
_ABSTRACT = re.compile(r"Abstract:\s*", re.IGNORECASE)
_DESCRIPTION_PREFIX = re.compile(r"^\s*(arXiv:\S+\s+)?Announce Type:\s*[A-Za-z-]+\s*", re.I)
_ABS_LINK = re.compile(r"arxiv\.org/(?:abs|pdf)/([^?#\s]+?)(?:\.pdf)?(?:[?#].*)?$", re.IGNORECASE)
_AUTHOR_SEPARATOR = re.compile(r"\s*,\s*|\s+and\s+")


def api_papers_url(base_url: str, paper_ids: Sequence[str]) -> str:
    """The arXiv API query for these papers (by versionless id), all on one page."""
    ids = ",".join(paper_ids)
    return f"{base_url.rstrip('/')}/api/query?id_list={ids}&max_results={len(paper_ids)}"


def feed_url(base_url: str, categories: Iterable[str]) -> str:
    """The RSS feed of the given categories' announcements."""
    names = [name.strip() for name in categories if name.strip()]
    if not names:
        raise ConfigError('[sources.arxiv] categories is empty: name at least one, e.g. ["cs.LG"]')
    return f"{base_url.rstrip('/')}/rss/{'+'.join(names)}"


# --- Small readers ----------------------------------------------------------------------


def _arxiv_id(*candidates: str | None) -> str:
    """The versionless id from `oai:arXiv.org:ID`, `arXiv:ID` or an abs/pdf link."""
    for candidate in candidates:
        if not candidate:
            continue
        candidate = candidate.strip()
        found = parse_arxiv_id(candidate)
        if found is None:
            link = _ABS_LINK.search(candidate)
            found = parse_arxiv_id(link.group(1)) if link else None
        if found is not None and len(found) <= MAX_ID:
            return found
    shown = next((c.strip()[:60] for c in candidates if c and c.strip()), "")
    raise Malformed(f'no arXiv id (id "{shown}")' if shown else "no arXiv id")


def _rfc822_date(value: str | None) -> date | None:
    """The calendar date of an RSS date (`Thu, 24 Sep 2026 00:00:00 -0400`), in its offset."""
    if not value or not value.strip():
        return None
    try:
        return parsedate_to_datetime(value.strip()).date()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _safe_iso_date(value: str | None) -> date | None:
    try:
        return iso_date(value, "date") if value else None
    except Malformed:
        return None


def _categories(values: Iterable[str | None]) -> tuple[str, ...]:
    """Category names, whitespace trimmed, each once, order kept; at most MAX_CATEGORIES.

    A name longer than MAX_CATEGORY is no category code and is dropped.
    """
    seen: dict[str, None] = {}
    for value in values:
        if len(seen) == MAX_CATEGORIES:
            break
        if value and len(value) <= MAX_CATEGORY * 2:  # room for surrounding spaces
            name = normalise_space(value)
            if name and len(name) <= MAX_CATEGORY:
                seen.setdefault(name, None)
    return tuple(seen)


def _capped_names(names: Iterable[str]) -> tuple[str, ...]:
    """Non-empty names clipped to MAX_NAME, at most MAX_AUTHORS of them (CUT last if more)."""
    kept: list[str] = []
    for name in names:
        name = clip(name, MAX_NAME)
        if not name:
            continue
        if len(kept) == MAX_AUTHORS:
            kept[-1] = CUT
            break
        kept.append(name)
    return tuple(kept)


# Raw text of `dc:creator` worth reading: MAX_AUTHORS long names with their separators.
_CREATORS_RAW = MAX_AUTHORS * (MAX_NAME + 8)


def _creators(elements: Iterable[etree._Element]) -> tuple[str, ...]:
    """Authors from `dc:creator` elements: comma-joined names, possibly several elements."""

    def names() -> Iterable[str]:
        read = 0
        for element in elements:
            # Split only what can still be kept: a hostile 10 MB creator list would
            # otherwise become millions of names before being cut.
            raw = (element.text or "")[: _CREATORS_RAW - read + 1]
            read += len(raw)
            yield from _AUTHOR_SEPARATOR.split(normalise_space(raw))
            if read > _CREATORS_RAW:
                yield CUT  # what was not read counts as more authors
                return

    return _capped_names(names())


def _announcement(description: str, element_text: str | None) -> tuple[str, str]:
    """(announce type, abstract) of an announcement entry's description."""
    kind = normalise_space((element_text or "")[:100]).lower()
    # The announce type and "Abstract:" come first: the rest matters only up to what an
    # abstract may hold (clip reads 4 characters per kept one; 1,000 more for the prefix).
    description = description[: MAX_ABSTRACT * 4 + 1_000 + 1]
    if not kind:
        found = _ANNOUNCE.search(description)
        if found is None:
            raise Malformed("no announce type")
        kind = found.group(1).lower()
    parts = _ABSTRACT.split(description, maxsplit=1)
    abstract = parts[1] if len(parts) == 2 else _DESCRIPTION_PREFIX.sub("", description)
    return kind, clip(abstract, MAX_ABSTRACT)


def _paper(
    paper_id: str,
    title: str | None,
    abstract: str,
    authors: tuple[str, ...],
    categories: tuple[str, ...],
    published: date | None,
    listed: date | None,
) -> Paper:
    return Paper(
        id=paper_id,
        title=text(title, "title", MAX_TITLE),
        abstract=abstract,
        authors=authors,
        categories=categories,
        published=published,
        listed=listed,
        url_abs=arxiv_abs_url(paper_id),
        url_pdf=arxiv_pdf_url(paper_id),
        sources=(SOURCE,),
    )


# --- The three formats ------------------------------------------------------------------

# Each entry reader returns (announce type, paper); API results are all "new".
EntryReader = Callable[[etree._Element, date | None], tuple[str, Paper]]


def _rss_item(item: etree._Element, day: date | None) -> tuple[str, Paper]:
    paper_id = _arxiv_id(item.findtext("guid"), item.findtext("link"))
    kind, abstract = _announcement(
        item.findtext("description") or "", item.findtext(f"{ARXIV}announce_type")
    )
    listed = _rfc822_date(item.findtext("pubDate")) or day
    paper = _paper(
        paper_id,
        item.findtext("title"),
        abstract,
        _creators(item.iterfind(f"{DC}creator")),
        _categories(element.text for element in item.iterfind("category")),
        None,  # the feed gives the announcement day, not the submission date
        listed,
    )
    return kind, paper


def _atom_entry(entry: etree._Element, day: date | None) -> tuple[str, Paper]:
    paper_id = _arxiv_id(entry.findtext(f"{ATOM}id"), _alternate_link(entry))
    kind, abstract = _announcement(
        entry.findtext(f"{ATOM}summary") or "", entry.findtext(f"{ARXIV}announce_type")
    )
    # In the announcement feed, <published> is the announcement day, not the submission.
    listed = _safe_iso_date(entry.findtext(f"{ATOM}published")) or day
    paper = _paper(
        paper_id,
        entry.findtext(f"{ATOM}title"),
        abstract,
        _creators(entry.iterfind(f"{DC}creator")),
        _categories(element.get("term") for element in entry.iterfind(f"{ATOM}category")),
        None,
        listed,
    )
    return kind, paper


def _api_entry(entry: etree._Element, day: date | None) -> tuple[str, Paper]:
    paper_id = _arxiv_id(entry.findtext(f"{ATOM}id"), _alternate_link(entry))
    primary = entry.find(f"{ARXIV}primary_category")
    categories = _categories(
        [
            primary.get("term") if primary is not None else None,
            *(element.get("term") for element in entry.iterfind(f"{ATOM}category")),
        ]
    )
    authors = _capped_names(
        author.findtext(f"{ATOM}name") or "" for author in entry.iterfind(f"{ATOM}author")
    )
    published_text = entry.findtext(f"{ATOM}published")
    published = iso_date(published_text, "published") if published_text else None
    paper = _paper(
        paper_id,
        entry.findtext(f"{ATOM}title"),
        clip(entry.findtext(f"{ATOM}summary") or "", MAX_ABSTRACT),
        authors,
        categories,
        published,
        None,  # a search result was not announced on a listing day
    )
    return "new", paper


def _alternate_link(entry: etree._Element) -> str | None:
    for link in entry.iterfind(f"{ATOM}link"):
        if link.get("rel", "alternate") == "alternate":
            return link.get("href")
    return None


# --- Parsing ----------------------------------------------------------------------------


def _parse_xml(content: bytes | str, origin: str) -> etree._Element:
    data = content.encode("utf-8") if isinstance(content, str) else content
    if not data.strip():
        raise ParseError(SOURCE, origin, "the feed is empty")
    # No DTDs, no entity expansion, no network: a feed is data, never instructions.
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, remove_pis=True
    )
    try:
        root = etree.fromstring(data, parser)
    except (etree.LxmlError, ValueError) as error:
        message = normalise_space(str(error)) or type(error).__name__
        raise ParseError(SOURCE, origin, f"not well-formed XML ({message})") from None
    if root is None or not isinstance(root.tag, str):
        raise ParseError(SOURCE, origin, "the document has no root element")
    return root


def _read_entries(
    elements: list[etree._Element],
    read: EntryReader,
    origin: str,
    day: date | None,
    fresh: frozenset[str],
) -> Listing:
    papers: dict[str, Paper] = {}
    problems: list[str] = []
    left_out: Counter[str] = Counter()
    for number, element in enumerate(elements, start=1):
        try:
            kind, paper = read(element, day)
        except Malformed as problem:
            problems.append(f"entry {number}: {problem}")
            log.warning("%s: %s: skipped %s", SOURCE, origin, problems[-1])
            continue
        if kind in fresh:
            papers.setdefault(paper.id, paper)
        else:
            left_out[kind] += 1
    if elements and len(problems) == len(elements):
        raise ParseError(
            SOURCE, origin, f"none of the {len(elements)} entries could be read ({problems[0]})"
        )
    notes = []
    if not elements:
        notes.append(f"no announcements for {describe_day(day)} (none on weekends and holidays)")
    if left_out:
        notes.append("left out " + ", ".join(f"{n} {kind}" for kind, n in sorted(left_out.items())))
    return Listing(
        SOURCE,
        origin,
        day,
        tuple(papers.values()),
        skipped=len(problems),
        left_out=sum(left_out.values()),
        note="; ".join(notes),
    )


def _read_rss(root: etree._Element, origin: str, fresh: frozenset[str]) -> Listing:
    channel = root.find("channel")
    if channel is None:
        raise ParseError(SOURCE, origin, "the RSS feed has no <channel>")
    items = channel.findall("item")
    day = (
        _rfc822_date(channel.findtext("pubDate"))
        or next((d for d in (_rfc822_date(i.findtext("pubDate")) for i in items) if d), None)
        or _rfc822_date(channel.findtext("lastBuildDate"))
    )
    return _read_entries(items, _rss_item, origin, day, fresh)


def _is_api_answer(root: etree._Element) -> bool:
    feed_id = root.findtext(f"{ATOM}id") or ""
    return root.find(f"{OPENSEARCH}totalResults") is not None or "/api/" in feed_id


def _read_atom(root: etree._Element, origin: str, fresh: frozenset[str]) -> Listing:
    entries = root.findall(f"{ATOM}entry")
    day = next(
        (d for d in (_safe_iso_date(e.findtext(f"{ATOM}published")) for e in entries) if d),
        None,
    ) or _safe_iso_date(root.findtext(f"{ATOM}updated"))
    return _read_entries(entries, _atom_entry, origin, day, fresh)


def _read_api(root: etree._Element, origin: str) -> Listing:
    entries = root.findall(f"{ATOM}entry")
    for entry in entries:
        if "/api/errors" in (entry.findtext(f"{ATOM}id") or ""):
            message = normalise_space(entry.findtext(f"{ATOM}summary") or "") or "no details"
            raise ParseError(SOURCE, origin, f'the arXiv API answered with an error: "{message}"')
    day = _safe_iso_date(root.findtext(f"{ATOM}updated"))
    listing = _read_entries(entries, _api_entry, origin, day, FRESH)
    if not entries:
        listing = replace(listing, note="the query found no papers")
    return listing


def parse_feed(content: bytes | str, origin: str, *, include_cross: bool = False) -> Listing:
    """Read an arXiv RSS feed, Atom feed or API answer into a Listing of fresh papers."""
    root = _parse_xml(content, origin)
    fresh = FRESH_WITH_CROSS if include_cross else FRESH
    if root.tag == "rss":
        return _read_rss(root, origin, fresh)
    if root.tag == f"{ATOM}feed":
        if _is_api_answer(root):
            return _read_api(root, origin)
        return _read_atom(root, origin, fresh)
    name = etree.QName(root).localname
    raise ParseError(
        SOURCE, origin, f"not an arXiv feed: the document is <{name}>, not <rss> or an Atom <feed>"
    )


# --- Fetching ---------------------------------------------------------------------------


def fetch(
    client: PoliteClient, settings: ArxivSettings, *, known: ValidatorLookup = no_validators
) -> Listing:
    """Fetch the current announcements of the configured categories (one request)."""
    url = feed_url(settings.feed_url, settings.categories)
    response = client.get(url, source=SOURCE, validators=known(url), max_bytes=MAX_BYTES)
    if response.not_modified:
        return Listing(SOURCE, url, None, (), not_modified=True)
    listing = parse_feed(response.content, url, include_cross=settings.include_cross)
    return replace(listing, validators=response.validators())


def fetch_papers(
    client: PoliteClient, settings: ArxivSettings, paper_ids: Sequence[str]
) -> Listing:
    """Ask the arXiv API for these papers (one request, at most `MAX_ID_LIST`); the
    Listing holds those arXiv knows. Raises FetchError or ParseError."""
    if not 0 < len(paper_ids) <= MAX_ID_LIST:
        raise ValueError(f"ask for 1 to {MAX_ID_LIST} papers at a time, not {len(paper_ids)}")
    url = api_papers_url(settings.api_url, paper_ids)
    response = client.get(url, source=SOURCE, max_bytes=MAX_BYTES)
    return parse_feed(response.content, url)
