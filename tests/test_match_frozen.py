"""Selections frozen before the matcher was rewritten for speed: it must still give them.

tests/data/match_frozen.json holds a few hundred interest lists drawn as
bench/match_bench.py draws them (Zipf-like terms of the papers' own vocabulary, in every
syntax), a third of them with the trending rule in each form and place, each with a
watermark and a digest size, and the `Selection` the matcher gave each one when the file
was made: every match and trending paper, its score, its hits with their ranks and spans,
`more`, the rule and the sections. The papers are the saved ones (tests/data/papers.jsonl
and the saved Hugging Face listing), first seen and listed on Hugging Face at times spread
over four days so that windows, `since` and `trending_until` all cut somewhere.

    python tests/test_match_frozen.py   # rewrites the file from the code as it is now
"""

from __future__ import annotations

import json
import random
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))

from digest.match import Match, Matcher, Selection, match_subscriber, parse_interests  # noqa: E402
from digest.paper import Paper  # noqa: E402
from digest.sources import hf  # noqa: E402
from tests.render_samples import load_papers  # noqa: E402

FROZEN = ROOT / "tests" / "data" / "match_frozen.json"
LISTING = ROOT / "tests" / "data" / "sources" / "hf_api_daily_papers_2026-06-12.json"
DAY = datetime(2026, 6, 12, 20, 0, tzinfo=UTC)
SINCE = DAY - timedelta(days=3)
WATERMARKS = {
    "none": None,
    "yesterday": DAY - timedelta(days=1),
    "two days": DAY - timedelta(days=2),
    "four days": DAY - timedelta(days=4),
    "six hours": DAY - timedelta(hours=6),
}


def day_papers() -> list[Paper]:
    """The saved papers, each first seen (and, if on HF, listed) at its own time."""
    papers = load_papers() + list(hf.parse_api(LISTING.read_bytes(), "api").papers)
    timed = []
    for number, paper in enumerate(papers):
        seen = None if number % 23 == 0 else DAY - timedelta(hours=(number * 7) % 100)
        listed = None if number % 17 == 0 else DAY - timedelta(hours=(number * 11) % 110 - 5)
        timed.append(replace(paper, first_seen_at=seen, hf_seen_at=listed))
    return timed


def as_json(selection: Selection) -> dict[str, Any]:
    """Everything a digest shows of a selection, as plain JSON values."""

    def match(m: Match) -> list[Any]:
        hits = [[h.interest, h.rank, [[s.field, s.start, s.end] for s in h.spans]] for h in m.hits]
        return [m.paper.id, m.score, hits]

    return {
        "matches": [match(m) for m in selection.matches],
        "more": selection.more,
        "trending": [match(m) for m in selection.trending],
        "rule": None if selection.rule is None else selection.rule.label,
        "trending_first": selection.trending_first,
        "matching": selection.matching,
        "sections": [[kind, [m.paper.id for m in ms]] for kind, ms in selection.sections],
        "papers": selection.papers,
    }


def _matcher() -> Matcher:
    return Matcher(day_papers(), trending_until=DAY, since=SINCE)


def _selections(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each case's selection, all through one `select_many` per digest size."""
    matcher = _matcher()
    found: list[dict[str, Any]] = [{} for _ in cases]
    for size in sorted({case["max_papers"] for case in cases}):
        subscribers = [
            (n, parse_interests(case["interests"]), WATERMARKS[case["watermark"]])
            for n, case in enumerate(cases)
            if case["max_papers"] == size
        ]
        for n, selection in matcher.select_many(subscribers, size):
            found[n] = as_json(selection)
    return found


def test_every_frozen_selection_is_given_again() -> None:
    frozen = json.loads(FROZEN.read_text("utf-8"))
    cases = frozen["cases"]
    assert len(cases) >= 300
    assert sum(1 for case in cases if "trending" in case["interests"]) >= 100
    found = _selections(cases)
    differ = [
        n
        for n, (case, got) in enumerate(zip(cases, found, strict=True))
        if case["selection"] != got
    ]
    assert not differ, f"{len(differ)} differ, e.g. {cases[differ[0]]['interests']!r}"


def test_one_reader_at_a_time_gives_the_frozen_selections_too() -> None:
    frozen = json.loads(FROZEN.read_text("utf-8"))
    matcher = _matcher()
    for case in frozen["cases"][::7]:
        interests = parse_interests(case["interests"])
        selection = matcher.select(interests, WATERMARKS[case["watermark"]], case["max_papers"])
        assert as_json(selection) == case["selection"], case["interests"]
    papers = day_papers()
    for case in frozen["previews"][::5]:  # each builds its own index: slow
        selection = match_subscriber(parse_interests(case["interests"]), papers, 20)
        assert as_json(selection) == case["selection"], case["interests"]


def _draw_cases(count: int) -> list[dict[str, Any]]:
    """Interest lists as bench/match_bench.py draws them, a third with trending."""
    from bench.match_bench import InterestMaker, vocabulary
    from tests.render_samples import DATA

    rng = random.Random(16)
    real = [json.loads(line) for line in (DATA / "papers.jsonl").read_text("utf-8").splitlines()]
    maker = InterestMaker(vocabulary(real), rng)
    rules = ["trending", "trending:5", "trending:15 upvotes>=3", "trending:3", "trending:40"]
    cases = []
    for number in range(count):
        entries = maker.interests().split("\n")
        if number % 3 == 0:
            entries.insert(rng.choice([0, 0, len(entries), 1]), rng.choice(rules))
        if number % 29 == 0:
            entries = [e for e in entries if e.startswith("-")] + [rng.choice(rules)]
        cases.append(
            {
                "interests": "\n".join(entries),
                "watermark": rng.choice(list(WATERMARKS)),
                "max_papers": rng.choice([20, 20, 20, 5, 1]),
            }
        )
    return cases


def freeze() -> None:
    """Write the frozen selections from the code as it is now."""
    cases = _draw_cases(450)
    for case, selection in zip(cases, _selections(cases), strict=True):
        case["selection"] = selection
    papers = day_papers()
    previews = [{"interests": case["interests"]} for case in cases[:40]]
    for case in previews:
        case["selection"] = as_json(
            match_subscriber(parse_interests(case["interests"]), papers, 20)
        )
    text = json.dumps({"cases": cases, "previews": previews}, separators=(",", ":"))
    FROZEN.write_text(text.replace('},{"interests"', '},\n{"interests"') + "\n", "utf-8")


if __name__ == "__main__":
    freeze()
