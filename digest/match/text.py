"""What a word is: folding, tokens, the gaps between them, and light stemming.

These definitions are shared by the interest parser, the fast index and the tests' naive
baseline (`tests/reference/naive.py`), so that all three agree on what "the same word"
means:

- `fold` makes text case- and accent-insensitive (per character: NFKD, combining marks
  and invisible format characters dropped, casefolded) and keeps a map back to the
  original offsets, so matches can be reported as spans of the text as stored.
- A token is a run of letters and digits (`TOKEN`) that does not directly follow a
  backslash: `\\alpha` or `\\times` in a LaTeX abstract is a command, not a word.
- The gap between two tokens is either a JOIN (only spaces, hyphens, and LaTeX's `$`,
  `{`, `}`: `fine-tuning` and `fine tuning` are the same words), a punctuation key (the
  gap without its whitespace: "," or "." or "&"), or BREAK (a LaTeX command sits in it;
  never matches).
  In names (authors, organisation), dots and apostrophes also join: "R. Michael".
- `stem` is a light English stemmer (plurals, -ing, -ed, a final -e, a doubled final
  consonant); the tests' regex baseline inverts it (`inflections`).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Letters and digits (not underscore); a token directly after a backslash is a LaTeX command.
WORD_CLASS = r"[^\W_]"
TOKEN = re.compile(r"[^\W_]+")
# Characters that join two words: whitespace, hyphen-minus, Unicode hyphens, en dash, minus,
# and LaTeX's math dollars and braces, which are formatting ("$f$-divergence", "{no-regret}").
JOIN_CHARS = r"\s\-\u2010\u2011\u2012\u2013\u2212${}"
# In names, dots and apostrophes join as well ("R. Michael Alvarez", "O'Neil").
NAME_JOIN_CHARS = JOIN_CHARS + r".'\u2019"
_JOIN_GAP = re.compile(f"[{JOIN_CHARS}]+")
_NAME_JOIN_GAP = re.compile(f"[{NAME_JOIN_CHARS}]+")
_WHITESPACE = re.compile(r"\s+")

JOIN = ""
"""The gap key of a joining gap (spaces and hyphens)."""
BREAK = "\\"
"""The gap key of a gap that no interest can match (it holds a LaTeX command)."""

PROSE = "prose"
NAMES = "names"


def fold(text: str) -> tuple[str, list[int] | None]:
    """Case- and accent-fold `text`; return the folded text and its offset map.

    The map is None when folding kept every offset (plain ASCII); otherwise
    `starts[j]` is the offset in `text` of the character that produced folded
    character `j` (see `original_span`).
    """
    if text.isascii():
        return text.lower(), None
    pieces: list[str] = []
    starts: list[int] = []
    for offset, char in enumerate(text):
        folded = _fold_char(char)
        if folded:
            pieces.append(folded)
            starts.extend([offset] * len(folded))
    return "".join(pieces), starts


@lru_cache(maxsize=8192)
def _fold_char(char: str) -> str:
    """One character folded: compatibility-decomposed, marks dropped, casefolded."""
    if char.isascii():
        return char.lower()
    if unicodedata.category(char) in ("Mn", "Me", "Cf"):
        return ""
    decomposed = unicodedata.normalize("NFKD", char)
    kept = "".join(c for c in decomposed if unicodedata.category(c) not in ("Mn", "Me", "Cf"))
    return kept.casefold()


def original_span(
    starts: list[int] | None, text_length: int, start: int, end: int
) -> tuple[int, int]:
    """Map the folded range [start, end) back to a range of the original text.

    Dropped characters (combining marks) right after the range belong to its last letter.
    """
    if starts is None:
        return start, end
    original_start = starts[start]
    last = starts[end - 1] + 1
    following = starts[end] if end < len(starts) else text_length
    return original_start, max(last, following)


def tokens(folded: str) -> list[tuple[int, int]]:
    """The (start, end) ranges of the tokens of folded text, LaTeX commands left out."""
    return [
        (found.start(), found.end())
        for found in TOKEN.finditer(folded)
        if found.start() == 0 or folded[found.start() - 1] != "\\"
    ]


def gap_key(gap: str, kind: str = PROSE) -> str:
    """Classify the text between two tokens: JOIN, a punctuation key, or BREAK."""
    joining = _NAME_JOIN_GAP if kind == NAMES else _JOIN_GAP
    if joining.fullmatch(gap):
        return JOIN
    key = _WHITESPACE.sub("", gap)
    if "\\" in key or any(c.isalnum() for c in key):
        return BREAK
    return key


# --- light stemming ------------------------------------------------------------------

_VOWELS = frozenset("aeiouy")
# Words that only look inflected; stemming them would conflate unrelated words.
_UNSTEMMED = frozenset({"news", "series", "species", "embed"})


def stem(word: str) -> str:
    """The light stem of a folded token: `transformers` -> `transformer`, `tuning` -> `tun`.

    Steps, each applied at most once and only to purely alphabetic words: plurals
    (-ies -> -y, -es after s/x/ch/sh/zz, -s), then -ied -> -y, -ing or -ed (when what
    is left keeps a vowel and three letters), then a final -e, then a doubled final
    consonant (`embedd` -> `embed`, `modell` -> `model`). The steps are simple on
    purpose: `inflections` must be able to list every word with a given stem.
    """
    if not word.isalpha() or word in _UNSTEMMED:
        return word
    word = _strip_plural(word)
    if word in _UNSTEMMED:
        return word
    word = _strip_verb_ending(word)
    if len(word) >= 4 and word.endswith("e"):
        word = word[:-1]
    if len(word) >= 4 and word[-1] == word[-2] and word[-1] not in _VOWELS:
        word = word[:-1]
    return word


def _strip_plural(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith("es") and word[:-2].endswith(("ss", "x", "ch", "sh", "zz")):
        return word[:-2]
    if len(word) >= 3 and word.endswith("s") and not word.endswith(("ss", "us", "is", "ias")):
        return word[:-1]
    return word


def _strip_verb_ending(word: str) -> str:
    if len(word) > 4 and word.endswith("ied"):
        return word[:-3] + "y"
    for suffix in ("ing", "ed"):
        if word.endswith(suffix):
            rest = word[: -len(suffix)]
            if len(rest) >= 3 and _VOWELS.intersection(rest):
                if suffix == "ed" and rest.endswith("e"):
                    return word  # speed, need, exceed: not a past tense
                return rest
    return word
