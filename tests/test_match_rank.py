"""Scores, order, limits and windows of selections (`digest.match.rank`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from digest.match import Matcher, match_many, match_subscriber, parse_interests
from digest.match.rank import merge_spans, upvote_bonus
from digest.match.results import Selection, Span
from digest.paper import Paper

DAY = datetime(2026, 6, 12, 20, 0, tzinfo=UTC)


def paper(number: int, title: str, abstract: str = "", upvotes: int | None = None, **kw) -> Paper:
    return Paper(id=f"2606.{number:05d}", title=title, abstract=abstract, upvotes=upvotes, **kw)


def ids(selection) -> list[str]:  # type: ignore[no-untyped-def]
    return [m.paper.id for m in selection.matches]


def test_the_score_is_title_three_abstract_one_plus_an_upvote_bonus() -> None:
    papers = [paper(1, "Diffusion models for video", "We study diffusion.", upvotes=10)]
    (match,) = match_subscriber(parse_interests("diffusion, video, survey"), papers, 5).matches
    assert match.score == (3 + 1) + 3 + 10 / (10 + 10)
    assert match.interests == ("diffusion", "video")
    assert upvote_bonus(None) == upvote_bonus(0) == 0
    assert 0 < upvote_bonus(10_000) < 1


def test_title_beats_abstract_and_more_interests_beat_fewer() -> None:
    papers = [
        paper(1, "A study", "diffusion and video", upvotes=500),  # 1 + 1
        paper(2, "Diffusion", "nothing here"),  # 3
        paper(3, "Diffusion", "video too"),  # 3 + 1
        paper(4, "Other", "diffusion", upvotes=900),  # 1
    ]
    selection = match_subscriber(parse_interests("diffusion\nvideo"), papers, 10)
    assert ids(selection) == ["2606.00003", "2606.00002", "2606.00001", "2606.00004"]
    assert [int(m.score) for m in selection.matches] == [4, 3, 2, 1]


def test_upvotes_break_ties_then_the_paper_id() -> None:
    papers = [
        paper(3, "Diffusion", upvotes=1),
        paper(2, "Diffusion", upvotes=None),
        paper(1, "Diffusion", upvotes=1),
        paper(4, "Diffusion", upvotes=7),
    ]
    selection = match_subscriber(parse_interests("diffusion"), papers, 10)
    assert ids(selection) == ["2606.00004", "2606.00001", "2606.00003", "2606.00002"]


def test_at_most_max_papers_and_the_rest_are_counted() -> None:
    papers = [paper(i, f"Diffusion number {i}", upvotes=i) for i in range(30)]
    papers.append(paper(99, "Diffusion survey"))
    selection = match_subscriber(parse_interests("diffusion, -survey"), papers, 20)
    assert len(selection.matches) == 20
    assert selection.more == 10
    assert ids(selection)[0] == "2606.00029"
    with pytest.raises(ValueError):
        match_subscriber(parse_interests("diffusion"), papers, 0)


def test_hits_are_best_first_then_alphabetical() -> None:
    papers = [paper(1, "Video agents", "diffusion and zebra and apple")]
    (match,) = match_subscriber(
        parse_interests("zebra, video, diffusion, Apple, agents"), papers, 5
    ).matches
    assert match.interests == ("agents", "video", "Apple", "diffusion", "zebra")


def test_an_and_entry_is_one_hit_with_the_spans_of_every_clause() -> None:
    papers = [paper(1, "RLHF workflow", "A reward model for RLHF.")]
    (match,) = match_subscriber(parse_interests("rlhf AND reward model"), papers, 5).matches
    (hit,) = match.hits
    assert hit.interest == "rlhf AND reward model"
    assert hit.spans == (
        Span("title", 0, 4),
        Span("abstract", 2, 14),
        Span("abstract", 19, 23),
    )
    assert match.score == 3 + 1


def test_windows_offer_only_papers_first_seen_at_or_after_the_watermark() -> None:
    # Windows are [watermark, cutoff): the store reads up to the cutoff, not including
    # it, and the cutoff becomes the next watermark, so a paper seen exactly then counts.
    papers = [
        paper(1, "Diffusion old", first_seen_at=DAY - timedelta(days=2)),
        paper(2, "Diffusion new", first_seen_at=DAY),
        paper(3, "Diffusion unsaved"),
        paper(4, "Diffusion yesterday", first_seen_at=DAY - timedelta(days=1)),
    ]
    interests = parse_interests("diffusion")
    subscribers = [
        ("all", interests, None),
        ("since yesterday", interests, DAY - timedelta(days=1, microseconds=-1)),
        ("since two days", interests, DAY - timedelta(days=2, hours=1)),
        ("up to date", interests, DAY + timedelta(microseconds=1)),
        ("from the newest", interests, DAY),
    ]
    results = dict(match_many(papers, iter(subscribers), 10))
    assert sorted(ids(results["all"])) == ["2606.00001", "2606.00002", "2606.00003", "2606.00004"]
    assert ids(results["since yesterday"]) == ["2606.00002"]
    assert sorted(ids(results["since two days"])) == ["2606.00001", "2606.00002", "2606.00004"]
    assert results["up to date"].matches == ()
    assert results["up to date"].more == 0
    assert ids(results["from the newest"]) == ["2606.00002"]


def test_match_many_keeps_the_order_and_shares_work_between_subscribers() -> None:
    papers = [paper(i, f"Diffusion {i}", "video") for i in range(5)]
    interests = [parse_interests(text) for text in ["diffusion", "video", "diffusion", "zebra"]]
    matcher = Matcher(papers)
    results = list(matcher.select_many(((n, i, None) for n, i in enumerate(interests)), 3))
    assert [key for key, _ in results] == [0, 1, 2, 3]
    assert results[0][1] == results[2][1]
    assert results[0][1].matches[0] is results[2][1].matches[0]
    assert results[3][1].matches == ()
    assert results[0][1].more == 2


def test_many_blocks_of_subscribers_give_the_same_answers_as_one_at_a_time() -> None:
    papers = [paper(i, f"Paper {i} on {'diffusion' if i % 3 else 'agents'}") for i in range(12)]
    lists = [parse_interests(t) for t in ["diffusion", "agents", "paper, -diffusion", "agents, 4"]]
    subscribers = [(n, lists[n % 4], None) for n in range(5000)]
    matcher = Matcher(papers)
    expected = [matcher.select(i, None, 4) for i in lists]
    assert all(selection == expected[n % 4] for n, selection in matcher.select_many(subscribers, 4))


def test_no_papers_no_matches() -> None:
    assert match_subscriber(parse_interests("diffusion"), [], 5).matches == ()
    ((key, selection),) = match_many([], [("a", parse_interests("x"), None)], 5)
    assert (key, selection) == ("a", Selection((), 0))


def test_overlapping_spans_merge() -> None:
    spans = [Span("abstract", 5, 14), Span("title", 3, 4), Span("abstract", 0, 9)]
    assert merge_spans(spans) == (Span("title", 3, 4), Span("abstract", 0, 14))
