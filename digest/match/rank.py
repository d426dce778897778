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

Trending (`trending:N`): the N papers with the most upvotes (then comments, then id)
among those Hugging Face Daily Papers listed in the reader's window, that is, first seen
there at or after their watermark and before `trending_until`, exclusions applied. It
is a section of its own (`Selection.trending`); a paper both trending and matching shows
once, in the section the reader put first, with both reasons. The two sections hold
`max_papers` in all: the first fills first.

How it scales (`Matcher`): the papers are indexed once (`index.PaperIndex`); each
distinct clause is found once and each distinct entry scored once, into one row of a
matrix of weights (entries x papers). A subscriber's scores are then the sum of the rows
of their entries, computed for a block of subscribers at a time with NumPy, and the top
`max_papers` of each row are picked with `argpartition`; subscribers with the same list
and window share one selection. Papers are kept in order of
`first_seen_at`, so a subscriber's window (papers first seen at or after their watermark) is
a suffix of the columns. The `Match` and `Hit` objects are built for the chosen papers
only, and shared between subscribers whose interests chose a paper for the same reasons.
"""

from __future__ import annotations

import gc
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from itertools import chain, islice
from typing import NamedTuple, TypeVar

import numpy as np

from digest.match.index import FIELD_NAMES, Found, PaperIndex
from digest.match.query import Clause, Interest, Interests
from digest.match.results import Hit, Match, Selection, Span, explained_later
from digest.paper import Paper, trending_order

K = TypeVar("K")

FIELD_WEIGHTS = {"title": 3, "abstract": 1, "authors": 3, "organization": 3}
"""What a match in each field adds to the score (once per interest and field)."""

UPVOTE_DAMPING = 10
_MAX_ENTRY_WEIGHT = sum(FIELD_WEIGHTS.values())
_BLOCK = 2048  # subscribers scored together in one NumPy pass
# Objects kept for reuse, at most: Matches of papers chosen by one entry (these also hold
# the Hits), Matches chosen by several (rarely shared), and parsed lists' plans. When a
# cache is full it is emptied: what is popular comes straight back.
_SINGLES_LIMIT = 2_000_000
_MULTIS_LIMIT = 600_000
_COLUMNS_LIMIT = 500_000
_SELECTIONS_LIMIT = 300_000
# Sort keys are as narrow as a group's scores allow: sorting 16-bit keys is a third of
# the time of 32-bit ones (SIMD sorts), and most groups' scores fit in 16 bits.
_KEY_TYPES = (np.uint16, np.uint32, np.uint64)


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


class _Plan(NamedTuple):
    """A subscriber's list as the matcher uses it: wanted entries, their rows, excluded rows."""

    wanted: tuple[_Entry, ...]
    rows: tuple[int, ...]
    excluded: tuple[int, ...]


class _Entry:
    """One distinct interest entry, found in the papers: its row of weights, where it matched."""

    __slots__ = ("found", "interest", "order", "row")

    def __init__(self, interest: Interest, row: int, found: list[Found]) -> None:
        self.interest = interest
        self.row = row
        self.found = found  # every clause's matches (spans are made when needed)
        self.order = (interest.label.casefold(), interest.label)  # among hits of equal weight

    def spans(self, paper: int) -> tuple[Span, ...]:
        """The entry's spans in a paper, in field order, overlapping ones merged."""
        if len(self.found) == 1:
            return self.found[0].spans(paper)
        if len(self.interest.clauses) == 1:
            # One clause: its fields come in order and each field's spans are merged.
            return tuple(span for where in self.found for span in where.spans(paper))
        return merge_spans(span for where in self.found for span in where.spans(paper))


# The weight of a match in each set of fields, as a table indexed by a bit mask of fields.
_FIELD_BITS = {name: 1 << i for i, name in enumerate(FIELD_NAMES)}
_WEIGHT_OF_FIELDS = np.array(
    [
        sum(FIELD_WEIGHTS[name] for name, bit in _FIELD_BITS.items() if mask & bit)
        for mask in range(1 << len(FIELD_NAMES))
    ],
    dtype=np.uint8,
)


class Matcher:
    """The day's papers, indexed once, ready to choose papers for any number of lists.

    `trending_until` is the end of every reader's window for trending: a paper Hugging
    Face listed at or after it belongs to a later digest (None: no end). `since` is where
    the keyword windows start at the earliest: papers first seen before it are there for
    trending only (listed on HF in the window, seen on arXiv before it).
    """

    def __init__(
        self,
        papers: Sequence[Paper],
        trending_until: datetime | None = None,
        since: datetime | None = None,
    ) -> None:
        self.papers = seen_order(papers)
        self.count = len(self.papers)
        self.index = PaperIndex(self.papers)
        self._seen = [p.first_seen_at for p in self.papers]
        self._known_from = sum(1 for seen in self._seen if seen is None)
        self._floor = 0 if since is None else self._first_seen_from(since)
        by_rank = sorted(
            range(self.count),
            key=lambda i: (-max(self.papers[i].upvotes or 0, 0), self.papers[i].id),
        )
        # tie[p]: higher for more upvotes, then lower id; unique, so keys never tie.
        self.tie = np.empty(self.count, dtype=np.uint64)
        self.tie[by_rank] = np.arange(self.count - 1, -1, -1)
        self._bonus = [upvote_bonus(p.upvotes) for p in self.papers]
        self._clauses: dict[Clause, tuple[list[Found], np.ndarray]] = {}
        self._entries: dict[Interest, _Entry] = {}
        # Row 0 is all zeros: it pads blocks of subscribers with fewer entries.
        self._weights = np.zeros((64, max(self.count, 1)), dtype=np.uint8)
        self._rows = 1
        self._matches: dict[object, Match] = {}
        self._by_row: list[_Entry | None] = [None]
        self._row_weights: list[bytes] = [bytes(self.count)]  # rows as bytes: quick to index
        self._windows: dict[datetime | None, int] = {}
        self._tie_bits = max(1, (self.count - 1).bit_length())
        self._row_limit = 1 << 20  # two-entry Match keys need fewer rows than this
        # The paper of each tie rank: a key's low bits name its paper, so the top keys
        # are found by value (np.partition) without carrying their columns along.
        self._paper_of_tie = np.empty(self.count, dtype=np.int64)
        self._paper_of_tie[self.tie] = np.arange(self.count)
        self._ties = {dtype: self.tie.astype(dtype) for dtype in _KEY_TYPES}
        self._multis: dict[object, Match] = {}
        # (window, max_papers) -> list -> selection: no key tuple made per subscriber.
        self._selections: dict[tuple[int, int], dict[Interests, Selection]] = {}
        self._selections_held = 0
        self._trending = _TrendingRank(self.papers, trending_until)
        self._trended = _Trended(self._trending)
        self._with_trending: dict[object, Selection] = {}

    # --- per entry, once -------------------------------------------------------------

    def _clause(self, clause: Clause) -> tuple[list[Found], np.ndarray]:
        """Where a clause matches, and per paper a bit mask of the fields it matches in."""
        known = self._clauses.get(clause)
        if known is None:
            found = self.index.find(clause)
            fields = np.zeros(self.count, dtype=np.uint8)
            for where in found:
                fields[where.paper] |= _FIELD_BITS[where.field]
            known = self._clauses[clause] = (found, fields)
        return known

    def entry(self, interest: Interest) -> _Entry:
        """The entry's row of weights (and where it matched), computed on first use."""
        entry = self._entries.get(interest)
        if entry is not None:
            return entry
        clauses = [self._clause(clause) for clause in interest.clauses]
        fields = clauses[0][1]
        if len(clauses) > 1:  # AND: the fields of every clause, where all of them match
            every = fields > 0
            for _, more in clauses[1:]:
                fields = fields | more
                every &= more > 0
            fields = fields * every
        if self._rows == len(self._weights):
            grown = np.zeros((2 * self._rows, self._weights.shape[1]), dtype=np.uint8)
            grown[: self._rows] = self._weights
            self._weights = grown
        row = self._weights[self._rows, : self.count]
        np.take(_WEIGHT_OF_FIELDS, fields, out=row)
        self._row_weights.append(row.tobytes())
        entry = _Entry(interest, self._rows, [where for found, _ in clauses for where in found])
        self._rows += 1
        self._entries[interest] = entry
        self._by_row.append(entry)
        return entry

    def _single(self, key: int) -> Match:
        """The Match of a paper chosen by one entry; `key` is row * papers + paper.

        Also where every Hit comes from: a paper chosen by several entries reuses theirs.
        """
        match = self._matches.get(key)
        if match is None:
            row, paper = divmod(key, self.count)
            entry = self._by_row[row]
            hit = Hit(entry.interest.label, entry.spans(paper))
            score = self._row_weights[row][paper] + self._bonus[paper]
            match = Match(self.papers[paper], score, (hit,))
            self._remember(self._matches, _SINGLES_LIMIT, key, match)
        return match

    @staticmethod
    def _remember(cache: dict[object, Match], limit: int, key: object, match: Match) -> None:
        if len(cache) >= limit:
            cache.clear()
        cache[key] = match

    # --- per subscriber --------------------------------------------------------------

    def window_start(self, watermark: datetime | None) -> int:
        """The first column a subscriber with this watermark may receive for keywords."""
        if watermark is None:
            return self._floor
        return max(self._floor, self._first_seen_from(watermark))

    def _first_seen_from(self, instant: datetime) -> int:
        """The first column of the papers first seen at or after `instant`."""
        return max(self._known_from, bisect_left(self._seen, instant, lo=self._known_from))

    def select(
        self, interests: Interests, watermark: datetime | None, max_papers: int
    ) -> Selection:
        """One subscriber's selection."""
        return next(self.select_many([(None, interests, watermark)], max_papers))[1]

    def select_many(
        self,
        subscribers: Iterable[tuple[K, Interests, datetime | None]],
        max_papers: int,
        *,
        freeze: bool = True,
    ) -> Iterator[tuple[K, Selection]]:
        """Each subscriber's selection, in the order given, computed a block at a time.

        `freeze=False` for a call made while another one's selections are being read
        (it would unfreeze the collector's view when it ends)."""
        iterator = iter(subscribers)
        if not freeze:
            while block := list(islice(iterator, _BLOCK)):
                yield from self._block_with_trending(block, max_papers)
            return
        # What exists when the run starts (the caller's parsed lists, the index) outlives
        # it: frozen, the collector's full passes skip it rather than walk those millions
        # of objects again and again (a third of the time at 1M readers). Unfrozen after.
        gc.freeze()
        try:
            while block := list(islice(iterator, _BLOCK)):
                yield from self._block_with_trending(block, max_papers)
        finally:
            gc.unfreeze()

    def _block_with_trending(
        self, block: list[tuple[K, Interests, datetime | None]], max_papers: int
    ) -> list[tuple[K, Selection]]:
        # The cyclic garbage collector is paused while a block is built: it would walk
        # the (acyclic) objects made for it again and again, for nothing.
        paused = gc.isenabled()
        gc.disable()
        try:
            selections = list(self._select_block(block, max_papers))
            for row, (_, interests, watermark) in enumerate(block):
                if interests.trending is not None:
                    key, selection = selections[row]
                    selection = self._add_trending(selection, interests, watermark, max_papers)
                    selections[row] = key, selection
        finally:
            if paused:
                gc.enable()
        return selections

    def _add_trending(
        self, selection: Selection, interests: Interests, watermark: datetime | None, most: int
    ) -> Selection:
        """The reader's selection with their trending papers added (cached: readers with
        the same list and window share it). Only the layout is decided here, as columns
        and ranks; `_Trended.explain` makes the matches when they are read."""
        rule = interests.trending
        assert rule is not None
        plan = self._plan(interests)
        columns = self._trending.columns(
            watermark, min(rule.count, most), rule.min_upvotes, plan.excluded, self._row_weights
        )
        key = (interests, self._window(watermark), most, columns)
        known = self._with_trending.get(key)
        if known is not None:
            return known
        ranks = {column: rank for rank, column in enumerate(columns, start=1)}
        chosen = self._chosen_columns(selection)
        # Layouts: matches as (index into the keyword selection, trending rank or 0);
        # trending papers as (column, rank, index of the same paper among the matches or -1).
        if interests.trending_first:
            where = {column: i for i, column in enumerate(chosen)}
            trending = tuple([(c, rank, where.get(c, -1)) for c, rank in ranks.items()])
            matches = tuple([(i, 0) for i, column in enumerate(chosen) if column not in ranks])
        else:
            matches = tuple([(i, ranks.get(column, 0)) for i, column in enumerate(chosen)])
            shown = set(chosen)
            trending = tuple([(c, rank, -1) for c, rank in ranks.items() if c not in shown])
        # The digest holds `most` papers in all (an email much longer gets clipped): the
        # first section fills first, the second gets the room left; matches left out are
        # counted ("and 7 more matched").
        more = selection.more
        if interests.trending_first:
            room = most - len(trending)
            more += max(0, len(matches) - room)
            matches = matches[:room]
        else:
            trending = trending[: most - len(matches)]
        combined = explained_later(
            self._trended,
            (selection, matches, trending),
            len(matches) + len(trending),
            more,
            rule,
            interests.trending_first,
            matching=bool(plan.wanted),
        )
        if len(self._with_trending) >= _SELECTIONS_LIMIT:
            self._with_trending.clear()
        self._with_trending[key] = combined
        return combined

    def _chosen_columns(self, selection: Selection) -> list[int]:
        """The columns of a keyword selection's matches, best first."""
        chosen = selection._source
        if isinstance(chosen, _Chosen):
            return chosen.papers[selection._token, : selection.papers].tolist()
        return [self._trending.column[m.paper.id] for m in selection.matches]

    @property
    def columns(self) -> dict[str, int]:
        """The column of each paper, by id."""
        return self._trending.column

    def masks(self, interests: Interests) -> tuple[np.ndarray, np.ndarray]:
        """Per paper (in `self.papers` order): whether a wanted entry of the list matches
        it, and whether an exclusion does (bool arrays)."""
        plan = self._plan(interests)
        n = self.count
        wanted = self._weights[list(plan.rows), :n].any(axis=0)
        excluded = np.zeros(n, dtype=bool)
        if plan.excluded:
            excluded = self._weights[list(plan.excluded), :n].any(axis=0)
        return wanted, excluded

    def _plan(self, interests: Interests) -> _Plan:
        """A list's entries (found on first use), split into wanted and excluded.

        Not cached: most lists are one reader's own, and those shared share a selection.
        """
        known = self._entries.get
        wanted: list[_Entry] = []
        excluded: list[int] = []
        for interest in interests.entries:
            entry = known(interest) or self.entry(interest)
            if interest.exclude:
                excluded.append(entry.row)
            else:
                wanted.append(entry)
        # Row 0 (zeros) stands for the entries of a list that wants nothing but trending.
        rows = tuple([entry.row for entry in wanted]) or (0,)
        return _Plan(tuple(wanted), rows, tuple(excluded))

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
        # People who wrote the same list and share a window get the same selection.
        window = self._window
        shelves = [self._shelf(window(watermark), max_papers) for _, _, watermark in block]
        known = [
            shelf.get(interests) for shelf, (_, interests, _) in zip(shelves, block, strict=True)
        ]
        todo = [row for row, selection in enumerate(known) if selection is None]
        if todo:
            if self._selections_held + len(todo) > _SELECTIONS_LIMIT:
                for shelf in self._selections.values():
                    shelf.clear()
                self._selections_held = 0
            self._selections_held += len(todo)
            fresh = self._select_rows([block[row] for row in todo], max_papers)
            for row, selection in zip(todo, fresh, strict=True):
                known[row] = shelves[row][block[row][1]] = selection
        for (key, _, _), selection in zip(block, known, strict=True):
            yield key, selection  # type: ignore[misc]

    def _shelf(self, start: int, max_papers: int) -> dict[Interests, Selection]:
        """The cached selections of one window and digest size, by list."""
        shelf = self._selections.get((start, max_papers))
        if shelf is None:
            shelf = self._selections[start, max_papers] = {}
        return shelf

    def _select_rows(
        self, block: list[tuple[K, Interests, datetime | None]], max_papers: int
    ) -> list[Selection]:
        """The block's selections: its papers chosen as arrays (`_Chosen`), explained later."""
        plans = [self._plan(interests) for _, interests, _ in block]
        starts = np.array([self._window(watermark) for _, _, watermark in block])
        chosen = _Chosen(self, plans, min(max_papers, self.count))
        by_width: dict[int, list[int]] = {}
        for row, plan in enumerate(plans):
            by_width.setdefault(len(plan.rows), []).append(row)
        for width, members in by_width.items():
            self._choose(chosen, members, width, starts)
        shown, more = chosen.shown.tolist(), chosen.more.tolist()
        return [explained_later(chosen, row, shown[row], more[row]) for row in range(len(plans))]

    def _choose(self, chosen: _Chosen, members: list[int], width: int, starts: np.ndarray) -> None:
        """Score and choose the papers of the block's subscribers with `width` entries.

        Scores are the sum of the entries' rows of weights (a reshape and a sum is far
        quicker than a ragged reduction), zeroed where an exclusion matches or outside
        the window; the best are found among sort keys (score, then tie rank in the low
        bits) by value, as the keys are unique and name their paper.
        """
        n, take, plans = self.count, chosen.take, chosen.plans
        rows = np.fromiter(
            chain.from_iterable(plans[m].rows for m in members), np.int64, len(members) * width
        ).reshape(len(members), width)
        gathered = self._weights[rows.ravel(), :n].reshape(len(members), width, n)
        dtype = np.uint8 if width * _MAX_ENTRY_WEIGHT < 256 else np.uint16
        scores = gathered.sum(axis=1, dtype=dtype)
        self._exclude(scores, [plans[m].excluded for m in members])
        index = np.array(members)
        self._outside_windows(scores, starts[index])
        counts = np.count_nonzero(scores, axis=1)
        chosen.shown[index] = np.minimum(counts, take)
        chosen.more[index] = counts - chosen.shown[index]
        bits = self._tie_bits
        limit = (int(scores.max()) + 1) << bits  # above every key of the group
        key_type = next(t for t in _KEY_TYPES if limit <= 1 << np.iinfo(t).bits)
        keys = (scores.astype(key_type) << bits) | self._ties[key_type]
        best = np.sort(np.partition(keys, n - take, axis=1)[:, n - take :], axis=1)[:, ::-1]
        papers = self._paper_of_tie[best & ((1 << bits) - 1)]
        chosen.papers[index] = papers
        chosen.bases[index] = best >> bits
        chosen.reasons[index] = self._reasons(rows, gathered, papers)

    def _outside_windows(self, scores: np.ndarray, starts: np.ndarray) -> None:
        """Zero the scores of papers first seen before each row's window (few distinct)."""
        for start in np.unique(starts).tolist():
            if start:
                scores[starts == start, :start] = 0

    def _exclude(self, scores: np.ndarray, excluded: list[tuple[int, ...]]) -> None:
        """Zero the scores of the papers an exclusion of the row's subscriber matches."""
        which = [i for i, rows in enumerate(excluded) if rows]
        if not which:
            return
        widest = max(len(excluded[i]) for i in which)
        padded = np.zeros((len(which), widest), dtype=np.int64)  # row 0 is zeros: no veto
        for k, i in enumerate(which):
            padded[k, : len(excluded[i])] = excluded[i]
        vetoed = self._weights[padded.ravel(), : self.count].reshape(len(which), widest, -1)
        scores[which] *= ~vetoed.any(axis=1)

    def _window(self, watermark: datetime | None) -> int:
        start = self._windows.get(watermark)
        if start is None:
            start = self._windows[watermark] = self.window_start(watermark)
        return start

    def _reasons(self, rows: np.ndarray, gathered: np.ndarray, papers: np.ndarray) -> np.ndarray:
        """For each chosen paper, the key of its Match in the cache, from the entries that
        chose it: row * papers + paper for one entry, a negative key for two, 0 for more."""
        n = self.count
        members, width = rows.shape
        chosen = np.take_along_axis(gathered, papers[:, None, :], axis=2) > 0
        count = chosen.sum(axis=1)
        first = rows[np.arange(members)[:, None], chosen.argmax(axis=1)]
        last = rows[np.arange(members)[:, None], width - 1 - chosen[:, ::-1].argmax(axis=1)]
        one = first * n + papers
        low, high = np.minimum(first, last), np.maximum(first, last)  # any list order
        two = -((low * self._row_limit + high) * n + papers) - 1
        if self._rows >= self._row_limit or n >= 1 << 22:
            two[:] = 0  # the key would overflow: take the slow path
        return np.where(count == 1, one, np.where(count == 2, two, 0))

    def _explain(self, chosen: _Chosen, row: int) -> tuple[Match, ...]:
        """The Matches of one row of a block (`Selection.matches`), from the caches."""
        shown = int(chosen.shown[row])
        reasons = chosen.reasons[row, :shown].tolist()
        singles, multis = self._matches.get, self._multis.get
        matches = [singles(r) if r > 0 else multis(r) for r in reasons]
        if None in matches:
            papers, bases = chosen.papers[row].tolist(), chosen.bases[row].tolist()
            for i, match in enumerate(matches):
                if match is None:
                    reason = reasons[i]
                    matches[i] = (
                        self._single(reason)
                        if reason > 0
                        else self._match(reason, papers[i], chosen.plans[row], bases[i])
                    )
        return tuple(matches)

    def _match(self, reason: int, paper: int, plan: _Plan, base: int) -> Match:
        """The Match of a paper chosen by several of the subscriber's entries, cached.

        `reason` is the key `_reasons` made: for two entries it names both rows.
        """
        n, rows = self.count, self._row_weights
        if reason < 0:
            pair, _ = divmod(-reason - 1, n)
            chosen = [self._by_row[pair // self._row_limit], self._by_row[pair % self._row_limit]]
            key: object = reason
        else:
            chosen = [e for e in plan.wanted if rows[e.row][paper]]
            key = (paper, *sorted(e.row for e in chosen))
        match = self._multis.get(key)
        if match is None:
            if len(chosen) == 2:
                first, second = chosen
                one, other = rows[first.row][paper], rows[second.row][paper]
                if other > one or (other == one and second.order < first.order):
                    chosen = [second, first]
            else:
                chosen.sort(key=lambda e: (-rows[e.row][paper], *e.order))
            singles = self._matches
            hits = tuple(
                (singles.get(e.row * n + paper) or self._single(e.row * n + paper)).hits[0]
                for e in chosen
            )
            match = Match(self.papers[paper], base + self._bonus[paper], hits)
            self._remember(self._multis, _MULTIS_LIMIT, key, match)
        return match


class _Chosen:
    """A block of subscribers' chosen papers as arrays, one row per subscriber: the
    columns best first, their whole-number scores and their Match keys (`_reasons`)."""

    __slots__ = ("bases", "matcher", "more", "papers", "plans", "reasons", "shown", "take")

    def __init__(self, matcher: Matcher, plans: list[_Plan], take: int) -> None:
        size = len(plans)
        self.matcher = matcher
        self.plans = plans
        self.take = take
        self.papers = np.zeros((size, take), dtype=np.int64)
        self.bases = np.zeros((size, take), dtype=np.uint16)
        self.reasons = np.zeros((size, take), dtype=np.int64)
        self.shown = np.zeros(size, dtype=np.int64)  # min(papers matched, take)
        self.more = np.zeros(size, dtype=np.int64)  # papers matched beyond `take`

    def explain(self, row: int) -> tuple[tuple[Match, ...], tuple[Match, ...]]:
        """(matches, no trending) of the selection of the block's `row`."""
        return self.matcher._explain(self, row), ()


class _Trended:
    """Explains a selection with trending papers from its keyword selection and layout
    (`Matcher._add_trending`)."""

    def __init__(self, rank: _TrendingRank) -> None:
        self.rank = rank

    def explain(
        self, token: tuple[Selection, tuple[tuple[int, int], ...], tuple[tuple[int, int, int], ...]]
    ) -> tuple[tuple[Match, ...], tuple[Match, ...]]:
        """(matches, trending): each match, with its trending reason if it has one; each
        trending paper, with its matching reasons if it has them."""
        selection, matches, trending = token
        chosen, rank = selection.matches, self.rank
        return (
            tuple(chosen[i] if r == 0 else rank.also(chosen[i], r) for i, r in matches),
            tuple(rank.match(c, r, chosen[i] if i >= 0 else None) for c, r, i in trending),
        )


class _TrendingRank:
    """The papers Hugging Face listed, most upvoted first, and the trending Matches."""

    def __init__(self, papers: Sequence[Paper], until: datetime | None) -> None:
        self.papers = papers
        self.column = {paper.id: column for column, paper in enumerate(papers)}
        listed = [
            column
            for column, paper in enumerate(papers)
            if paper.on_hf
            and (until is None or paper.hf_seen_at is None or paper.hf_seen_at < until)
        ]
        self.ranked = sorted(listed, key=lambda column: trending_order(papers[column]))
        self._upvotes = [max(paper.upvotes or 0, 0) for paper in papers]
        self._seen = [paper.hf_seen_at for paper in papers]
        self._columns: dict[object, tuple[int, ...]] = {}
        self._matches: dict[tuple[int, int], Match] = {}

    def columns(
        self,
        watermark: datetime | None,
        count: int,
        minimum: int,
        excluded: tuple[int, ...],
        rows: list[bytes],
    ) -> tuple[int, ...]:
        """The trending papers of a window, best first: at most `count`, each with at
        least `minimum` upvotes and no match in the `excluded` rows of weights."""
        key = (watermark, count, minimum, excluded)
        known = self._columns.get(key)
        if known is None:
            picked: list[int] = []
            for column in self.ranked:
                if len(picked) == count or self._upvotes[column] < minimum:
                    break  # ranked by upvotes: no later paper has enough
                seen = self._seen[column]
                if watermark is not None and (seen is None or seen < watermark):
                    continue  # listed before the window (or when, unknown: only without one)
                if any(rows[row][column] for row in excluded):
                    continue
                picked.append(column)
            if len(self._columns) >= _COLUMNS_LIMIT:
                self._columns.clear()
            known = self._columns[key] = tuple(picked)
        return known

    def hit(self, rank: int) -> Hit:
        """The reason a trending paper was chosen."""
        return Hit(f"trending #{rank}", (), rank)

    def match(self, column: int, rank: int, matched: Match | None) -> Match:
        """The Match of the paper trending at `rank`, with the reasons it also `matched`."""
        if matched is not None:
            return Match(matched.paper, matched.score, (self.hit(rank), *matched.hits))
        known = self._matches.get((column, rank))
        if known is None:
            paper = self.papers[column]
            known = Match(paper, float(self._upvotes[column]), (self.hit(rank),))
            if len(self._matches) >= _SINGLES_LIMIT:
                self._matches.clear()
            self._matches[column, rank] = known
        return known

    def also(self, matched: Match, rank: int) -> Match:
        """A matching paper that is also trending at `rank`: both reasons, its own first."""
        return Match(matched.paper, matched.score, (*matched.hits, self.hit(rank)))


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
    """Choose, order and explain the papers for one subscriber (previews, samples):
    every paper given is in their window."""
    return Matcher(papers).select(interests, None, max_papers)


def match_many(
    papers: Sequence[Paper],
    subscribers: Iterable[tuple[K, Interests, datetime | None]],
    max_papers: int,
) -> Iterator[tuple[K, Selection]]:
    """Each subscriber's selection from the papers first seen at or after their watermark.

    `subscribers` yields (key, interests, watermark); a watermark of None means every
    paper, and a paper whose `first_seen_at` is unknown is only offered then. Results
    come in the order given, one per subscriber, lazily.
    """
    return Matcher(papers).select_many(subscribers, max_papers)
