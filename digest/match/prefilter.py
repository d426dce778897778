"""An interest list as the words the full-text index must show: the search pre-filter.

The search page narrows the stored papers down with the full-text index
(`digest.store.search`) before the matcher chooses among them, so the index must find
every paper the matcher would match. This module writes the parsed `Interests` as that
index query, a `SearchQuery` of plain words, from what the matcher knows of words: their
stems, and words written joined or in two parts (`digest.store.search` says how).
"""

from __future__ import annotations

import re

from digest.match.query import EXACT, PREFIX, STEM, Clause, Interests, Word
from digest.match.text import JOIN, stem
from digest.store.search import ClauseTest, SearchQuery, Term

_INDEXED = re.compile(r"[a-z0-9]+")  # what an indexed word is made of


def search_query(interests: Interests) -> SearchQuery:
    """The index query that finds at least every paper `interests` can match."""
    entries = []
    for entry in interests.wanted:
        tests = [_clause_test(clause) for clause in entry.clauses]
        held = tuple(test for test in tests if test is not None)
        if len(held) == len(tests):  # else only unsure papers can match the entry
            entries.append(held)
    return SearchQuery(tuple(dict.fromkeys(entries)))


def _clause_test(clause: Clause) -> ClauseTest | None:
    """The clause's test, or None when no sure paper can hold it (a word not in ASCII)."""
    words = []
    for i, word in enumerate(clause.words):
        terms = _word_terms(word)
        # A plain word may be matched joined with its neighbour: "fine tuning" in
        # "finetuning" holds neither "tun*" nor two words that make it.
        for first in (i - 1, i):
            if _joinable(clause, first):
                terms += _stem_terms(clause.words[first].text + clause.words[first + 1].text)
        if not terms:
            return None
        words.append(tuple(dict.fromkeys(terms)))
    return ClauseTest(clause.fields, tuple(words))


def _joinable(clause: Clause, first: int) -> bool:
    """Whether the matcher may match words `first` and `first + 1` as one joined word."""
    if first < 0 or first + 1 >= len(clause.words):
        return False
    pair = clause.words[first : first + 2]
    return all(word.kind == STEM for word in pair) and clause.gaps[first] == JOIN


def _word_terms(word: Word) -> list[Term]:
    if word.kind == STEM:
        return _stem_terms(word.text)
    if word.kind in (EXACT, PREFIX) and _INDEXED.fullmatch(word.text):
        return [Term(word.text, joined=False)]
    return []


def _stem_terms(text: str) -> list[Term]:
    start = stem_start(text)
    return [Term(start, joined=True)] if _INDEXED.fullmatch(start) else []


def stem_start(text: str) -> str:
    """What every word with the stem of `text` starts with.

    A stem is a start of its word but for one case: a stem ending in "y" may come from
    a word with "i" there (studies, studied -> study), so the "y" is left off.
    """
    root = stem(text)
    if root.endswith("y") and len(root) >= 3:
        return root[:-1]
    return root
