"""The Paper record's helpers."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest.paper import normalise_space, parse_arxiv_id


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
