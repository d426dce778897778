"""Readers' models applied to a run's selections, a block of readers at a time.

For the readers of a block who have a model (`Taste`), the scores of every paper of the
run's window come from one sparse product: the block's weight vectors (readers x words)
times the papers' vectors (words x papers), never a Python loop per reader per paper.
Then, per reader:

- **Keyword matches** are re-ordered by the model within their section (ties: the
  keyword score). The model chooses among the best `WIDE` keyword matches, so it can
  bring up a match the keyword score alone would have left out of the digest. Keywords
  stay hard rules: every paper shown there matched one, and none an exclusion.
- **Suggested for you**: up to the reader's `suggestions` papers of their window that no
  keyword matched, no exclusion matched, not trending for them and not already rated,
  scoring above the model's threshold, best first; each says which liked paper it is
  closest to. They count in the digest's `max_papers`, so a digest is no longer than
  before (past ~102 KB Gmail clips an email): they take the room the other sections
  leave, and at most a quarter of it from them.

Readers without a model keep the matcher's selection as it is, untouched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import islice

import numpy as np
import scipy.sparse as sp
from sqlalchemy.orm import Session

from digest.learn.models import current_text_model
from digest.learn.taste import Taste, load_taste
from digest.learn.text import TextModel
from digest.match import Matcher, Selection
from digest.match.query import Interests
from digest.match.results import Hit, Match
from digest.store.feedback import reader_models, votes_of_many
from digest.subscriber import Subscriber

BLOCK = 512  # readers with models scored in one product
WIDE = 200  # keyword matches per reader the model chooses among


def suggestion_reason(title: str) -> str:
    """Why a paper is suggested, as its label in the digest."""
    return f"close to “{title}”, which you liked" if title else "close to papers you liked"


class Learning:
    """A run's text model and the vectors of each window's papers (made once per window)."""

    def __init__(self, text: TextModel) -> None:
        self.text = text
        self._vectors: dict[int, tuple[Matcher, sp.csr_matrix, sp.csr_matrix]] = {}

    def vectors(self, matcher: Matcher) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """The window's papers as rows, and transposed (words x papers) for products."""
        known = self._vectors.get(id(matcher))
        if known is None or known[0] is not matcher:
            rows = self.text.transform(matcher.papers)
            known = (matcher, rows, rows.T.tocsr())
            if len(self._vectors) >= 8:  # a run has a shared window and a few wider ones
                self._vectors.clear()
            self._vectors[id(matcher)] = known
        return known[1], known[2]

    def refine(
        self,
        matcher: Matcher,
        selections: Iterable[tuple[Subscriber, Selection]],
        interests_of: Callable[[Subscriber], Interests],
        tastes: Mapping[int, Taste],
        rated: Mapping[int, set[str]],
        max_papers: int,
    ) -> Iterator[tuple[Subscriber, Selection]]:
        """The selections with each modelled reader's re-ordered and suggestions added."""
        iterator = iter(selections)
        if not tastes:
            yield from iterator
            return
        while block := list(islice(iterator, BLOCK)):
            learners = [row for row, (who, _) in enumerate(block) if who.id in tastes]
            if learners:
                self._refine_block(matcher, block, learners, interests_of, tastes, rated,
                                   max_papers)  # fmt: skip
            yield from block

    def _refine_block(
        self,
        matcher: Matcher,
        block: list[tuple[Subscriber, Selection]],
        learners: list[int],
        interests_of: Callable[[Subscriber], Interests],
        tastes: Mapping[int, Taste],
        rated: Mapping[int, set[str]],
        max_papers: int,
    ) -> None:
        rows, by_word = self.vectors(matcher)
        readers = [block[row][0] for row in learners]
        weights = sp.vstack([tastes[who.id].weights for who in readers]).tocsr()
        bias = np.array([tastes[who.id].bias for who in readers], dtype=np.float32)
        scores = (weights @ by_word).toarray()
        scores += bias[:, None]
        lists = [interests_of(who) for who in readers]
        keyword_only = [
            (who.id, dataclasses.replace(interests, trending=None, trending_first=False),
             who.last_digest_at)
            for who, interests in zip(readers, lists, strict=True)
        ]  # fmt: skip
        # Not frozen again: the run's own select_many froze the collector's view already,
        # and a nested one would unfreeze it for the rest of the run when it ends.
        wide = matcher.select_many(keyword_only, min(WIDE, max(matcher.count, 1)), freeze=False)
        for k, (row, (_, candidates)) in enumerate(zip(learners, wide, strict=True)):
            who, selection = block[row]
            start = matcher.window_start(who.last_digest_at)
            reader = _Reader(
                matcher, rows, scores[k], tastes[who.id], rated.get(who.id, set()), start
            )
            block[row] = (
                who,
                reader.compose(selection, candidates, lists[k], max_papers, who.suggestions),
            )


class _Reader:
    """One modelled reader's scores over the window, and how their digest is laid out."""

    def __init__(
        self,
        matcher: Matcher,
        rows: sp.csr_matrix,
        scores: np.ndarray,
        taste: Taste,
        rated: set[str],
        start: int,
    ) -> None:
        self.matcher = matcher
        self.start = start  # the first column of the reader's window
        self.rows = rows
        self.scores = scores
        self.taste = taste
        self.rated = rated
        self.column = matcher.columns.__getitem__

    def order(self, matches: Iterable[Match]) -> list[Match]:
        """Best first by the model, then by keyword score, then id."""
        column, scores = self.column, self.scores
        return sorted(matches, key=lambda m: (-scores[column(m.paper.id)], -m.score, m.paper.id))

    def compose(
        self,
        selection: Selection,
        candidates: Selection,
        interests: Interests,
        max_papers: int,
        suggestions: int,
    ) -> Selection:
        """The reader's selection: the sections laid out as the matcher would, keyword
        matches chosen and ordered by the model, then the suggestions.

        The digest holds `max_papers` in all (an email much longer gets clipped): the
        suggestions take the room the sections leave, and when those would fill it, up
        to a quarter of it (`max_papers // 4`), the sections keeping the rest."""
        trending_all = _trending_by_rank(selection)
        wanted = self.suggest(
            interests, {m.paper.id for m in trending_all}, min(suggestions, max_papers)
        )
        ranked = self.order(candidates.matches)
        matches, trending, more = self._layout(selection, candidates, ranked, trending_all,
                                               max_papers)  # fmt: skip
        unused = max_papers - len(matches) - len(trending)
        room = max(unused, min(len(wanted), max_papers // 4))
        suggested = wanted[:room]
        if len(suggested) > unused:
            matches, trending, more = self._layout(
                selection, candidates, ranked, trending_all, max_papers - len(suggested)
            )
        return Selection(
            matches, more, trending, selection.rule, selection.trending_first,
            selection.matching, suggested=suggested,
        )  # fmt: skip

    @staticmethod
    def _layout(
        selection: Selection,
        candidates: Selection,
        ranked: list[Match],
        trending_all: list[Match],
        most: int,
    ) -> tuple[tuple[Match, ...], tuple[Match, ...], int]:
        """(matches, trending, more) in `most` places, sections as the matcher lays them."""
        rule, first = selection.rule, selection.trending_first
        if rule is not None and selection.matching and not first:
            ranks = {m.paper.id: m.hits[0] for m in trending_all}  # their trending hits
            matches = tuple(_with_rank(m, ranks) for m in ranked[:most])
            shown = {m.paper.id for m in matches}
            trending = tuple(m for m in trending_all if m.paper.id not in shown)
            trending = trending[: most - len(matches)]
        else:
            trending = selection.trending[:most]
            taken = {m.paper.id for m in trending}
            ranked = [m for m in ranked if m.paper.id not in taken]
            room = most - len(trending) if rule is not None else most
            matches = tuple(ranked[: max(room, 0)])
        return matches, trending, candidates.more + len(ranked) - len(matches)

    def suggest(self, interests: Interests, shown: set[str], count: int) -> tuple[Match, ...]:
        """Up to `count` papers of the window no keyword or exclusion matched, not shown,
        not rated, above the model's threshold, best first."""
        if count <= 0:
            return ()
        matcher = self.matcher
        wanted, excluded = matcher.masks(interests)
        open_ = np.ones(matcher.count, dtype=bool)
        open_[: self.start] = False
        open_ &= ~wanted & ~excluded
        for paper_id in shown | self.rated:
            column = matcher.columns.get(paper_id)
            if column is not None:
                open_[column] = False
        open_ &= self.scores > self.taste.threshold
        eligible = np.flatnonzero(open_)
        if not len(eligible):
            return ()
        ids = [matcher.papers[c].id for c in eligible.tolist()]
        order = sorted(range(len(eligible)), key=lambda i: (-self.scores[eligible[i]], ids[i]))
        chosen = [int(eligible[i]) for i in order[:count]]
        return tuple(
            Match(
                matcher.papers[c],
                float(self.scores[c]),
                (Hit(suggestion_reason(self.taste.closest_liked(self.rows[c])), ()),),
            )
            for c in chosen
        )


def _with_rank(match: Match, ranks: Mapping[str, Hit]) -> Match:
    hit = ranks.get(match.paper.id)
    if hit is None or hit in match.hits:
        return match
    return Match(match.paper, match.score, (*match.hits, hit))


def _trending_by_rank(selection: Selection) -> list[Match]:
    """Every paper the selection ranked as trending, as a trending card (its trending hit
    first), by rank."""
    found: dict[str, Match] = {}
    for m in (*selection.trending, *selection.matches):
        ranks = [hit for hit in m.hits if hit.rank]
        if ranks and m.paper.id not in found:
            others = tuple(hit for hit in m.hits if not hit.rank)
            found[m.paper.id] = Match(m.paper, m.score, (ranks[0], *others))
    return sorted(found.values(), key=lambda m: m.hits[0].rank)


@dataclasses.dataclass(frozen=True)
class BatchLearning:
    """What a batch of due readers brings to the run's `Learning`: the models of those
    who have one (made over the run's text model) and the papers each already rated."""

    learning: Learning
    tastes: dict[int, Taste]
    rated: dict[int, set[str]]

    def refine(
        self,
        matcher: Matcher,
        selections: Iterable[tuple[Subscriber, Selection]],
        interests_of: Callable[[Subscriber], Interests],
        max_papers: int,
    ) -> Iterator[tuple[Subscriber, Selection]]:
        """`Learning.refine` with this batch's models."""
        return self.learning.refine(
            matcher, selections, interests_of, self.tastes, self.rated, max_papers
        )


def learning_for_run(session: Session) -> Learning | None:
    """The run's learning, None before a text model is fitted (nobody has a model)."""
    text = current_text_model(session)
    return None if text is None else Learning(text)


def learning_for_batch(
    session: Session, learning: Learning | None, due: Sequence[Subscriber]
) -> BatchLearning | None:
    """The batch's models and rated papers; None when no reader of it has a model."""
    if learning is None:
        return None
    stored = reader_models(session, [who.id for who in due], learning.text.version)
    if not stored:
        return None
    tastes = {reader: load_taste(data) for reader, data in stored.items()}
    votes = votes_of_many(session, tastes)
    rated = {reader: {vote.paper_id for vote in rows} for reader, rows in votes.items()}
    return BatchLearning(learning, tastes, rated)
