"""Folding, tokens, gaps and the light stemmer (and that `inflections` is its inverse)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest.match.text import (
    BREAK,
    JOIN,
    NAMES,
    fold,
    gap_key,
    original_span,
    stem,
    tokens,
)
from tests.reference.naive import inflections


def test_ascii_folds_to_lower_case_with_the_same_offsets() -> None:
    assert fold("Large Language Models") == ("large language models", None)


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("Naïve", "naive"),
        ("nai\u0308ve", "naive"),
        ("Schrödinger", "schrodinger"),
        ("Straße", "strasse"),
        ("ﬁne", "fine"),
        ("ＬＬＭ", "llm"),
        ("fine\u00adtuning", "finetuning"),
        ("ΣΟΦΙΑ σοφία", "σοφια σοφια"),
    ],
)
def test_unicode_folds_case_accents_and_compatibility_forms(text: str, folded: str) -> None:
    assert fold(text)[0] == folded


def test_offsets_map_back_to_the_original_text() -> None:
    text = "Ein ﬁne cafe\u0301 Straße"
    folded, starts = fold(text)
    for start, end in tokens(folded):
        original = original_span(starts, len(text), start, end)
        assert fold(text[original[0] : original[1]])[0] == folded[start:end]
    assert [text[slice(*original_span(starts, len(text), *t))] for t in tokens(folded)] == [
        "Ein",
        "ﬁne",
        "cafe\u0301",
        "Straße",
    ]


def test_latex_commands_are_not_tokens() -> None:
    folded = fold("a quantity {\\Psi} and 2\\times speed, $\\alpha$-divergence")[0]
    assert [folded[a:b] for a, b in tokens(folded)] == [
        "a", "quantity", "and", "2", "speed", "divergence",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("gap", "kind", "key"),
    [
        (" ", "prose", JOIN),
        ("-", "prose", JOIN),
        (" - ", "prose", JOIN),
        ("-\n", "prose", JOIN),
        ("\u2013", "prose", JOIN),
        ("$-", "prose", JOIN),
        (", ", "prose", ","),
        (". ", "prose", "."),
        ("&", "prose", "&"),
        (" \\times ", "prose", BREAK),
        (". ", NAMES, JOIN),
        (", ", NAMES, ","),
    ],
)
def test_gaps(gap: str, kind: str, key: str) -> None:
    assert gap_key(gap, kind) == key


@pytest.mark.parametrize(
    "family",
    [
        ["transformer", "transformers"],
        ["model", "models", "modeling", "modelling", "modeled"],
        ["tune", "tunes", "tuned", "tuning"],
        ["embed", "embeds", "embedded", "embedding", "embeddings"],
        ["study", "studies", "studied", "studying"],
        ["llm", "llms"],
        ["lm", "lms"],
        ["bias", "biases"],
        ["class", "classes"],
        ["loss", "losses"],
        ["patch", "patches"],
        ["run", "running", "runs"],
        ["speed", "speeds", "speeding"],
        ["call", "calls", "calling", "called"],
        ["control", "controlled", "controlling"],
    ],
)
def test_inflections_share_a_stem(family: list[str]) -> None:
    assert len({stem(word) for word in family}) == 1


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("bound", "boundary"),
        ("transformer", "transform"),
        ("news", "new"),
        ("string", "str"),
        ("rl", "url"),
        ("gpt4", "gpt4s"),
    ],
)
def test_different_words_keep_different_stems(one: str, other: str) -> None:
    assert stem(one) != stem(other)


def test_inflections_lists_every_word_of_the_corpus_with_that_stem(data_dir: Path) -> None:
    words = set()
    for line in (data_dir / "papers.jsonl").read_text("utf-8").splitlines():
        record = json.loads(line)
        folded = fold(record["title"] + " " + record["abstract"])[0]
        words.update(folded[a:b] for a, b in tokens(folded))
    assert len(words) > 4000
    missing = [word for word in words if word not in inflections(stem(word))]
    assert missing == []


@given(st.text(alphabet="abcdeilnorsty", min_size=1, max_size=12))
def test_inflections_is_the_exact_inverse_of_stem(word: str) -> None:
    assert word in inflections(stem(word))
    assert all(stem(other) == stem(word) for other in inflections(stem(word)))
