"""Choose, order and explain each subscriber's papers, for one subscriber or a million.

Score of a paper for one subscriber (higher first):

    score = sum over the subscriber's interests that match the paper of
                3 if it matches in the title  (or, for author:/org:, the names)
              + 1 if it matches in the abstract
          + upvotes / (upvotes + 10)

The first part is a whole number, so title matches count more than abstract matches and
every further interest adds to it; the upvote part is below 1, so community signal only
orders papers that tie on interests. Papers equal on both come in paper id order.
A paper that matches any exclusion (-entry) is never chosen.

How it scales (`Matcher`): the papers are indexed once (`index.PaperIndex`); each
distinct clause is found once and each distinct entry scored once, into one row of a
matrix of weights (entries x papers). A subscriber's scores are then the sum of the rows
of their entries, computed for a block of subscribers at a time with NumPy, and the top
`max_papers` of each row are picked with `argpartition`. Papers are kept in order of
`first_seen_at`, so a subscriber's window (papers first seen after their watermark) is
a suffix of the columns. The `Match` and `Hit` objects are built for the chosen papers
only, and shared between subscribers whose interests chose a paper for the same reasons.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from itertools import islice
from typing import TypeVar

import numpy as np

from digest.match.index import FIELD_NAMES, PaperIndex
from digest.match.query import Interest, Interests
from digest.match.results import Hit, Match, Selection, Span
from digest.paper import Paper

K = TypeVar("K")

FIELD_WEIGHTS = {"title": 3, "abstract": 1, "authors": 3, "organization": 3}
"""What a match in each field adds to the score (once per interest and field)."""

UPVOTE_DAMPING = 10
_BLOCK = 2048  # subscribers scored together in one NumPy pass
_MATCH_CACHE_LIMIT = 2_000_000


def upvote_bonus(upvotes: int | None) -> float:
    """The tie-breaking part of the score: in [0, 1), growing with upvotes."""
    votes = max(upvotes or 0, 0)
    return votes / (votes + UPVOTE_DAMPING)


def seen_order(papers: Sequence[Paper]) -> list[Paper]:
    """Papers by `first_seen_at` (unknown first), then id: windows become suffixes."""
    return sorted(
        papers,
        key=lambda p: (p.first_seen_at is not None, p.first_seen_at or datetime.min, p.id),
    )


class _Entry:
    """One distinct interest entry, found in the papers: its weights and its hits."""

    __slots__ = ("clause_found", "hits", "interest", "row", "weights")

    def __init__(self, interest: Interest, row: int) -> None:
        self.interest = interest
        self.row = row
        self.weights: dict[int, int] = {}
        self.clause_found: list[dict[int, list[Span]]] = []
        self.hits: dict[int, Hit] = {}


class Matcher:
    """The day's papers, indexed once, ready to choose papers for any number of lists."""

    def __init__(self, papers: Sequence[Paper]) -> None:
        self.papers = seen_order(papers)
        self.count = len(self.papers)
        self.index = PaperIndex(self.papers)
        self._seen = [p.first_seen_at for p in self.papers]
        self._known_from = sum(1 for seen in self._seen if seen is None)
        by_rank = sorted(
            range(self.count),
            key=lambda i: (-max(self.papers[i].upvotes or 0, 0), self.papers[i].id),
        )
        # tie[p]: higher for more upvotes, then lower id; unique, so keys never tie.
        self.tie = np.empty(self.count, dtype=np.int64)
        self.tie[by_rank] = np.arange(self.count - 1, -1, -1)
        self._bonus = [upvote_bonus(p.upvotes) for p in self.papers]
        self._clauses: dict[object, dict[int, list[Span]]] = {}
        self._entries: dict[Interest, _Entry] = {}
        # Row 0 is all zeros: it pads blocks of subscribers with fewer entries.
        self._weights = np.zeros((64, max(self.count, 1)), dtype=np.uint8)
        self._rows = 1
        self._matches: dict[tuple[int, object], Match] = {}

    # --- per entry, once -------------------------------------------------------------

    def _clause(self, clause: object) -> dict[int, list[Span]]:
        found = self._clauses.get(clause)
        if found is None:
            found = {}
            for where in self.index.find(clause):  # type: ignore[arg-type]
                for paper, start, end in zip(
                    where.paper.tolist(), where.start.tolist(), where.end.tolist(), strict=True
                ):
                    found.setdefault(paper, []).append(Span(where.field, start, end))
            self._clauses[clause] = found
        return found

    def entry(self, interest: Interest) -> _Entry:
        """The entry's matches and weights, computed on first use."""
        entry = self._entries.get(interest)
        if entry is not None:
            return entry
        entry = _Entry(interest, self._rows)
        entry.clause_found = [self._clause(clause) for clause in interest.clauses]
        papers = set(entry.clause_found[0])
        for found in entry.clause_found[1:]:
            papers &= found.keys()
        for paper in papers:
            fields = {span.field for found in entry.clause_found for span in found.get(paper, ())}
            entry.weights[paper] = sum(FIELD_WEIGHTS[name] for name in fields)
        if self._rows == len(self._weights):
            grown = np.zeros((2 * self._rows, self._weights.shape[1]), dtype=np.uint8)
            grown[: self._rows] = self._weights
            self._weights = grown
        if entry.weights:
            columns = np.fromiter(entry.weights.keys(), dtype=np.int64)
            values = np.fromiter(entry.weights.values(), dtype=np.int64)
            self._weights[self._rows, columns] = np.minimum(values, 255)
        self._rows += 1
        self._entries[interest] = entry
        return entry

    def _hit(self, entry: _Entry, paper: int) -> Hit:
        hit = entry.hits.get(paper)
        if hit is None:
            spans = {span for found in entry.clause_found for span in found.get(paper, ())}
            hit = Hit(entry.interest.label, merge_spans(spans))
            entry.hits[paper] = hit
        return hit

    # --- per subscriber --------------------------------------------------------------

    def window_start(self, watermark: datetime | None) -> int:
        """The first column a subscriber with this watermark may receive."""
        if watermark is None:
            return 0
        return max(self._known_from, bisect_right(self._seen, watermark, lo=self._known_from))

    def select(
        self, interests: Interests, watermark: datetime | None, max_papers: int
    ) -> Selection:
        """One subscriber's selection."""
        return next(self.select_many([(None, interests, watermark)], max_papers))[1]

    def select_many(
        self,
        subscribers: Iterable[tuple[K, Interests, datetime | None]],
        max_papers: int,
    ) -> Iterator[tuple[K, Selection]]:
        """Each subscriber's selection, in the order given, computed a block at a time."""
        iterator = iter(subscribers)
        while block := list(islice(iterator, _BLOCK)):
            yield from self._select_block(block, max_papers)

    def _select_block(
        self, block: list[tuple[K, Interests, datetime | None]], max_papers: int
    ) -> Iterator[tuple[K, Selection]]:
        n = self.count
        if max_papers < 1:
            raise ValueError(f"max_papers must be at least 1, got {max_papers}")
        if n == 0:
            for key, _, _ in block:
                yield key, Selection((), 0)
            return
        wanted: list[list[_Entry]] = []
        unwanted: list[list[int]] = []
        starts: list[int] = []
        for _, interests, watermark in block:
            entries = [self.entry(interest) for interest in interests.entries]
            wanted.append([e for e in entries if not e.interest.exclude])
            unwanted.append([e.row for e in entries if e.interest.exclude])
            starts.append(self.window_start(watermark))
        scores = self._scores(wanted, unwanted, starts)
        matched = scores > 0
        counts = matched.sum(axis=1).tolist()
        keys = np.where(matched, scores.astype(np.int64) * n + self.tie, -1)
        take = min(max_papers, n)
        if take < n:
            top = np.argpartition(keys, n - take, axis=1)[:, n - take :]
        else:
            top = np.broadcast_to(np.arange(n), keys.shape)
        top_keys = np.take_along_axis(keys, top, axis=1)
        order = np.argsort(-top_keys, axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        reasons = self._reasons(wanted, top)
        top_list = top.tolist()
        base_list = (np.take_along_axis(top_keys, order, axis=1) // n).tolist()
        for row, (key, _, _) in enumerate(block):
            chosen = min(counts[row], take)
            entries = wanted[row]
            matches = tuple(
                self._match(paper, entries, bits, base)
                for paper, bits, base in zip(
                    top_list[row][:chosen],
                    reasons[row][:chosen],
                    base_list[row][:chosen],
                    strict=True,
                )
            )
            yield key, Selection(matches, counts[row] - chosen)

    def _scores(
        self, wanted: list[list[_Entry]], unwanted: list[list[int]], starts: list[int]
    ) -> np.ndarray:
        """(subscribers x papers) whole-number scores, zero where a paper is not chosen."""
        weights = self._weights[: self._rows]
        # A list without wanted entries (not one `parse_interests` makes) sums row 0: zeros.
        rows = np.fromiter(
            (row for entries in wanted for row in ([e.row for e in entries] or [0])), np.int64
        )
        offsets = np.cumsum([0] + [max(len(entries), 1) for entries in wanted[:-1]])
        scores = np.add.reduceat(weights[rows], offsets, axis=0, dtype=np.uint16)
        for row, excluded in enumerate(unwanted):
            if excluded:
                scores[row, weights[excluded].any(axis=0)] = 0
        if any(starts):
            before = np.arange(self.count)[None, :] < np.array(starts)[:, None]
            scores[before] = 0
        return scores

    def _reasons(self, wanted: list[list[_Entry]], top: np.ndarray) -> list[list[int]]:
        """For each chosen paper, a bit mask of which of the subscriber's entries chose it."""
        width = max(1, max(len(entries) for entries in wanted))
        rows = np.zeros((len(wanted), width), dtype=np.int64)
        for row, entries in enumerate(wanted):
            rows[row, : len(entries)] = [e.row for e in entries]
        chose = self._weights[rows[:, :, None], top[:, None, :]] > 0
        bits = (chose.astype(np.int64) << np.arange(width, dtype=np.int64)[None, :, None]).sum(1)
        return bits.tolist()

    def _match(self, paper: int, entries: list[_Entry], bits: int, base: int) -> Match:
        if bits & (bits - 1) == 0:
            reason: object = entries[bits.bit_length() - 1].row
        else:
            reason = tuple(e.row for i, e in enumerate(entries) if bits >> i & 1)
        match = self._matches.get((paper, reason))
        if match is None:
            chosen = [e for i, e in enumerate(entries) if bits >> i & 1]
            hits = sorted(
                ((e.weights[paper], self._hit(e, paper)) for e in chosen),
                key=lambda wh: (-wh[0], wh[1].interest.casefold(), wh[1].interest),
            )
            match = Match(
                self.papers[paper],
                base + self._bonus[paper],
                tuple(hit for _, hit in hits),
            )
            if len(self._matches) < _MATCH_CACHE_LIMIT:
                self._matches[(paper, reason)] = match
        return match


def merge_spans(spans: Iterable[Span]) -> tuple[Span, ...]:
    """Spans in field order then position, overlapping ones merged."""
    order = {name: i for i, name in enumerate(FIELD_NAMES)}
    merged: list[Span] = []
    for span in sorted(spans, key=lambda s: (order[s.field], s.start, s.end)):
        last = merged[-1] if merged else None
        if last is not None and last.field == span.field and span.start < last.end:
            merged[-1] = Span(last.field, last.start, max(last.end, span.end))
        else:
            merged.append(span)
    return tuple(merged)


def match_subscriber(interests: Interests, papers: Sequence[Paper], max_papers: int) -> Selection:
    """Choose, order and explain the papers for one subscriber (previews, samples)."""
    return Matcher(papers).select(interests, None, max_papers)


def match_many(
    papers: Sequence[Paper],
    subscribers: Iterable[tuple[K, Interests, datetime | None]],
    max_papers: int,
) -> Iterator[tuple[K, Selection]]:
    """Each subscriber's selection from the papers first seen after their watermark.

    `subscribers` yields (key, interests, watermark); a watermark of None means every
    paper, and a paper whose `first_seen_at` is unknown is only offered then. Results
    come in the order given, one per subscriber, lazily.
    """
    return Matcher(papers).select_many(subscribers, max_papers)
