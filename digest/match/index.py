"""The day's papers as an index: every token folded and stemmed once, found by key.

Each field (title, abstract, authors, organization) of all papers becomes one stream of
tokens held in parallel NumPy arrays: the paper, the original character offsets, the
token's exact form and its stem (as integer ids), the stem of the token joined with the
next one (for "fine-tuning" = "finetuning") and the key of the gap after it.

A clause (`query.Clause`) is found by dynamic programming over its words: the first
piece is looked up in the postings of its key, and each state (where the match started,
which token comes next) is extended piece by piece with vectorised comparisons. A piece
is one word, or two plain words written joined ("fine tuning" as one piece, key
`stem("finetuning")`); a plain piece matches one token, or two tokens joined by a
space or hyphen, with the same stem. So `finetuning`, `fine-tuning` and `fine tuning`
all find each other, and so do `fine-tuned` and `finetunes`.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from digest.match.query import EXACT, PREFIX, STEM, Clause, Word
from digest.match.results import Span
from digest.match.text import BREAK, JOIN, NAMES, PROSE, fold, gap_key, original_span, stem, tokens
from digest.paper import Paper

FIELD_NAMES = ("title", "abstract", "authors", "organization")
_NO_GAP = -1  # field end or BREAK: nothing continues across it
_UNKNOWN = -2  # a key the papers never show


def field_text(paper: Paper, name: str) -> str:
    """The text of a paper's field that spans point into (authors joined by ", ")."""
    if name == "title":
        return paper.title
    if name == "abstract":
        return paper.abstract
    if name == "authors":
        return ", ".join(paper.authors)
    return paper.organization or ""


_stem = lru_cache(maxsize=262144)(stem)


class _Vocabulary:
    """Strings to dense integer ids."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def add(self, key: str) -> int:
        found = self.ids.get(key)
        if found is None:
            found = self.ids[key] = len(self.ids)
        return found

    def get(self, key: str) -> int:
        return self.ids.get(key, _UNKNOWN)


def _postings(ids: np.ndarray) -> dict[int, np.ndarray]:
    """For each id, the sorted positions that hold it."""
    if not len(ids):
        return {}
    order = np.argsort(ids, kind="stable")
    ordered = ids[order]
    cuts = np.flatnonzero(np.diff(ordered)) + 1
    starts = np.concatenate(([0], cuts))
    ends = np.concatenate((cuts, [len(ordered)]))
    return {
        int(ordered[start]): order[start:end]
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True)
        if ordered[start] >= 0
    }


class FieldStream:
    """All tokens of one field of every paper, in paper order, as parallel arrays."""

    def __init__(self, name: str, papers: Sequence[Paper], words: _Vocabulary) -> None:
        self.name = name
        kind = NAMES if name in ("authors", "organization") else PROSE
        gaps = _Vocabulary()
        gaps.add(JOIN)  # id 0
        paper_of: list[int] = []
        starts: list[int] = []
        ends: list[int] = []
        exact: list[int] = []
        stems: list[int] = []
        merged: list[int] = []
        gap_ids: list[int] = []
        forms: set[str] = set()
        for number, paper in enumerate(papers):
            text = field_text(paper, name)
            folded, offsets = fold(text)
            spans = tokens(folded)
            for i, (start, end) in enumerate(spans):
                form = folded[start:end]
                forms.add(form)
                original = original_span(offsets, len(text), start, end)
                paper_of.append(number)
                starts.append(original[0])
                ends.append(original[1])
                exact.append(words.add(form))
                stems.append(words.add(_stem(form)))
                gap = BREAK
                if i + 1 < len(spans):
                    gap = gap_key(folded[end : spans[i + 1][0]], kind)
                if gap == JOIN:
                    following = folded[spans[i + 1][0] : spans[i + 1][1]]
                    merged.append(words.add(_stem(form + following)))
                else:
                    merged.append(_NO_GAP)
                gap_ids.append(_NO_GAP if gap == BREAK else gaps.add(gap))
        self.size = len(paper_of)
        self.paper = np.array(paper_of, dtype=np.int32)
        self.start = np.array(starts, dtype=np.int32)
        self.end = np.array(ends, dtype=np.int32)
        self.exact = np.array(exact, dtype=np.int32)
        self.stem = np.array(stems, dtype=np.int32)
        self.merged = np.array(merged, dtype=np.int32)
        # One extra slot so that "the gap after the last token" can be read safely.
        self.gap = np.array([*gap_ids, _NO_GAP], dtype=np.int32)
        self.gaps = gaps
        self.forms = sorted(forms)
        self.form_ids = np.array([words.ids[form] for form in self.forms], dtype=np.int32)
        self.exact_postings = _postings(self.exact)
        self.stem_postings = _postings(self.stem)
        self.merged_postings = _postings(self.merged)

    def prefix_ids(self, prefix: str) -> np.ndarray:
        """The exact-form ids of the words in this field that start with `prefix`."""
        low = bisect_left(self.forms, prefix)
        high = low
        while high < len(self.forms) and self.forms[high].startswith(prefix):
            high += 1
        return self.form_ids[low:high]


class Found:
    """Where a clause matched in one field: per match, the paper and character range.

    Matches are in paper order; `spans(paper)` lists one paper's as `Span`s.
    """

    __slots__ = ("_by_paper", "end", "field", "paper", "start")

    def __init__(self, field: str, paper: np.ndarray, start: np.ndarray, end: np.ndarray) -> None:
        self.field = field
        self.paper = paper.astype(np.int32)
        self.start = start.astype(np.int32)
        self.end = end.astype(np.int32)
        self._by_paper: dict[int, tuple[Span, ...]] | None = None

    def spans(self, paper: int) -> tuple[Span, ...]:
        """The matches in one paper, in order, overlapping ones merged."""
        if self._by_paper is None:
            # Made once, on first use: most clauses are asked about many papers.
            by_paper: dict[int, list[Span]] = {}
            for number, start, end in zip(
                self.paper.tolist(), self.start.tolist(), self.end.tolist(), strict=True
            ):
                spans = by_paper.setdefault(number, [])
                if spans and start < spans[-1].end:
                    spans[-1] = Span(self.field, spans[-1].start, max(end, spans[-1].end))
                else:
                    spans.append(Span(self.field, start, end))
            self._by_paper = {number: tuple(spans) for number, spans in by_paper.items()}
        return self._by_paper.get(paper, ())


class PaperIndex:
    """The index of a sequence of papers; `find(clause)` lists where a clause matches."""

    def __init__(self, papers: Sequence[Paper]) -> None:
        self.papers = tuple(papers)
        self.words = _Vocabulary()
        self.streams = {name: FieldStream(name, self.papers, self.words) for name in FIELD_NAMES}

    def find(self, clause: Clause) -> list[Found]:
        """Every match of `clause`, per field it may match in."""
        found = []
        for name in clause.fields:
            stream = self.streams[name]
            first, last = self._find_in(stream, clause)
            if len(first):
                found.append(
                    Found(name, stream.paper[first], stream.start[first], stream.end[last])
                )
        return found

    def _find_in(self, stream: FieldStream, clause: Clause) -> tuple[np.ndarray, np.ndarray]:
        words, gaps = clause.words, clause.gaps
        count = len(words)
        # states[i]: (first token, next token) pairs that have matched words[:i].
        states: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        for i in range(count):
            if i == 0:
                begun = None
            else:
                pending = states.pop(i, None)
                if not pending:
                    continue
                begun = _continuing(stream, pending, gaps[i - 1])
                if begun is None:
                    continue
            for width, units in self._pieces(stream, words, gaps, i):
                for unit in units:
                    matched = _extend(stream, begun, unit)
                    if matched is not None:
                        states.setdefault(i + width, []).append(matched)
        final = states.get(count)
        if not final:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty
        first = np.concatenate([f for f, _ in final]).astype(np.int64)
        following = np.concatenate([n for _, n in final]).astype(np.int64)
        pairs = np.unique(first * (stream.size + 1) + following)
        return pairs // (stream.size + 1), pairs % (stream.size + 1) - 1

    def _pieces(
        self, stream: FieldStream, words: tuple[Word, ...], gaps: tuple[str, ...], i: int
    ) -> list[tuple[int, list[_Unit]]]:
        """The pieces that can start at word i: (words covered, ways a token run can match)."""
        word = words[i]
        if word.kind == EXACT:
            return [(1, [_Unit(stream.exact, self.words.get(word.text), 1)])]
        if word.kind == PREFIX:
            return [(1, [_Unit(stream.exact, stream.prefix_ids(word.text), 1)])]
        pieces = [(1, self._stem_units(stream, word.text))]
        if i + 1 < len(words) and words[i + 1].kind == STEM and gaps[i] == JOIN:
            pieces.append((2, self._stem_units(stream, word.text + words[i + 1].text)))
        return pieces

    def _stem_units(self, stream: FieldStream, joined: str) -> list[_Unit]:
        key = self.words.get(_stem(joined))
        return [_Unit(stream.stem, key, 1), _Unit(stream.merged, key, 2)]


@dataclass(frozen=True, slots=True)
class _Unit:
    """A way to match one piece: `column[token] in key(s)`, covering `width` tokens."""

    column: np.ndarray
    key: int | np.ndarray
    width: int


def _continuing(
    stream: FieldStream, pending: list[tuple[np.ndarray, np.ndarray]], gap: str
) -> tuple[np.ndarray, np.ndarray] | None:
    """The states whose next token follows a gap like `gap` (in the same field)."""
    first = np.concatenate([f for f, _ in pending])
    following = np.concatenate([n for _, n in pending])
    gap_id = stream.gaps.get(gap)
    if gap_id == _UNKNOWN:
        return None
    keep = stream.gap[following - 1] == gap_id
    if not keep.any():
        return None
    return first[keep], following[keep]


def _extend(
    stream: FieldStream, begun: tuple[np.ndarray, np.ndarray] | None, unit: _Unit
) -> tuple[np.ndarray, np.ndarray] | None:
    """Match `unit` at each state's next token (or anywhere, to begin), advancing them."""
    if begun is None:
        positions = _positions(stream, unit)
        if positions is None or not len(positions):
            return None
        return positions, positions + unit.width
    first, following = begun
    values = unit.column[following]
    if isinstance(unit.key, np.ndarray):
        keep = np.isin(values, unit.key)
    else:
        if unit.key == _UNKNOWN:
            return None
        keep = values == unit.key
    if not keep.any():
        return None
    return first[keep], following[keep] + unit.width


def _positions(stream: FieldStream, unit: _Unit) -> np.ndarray | None:
    """Positions whose `unit.column` holds `unit.key` (postings, no scan)."""
    if unit.column is stream.exact:
        table = stream.exact_postings
    elif unit.column is stream.stem:
        table = stream.stem_postings
    else:
        table = stream.merged_postings
    if isinstance(unit.key, np.ndarray):
        found = [table[key] for key in unit.key.tolist() if key in table]
        return np.sort(np.concatenate(found)) if found else None
    return table.get(unit.key)
