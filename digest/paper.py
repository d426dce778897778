"""The `Paper` record: what every source produces and the store keeps.

One paper is one arXiv id. Sources fill in what their listing shows; the store merges
later sightings into the first one (see `digest.store.papers`). Fields a source does not
know stay `None` or empty.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime

# What one paper may hold at most. Generous for real papers (arXiv caps abstracts at 1,920
# characters, titles run under 300, the longest author lists in the thousands are rare),
# small enough that no listing can make one paper costly to keep, match or render: a
# listing with a 25 MB abstract once took `digest preview` to 1.3 GB.
MAX_TITLE = 1_000
MAX_ABSTRACT = 5_000
MAX_AUTHORS = 1_000  # the last one is CUT when the list was longer
MAX_NAME = 100  # one author's name
MAX_ORGANIZATION = 300  # the store's column (digest/store/models.py)
MAX_CATEGORIES = 50
MAX_CATEGORY = 64  # an arXiv category is a short code ("cs.LG"); a longer one is no code
MAX_URL = 500  # the store's columns; a longer link is dropped, never cut (a cut one is broken)
# The marker a cut text ends with (and the last author of a cut list): shown to readers,
# and a word no interest matches.
CUT = "\u2026"
# How much raw text `clip` reads per allowed character: whitespace runs may shrink it, but
# no real field is mostly whitespace. Reading all of a huge string would cost far more
# than the string: `str.split` makes one object per word.
_RAW_PER_CHAR = 4

# The name of the Hugging Face Daily Papers source (digest/sources/hf.py): the one source
# whose papers have upvotes, and so the one trending covers.
HF_SOURCE = "hf"

# New-style ids (2606.00467) and old-style ones (hep-th/9901001), with an optional version.
_ARXIV_ID = re.compile(r"^(\d{4}\.\d{4,5}|[a-z][a-z.-]*/\d{7})(v\d+)?$", re.IGNORECASE)


def normalise_space(text: str) -> str:
    """Collapse runs of whitespace (arXiv's hard line wraps included) to single spaces.

    `str.split()` splits on exactly the characters regex `\\s` matches, and is about six
    times faster, which matters for thousands of abstracts. NUL characters go too:
    PostgreSQL cannot store them in text.
    """
    if "\x00" in text:
        text = text.replace("\x00", " ")
    return " ".join(text.split())


def clip(text: str, limit: int) -> str:
    """`text` with whitespace normalised, at most `limit` characters; a cut one ends in CUT.

    Only the first `limit * 4` raw characters are read, so a hostile 25 MB string costs
    no more than a long real one; text cut that way is marked even if it then fits.
    """
    raw_cut = len(text) > limit * _RAW_PER_CHAR
    cleaned = normalise_space(text[: limit * _RAW_PER_CHAR] if raw_cut else text)
    if len(cleaned) <= limit and not raw_cut:
        return cleaned
    return _cut(cleaned, limit)


def _cut(text: str, limit: int) -> str:
    """`text` cut to `limit` characters with CUT last, at a space when one is near the end."""
    head = text[: limit - len(CUT)]
    space = head.rfind(" ", (limit * 3) // 4)
    if space > 0:  # a whole last word reads better, if it costs under a quarter of the room
        head = head[:space]
    return head.rstrip() + CUT


def parse_arxiv_id(text: str) -> str | None:
    """Return the versionless arXiv id in `text` (`2606.00467v2` -> `2606.00467`), or None."""
    text = text.strip()
    for prefix in ("oai:arXiv.org:", "arXiv:", "arxiv:"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    found = _ARXIV_ID.match(text)
    return found.group(1) if found else None


def arxiv_abs_url(paper_id: str) -> str:
    """The arXiv abstract page of a paper."""
    return f"https://arxiv.org/abs/{paper_id}"


def arxiv_pdf_url(paper_id: str) -> str:
    """The arXiv PDF of a paper (latest version)."""
    return f"https://arxiv.org/pdf/{paper_id}"


def hf_paper_url(paper_id: str) -> str:
    """The Hugging Face paper page of a paper."""
    return f"https://huggingface.co/papers/{paper_id}"


@dataclass(frozen=True, slots=True)
class Paper:
    """A paper as seen by a source, or as kept by the store.

    `id` is the versionless arXiv id. `listed` is the listing day the paper appeared on
    (the HF daily page's date, arXiv's announcement date); `published` is the arXiv
    submission date. `sources` lists the sources that have seen the paper, first one
    first; `first_seen_at` is set by the store when the paper is first saved.
    `hf_listed` and `hf_seen_at` are set by the store too: the Daily Papers day that first
    listed the paper and when the service first saw it there (a paper is often on arXiv a
    day or more before Hugging Face lists it; trending goes by the latter).
    """

    id: str
    title: str
    abstract: str
    authors: tuple[str, ...] = ()
    organization: str | None = None
    categories: tuple[str, ...] = ()
    published: date | None = None
    listed: date | None = None
    upvotes: int | None = None
    comments: int | None = None
    url_abs: str | None = None
    url_pdf: str | None = None
    url_hf: str | None = None
    url_code: str | None = None
    url_project: str | None = None
    sources: tuple[str, ...] = ()
    first_seen_at: datetime | None = field(default=None, compare=False)
    hf_listed: date | None = field(default=None, compare=False)
    hf_seen_at: datetime | None = field(default=None, compare=False)

    @property
    def on_hf(self) -> bool:
        """Whether Hugging Face Daily Papers has listed the paper (it then has upvotes)."""
        return self.hf_listed is not None or HF_SOURCE in self.sources


def trending_order(paper: Paper) -> tuple[int, int, str]:
    """Sort key of trending: most upvotes first, then most comments, then lowest id."""
    return (-max(paper.upvotes or 0, 0), -max(paper.comments or 0, 0), paper.id)


def _bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else _cut(text, limit)


def _bounded_url(url: str | None) -> str | None:
    return url if url is None or len(url) <= MAX_URL else None


def bound_paper(paper: Paper) -> Paper:
    """`paper` with every field within the limits above; the same object when it already is.

    Every `Listing` passes its papers through here (digest/sources/listing.py), and so
    does every paper read from the store, so rows kept before the limits existed cost no
    more than new ones. Parsers clip long text as they read it (`clip`), which keeps the
    cost of reading a hostile listing down; this is the one place that guarantees the
    bounds whatever a parser did. Text is cut with CUT last; an over-long URL or category
    is dropped, since a cut one would point nowhere.
    """
    authors = paper.authors
    if len(authors) > MAX_AUTHORS:
        authors = (*authors[: MAX_AUTHORS - 1], CUT)
    if any(len(name) > MAX_NAME for name in authors):
        authors = tuple(_bounded(name, MAX_NAME) for name in authors)
    categories = paper.categories
    if len(categories) > MAX_CATEGORIES or any(len(name) > MAX_CATEGORY for name in categories):
        categories = tuple(name for name in categories if len(name) <= MAX_CATEGORY)
        categories = categories[:MAX_CATEGORIES]
    bounded = {
        "title": _bounded(paper.title, MAX_TITLE),
        "abstract": _bounded(paper.abstract, MAX_ABSTRACT),
        "authors": authors,
        "organization": None
        if paper.organization is None
        else _bounded(paper.organization, MAX_ORGANIZATION),
        "categories": categories,
        **{
            name: _bounded_url(getattr(paper, name))
            for name in ("url_abs", "url_pdf", "url_hf", "url_code", "url_project")
        },
    }
    changed = {name: value for name, value in bounded.items() if value is not getattr(paper, name)}
    return replace(paper, **changed) if changed else paper
