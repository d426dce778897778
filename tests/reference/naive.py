"""The naive baseline: a compiled regular expression per interest, run on every paper.

This is the obvious way to build `match`, kept as an independent implementation for
the tests (the fast matcher must give the same selections) and the benchmark (the
speed-up is measured against it). It shares only definitions with the fast path: the
parser, `text.fold` and the word, gap and stem rules, and the score formula. It never
uses the index: for every subscriber, every entry and every paper it runs the entry's
regular expressions over the folded title and abstract (or names).

A plain phrase becomes an alternation over every way to write it: each way to group its
words into pieces of one or two words, and for each piece every inflection of its stem
(`text.inflections`), whole or split once by a space or hyphen, factored by common
prefixes as a careful hand-written regex would be. The spans of a match are found per
start position, keeping the longest match from there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import TypeVar

from digest.match.query import EXACT, PREFIX, STEM, Clause, Interest, Interests
from digest.match.rank import FIELD_WEIGHTS, upvote_bonus
from digest.match.results import Hit, Match, Selection, Span
from digest.match.text import (
    JOIN,
    JOIN_CHARS,
    NAME_JOIN_CHARS,
    TOKEN,
    fold,
    original_span,
    stem,
)
from digest.paper import Paper

_VOWELS = frozenset("aeiouy")  # as in `digest.match.text.stem`


@lru_cache(maxsize=65536)
def inflections(stemmed: str) -> frozenset[str]:
    """Every word whose `stem` is `stemmed` (`text.stem`'s exact inverse).

    Built by undoing each step of `stem` in reverse order, in every way it could have
    applied, and keeping the candidates that really stem to `stemmed`.
    """
    candidates = {stemmed}
    if stemmed[-1:].isalpha() and stemmed[-1:] not in _VOWELS:
        candidates.add(stemmed + stemmed[-1])  # undo undoubling
    candidates |= {c + "e" for c in candidates}  # undo the final -e
    verbs = set(candidates)
    for c in candidates:
        verbs |= {c + "ing", c + "ed"}
        if c.endswith("y"):
            verbs.add(c[:-1] + "ied")
    plurals = set(verbs)
    for c in verbs:
        plurals |= {c + "s", c + "es"}
        if c.endswith("y"):
            plurals.add(c[:-1] + "ies")
    return frozenset(c for c in plurals if stem(c) == stemmed)


K = TypeVar("K")

_END = r"(?![^\W_])"
_FIELD_ORDER = ("title", "abstract", "authors", "organization")


@dataclass(frozen=True, slots=True)
class _Pattern:
    """A clause's compiled expressions: `whole` finds a match, `starts` every start."""

    whole: re.Pattern[str]
    starts: re.Pattern[str]
    max_tokens: int


@lru_cache(maxsize=100_000)
def clause_pattern(clause: Clause) -> _Pattern:
    """The regular expressions for a clause (compiled once per distinct clause)."""
    names = clause.fields[0] in ("authors", "organization")
    join = f"[{NAME_JOIN_CHARS if names else JOIN_CHARS}]+"
    alternatives = [
        _sequence(clause, pieces, join) for pieces in _groupings(clause, 0, len(clause.words))
    ]
    body = "(?:" + "|".join(alternatives) + ")" + _END
    return _Pattern(
        whole=re.compile(body),
        starts=re.compile("(?=" + body + ")"),
        max_tokens=2 * len(clause.words),
    )


def _groupings(clause: Clause, i: int, count: int) -> list[list[tuple[int, int]]]:
    """Every way to cut words[i:] into pieces (start, width): plain words may pair up."""
    if i == count:
        return [[]]
    ways = [[(i, 1), *rest] for rest in _groupings(clause, i + 1, count)]
    words = clause.words
    if (
        i + 1 < count
        and words[i].kind == STEM
        and words[i + 1].kind == STEM
        and clause.gaps[i] == JOIN
    ):
        ways += [[(i, 2), *rest] for rest in _groupings(clause, i + 2, count)]
    return ways


def _sequence(clause: Clause, pieces: list[tuple[int, int]], join: str) -> str:
    parts = []
    for number, (start, width) in enumerate(pieces):
        if number:
            parts.append(_gap(clause.gaps[start - 1], join))
        parts.append(_piece(clause, start, width, join, guard=not number))
    return "".join(parts)


def _gap(key: str, join: str) -> str:
    if key == JOIN:
        return join
    return r"\s*" + r"\s*".join(re.escape(char) for char in key) + r"\s*"


def _piece(clause: Clause, start: int, width: int, join: str, guard: bool) -> str:
    """A piece's regex; with `guard`, it checks that its first letter starts a token."""
    word = clause.words[start]
    if word.kind in (EXACT, PREFIX):
        head, rest = word.text[0], re.escape(word.text[1:])
        tail = r"[^\W_]*" if word.kind == PREFIX else ""
        return re.escape(head) + (_guard(head) if guard else "") + rest + tail
    joined = "".join(w.text for w in clause.words[start : start + width])
    return _trie_pattern(_trie(inflections(stem(joined))), join, True, first=True, guard=guard)


def _guard(char: str) -> str:
    """After a token's first letter: no letter, digit or backslash came before it.

    (Checked after the letter rather than before it, so that the regex engine can skip
    ahead to the possible first letters: five times faster, and what a careful
    hand-written regex would do.)
    """
    return rf"(?<![^\W_]{re.escape(char)})(?<!\\{re.escape(char)})"


_END_MARK = ""


def _trie(words: Iterable[str]) -> dict[str, dict]:
    root: dict[str, dict] = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[_END_MARK] = {}
    return root


def _trie_pattern(
    node: dict[str, dict], join: str, split: bool, first: bool, guard: bool = False
) -> str:
    """A regex for the words of a trie, factored by common prefixes (so it fails fast).

    With `split`, each word may also be written as two tokens joined by `join`, cut
    once anywhere inside it. `first` marks a position where the word cannot end or be
    cut: its start, and just after a cut. With `guard`, the first letter is guarded.
    """
    ways = [
        re.escape(char)
        + (_guard(char) if guard else "")
        + _trie_pattern(child, join, split, first=False)
        for char, child in sorted(node.items())
        if char != _END_MARK
    ]
    if split and not first and ways:
        ways.append(join + _trie_pattern(node, join, split=False, first=True))
    pattern = ways[0] if len(ways) == 1 else "(?:" + "|".join(ways) + ")"
    if _END_MARK in node and not first:
        return "(?:" + pattern + ")?" if ways else ""
    return pattern


@dataclass(frozen=True, slots=True)
class PreparedPaper:
    """A paper with each field folded once (the baseline does not redo this per subscriber)."""

    paper: Paper
    fields: dict[str, tuple[str, list[int] | None, int]]


def prepare(papers: Sequence[Paper]) -> list[PreparedPaper]:
    """Fold every field of every paper."""
    prepared = []
    for paper in papers:
        texts = {
            "title": paper.title,
            "abstract": paper.abstract,
            "authors": ", ".join(paper.authors),
            "organization": paper.organization or "",
        }
        prepared.append(
            PreparedPaper(paper, {name: (*fold(text), len(text)) for name, text in texts.items()})
        )
    return prepared


def clause_spans(clause: Clause, paper: PreparedPaper) -> list[Span]:
    """Where the clause matches in the paper (longest match from each start)."""
    pattern = clause_pattern(clause)
    spans = []
    for name in clause.fields:
        folded, starts, length = paper.fields[name]
        if pattern.whole.search(folded) is None:
            continue
        for found in pattern.starts.finditer(folded):
            start = found.start()
            ends = [t.end() for t in _take(TOKEN.finditer(folded, start), pattern.max_tokens)]
            for end in reversed(ends):
                if pattern.whole.fullmatch(folded, start, end):
                    spans.append(Span(name, *original_span(starts, length, start, end)))
                    break
    return spans


def _take(iterator: Iterator[re.Match[str]], count: int) -> list[re.Match[str]]:
    taken = []
    for item in iterator:
        taken.append(item)
        if len(taken) == count:
            break
    return taken


def entry_spans(entry: Interest, paper: PreparedPaper) -> list[Span] | None:
    """The entry's spans in the paper if every clause matches, else None."""
    spans: list[Span] = []
    for clause in entry.clauses:
        found = clause_spans(clause, paper)
        if not found:
            return None
        spans += found
    return spans


def _merged(spans: Iterable[Span]) -> tuple[Span, ...]:
    result: list[Span] = []
    for span in sorted(set(spans), key=lambda s: (_FIELD_ORDER.index(s.field), s.start, s.end)):
        if result and result[-1].field == span.field and span.start < result[-1].end:
            last = result.pop()
            span = Span(span.field, last.start, max(last.end, span.end))
        result.append(span)
    return tuple(result)


def naive_match_subscriber(
    interests: Interests,
    papers: Sequence[Paper] | Sequence[PreparedPaper],
    max_papers: int,
) -> Selection:
    """One subscriber's selection, by running every entry's regexes on every paper."""
    if max_papers < 1:
        raise ValueError(f"max_papers must be at least 1, got {max_papers}")
    prepared = [p if isinstance(p, PreparedPaper) else prepare([p])[0] for p in papers]
    chosen = []
    for paper in prepared:
        if any(entry_spans(entry, paper) is not None for entry in interests.excluded):
            continue
        hits = []
        for entry in interests.wanted:
            spans = entry_spans(entry, paper)
            if spans is not None:
                weight = sum(FIELD_WEIGHTS[name] for name in {span.field for span in spans})
                hits.append((weight, Hit(entry.label, _merged(spans))))
        if hits:
            hits.sort(key=lambda wh: (-wh[0], wh[1].interest.casefold(), wh[1].interest))
            base = sum(weight for weight, _ in hits)
            chosen.append((base, paper.paper, tuple(hit for _, hit in hits)))
    chosen.sort(key=lambda c: (-c[0], -max(c[1].upvotes or 0, 0), c[1].id))
    matches = tuple(
        Match(paper, base + upvote_bonus(paper.upvotes), hits)
        for base, paper, hits in chosen[:max_papers]
    )
    return Selection(matches, max(0, len(chosen) - max_papers))


def naive_match_many(
    papers: Sequence[Paper],
    subscribers: Iterable[tuple[K, Interests, datetime | None]],
    max_papers: int,
) -> Iterator[tuple[K, Selection]]:
    """`match_many`, naively: each subscriber's window, then every regex on every paper."""
    prepared = prepare(papers)
    for key, interests, watermark in subscribers:
        window = [
            p
            for p in prepared
            if watermark is None
            or (p.paper.first_seen_at is not None and p.paper.first_seen_at >= watermark)
        ]
        yield key, naive_match_subscriber(interests, window, max_papers)
