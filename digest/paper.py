"""The `Paper` record: what every source produces and the store keeps.

One paper is one arXiv id. Sources fill in what their listing shows; the store merges
later sightings into the first one (see `digest.store.papers`). Fields a source does not
know stay `None` or empty.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime

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
