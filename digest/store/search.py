"""Full-text search of the stored papers: the pre-filter of the search page.

`search_papers` asks the full-text index (migration 0007: FTS5 on SQLite, a GIN index
on PostgreSQL) for the papers an interest list might match, newest first. It only
narrows them down: the matcher (`digest.match`) then chooses, orders and explains, as
for a digest. So the index query must find every paper the matcher would match; the
matcher's side of it writes the list as a `SearchQuery` of plain words to find
(`digest.match.prefilter`), generously:

- A plain word is found by any word starting with its stem (`tuning` -> `tun*`: tuned,
  tunes) and, since the matcher also matches a word written in two parts ("fine-tuning"
  for `finetuning`), by two adjacent words that start so written as one: on SQLite, any
  two that split that start (`fine` then `tun*`, `f` then `inetun*`, ...), on PostgreSQL
  the pairs the index holds joined. Two plain words written spaced or hyphenated are
  also tried joined ("fine tuning" as `finetun*`, found in "finetuning").
- A quoted word, a name (author:, org:) and a prefix (`quantiz*`) are found by the words
  starting with it: a text cut to fit its limit may have cut its last word short.
- Every word of a clause must be found in one of the clause's fields; every clause of an
  entry; any entry. Exclusions (-survey) select nothing here: the matcher applies them.
- A word with letters outside ASCII after folding is found only in papers the index
  marks "unsure" (text it may fold otherwise than the matcher), which every search
  includes whatever it asks.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Integer, cast, column, func, literal_column, select, text
from sqlalchemy.dialects.postgresql import TSQUERY
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from digest.paper import Paper
from digest.store.models import PaperRow
from digest.store.papers import paper_from_row

# As migration 0007 made them.
FTS_TABLE = "paper_search"
UNSURE_COLUMN = "unsure"
UNSURE_WORD = "unsure"
UNSURE_LEXEME = "UNSURE"
PG_WORDS = func.paper_search_words(
    PaperRow.title, PaperRow.abstract, PaperRow.authors, PaperRow.organization
)
PG_FIELD_TAGS = {"title": "t", "abstract": "a", "authors": "p", "organization": "o"}

INDEX_BUDGET = 1.0  # seconds an index query may take before it is given up
QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for a statement cancelled by its timeout

_ID_CHUNK = 500  # ids per IN (...): under every database's bound-parameter limit


@dataclass(frozen=True, slots=True)
class Term:
    """A word the index must show: one starting with `start`, or, if `joined`, two
    adjacent ones that start so when written as one (the matcher's "finetuning" in
    "fine-tuning")."""

    start: str
    joined: bool


@dataclass(frozen=True, slots=True)
class ClauseTest:
    """What the index must hold for a clause to match: each word (any of its terms) in
    one of these fields."""

    fields: tuple[str, ...]
    words: tuple[tuple[Term, ...], ...]


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """The index query of an interest list: any entry, each entry all its clauses."""

    entries: tuple[tuple[ClauseTest, ...], ...]


@dataclass(frozen=True, slots=True)
class Candidates:
    """What the pre-filter found: the newest `limit` of the papers that might match
    (newest first), how many might match in all, how many papers were searched, and
    whether the index narrowed them down (else every paper searched might match)."""

    papers: list[Paper]
    found: int
    searched: int
    narrowed: bool = True

    @property
    def capped(self) -> bool:
        """Whether more papers might match than were returned."""
        return self.found > len(self.papers)


# --- the query, written for each index ------------------------------------------------


def fts5_query(query: SearchQuery) -> str:
    """The FTS5 MATCH expression of `query` (SQLite), unsure papers included."""
    entries = [
        " AND ".join(_fts5_clause(clause) for clause in clauses) for clauses in query.entries
    ]
    return " OR ".join([*(f"({entry})" for entry in entries), _fts5_unsure()])


def _fts5_unsure() -> str:
    return f'{{{UNSURE_COLUMN}}} : "{UNSURE_WORD}"'


def _fts5_clause(clause: ClauseTest) -> str:
    words = " AND ".join(
        "(" + " OR ".join(_fts5_term(term) for term in terms) + ")" for terms in clause.words
    )
    return f"({{{' '.join(clause.fields)}}} : ({words}))"


def _fts5_term(term: Term) -> str:
    """A word starting with the term's start; if joined, also two adjacent words that
    split it (the index has positions, not the words joined)."""
    start = term.start
    ways = [f'"{start}"*']
    if term.joined:
        ways += [f'"{start[:cut]}" + "{start[cut:]}"*' for cut in range(1, len(start))]
    return " OR ".join(ways)


def tsquery(query: SearchQuery) -> str:
    """The tsquery of `query` (PostgreSQL), unsure papers included.

    The index's lexemes are the words with a letter naming their field in front, and
    two words joined by a space or hyphen written as one with that letter in upper case.
    """
    entries = [
        " & ".join(_tsquery_clause(clause) for clause in clauses) for clauses in query.entries
    ]
    return " | ".join([*(f"({entry})" for entry in entries), f"'{UNSURE_LEXEME}'"])


def _tsquery_clause(clause: ClauseTest) -> str:
    tags = [PG_FIELD_TAGS[name] for name in clause.fields]

    def lexemes(term: Term) -> list[str]:
        joined = [tag.upper() for tag in tags] if term.joined else []
        return [f"'{tag}{term.start}':*" for tag in [*tags, *joined]]

    words = [
        "(" + " | ".join(word for term in terms for word in lexemes(term)) + ")"
        for terms in clause.words
    ]
    return "(" + " & ".join(words) + ")"


# --- the search -----------------------------------------------------------------------


def search_papers(
    session: Session,
    query: SearchQuery,
    *,
    since: datetime | None,
    limit: int,
    budget: float | None = None,
) -> Candidates:
    """The papers first seen at or after `since` (all if None) that the interest list
    of `query` (`digest.match.prefilter.search_query`) might match, at most `limit` of
    them, newest first (by first seen, then id).

    A superset of what the matcher would match among those papers, as long as there are
    no more than `limit` of them (`Candidates.capped` says when there were). An index
    query that takes longer than `budget` seconds (default `INDEX_BUDGET`) is given up:
    then every paper of the window might match (`Candidates.narrowed` is false).
    """
    # The index first, on its own (MATERIALIZED): a plan that walked the papers by date
    # and asked each whether it matches would compute the words of every paper (seconds
    # on PostgreSQL, which has no table of them).
    hits = (
        select(PaperRow.id, PaperRow.first_seen_at)
        .where(_matching(session, query))
        .cte("hits")
        .prefix_with("MATERIALIZED")
    )
    found = select(hits.c.id).order_by(hits.c.first_seen_at.desc(), hits.c.id)
    every = select(PaperRow.id).order_by(PaperRow.first_seen_at.desc(), PaperRow.id)
    searched = select(func.count()).select_from(PaperRow)
    if since is not None:
        found = found.where(hits.c.first_seen_at >= since)
        every = every.where(PaperRow.first_seen_at >= since)
        searched = searched.where(PaperRow.first_seen_at >= since)
    count = session.scalar(searched) or 0
    try:
        with _time_limit(session, INDEX_BUDGET if budget is None else budget):
            ids = list(session.scalars(found))
    except _TooSlow:
        ids = list(session.scalars(every.limit(limit)))
        return Candidates(_papers_by_id(session, ids), count, count, narrowed=False)
    return Candidates(_papers_by_id(session, ids[:limit]), len(ids), count)


class _TooSlow(Exception):
    """The index query took longer than its budget and was stopped."""


@contextmanager
def _time_limit(session: Session, seconds: float) -> Iterator[None]:
    """Stop the queries of the block after `seconds`, raising _TooSlow.

    A list can ask the index for thousands of short words ("ab, ac, ad, ..."), each a
    scan of much of the index: seconds of work that no real list needs.
    """
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        sqlite = connection.connection.driver_connection
        deadline = time.monotonic() + seconds
        sqlite.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)  # type: ignore[union-attr]
        try:
            yield
        except OperationalError as error:
            if "interrupted" in str(error.orig):
                raise _TooSlow from None
            raise
        finally:
            sqlite.set_progress_handler(None, 0)  # type: ignore[union-attr]
        return
    # PostgreSQL cancels a statement after statement_timeout; in a savepoint, so that
    # the transaction goes on after it, with the timeout it had.
    timeout = text("SELECT set_config('statement_timeout', :value, true)")
    before = session.scalar(text("SELECT current_setting('statement_timeout')"))
    try:
        with session.begin_nested():
            session.execute(timeout, {"value": f"{max(1, round(seconds * 1000))}ms"})
            yield
            session.execute(timeout, {"value": before})
    except OperationalError as error:
        if getattr(error.orig, "sqlstate", None) == QUERY_CANCELED:
            raise _TooSlow from None
        raise


def _matching(session: Session, query: SearchQuery) -> ColumnElement[bool]:
    """The condition on papers rows that the index finds them for `query`."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        hits = text(f"SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :query")
        rowids = hits.bindparams(query=fts5_query(query)).columns(column("rowid", Integer))
        return literal_column("papers.rowid").in_(rowids)
    if dialect == "postgresql":
        return PG_WORDS.op("@@")(cast(tsquery(query), TSQUERY))
    raise NotImplementedError(f"no full-text search on {dialect}")


def _papers_by_id(session: Session, ids: list[str]) -> list[Paper]:
    """The papers with these ids, in the order given."""
    rows: dict[str, PaperRow] = {}
    for start in range(0, len(ids), _ID_CHUNK):
        chunk = ids[start : start + _ID_CHUNK]
        rows.update(
            (row.id, row) for row in session.scalars(select(PaperRow).where(PaperRow.id.in_(chunk)))
        )
    return [paper_from_row(rows[paper_id]) for paper_id in ids]
