"""What the emails show, as plain data: dates and words, the digest's heading, and
each paper's card (excerpts with their highlights, links), for the HTML and the text part.

Everything here is pure functions of a paper, a subscriber's hits and a date; the
renderer (`digest.render`) puts the results into templates. Text from papers and
subscribers is cleaned (`clean_text`), cut to bounded lengths and, for HTML, escaped by
whoever writes it out (`html_fields` takes the escaping as a parameter).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any

from markupsafe import Markup

from digest.address import check_url
from digest.match import Hit, Match, Selection
from digest.paper import Paper, arxiv_abs_url, arxiv_pdf_url
from digest.render import mime
from digest.render.snippet import MAX_MARKS, Excerpt, clean_text, excerpt, highlight

# What a card shows at most; together with [match] max_papers these keep the HTML of the
# worst case (20 papers, longest everything, each with its reader's two feedback links)
# under Gmail's clipping size. The feedback links made room for themselves: 4 labels
# (was 5), links of at most 100 characters (was 120), authors cut at 120 (was 140).
HTML_LIMIT = 100_000  # bytes; Gmail clips a message whose HTML passes about 102 KB
SNIPPET_CHARS = 300
TITLE_CHARS = 220
AUTHORS_SHOWN = 3
AUTHORS_CHARS = 120
ORGANIZATION_CHARS = 100
LABELS_SHOWN = 4
LABEL_CHARS = 32
# A suggested paper's one label is the reason it was suggested ("close to “A title”,
# which you liked"): a sentence, so it gets more room than an interest.
EXPLANATION_CHARS = 160
HEADING_INTERESTS = 2
INTERESTS_CHARS = 300
URL_CHARS = 100  # a longer link is left out (or replaced by arXiv's)
TEXT_WIDTH = 72
INDENT = "    "
HTML_CARD_FIELDS = ("labels", "title", "authors", "organization", "snippet")
TEXT_CARD_FIELDS = ("title", "meta", "labels", "snippet")

_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def short_date(day: date) -> str:
    """`Thu 12 Jun`, whatever the locale."""
    return f"{_DAYS[day.weekday()][:3]} {day.day} {_MONTHS[day.month - 1][:3]}"


def long_date(day: date) -> str:
    """`Thursday 12 June 2025`, whatever the locale."""
    return f"{_DAYS[day.weekday()]} {day.day} {_MONTHS[day.month - 1]} {day.year}"


def _card_date(day: date) -> str:
    return f"{day.day} {_MONTHS[day.month - 1][:3]} {day.year}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


@lru_cache(maxsize=4096)  # a pure function called with the same titles and interests
def one_line(text: str, limit: int) -> str:
    """`text` cleaned, on one line, cut at a word to at most about `limit` characters."""
    return excerpt(mime.header_text(clean_text(text)), limit=limit, follow_marks=False).text


_GLUE = "\ue000"  # joins the words of a short phrase that `wrap` must not break


def _unbreakable(phrase: str) -> str:
    """`phrase` kept on one line by `wrap` (if it fits on one)."""
    return phrase.replace(" ", _GLUE) if len(phrase) <= TEXT_WIDTH // 2 else phrase


def wrap(text: str, indent: str = INDENT) -> str:
    """`text` wrapped at 72 columns for a terminal, every line indented; URLs and long
    words are never broken. (textwrap does the same, several times slower.)"""
    rest = " ".join(text.split())
    room = TEXT_WIDTH - len(indent)
    lines = []
    while len(rest) > room:
        cut = rest.rfind(" ", 0, room + 1)
        if cut <= 0:  # a word longer than the line: it gets a line of its own
            cut = rest.find(" ", room)
            if cut == -1:
                break
        lines.append(rest[:cut])
        rest = rest[cut + 1 :]
    lines.append(rest)
    return (indent + ("\n" + indent).join(lines)).replace(_GLUE, " ")


def heading_for(named: Sequence[str], others: int, total: int) -> str:
    """`7 new papers on diffusion, RLHF and 2 more interests`."""
    if total == 0:
        return "No new papers matched your interests"
    if others:
        topics = ", ".join(named) + " and " + _plural(others, "more interest")
    elif len(named) > 1:
        topics = ", ".join(named[:-1]) + " and " + named[-1]
    else:
        topics = named[0] if named else "your interests"
    return f"{_plural(total, 'new paper')} on {topics}"


def digest_heading(
    selection: Selection, matching: Sequence[Match], more: int, trending: Sequence[Match]
) -> str:
    """The digest's heading (and subject): what it holds, section by section, and the
    papers suggested for the reader, if any."""
    held = _sections_heading(selection, matching, more, trending)
    if not selection.suggested:
        return held
    suggested = len(selection.suggested)
    if held.startswith("No new"):
        return f"{_plural(suggested, 'paper')} suggested for you"
    return f"{held}, and {suggested} suggested for you"


def _sections_heading(
    selection: Selection, matching: Sequence[Match], more: int, trending: Sequence[Match]
) -> str:
    about = heading_for(*matched_interests(matching), len(matching) + more)
    if selection.rule is None:
        return about
    hot = _plural(len(trending), "trending paper")
    if not selection.matching:
        return hot if trending else "No new trending papers"
    if not trending and not matching:
        return "No new trending or matching papers"
    if not matching:
        return hot
    if not trending:
        return about
    return f"{hot} and {about}" if selection.trending_first else f"{about} and {hot}"


def matched_interests(matches: Sequence[Match]) -> tuple[list[str], int]:
    """The first interests of a digest to name (those that matched most papers first),
    and how many others matched. Trending reasons are not interests: they are left out."""
    counts: dict[str, int] = {}
    for match in matches:
        hits = match.hits
        if any(hit.rank for hit in hits):
            hits = tuple(hit for hit in hits if not hit.rank)
        if len(hits) == 1:
            interest = hits[0].interest
            counts[interest] = counts.get(interest, 0) + 1
            continue
        for interest in dict.fromkeys(hit.interest for hit in hits):  # ordered, unlike a set
            counts[interest] = counts.get(interest, 0) + 1
    ranked = sorted(counts, key=counts.__getitem__, reverse=True)  # ties: first seen first
    named = [label for label in map(_label, ranked[:HEADING_INTERESTS]) if label]
    return named, len(ranked) - len(named)


def _label(interest: str) -> str:
    """An interest as a label: cleaned, one line, not too long."""
    return one_line(interest, LABEL_CHARS)


# What a card shows


@dataclass(frozen=True, slots=True)
class Link:
    label: str
    url: str


@dataclass(frozen=True, slots=True)
class PaperView:
    """What a paper's card shows that does not depend on who reads it."""

    url: str
    date: str
    upvotes: str
    links: tuple[Link, ...]
    title: str
    authors: str
    et_al: bool
    organization: str
    abstract: str


@dataclass(frozen=True, slots=True)
class MatchView:
    """What a card shows that depends on the subscriber's matched interests."""

    labels: tuple[str, ...]
    title: Excerpt
    authors: Excerpt
    organization: Excerpt
    snippet: Excerpt
    lead: str = "Matched: "  # what the text card says before the labels


def web_url(url: str | None) -> str | None:
    """`url` if it is an http(s) link we can put in an href (and not absurdly long: it
    counts towards the size limit), else None."""
    if not url or len(url) > URL_CHARS:
        return None
    try:
        return check_url(url.strip())
    except ValueError:
        return None


def paper_view(paper: Paper) -> PaperView:
    abs_url = web_url(paper.url_abs) or arxiv_abs_url(paper.id)
    hf_url = web_url(paper.url_hf)
    links = [
        Link("Abstract", abs_url),
        Link("PDF", web_url(paper.url_pdf) or arxiv_pdf_url(paper.id)),
    ]
    for label, url in (
        ("Hugging Face", hf_url),
        ("Code", web_url(paper.url_code)),
        ("Project page", web_url(paper.url_project)),
    ):
        if url:
            links.append(Link(label, url))
    day = paper.published or paper.listed
    return PaperView(
        url=hf_url or abs_url,
        date=_card_date(day) if day else "",
        upvotes=_plural(paper.upvotes, "upvote") if paper.upvotes else "",
        links=tuple(links),
        title=clean_text(paper.title),
        # Span offsets into "authors" index ", ".join(all authors); the shown ones are
        # a prefix of that text, so the offsets hold.
        authors=clean_text(", ".join(paper.authors[:AUTHORS_SHOWN])),
        et_al=len(paper.authors) > AUTHORS_SHOWN,
        organization=clean_text(paper.organization or ""),
        abstract=clean_text(paper.abstract),
    )


def match_view(paper: PaperView, hits: Sequence[Hit], suggested: bool = False) -> MatchView:
    """What a card shows for these hits; a `suggested` paper's labels are the reasons it
    was suggested (longer than interests, and introduced by "Why:" in the text card)."""
    ranges: dict[str, list[tuple[int, int]]] = {}
    for hit in hits:
        for span in hit.spans:
            ranges.setdefault(span.field, []).append((span.start, span.end))
    if suggested:
        reasons = (one_line(hit.interest, EXPLANATION_CHARS) for hit in hits)
    else:
        reasons = (_label(hit.interest) for hit in hits)
    labels = [label for label in dict.fromkeys(reasons) if label]
    if len(labels) > LABELS_SHOWN:
        labels[LABELS_SHOWN - 1 :] = [f"+{len(labels) - LABELS_SHOWN + 1} more"]

    def cut(text: str, field: str, limit: int, marks: int, follow: bool = False) -> Excerpt:
        return excerpt(text, ranges.get(field, ()), limit, follow_marks=follow, max_marks=marks)

    return MatchView(
        labels=tuple(labels),
        title=cut(paper.title, "title", TITLE_CHARS, 4),
        authors=cut(paper.authors, "authors", AUTHORS_CHARS, 2),
        organization=cut(paper.organization, "organization", ORGANIZATION_CHARS, 1),
        snippet=cut(paper.abstract, "abstract", SNIPPET_CHARS, MAX_MARKS, follow=True),
        lead="Why: " if suggested else "Matched: ",
    )


@dataclass(frozen=True, slots=True)
class HtmlStyle:
    """How highlighted fields are written: the escaping, and the tags around marks and
    labels (plain classes for the reference path; already CSS-inlined for the fast one,
    which never runs them through css-inline)."""

    escape: Callable[[str], str]
    mark: tuple[str, str]
    label: tuple[str, str]


def html_fields(paper: PaperView, match: MatchView, style: HtmlStyle) -> dict[str, str]:
    """The HTML of a card's per-match fields."""

    def marked(part: Excerpt) -> str:
        return highlight(part.text, part.marks, style.escape, *style.mark)

    open_label, close_label = style.label
    return {
        "labels": " ".join(open_label + style.escape(x) + close_label for x in match.labels),
        "title": marked(match.title),
        "authors": marked(match.authors) + (style.escape(" et al.") if paper.et_al else ""),
        "organization": marked(match.organization),
        "snippet": marked(match.snippet),
    }


def card_context(paper: PaperView, fields: dict[str, str], feedback: str = "") -> dict[str, Any]:
    """The `email/_card.html` context; `feedback` is the HTML of the reader's "more / less
    like this" line (`email/_feedback.html`), or the placeholder the fast path cuts at."""
    return {
        "url": paper.url,
        "date": paper.date.replace(" ", "\xa0"),  # "13 May 2024" stays on one line
        "upvotes": paper.upvotes.replace(" ", "\xa0"),
        "links": paper.links,
        "has_organization": bool(paper.organization),
        "feedback": Markup(feedback),
        **{name: Markup(value) for name, value in fields.items()},
    }


def text_card_context(
    paper: PaperView, fields: dict[str, str], feedback: str = ""
) -> dict[str, Any]:
    """The `email/_card.txt` context; `feedback` is the text of `email/_feedback.txt`."""
    return {**fields, "links": paper.links, "feedback": feedback}


def text_fields(paper: PaperView, match: MatchView) -> dict[str, str]:
    """The text of a plain-text card's per-match fields, wrapped and indented."""
    title = wrap(match.title.text)[len(INDENT) :]  # the first line gets "NN. " instead
    authors = match.authors.text + (" et al." if paper.et_al else "")
    parts = (authors, match.organization.text, paper.date, paper.upvotes)
    meta = " · ".join(_unbreakable(part) for part in parts if part)
    snippet = highlight(match.snippet.text, match.snippet.marks, str, "*", "*")
    return {
        "title": title,
        "meta": wrap(meta),
        "labels": wrap(match.lead + ", ".join(match.labels)),
        "snippet": wrap(snippet),
    }
