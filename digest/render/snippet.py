"""Short excerpts of a paper's text with the matched words marked.

An abstract is too long for a digest card, so `excerpt` cuts a window of about 300
characters at word boundaries, moved to show the first matched words when they are
further in; `highlight` then wraps the marked ranges in whatever the output needs
(`<mark>` in HTML, `*...*` in plain text) and escapes the rest.

Ranges are half-open character offsets `(start, end)` into the text, as the matcher's
`Span`s give them. They come from another stage, so they are trusted for nothing:
out-of-range, empty, reversed or overlapping ranges are clipped and merged, never fatal.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

ELLIPSIS = "…"
# Highlights beyond this many stay plain: an interest matching every other word would
# otherwise bloat the email (each <mark> carries its inline style) and help no one.
MAX_MARKS = 8

# Characters that the HTML parser would rewrite or that cannot be encoded (C0 controls
# but tab and newline, DEL, lone surrogates). Each is replaced by one character, so
# offsets into the text stay valid.
_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")
_TRAILING_PUNCTUATION = " \t\n,;:-–—("


def clean_text(text: str) -> str:
    """`text` with control characters and lone surrogates replaced, same length."""
    return _UNSAFE.sub(_replacement, text) if _UNSAFE.search(text) else text


def _replacement(found: re.Match[str]) -> str:
    return "\ufffd" if "\ud800" <= found.group() <= "\udfff" else " "


@dataclass(frozen=True, slots=True)
class Excerpt:
    """A piece of text and the ranges of it to highlight (sorted, disjoint).

    `start` is where the excerpt begins in the original text (after a leading ellipsis).
    """

    text: str
    marks: tuple[tuple[int, int], ...] = ()
    start: int = 0


def merge_ranges(ranges: Iterable[tuple[int, int]], length: int) -> list[tuple[int, int]]:
    """Ranges clipped to [0, length], empty ones dropped, overlapping ones merged, sorted."""
    clipped = sorted(
        (max(0, start), min(length, end)) for start, end in ranges if min(length, end) > start
    )
    merged: list[tuple[int, int]] = []
    for start, end in clipped:
        if start >= end:
            continue
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def excerpt(
    text: str,
    ranges: Sequence[tuple[int, int]] = (),
    limit: int = 300,
    *,
    follow_marks: bool = True,
    lead: int = 80,
    max_marks: int = MAX_MARKS,
) -> Excerpt:
    """About `limit` characters of `text`, cut at words, with the ranges inside it.

    With `follow_marks`, a first range that would fall outside the opening window moves
    the window to start up to `lead` characters before it (at a word or sentence
    start), so the reader sees why the paper matched. A cut end gets an ellipsis. At
    most `max_marks` ranges are kept, the first ones.
    """
    if not ranges and len(text) <= limit:  # the usual author list or organisation
        return Excerpt(text)
    marks = merge_ranges(ranges, len(text))
    if len(text) <= limit:
        return Excerpt(text, tuple(marks[:max_marks]))
    start = 0
    if follow_marks and marks and marks[0][1] > limit - lead // 2:
        start = _window_start(text, marks[0][0], lead)
    end = start + limit
    if end >= len(text):
        end = len(text)
        start = min(start, _word_start(text, len(text) - limit, marks[0][0] if marks else start))
    else:
        end = _word_end(text, start, end)
    body_end = len(text[start:end].rstrip(_TRAILING_PUNCTUATION)) + start
    if body_end <= start:  # nothing but punctuation: keep the hard cut
        body_end = end
    prefix = ELLIPSIS if start > 0 else ""
    suffix = ELLIPSIS if body_end < len(text) else ""
    shift = len(prefix) - start
    inside = [
        (max(s, start) + shift, min(e, body_end) + shift)
        for s, e in marks
        if e > start and s < body_end
    ]
    return Excerpt(prefix + text[start:body_end] + suffix, tuple(inside[:max_marks]), start)


def _window_start(text: str, mark: int, lead: int) -> int:
    """Where a window showing the mark at `mark` begins: a sentence or word start."""
    earliest = max(0, mark - lead)
    sentence = text.rfind(". ", earliest, mark)
    if sentence != -1:
        return sentence + 2
    return _word_start(text, earliest, mark)


def _word_start(text: str, position: int, at_most: int) -> int:
    """The first word start at or after `position` (but not past `at_most`)."""
    if position <= 0:
        return 0
    if text[position - 1].isspace():
        return position
    space = text.find(" ", position, at_most)
    return space + 1 if space != -1 else min(position, at_most)


def _word_end(text: str, start: int, end: int) -> int:
    """`end` moved back to the last space in the second half of [start, end)."""
    space = text.rfind(" ", start + (end - start) // 2, end + 1)
    return space if space != -1 else end


def highlight(
    text: str,
    marks: Iterable[tuple[int, int]],
    escape: Callable[[str], str],
    before: str,
    after: str,
) -> str:
    """`text` escaped, with each marked range wrapped in `before` ... `after`."""
    out: list[str] = []
    position = 0
    for start, end in marks:
        out.append(escape(text[position:start]))
        out.append(before)
        out.append(escape(text[start:end]))
        out.append(after)
        position = end
    out.append(escape(text[position:]))
    return "".join(out)
