"""The public face of `digest.match`: the names other stages import, end to end."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from digest.cli import cli
from digest.match import (
    INTEREST_EXAMPLES,
    Hit,
    Match,
    Selection,
    Span,
    match_many,
    match_subscriber,
    parse_interests,
)
from digest.paper import Paper


def test_a_real_day_end_to_end(data_dir: Path) -> None:
    records = [json.loads(line) for line in (data_dir / "papers.jsonl").read_text().splitlines()]
    papers = [
        Paper(
            id=f"2601.{n:05d}", title=r["title"], abstract=r["abstract"], upvotes=r.get("upvotes")
        )
        for n, r in enumerate(records)
    ]
    interests = parse_interests(
        "large language model\nfine-tuning, diffusion\ntitle:agents\nrlhf AND reward model\n"
        '-survey\nquantiz*\n"chain of thought"'
    )
    selection = match_subscriber(interests, papers, 20)
    assert isinstance(selection, Selection)
    assert len(selection.matches) == 20
    assert selection.more > 0
    scores = [m.score for m in selection.matches]
    assert scores == sorted(scores, reverse=True)
    for match in selection.matches:
        assert isinstance(match, Match)
        assert "survey" not in (match.paper.title + match.paper.abstract).lower()
        for hit in match.hits:
            assert isinstance(hit, Hit)
            assert hit.spans
            for span in hit.spans:
                assert isinstance(span, Span)
                text = getattr(match.paper, span.field)[span.start : span.end]
                assert text.strip() == text and text
    ((_, again),) = match_many(papers, [("me", interests, None)], 20)
    assert again == selection


def test_examples_are_one_line_each() -> None:
    assert len(INTEREST_EXAMPLES) >= 8
    assert all("\n" not in example + explanation for example, explanation in INTEREST_EXAMPLES)


def test_the_cli_checks_an_interest_list() -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["check-interests", "diffusion,  title:agents\n-survey"])
    assert result.exit_code == 0
    assert result.output == "diffusion\ntitle:agents\n-survey\n"
    result = runner.invoke(cli, ["check-interests", 'diffusion, "world model'])
    assert result.exit_code == 1
    assert 'digest: entry 2 ""world model": a quote is not closed' in result.output
