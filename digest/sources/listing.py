"""What a source hands on (`Listing`) and the small readers its parsers share.

A parser reads a whole page before anyone writes anything: it either returns a complete
`Listing` or raises `ParseError`. Inside a page, one entry that does not read (no id, a
title that is not text, a date that is not a date) raises `Malformed`, which the parser
catches, counts in `Listing.skipped`, and moves on. Whatever a page says, a `Listing`
holds only papers within the limits of `digest.paper` (`bound_paper`); the readers here
clip text as they read it, so a hostile page costs little more than a normal one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from digest.paper import MAX_ORGANIZATION, MAX_URL, Paper, bound_paper, clip
from digest.sources.http import Validators

# Looks up the validators kept for a URL (None when there are none).
ValidatorLookup = Callable[[str], Validators | None]


def no_validators(url: str) -> Validators | None:
    """A lookup that knows no validators: every request is unconditional."""
    return None


@dataclass(frozen=True)
class Listing:
    """The papers one listing (a day page, a feed, a saved file) showed.

    `origin` is the URL or file it came from, `day` the listing's day when known.
    `skipped` counts entries that could not be read; `left_out` counts entries read but
    deliberately not taken (arXiv replacements, cross-lists when not wanted).
    `not_modified` means the server said nothing changed since the last fetch; `note`
    explains an empty or unusual listing ("no listing for that day ..."). `validators`
    are the response's cache validators, to keep once the listing is stored.
    """

    source: str
    origin: str
    day: date | None
    papers: tuple[Paper, ...]
    skipped: int = 0
    left_out: int = 0
    not_modified: bool = False
    note: str = ""
    validators: Validators | None = None

    def __post_init__(self) -> None:
        # Every parser's papers pass here, so no source can hand the store a paper past
        # the limits of digest.paper (a 25 MB abstract, 100,000 authors).
        object.__setattr__(self, "papers", tuple(map(bound_paper, self.papers)))


class Malformed(Exception):
    """One entry of a listing could not be read; the message says what was wrong."""


def decode_text(content: bytes | str) -> str:
    """Text of a response or file: UTF-8, a stray bad byte replaced rather than fatal."""
    if isinstance(content, str):
        return content
    return content.decode("utf-8", errors="replace").removeprefix("\ufeff")


def mapping(value: Any, what: str) -> Mapping[str, Any]:
    """`value` if it is a JSON object, else Malformed."""
    if not isinstance(value, Mapping):
        raise Malformed(f"{what} is not an object")
    return value


def text(value: Any, what: str, limit: int) -> str:
    """A required, non-empty string, whitespace normalised, clipped to `limit` characters."""
    if not isinstance(value, str):
        raise Malformed(f"{what} is missing" if value is None else f"{what} is not text")
    cleaned = clip(value, limit)
    if not cleaned:
        raise Malformed(f"{what} is empty")
    return cleaned


def optional_text(value: Any, what: str, limit: int) -> str | None:
    """An optional string, whitespace normalised and clipped; None when absent or blank."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise Malformed(f"{what} is not text")
    return clip(value, limit) or None


MAX_COUNT = 2**31 - 1  # what every database's INTEGER holds


def optional_count(value: Any, what: str) -> int | None:
    """An optional non-negative integer that fits the store (a JSON bool is not a count)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise Malformed(f"{what} is not a count")
    return value


def optional_url(value: Any) -> str | None:
    """An http(s) URL short enough to store, else None (a bad link is not worth an entry)."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if (
        len(value) > MAX_URL
        or not re.match(r"^https?://[^\s/]+", value)
        or re.search(r"[\s\x00-\x1f\x7f]", value)  # spaces, control characters (NUL)
    ):
        return None
    return value


def organization_name(value: Any) -> str | None:
    """An organisation's display name from `{fullname, name}`, clipped to the store's size."""
    if not isinstance(value, Mapping):
        return None
    for key in ("fullname", "name"):
        name = value.get(key)
        if isinstance(name, str) and (clipped := clip(name, MAX_ORGANIZATION)):
            return clipped
    return None


def iso_date(value: Any, what: str) -> date:
    """The calendar date of an ISO 8601 timestamp (in its own offset), else Malformed."""
    if not isinstance(value, str):
        raise Malformed(f"{what} is missing" if value is None else f"{what} is not text")
    try:
        return datetime.fromisoformat(value.strip()).date()
    except ValueError:
        raise Malformed(f'{what} "{value[:40]}" is not a date') from None


def optional_iso_date(value: Any, what: str) -> date | None:
    """Like `iso_date`, None when absent."""
    return None if value is None else iso_date(value, what)


def describe_day(day: date | None) -> str:
    """A day for messages."""
    return day.isoformat() if day else "an unknown day"
