"""Benchmark the search page's work: the full-text pre-filter and the matcher on what it
finds, against the matcher over every paper of the window, on SQLite and PostgreSQL.

    python bench/search_bench.py                         # 10,000 papers, 200 lists
    python bench/search_bench.py --papers 2000 --lists 50
    DIGEST_TEST_POSTGRES_URL=postgresql+psycopg://... python bench/search_bench.py

The papers are `match_bench.synthesise_papers` (real titles, sentences and names of
../shared/data/papers.jsonl recombined), all in the search window; the interest lists
are `match_bench.InterestMaker`'s (Zipf-like topics in every form of the syntax). Each
list is timed, on a store of its own per backend (PostgreSQL: a database made and
dropped for the run on the server named by DIGEST_TEST_POSTGRES_URL, as the tests do):

- search: `search_stored_papers` as the page calls it (the index query, reading the
  candidates, the matcher on them; at most `CANDIDATE_LIMIT` candidates), and apart the
  pre-filter alone (the index query and reading the candidates);
- everything: reading every paper of the window and the matcher on all of them, which
  is what the page would do without the index (for the first --baseline-sample lists:
  it takes seconds a list).

Both must choose the same papers whenever the candidates were not capped; the run
checks it for every list timed both ways. Then two worst cases: the longest list the parser allows
(50 entries, 2,000 characters) and a word in every paper ("the"). Wall times, median
and 95th percentile per list, and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from match_bench import DAY, InterestMaker, load_real, synthesise_papers, vocabulary  # noqa: E402

from digest.match import Interests, Selection, match_subscriber, parse_interests  # noqa: E402
from digest.match.prefilter import search_query  # noqa: E402
from digest.paper import Paper  # noqa: E402
from digest.store import Database  # noqa: E402
from digest.store.papers import papers_first_seen_between, save_papers  # noqa: E402
from digest.store.search import Candidates, search_papers  # noqa: E402
from digest.web.search import (  # noqa: E402
    CANDIDATE_LIMIT,
    SEARCH_WINDOW,
    SHOWN,
    search_stored_papers,
)
from tests.conftest import POSTGRES_URL, _fresh_postgres_database  # noqa: E402

NOW = DAY + timedelta(hours=1)
T = TypeVar("T")


@contextmanager
def sqlite_store() -> Iterator[Database]:
    with tempfile.TemporaryDirectory() as folder:
        database = Database(f"sqlite:///{folder}/bench.db")
        yield database
        database.dispose()


def timed(work: Callable[..., T], *args: object) -> tuple[float, T]:
    """How long `work(*args)` took, in seconds, and what it gave."""
    started = time.perf_counter()
    result = work(*args)
    return time.perf_counter() - started, result


def everything(database: Database, interests: Interests) -> Selection:
    """The matcher over every paper of the window: the page without the index."""
    with database.session() as session:
        papers = papers_first_seen_between(session, NOW - SEARCH_WINDOW, NOW)
    return match_subscriber(interests, papers, SHOWN)


def prefilter_only(database: Database, interests: Interests) -> Candidates:
    """The index query and reading the candidates, without the matcher."""
    with database.session() as session:
        return search_papers(
            session, search_query(interests), since=NOW - SEARCH_WINDOW, limit=CANDIDATE_LIMIT
        )


def longest_list(papers: list[Paper]) -> str:
    """50 entries of three long words from the abstracts, as long as the parser allows."""
    words = sorted({w for p in papers[:200] for w in p.abstract.lower().split() if w.isalpha()})
    long_words = [w for w in words if len(w) >= 10]
    entries: list[str] = []
    for start in range(0, len(long_words) - 3, 3):
        entry = " ".join(long_words[start : start + 3])
        if len(entries) == 50 or len(", ".join([*entries, entry])) > 2000:
            break
        entries.append(entry)
    return ", ".join(entries)


def run_backend(
    name: str, database: Database, papers: list[Paper], lists: list[str], baseline_sample: int
) -> None:
    database.upgrade()
    saved, _ = timed(_save, database, papers)
    print(f"\n{name}: {len(papers):,} papers stored in {saved:.1f} s (index kept by the store)")
    searches, prefilters, baselines, candidates, capped, differ = [], [], [], [], 0, 0
    for number, written in enumerate(lists):
        interests = parse_interests(written)
        elapsed, result = timed(search_stored_papers, database, interests, NOW)
        prefilter, _ = timed(prefilter_only, database, interests)
        searches.append(elapsed)
        prefilters.append(prefilter)
        candidates.append(len(result.candidates.papers))
        capped += result.candidates.capped
        if number < baseline_sample:
            baseline, expected = timed(everything, database, interests)
            baselines.append(baseline)
            differ += not result.candidates.capped and result.selection != expected
    print(
        f"  {len(lists)} lists: search median {_ms(statistics.median(searches))}, "
        f"p95 {_ms(_p95(searches))}, max {_ms(max(searches))} (of which the pre-filter, "
        f"index query and reading the candidates: median {_ms(statistics.median(prefilters))}"
        f", p95 {_ms(_p95(prefilters))})"
    )
    print(
        f"  everything (first {len(baselines)} lists): median "
        f"{_ms(statistics.median(baselines))}, p95 {_ms(_p95(baselines))}; ratio of medians "
        f"{statistics.median(baselines) / statistics.median(searches[: len(baselines)]):.1f}x"
    )
    print(
        f"  candidates per list: median {statistics.median(candidates):.0f}, "
        f"max {max(candidates)}; capped at {CANDIDATE_LIMIT:,}: {capped}; chose otherwise "
        f"than everything (uncapped, of the first {len(baselines)}): {differ}"
    )
    for label, written in (("longest list", longest_list(papers)), ('"the"', "the")):
        interests = parse_interests(written)
        elapsed, result = timed(search_stored_papers, database, interests, NOW)
        baseline, _ = timed(everything, database, interests)
        found = result.candidates
        print(
            f"  {label} ({len(written):,} chars): search {_ms(elapsed)} "
            f"({found.found:,} might match, {len(found.papers):,} matched), "
            f"everything {_ms(baseline)}"
        )


def _save(database: Database, papers: list[Paper]) -> None:
    for start in range(0, len(papers), 1000):
        with database.session() as session:
            save_papers(session, papers[start : start + 1000], NOW - timedelta(hours=1))


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def _p95(values: list[float]) -> float:
    return sorted(values)[int(0.95 * (len(values) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--papers", type=int, default=10_000)
    parser.add_argument("--lists", type=int, default=200)
    parser.add_argument(
        "--baseline-sample", type=int, default=20, help="lists also timed over everything"
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    real = load_real()
    papers = synthesise_papers(real, args.papers, rng)
    maker = InterestMaker(vocabulary(real), rng)
    lists = [maker.interests() for _ in range(args.lists)]
    print(f"load before: {os.getloadavg()}")
    with sqlite_store() as database:
        run_backend("SQLite", database, papers, lists, args.baseline_sample)
    if POSTGRES_URL:
        with contextmanager(_fresh_postgres_database)() as database:
            run_backend("PostgreSQL", database, papers, lists, args.baseline_sample)
    else:
        print("\nPostgreSQL: skipped (set DIGEST_TEST_POSTGRES_URL)")
    print(f"\nload after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
