"""What `match` hands to `render`: the chosen papers, their scores, and why they matched."""

from __future__ import annotations

from dataclasses import dataclass

from digest.match.query import Trending
from digest.paper import Paper

TRENDING = "trending"
"""The section of the trending papers (`Selection.sections`)."""
MATCHING = "matching"
"""The section of the papers matching the reader's interests."""


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


@dataclass(frozen=True, slots=True)
class Selection:
    """One subscriber's digest: at most `max_papers` matches best first, and how many more.

    A reader with the trending rule also gets `trending`: the most upvoted papers of
    their window, most upvoted first, `rule` saying how they were chosen. No paper is in
    both: one that is shows once, in the section that comes first (`trending_first`),
    with the reasons of both (the trending one is a `Hit` labelled "trending #N").
    """

    matches: tuple[Match, ...]
    more: int = 0
    trending: tuple[Match, ...] = ()
    rule: Trending | None = None
    trending_first: bool = False
    matching: bool = True  # whether the reader has keyword interests (a section of their own)

    @property
    def sections(self) -> tuple[tuple[str, tuple[Match, ...]], ...]:
        """(TRENDING or MATCHING, matches) for each section the reader asked for, in order."""
        if self.rule is None:
            return ((MATCHING, self.matches),)
        if not self.matching:
            return ((TRENDING, self.trending),)
        both = ((TRENDING, self.trending), (MATCHING, self.matches))
        return both if self.trending_first else both[::-1]

    @property
    def papers(self) -> int:
        """How many papers the digest shows, in all its sections."""
        return len(self.matches) + len(self.trending)
