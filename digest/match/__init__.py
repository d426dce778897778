"""Match papers to subscribers' interests: which papers, in what order, and why.

- `query`: the interest syntax (`parse_interests`, `INTEREST_EXAMPLES`).
- `text`: what a word is (folding, tokens, gaps, light stemming).
- `index`: the day's papers, tokenised once, and where each clause matches.
- `rank`: scores, windows and selections (`match_subscriber`, `match_many`).
- `results`: the types handed to `render` (`Span`, `Hit`, `Match`, `Selection`).
- `prefilter`: a list as the words the search page's full-text index must find (not
  imported here: it needs the store).
"""

from digest.match.query import (
    INTEREST_EXAMPLES,
    Interest,
    Interests,
    Trending,
    parse_interests,
)
from digest.match.rank import FIELD_WEIGHTS, Matcher, match_many, match_subscriber
from digest.match.results import Hit, Match, Selection, Span

__all__ = [
    "FIELD_WEIGHTS",
    "INTEREST_EXAMPLES",
    "Hit",
    "Interest",
    "Interests",
    "Match",
    "Matcher",
    "Selection",
    "Span",
    "Trending",
    "match_many",
    "match_subscriber",
    "parse_interests",
]
