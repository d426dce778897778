"""Scores, order, limits and windows of selections (`digest.match.rank`)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from digest.match import Matcher, match_many, match_subscriber, parse_interests
from digest.match.rank import merge_spans, upvote_bonus
from digest.match.results import Selection, Span
from digest.paper import Paper, trending_order
from digest.sources import hf

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


# --- trending ------------------------------------------------------------------------

HF_LISTING = Path(__file__).parent / "data" / "sources" / "hf_api_daily_papers_2026-06-12.json"
# The saved listing, most upvoted first: (id, upvotes, comments).
MOST_UPVOTED = [
    ("2606.13681", 118, 3),
    ("2606.13392", 103, 4),
    ("2606.08063", 74, 3),
    ("2606.13289", 25, 2),
    ("2606.13106", 18, 2),
    ("2606.12243", 14, 3),
    ("2606.06113", 13, 2),
    ("2606.12303", 12, 2),
    ("2606.11662", 10, 3),
    ("2606.11409", 8, 3),
    ("2606.12575", 7, 3),  # 7 upvotes each: more comments first
    ("2606.09290", 7, 2),
    ("2606.09304", 6, 2),
    ("2606.12730", 5, 3),
    ("2606.08788", 4, 2),  # 4 upvotes and 2 comments each: lower id first
    ("2606.13120", 4, 2),
]


@pytest.fixture(scope="module")
def listed() -> tuple[Paper, ...]:
    return hf.parse_api(HF_LISTING.read_bytes(), "api").papers


def trending_ids(selection: Selection) -> list[str]:
    return [m.paper.id for m in selection.trending]


def test_trending_is_the_most_upvoted_then_most_commented_then_lowest_id(
    listed: tuple[Paper, ...],
) -> None:
    selection = match_subscriber(parse_interests("trending:16"), listed, 20)
    expected = [(paper_id, votes) for paper_id, votes, _ in MOST_UPVOTED]
    assert [(m.paper.id, m.paper.upvotes) for m in selection.trending] == expected
    assert [m.interests for m in selection.trending] == [
        (f"trending #{rank}",) for rank in range(1, 17)
    ]
    assert selection.matches == () and selection.sections == (("trending", selection.trending),)
    assert trending_ids(match_subscriber(parse_interests("trending"), listed, 20)) == [
        paper_id for paper_id, _, _ in MOST_UPVOTED[:10]
    ]


def test_trending_keeps_to_its_minimum_and_to_the_digest_s_size(
    listed: tuple[Paper, ...],
) -> None:
    at_least_25 = match_subscriber(parse_interests("trending:10 upvotes>=25"), listed, 20)
    assert trending_ids(at_least_25) == ["2606.13681", "2606.13392", "2606.08063", "2606.13289"]
    assert len(match_subscriber(parse_interests("trending:50"), listed, 3).trending) == 3


def test_exclusions_veto_trending_papers(listed: tuple[Paper, ...]) -> None:
    selection = match_subscriber(parse_interests("trending:5\n-agents\n-attention"), listed, 20)
    assert len(selection.trending) == 5
    for match in selection.trending:
        text = (match.paper.title + " " + match.paper.abstract).lower()
        assert "agent" not in text and "attention" not in text
    assert "2606.13681" not in trending_ids(selection)  # EvoArena: LLM agents
    assert "2606.13392" not in trending_ids(selection)  # MiniMax Sparse Attention


@pytest.mark.parametrize("trending_first", [True, False])
def test_a_paper_both_trending_and_matching_shows_once_with_both_reasons(
    listed: tuple[Paper, ...], trending_first: bool
) -> None:
    text = "trending:5\nagent" if trending_first else "agent\ntrending:5"
    selection = match_subscriber(parse_interests(text), listed, 20)
    shown = [m.paper.id for _, matches in selection.sections for m in matches]
    assert len(shown) == len(set(shown))
    kinds = [kind for kind, _ in selection.sections]
    assert kinds == (["trending", "matching"] if trending_first else ["matching", "trending"])
    both = next(m for _, ms in selection.sections for m in ms if m.paper.id == "2606.13681")
    first_section = selection.sections[0][1]
    assert both in first_section  # in the section the reader put first
    expected = ("trending #1", "agent") if trending_first else ("agent", "trending #1")
    assert both.interests == expected
    # Every trending rank is shown once, in one section or the other.
    ranks = sorted(h.rank for _, ms in selection.sections for m in ms for h in m.hits if h.rank)
    assert ranks == [1, 2, 3, 4, 5]
    keyword_only = match_subscriber(parse_interests("agent"), listed, 20)
    assert {m.paper.id for m in keyword_only.matches} == {m.paper.id for m in selection.matches} | (
        {"2606.13681"} if trending_first else set()
    )


def test_trending_goes_by_when_hugging_face_listed_a_paper(listed: tuple[Paper, ...]) -> None:
    # Seen on arXiv two days ago (before the reader's last digest), on HF since yesterday.
    top = replace(
        next(p for p in listed if p.id == "2606.13681"),
        first_seen_at=DAY - timedelta(days=2),
        hf_seen_at=DAY - timedelta(hours=20),
    )
    late = replace(  # listed on HF after the run's cutoff: the next digest's
        next(p for p in listed if p.id == "2606.13392"),
        first_seen_at=DAY - timedelta(days=2),
        hf_seen_at=DAY + timedelta(minutes=1),
    )
    old = replace(  # on HF before the watermark: trending for an earlier digest
        next(p for p in listed if p.id == "2606.08063"),
        first_seen_at=DAY - timedelta(days=3),
        hf_seen_at=DAY - timedelta(days=2),
    )
    others = [
        replace(p, first_seen_at=DAY - timedelta(hours=10), hf_seen_at=DAY - timedelta(hours=10))
        for p in listed
        if p.id not in {top.id, late.id, old.id}
    ]
    matcher = Matcher([top, late, old, *others], trending_until=DAY)
    watermark = DAY - timedelta(days=1)
    selection = matcher.select(parse_interests("trending:3\nagent"), watermark, 20)
    assert trending_ids(selection) == ["2606.13681", "2606.13289", "2606.13106"]
    # ...while keywords go by when the paper was first seen: EvoArena is not new to them.
    assert top.id not in [m.paper.id for m in selection.matches]
    assert top.id in [
        m.paper.id for m in matcher.select(parse_interests("agent"), None, 20).matches
    ]


def test_trending_selections_are_shared_yet_follow_each_window(listed: tuple[Paper, ...]) -> None:
    early, late = DAY - timedelta(days=1), DAY
    papers = [
        replace(p, first_seen_at=early if i % 2 else late, hf_seen_at=early if i % 2 else late)
        for i, p in enumerate(listed)
    ]
    interests = parse_interests("trending:4")
    many = dict(
        match_many(papers, [(1, interests, None), (2, interests, late), (3, interests, None)], 20)
    )
    assert many[1] is many[3]
    assert trending_ids(many[2]) == [
        p.id for p in sorted((p for p in papers if p.hf_seen_at == late), key=trending_order)[:4]
    ]


def test_the_two_sections_hold_max_papers_in_all_the_first_filling_first(
    listed: tuple[Paper, ...],
) -> None:
    first = match_subscriber(parse_interests("trending:15\nagent"), listed, 20)
    alone = match_subscriber(parse_interests("agent"), listed, 20)
    assert len(first.trending) == 15
    assert len(first.matches) == 5
    # Matches left out are counted: all of "agent"'s, but those shown under trending.
    under_trending = [m for m in first.trending if "agent" in m.interests]
    assert len(under_trending) == 3
    assert len(first.matches) + first.more == len(alone.matches) + alone.more - 3
    second = match_subscriber(parse_interests("agent\ntrending:15"), listed, 20)
    assert len(second.matches) == len(alone.matches) == 11
    assert len(second.trending) == 20 - 11
