"""The Paper record's helpers."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest.paper import (
    CUT,
    MAX_ABSTRACT,
    MAX_AUTHORS,
    MAX_NAME,
    MAX_ORGANIZATION,
    MAX_TITLE,
    MAX_URL,
    Paper,
    bound_paper,
    clip,
    normalise_space,
    parse_arxiv_id,
)


@given(st.text(alphabet=st.characters(), max_size=200))
def test_normalise_space_is_the_regex_definition(value: str) -> None:
    # str.split() must split on exactly what regex \s matches, in all of Unicode; NUL
    # (which PostgreSQL cannot store) counts as a space.
    assert normalise_space(value) == re.sub(r"[\s\x00]+", " ", value).strip()


def test_normalise_space_unwraps_titles() -> None:
    assert normalise_space("  On the Limits\n  of LLM\tAdaptability ") == (
        "On the Limits of LLM Adaptability"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2606.00467", "2606.00467"),
        ("2606.00467v2", "2606.00467"),
        ("oai:arXiv.org:2609.28553v1", "2609.28553"),
        ("arXiv:1706.03762", "1706.03762"),
        ("hep-th/9901001v3", "hep-th/9901001"),
        ("https://arxiv.org/abs/2606.00467", None),
        ("not an id", None),
        ("", None),
    ],
)
def test_parse_arxiv_id(text: str, expected: str | None) -> None:
    assert parse_arxiv_id(text) == expected


# --- bounds (issue 14: a 25 MB abstract was stored whole) ----------------------------


def test_clip_leaves_text_within_the_limit_as_it_is() -> None:
    assert clip("  On the Limits\n of LLMs ", 30) == "On the Limits of LLMs"
    assert clip("x" * 30, 30) == "x" * 30


def test_clip_cuts_at_a_word_and_marks_the_cut() -> None:
    clipped = clip("word " * 100, 42)
    assert clipped == "word " * 7 + "word" + CUT  # whole words, the marker last
    assert len(clipped) <= 42
    assert clip("x" * 100, 10) == "x" * 9 + CUT  # no space near the end: cut mid-word


def test_clip_reads_only_a_bounded_prefix_of_a_huge_string() -> None:
    # Mostly whitespace, so it would fit once normalised: the cut is still marked, and
    # only the prefix is ever split into words.
    clipped = clip("a" + " " * 10_000_000 + "b", 100)
    assert clipped == "a" + CUT


@given(st.text(alphabet=" ab\n…", max_size=300), st.integers(min_value=2, max_value=50))
def test_clip_is_bounded_and_idempotent(value: str, limit: int) -> None:
    once = clip(value, limit)
    assert len(once) <= limit
    assert clip(once, limit) == once


def test_bound_paper_keeps_a_real_paper_as_it_is() -> None:
    paper = Paper(
        id="2606.00467",
        title="A title",
        abstract="An abstract.",
        authors=("Ada Lovelace",) * MAX_AUTHORS,
        organization="MIT",
        categories=("cs.LG", "cs.CL"),
        url_code="https://github.com/x/y",
    )
    assert bound_paper(paper) is paper


def test_bound_paper_cuts_every_field() -> None:
    paper = Paper(
        id="2606.00467",
        title="t " * MAX_TITLE,
        abstract="a " * MAX_ABSTRACT,
        authors=("n " * MAX_NAME,) * (MAX_AUTHORS * 3),
        organization="o " * MAX_ORGANIZATION,
        categories=("cs.LG", "x" * 100, *(f"c.{n}" for n in range(100))),
        url_code="https://example.org/" + "p" * MAX_URL,
        url_project="https://example.org/fine",
    )
    bounded = bound_paper(paper)
    assert len(bounded.title) <= MAX_TITLE and bounded.title.endswith(CUT)
    assert len(bounded.abstract) <= MAX_ABSTRACT and bounded.abstract.endswith(CUT)
    assert len(bounded.authors) == MAX_AUTHORS and bounded.authors[-1] == CUT
    assert all(len(name) <= MAX_NAME and name.endswith(CUT) for name in bounded.authors)
    assert bounded.organization is not None
    assert len(bounded.organization) <= MAX_ORGANIZATION and bounded.organization.endswith(CUT)
    assert bounded.categories[:2] == ("cs.LG", "c.0") and len(bounded.categories) == 50
    assert bounded.url_code is None  # a cut link would be broken: dropped
    assert bounded.url_project == "https://example.org/fine"
    assert bound_paper(bounded) is bounded
