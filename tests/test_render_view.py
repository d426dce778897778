"""What the emails show: dates, headings, wrapped text, card links and labels."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st
from render_samples import load_papers

from digest.match import Hit, Match, Span
from digest.render.view import (
    EXPLANATION_CHARS,
    LABEL_CHARS,
    TEXT_WIDTH,
    URL_CHARS,
    heading_for,
    long_date,
    match_view,
    matched_interests,
    paper_view,
    short_date,
    text_fields,
    wrap,
)

PAPER = load_papers()[4]


def test_dates_do_not_depend_on_the_locale() -> None:
    assert short_date(date(2025, 6, 12)) == "Thu 12 Jun"
    assert long_date(date(2026, 3, 1)) == "Sunday 1 March 2026"


@pytest.mark.parametrize(
    ("named", "others", "total", "heading"),
    [
        ([], 0, 0, "No new papers matched your interests"),
        (["diffusion"], 0, 1, "1 new paper on diffusion"),
        (["diffusion", "RLHF"], 0, 7, "7 new papers on diffusion and RLHF"),
        (["diffusion", "RLHF"], 2, 7, "7 new papers on diffusion, RLHF and 2 more interests"),
        (["diffusion", "RLHF"], 1, 3, "3 new papers on diffusion, RLHF and 1 more interest"),
    ],
)
def test_heading(named: list[str], others: int, total: int, heading: str) -> None:
    assert heading_for(named, others, total) == heading


@given(st.text(st.sampled_from("ab cd\n"), max_size=400), st.sampled_from(["", "    "]))
def test_wrap_keeps_every_word_and_the_width(text: str, indent: str) -> None:
    wrapped = wrap(text, indent)
    assert wrapped.split() == text.split()
    for line in wrapped.split("\n"):
        assert line.startswith(indent)
        assert len(line) <= TEXT_WIDTH or " " not in line.strip()


def test_wrap_never_breaks_a_url() -> None:
    url = "https://example.org/" + "x" * 100
    assert wrap(f"see {url} now") == f"    see\n    {url}\n    now"


def test_links_only_to_web_pages_of_sane_length() -> None:
    paper = dataclasses.replace(
        PAPER,
        url_abs=None,
        url_pdf="javascript:alert(1)",
        url_hf=None,
        url_code="https://github.com/" + "x" * URL_CHARS,
        url_project="https://project.example.org/ a space",
    )
    view = paper_view(paper)
    assert [(link.label, link.url) for link in view.links] == [
        ("Abstract", f"https://arxiv.org/abs/{PAPER.id}"),
        ("PDF", f"https://arxiv.org/pdf/{PAPER.id}"),
    ]
    assert view.url == f"https://arxiv.org/abs/{PAPER.id}"  # no HF page: the abstract
    with_hf = paper_view(dataclasses.replace(PAPER, url_hf="https://huggingface.co/papers/x"))
    assert with_hf.url == "https://huggingface.co/papers/x"


def test_labels_are_cleaned_deduplicated_cut_and_counted() -> None:
    hits = [Hit(name, ()) for name in ("a\r\nb", "a b", "c", "d", "e", "f", "g", "h" * 80)]
    labels = match_view(paper_view(PAPER), hits).labels
    assert labels == ("a b", "c", "d", "+4 more")  # 7 distinct, 3 shown and a count
    long_one = match_view(paper_view(PAPER), [Hit("word " * 20, ())]).labels[0]
    assert len(long_one) <= LABEL_CHARS + 1 and long_one.endswith("…")


def test_a_suggested_papers_reason_is_its_label_in_full() -> None:
    reason = "close to “Denoising Diffusion Probabilistic Models”, which you liked"
    view = paper_view(PAPER)
    suggested = match_view(view, [Hit(reason, ())], suggested=True)
    assert suggested.labels == (reason,)
    assert text_fields(view, suggested)["labels"] == wrap("Why: " + reason)
    # The same hit as an interest label is cut like any other.
    plain = match_view(view, [Hit(reason, ())])
    assert len(plain.labels[0]) <= LABEL_CHARS + 1
    assert text_fields(view, plain)["labels"].startswith("    Matched: ")
    long_reason = match_view(view, [Hit("word " * 60, ())], suggested=True).labels[0]
    assert len(long_reason) <= EXPLANATION_CHARS + 1 and long_reason.endswith("…")


def test_highlights_follow_the_spans_of_each_field() -> None:
    start = PAPER.abstract.index(" ") + 1
    hits = [
        Hit("x", (Span("abstract", start, start + 4), Span("title", 0, 3))),
        Hit("y", (Span("authors", 0, 2), Span("unknown field", 0, 2))),
    ]
    view = match_view(paper_view(PAPER), hits)
    assert view.title.marks == ((0, 3),)
    assert view.authors.marks == ((0, 2),)
    assert view.snippet.marks == ((start, start + 4),)
    assert view.organization.marks == ()


def test_interests_tied_in_the_heading_keep_the_order_they_matched_in() -> None:
    # The same digest gets the same subject in every process (a set's order would
    # follow the strings' hashes, which change with each interpreter).
    paper = load_papers()[0]
    for n in range(20):
        names = [f"topic {n}-{k}" for k in "xyz"]
        match = Match(paper=paper, score=1.0, hits=tuple(Hit(name, ()) for name in names))
        assert matched_interests([match]) == (names[:2], 1)


def test_the_heading_counts_the_suggested_papers() -> None:
    from digest.match import Selection
    from digest.render.view import digest_heading

    papers = load_papers()
    keyword = Match(papers[0], 3.0, (Hit("diffusion", ()),))
    liked = Match(papers[1], 0.4, (Hit("close to “X”, which you liked", ()),))
    both = Selection((keyword,), suggested=(liked,))
    assert digest_heading(both, both.matches, 0, ()) == (
        "1 new paper on diffusion, and 1 suggested for you"
    )
    alone = Selection((), suggested=(liked, liked))
    assert digest_heading(alone, (), 0, ()) == "2 papers suggested for you"
    assert digest_heading(Selection(()), (), 0, ()) == "No new papers matched your interests"
