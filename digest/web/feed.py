"""The trending papers as an Atom feed (RFC 4287), written with lxml.

lxml escapes whatever text it is given ("<script>", "]]>", quotes), so no paper can
change the feed's structure; what it refuses instead are characters XML 1.0 cannot hold
at all (most C0 controls, lone surrogates, U+FFFE and U+FFFF), which `xml_text` replaces
first. Each entry's id is the paper's arXiv abstract URL: stable, and the same paper
whichever day it trended on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from lxml import etree

from digest.paper import Paper, arxiv_abs_url
from digest.render.view import long_date, web_url

ATOM = "http://www.w3.org/2005/Atom"
MEDIA_TYPE = "application/atom+xml"
AUTHORS_SHOWN = 6
# An empty feed still needs an `updated`: the one instant that claims nothing.
NEVER = datetime(1970, 1, 1, tzinfo=UTC)

# Everything outside XML 1.0's Char production: https://www.w3.org/TR/xml/#charsets
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """`text` with each character XML cannot hold replaced by a space."""
    return _NOT_XML.sub(" ", text)


@dataclass(frozen=True, slots=True)
class FeedDay:
    """One day of the feed: the day and its top papers, best first."""

    day: date
    papers: Sequence[Paper]


def atom_time(instant: datetime) -> str:
    """An RFC 3339 UTC time as Atom wants it: 2026-06-12T10:00:00Z."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _child(parent: etree._Element, name: str, text: str | None = None, **attributes: str) -> None:
    element = etree.SubElement(parent, f"{{{ATOM}}}{name}", attributes)
    if text is not None:
        element.text = xml_text(text)


def _listed_at(paper: Paper) -> datetime:
    """When the service first saw the paper on Hugging Face (the feed's news), else
    first saw it at all."""
    return paper.hf_seen_at or paper.first_seen_at or NEVER


def authors_shown(authors: Sequence[str]) -> list[str]:
    """The first `AUTHORS_SHOWN` authors, and "et al." for the rest when there are more."""
    shown = list(authors[:AUTHORS_SHOWN])
    return [*shown, "et al."] if len(authors) > AUTHORS_SHOWN else shown


def _entry(feed: etree._Element, paper: Paper, day: date, rank: int) -> None:
    entry = etree.SubElement(feed, f"{{{ATOM}}}entry")
    abstract_page = arxiv_abs_url(paper.id)
    _child(entry, "id", abstract_page)
    _child(entry, "title", paper.title)
    _child(entry, "updated", atom_time(_listed_at(paper)))
    for name in authors_shown(paper.authors) or ["Unknown authors"]:
        author = etree.SubElement(entry, f"{{{ATOM}}}author")
        _child(author, "name", name)
    _child(entry, "link", rel="alternate", type="text/html", href=abstract_page)
    hf_page = web_url(paper.url_hf)
    if hf_page:
        _child(entry, "link", rel="related", type="text/html", href=hf_page)
    votes = (
        f"#{rank} on Hugging Face Daily Papers of {long_date(day)}, {paper.upvotes or 0} upvotes"
    )
    _child(entry, "summary", f"{votes}. {paper.abstract}" if paper.abstract else votes + ".")


def atom_feed(days: Sequence[FeedDay], *, title: str, feed_url: str, page_url: str) -> bytes:
    """The feed of `days` (newest first), as UTF-8 bytes with an XML declaration."""
    feed = etree.Element(f"{{{ATOM}}}feed", nsmap={None: ATOM})
    _child(feed, "id", feed_url)
    _child(feed, "title", title)
    _child(feed, "subtitle", "The most upvoted papers of Hugging Face Daily Papers, day by day.")
    newest = max((_listed_at(p) for d in days for p in d.papers), default=NEVER)
    _child(feed, "updated", atom_time(newest))
    _child(feed, "link", rel="self", type=MEDIA_TYPE, href=feed_url)
    _child(feed, "link", rel="alternate", type="text/html", href=page_url)
    author = etree.SubElement(feed, f"{{{ATOM}}}author")
    _child(author, "name", title)
    for feed_day in days:
        for rank, paper in enumerate(feed_day.papers, 1):
            _entry(feed, paper, feed_day.day, rank)
    return etree.tostring(feed, encoding="utf-8", xml_declaration=True, pretty_print=True)
