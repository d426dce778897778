"""Sources: the sites digest reads, each a pure parser plus a thin fetch around it.

- `hf`: Hugging Face Daily Papers (JSON API, day page, paper page);
- `arxiv`: arXiv announcements (RSS, Atom) and arXiv API answers;
- `http`: the polite HTTP client they fetch through.

Every parser turns saved text into a `Listing` of `Paper`s or raises `ParseError`; none
touches the store. `read_listing_file` loads a saved page of any known kind, and
`digest.jobs.fetch_sources` stores what a source or a file lists.
"""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path

from digest.config import Settings
from digest.errors import ParseError
from digest.sources import arxiv, hf
from digest.sources.http import PoliteClient, Response, Validators, describe_size
from digest.sources.listing import Listing, ValidatorLookup, no_validators

__all__ = [
    "SOURCES",
    "Listing",
    "PoliteClient",
    "Response",
    "ValidatorLookup",
    "Validators",
    "arxiv",
    "detect_kind",
    "fetch_listing",
    "hf",
    "no_validators",
    "read_listing_file",
]

SOURCES = ("hf", "arxiv")

# What kind of document each source reads.
_KINDS = {"json": "hf", "html": "hf", "xml": "arxiv"}
_KIND_NAMES = {"json": "JSON", "html": "an HTML page", "xml": "an XML feed"}
_FIRST_TAG = re.compile(rb"<([A-Za-z][^\s/>]*)")
# The largest saved file of each kind read: what the fetcher would accept from the site.
_MAX_BYTES = {"json": hf.MAX_BYTES, "html": hf.MAX_BYTES, "xml": arxiv.MAX_BYTES}


def detect_kind(head: bytes) -> str | None:
    """`json`, `html` or `xml` from the first bytes of a document, None if none of those."""
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if start[:1] in (b"{", b"["):
        return "json"
    if not start.startswith(b"<"):
        return None
    if start[:14].lower() == b"<!doctype html":
        return "html"
    # Skip the XML declaration, comments and doctype: the root element decides.
    for found in _FIRST_TAG.finditer(start):
        name = found.group(1).decode("ascii", errors="replace").lower().rpartition(":")[2]
        if name == "html":
            return "html"
        if name in ("rss", "feed"):
            return "xml"
        return "xml" if start.startswith(b"<?xml") else "html"
    return None


def read_listing_file(
    path: str | os.PathLike[str], source: str | None = None, *, include_cross: bool = False
) -> Listing:
    """Read a saved listing, telling its kind from its content.

    JSON is the HF API, HTML an HF page, XML an arXiv feed or API answer. `source`
    (`hf` or `arxiv`) restricts what is accepted. A file larger than that site's answers
    may be (`hf.MAX_BYTES`, `arxiv.MAX_BYTES`) is refused after reading no more than
    that, so even `/dev/zero` is answered at once. Raises ParseError naming the file.
    """
    where = str(path)
    label = source or "file"
    try:
        with Path(path).open("rb") as handle:
            head = handle.read(4096)
            kind = detect_kind(head)
            if kind is not None:
                content = head + handle.read(_MAX_BYTES[kind] + 1 - len(head))
            elif not head.strip():  # blank so far: blank throughout, or a listing late?
                content = head + handle.read(max(_MAX_BYTES.values()) + 1 - len(head))
            else:
                content = head
    except OSError as error:
        raise ParseError(label, where, f"cannot read the file ({error.strerror})") from None
    if not content.strip():
        raise ParseError(label, where, "the file is empty")
    if kind is None:
        raise ParseError(
            label,
            where,
            "not a listing digest knows (expected Hugging Face JSON or HTML, "
            "or an arXiv RSS/Atom feed)",
        )
    if source is not None and _KINDS[kind] != source:
        raise ParseError(source, where, f"not an {source} listing: it is {_KIND_NAMES[kind]}")
    if len(content) > _MAX_BYTES[kind]:
        raise ParseError(
            label,
            where,
            f"the file is larger than {describe_size(_MAX_BYTES[kind])}, more than any "
            f"{_KINDS[kind]} listing: refused",
        )
    if kind == "json":
        return hf.parse_api(content, where)
    if kind == "html":
        return hf.parse_page(content, where)
    return arxiv.parse_feed(content, where, include_cross=include_cross)


def fetch_listing(
    source: str,
    settings: Settings,
    client: PoliteClient,
    day: date,
    *,
    known: ValidatorLookup = no_validators,
) -> Listing:
    """Fetch one source's current listing: `hf` for `day`, `arxiv` its latest feed.

    `known` looks up the validators kept from the last good response of a URL, making
    the request conditional. Raises FetchError or ParseError.
    """
    if source == "hf":
        return hf.fetch(client, settings.sources.hf.base_url, day, known=known)
    if source == "arxiv":
        return arxiv.fetch(client, settings.sources.arxiv, known=known)
    raise ValueError(f"unknown source {source!r}")
