"""What `match` hands to `render`: the chosen papers, their scores, and why they matched."""

from __future__ import annotations

from dataclasses import dataclass

from digest.paper import Paper


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
    """One interest that matched a paper, with every place it matched."""

    interest: str
    spans: tuple[Span, ...]


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
    """One subscriber's digest: at most `max_papers` matches best first, and how many more."""

    matches: tuple[Match, ...]
    more: int = 0
