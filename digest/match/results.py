"""What `match` hands to `render`: the chosen papers, their scores, and why they matched."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from digest.match.query import Trending
from digest.paper import Paper

TRENDING = "trending"
"""The section of the trending papers (`Selection.sections`)."""
MATCHING = "matching"
"""The section of the papers matching the reader's interests."""
SUGGESTED = "suggested"
"""The section of the papers no keyword matched that the reader's model ranks high."""


@dataclass(frozen=True, slots=True)
class Span:
    """Where an interest matched: a character range of one field of the `Paper`.

    `field` is "title", "abstract", "authors" (an index into `Paper.authors` is not
    needed: offsets are into ", ".join(paper.authors)) or "organization". `start` and
    `end` are offsets into that field's text exactly as the `Paper` holds it, so
    `text[start:end]` is the matched words.
    """

    field: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Hit:
    """One interest that matched a paper, with every place it matched.

    A paper chosen by the trending rule has a Hit with its `rank` there (1 for the most
    upvoted), labelled "trending #rank", and no spans.
    """

    interest: str
    spans: tuple[Span, ...]
    rank: int = 0


@dataclass(frozen=True, slots=True)
class Match:
    """A paper chosen for a digest, its score, and the interests that chose it."""

    paper: Paper
    score: float
    hits: tuple[Hit, ...]

    @property
    def interests(self) -> tuple[str, ...]:
        """The labels of the interests that matched, best first."""
        return tuple(hit.interest for hit in self.hits)


class Explainer(Protocol):
    """Where a lazily explained `Selection` gets its matches from (the matcher)."""

    def explain(self, token: Any) -> tuple[tuple[Match, ...], tuple[Match, ...]]:
        """The (matches, trending) of the selection made with `token`."""
        ...


class Selection:
    """One subscriber's digest: at most `max_papers` matches best first, and how many more.

    A reader with the trending rule also gets `trending`: the most upvoted papers of
    their window, most upvoted first, `rule` saying how they were chosen. No paper is in
    both: one that is shows once, in the section that comes first (`trending_first`),
    with the reasons of both (the trending one is a `Hit` labelled "trending #N").

    Immutable and compared by value, as a frozen dataclass of those six fields. The
    matcher makes its selections with `explained_later`: it chooses a million readers'
    papers as arrays, and the `Match`es, hits and spans of one are made (shared between
    readers by the matcher's caches) when `matches` or `trending` is first read;
    `papers` and `more` need no explanation.
    """

    __slots__ = ("_matches", "_shown", "_source", "_token", "_trending", "matching", "more")
    __slots__ += ("rule", "suggested", "trending_first")

    def __init__(
        self,
        matches: tuple[Match, ...] = (),
        more: int = 0,
        trending: tuple[Match, ...] = (),
        rule: Trending | None = None,
        trending_first: bool = False,
        matching: bool = True,  # whether the reader has keyword interests (a section of their own)
        suggested: tuple[Match, ...] = (),
    ) -> None:
        self._matches = matches
        self._trending = trending
        self._source: Explainer | None = None
        self._token: Any = None
        self._shown = len(matches) + len(trending) + len(suggested)
        self.more = more
        self.suggested = suggested
        self.rule = rule
        self.trending_first = trending_first
        self.matching = matching

    @property
    def matches(self) -> tuple[Match, ...]:
        """The papers matching the reader's interests, best first."""
        if self._source is not None:
            self._explain()
        return self._matches

    @property
    def trending(self) -> tuple[Match, ...]:
        """The trending papers (with the rule), most upvoted first."""
        if self._source is not None:
            self._explain()
        return self._trending

    def _explain(self) -> None:
        source, self._source = self._source, None
        assert source is not None
        self._matches, self._trending = source.explain(self._token)
        self._token = None

    @property
    def sections(self) -> tuple[tuple[str, tuple[Match, ...]], ...]:
        """(TRENDING or MATCHING, matches) for each section the reader asked for, in order,
        then (SUGGESTED, matches) when the reader's model suggests any."""
        learned = ((SUGGESTED, self.suggested),) if self.suggested else ()
        if self.rule is None:
            return ((MATCHING, self.matches), *learned)
        if not self.matching:
            return ((TRENDING, self.trending), *learned)
        both = ((TRENDING, self.trending), (MATCHING, self.matches))
        return (*(both if self.trending_first else both[::-1]), *learned)

    @property
    def papers(self) -> int:
        """How many papers the digest shows, in all its sections."""
        return self._shown

    def _fields(self) -> tuple[Any, ...]:
        return (
            self.matches, self.more, self.trending, self.rule, self.trending_first, self.suggested
        )  # fmt: skip

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not Selection:
            return NotImplemented
        assert isinstance(other, Selection)
        return self.matching == other.matching and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash((*self._fields(), self.matching))

    def __repr__(self) -> str:
        return (
            f"Selection(matches={self.matches!r}, more={self.more!r}, "
            f"trending={self.trending!r}, rule={self.rule!r}, "
            f"trending_first={self.trending_first!r}, matching={self.matching!r}, "
            f"suggested={self.suggested!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        matches, more, trending, rule, first, suggested = self._fields()
        return (Selection, (matches, more, trending, rule, first, self.matching, suggested))


_new_selection = object.__new__


def explained_later(
    source: Explainer,
    token: object,
    shown: int,
    more: int,
    rule: Trending | None = None,
    trending_first: bool = False,
    matching: bool = True,
) -> Selection:
    """A `Selection` of `shown` papers whose matches `source.explain(token)` makes when
    first read (the matcher's way: most of its work is then arrays, not objects)."""
    selection: Selection = _new_selection(Selection)
    selection._source = source
    selection._token = token
    selection._shown = shown
    selection.more = more
    selection.rule = rule
    selection.trending_first = trending_first
    selection.matching = matching
    selection.suggested = ()
    return selection
