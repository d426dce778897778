"""Excerpts and highlights: windows cut at words, marks that follow the text."""

from __future__ import annotations

import html

from hypothesis import given
from hypothesis import strategies as st
from render_samples import load_papers

from digest.render.snippet import ELLIPSIS, MAX_MARKS, clean_text, excerpt, highlight, merge_ranges

ABSTRACT = load_papers()[0].abstract  # a real abstract of 1,100+ characters


def test_short_text_is_kept_whole_with_its_marks() -> None:
    cut = excerpt("Diffusion models for video", [(0, 9)], limit=300)
    assert cut.text == "Diffusion models for video"
    assert cut.marks == ((0, 9),)


def test_long_text_is_cut_at_a_word_with_an_ellipsis() -> None:
    cut = excerpt(ABSTRACT, [], limit=300)
    assert len(cut.text) <= 301
    assert cut.text.endswith(ELLIPSIS)
    body = cut.text.removesuffix(ELLIPSIS)
    assert ABSTRACT.startswith(body)
    assert ABSTRACT[len(body)] in " ,;:."  # the cut falls between words


def test_window_moves_to_show_the_first_match() -> None:
    word = "Spearman"
    start = ABSTRACT.index(word)
    assert start > 600
    cut = excerpt(ABSTRACT, [(start, start + len(word))], limit=300)
    assert cut.text.startswith(ELLIPSIS)
    assert len(cut.marks) == 1
    mark_start, mark_end = cut.marks[0]
    assert cut.text[mark_start:mark_end] == word
    # It starts at a sentence or a word, not inside one.
    first_word = cut.text.removeprefix(ELLIPSIS).split(" ")[0]
    assert f" {first_word}" in ABSTRACT or ABSTRACT.startswith(first_word)


def test_first_match_inside_the_opening_window_keeps_the_start() -> None:
    start = ABSTRACT.index("neural architecture search")
    cut = excerpt(ABSTRACT, [(start, start + 26)], limit=300)
    assert not cut.text.startswith(ELLIPSIS)
    assert cut.text[cut.marks[0][0] : cut.marks[0][1]] == "neural architecture search"


def test_bad_ranges_are_clipped_merged_or_dropped() -> None:
    assert merge_ranges([(5, 3), (-4, 2), (1, 4), (8, 8), (9, 500), (20, 30)], 12) == [
        (0, 4),
        (9, 12),
    ]


def test_marks_are_capped() -> None:
    text = "a " * 200
    cut = excerpt(text, [(i, i + 1) for i in range(0, 400, 2)], limit=300)
    assert len(cut.marks) == MAX_MARKS


def test_highlight_escapes_text_and_marks() -> None:
    out = highlight("x < y & <b>bold</b>", [(4, 5)], html.escape, "<mark>", "</mark>")
    assert out == "x &lt; <mark>y</mark> &amp; &lt;b&gt;bold&lt;/b&gt;"


def test_clean_text_keeps_offsets() -> None:
    text = "a\x00b\r\nc\ud800d\x7f"
    cleaned = clean_text(text)
    assert len(cleaned) == len(text)
    assert cleaned == "a b \nc\ufffdd "


@given(
    st.text(alphabet=st.sampled_from("ab cd.\u00e9\n"), max_size=700),
    st.lists(st.tuples(st.integers(-5, 710), st.integers(-5, 710)), max_size=20),
    st.integers(20, 400),
)
def test_marks_always_point_at_the_words_they_marked(
    text: str, ranges: list[tuple[int, int]], limit: int
) -> None:
    cut = excerpt(text, ranges, limit=limit)
    marked = {i for s, e in merge_ranges(ranges, len(text)) for i in range(s, e)}
    prefix = len(ELLIPSIS) if cut.start > 0 else 0
    body = cut.text[prefix:].removesuffix(ELLIPSIS) if len(text) > limit else cut.text
    assert text[cut.start : cut.start + len(body)] == body
    assert len(body) <= limit
    previous_end = -1
    for start, end in cut.marks:
        assert previous_end <= start < end <= prefix + len(body)
        previous_end = end
        assert all(cut.start + i - prefix in marked for i in range(start, end))
