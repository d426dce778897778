"""The interest parser: every form of the syntax, and every error pointing at its entry."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from digest.errors import InterestSyntaxError
from digest.match import INTEREST_EXAMPLES, parse_interests
from digest.match.query import EXACT, PREFIX, STEM, split_entries


def test_entries_are_lines_or_commas_and_blanks_are_skipped() -> None:
    text = "diffusion, video\n\n  large   language model ,\n- world models\n• agents\n"
    assert split_entries(text) == [
        "diffusion",
        "video",
        "large language model",
        "world models",
        "agents",
    ]


def test_a_comma_inside_quotes_stays_in_the_phrase() -> None:
    interests = parse_interests('"Where, What, Why", diffusion')
    assert [e.label for e in interests] == ['"Where, What, Why"', "diffusion"]
    clause = interests.entries[0].clauses[0]
    assert [w.text for w in clause.words] == ["where", "what", "why"]
    assert clause.gaps == (",", ",")


def test_smart_quotes_are_quotes() -> None:
    (entry,) = parse_interests("\u201cworld model\u201d").entries
    assert entry.label == '"world model"'
    assert {w.kind for w in entry.clauses[0].words} == {EXACT}


@pytest.mark.parametrize(
    ("text", "fields", "words", "exclude"),
    [
        ("Diffusion", ("title", "abstract"), [("diffusion", STEM)], False),
        ("fine-tuning", ("title", "abstract"), [("fine", STEM), ("tuning", STEM)], False),
        ('"exact phrase"', ("title", "abstract"), [("exact", EXACT), ("phrase", EXACT)], False),
        ("quantiz*", ("title", "abstract"), [("quantiz", PREFIX)], False),
        ("reward model*", ("title", "abstract"), [("reward", STEM), ("model", PREFIX)], False),
        ("title:agents", ("title",), [("agents", STEM)], False),
        ("Title: agents", ("title",), [("agents", STEM)], False),
        ("abstract:agents", ("abstract",), [("agents", STEM)], False),
        ('title:"world model"', ("title",), [("world", EXACT), ("model", EXACT)], False),
        ("author:Colin Raffel", ("authors",), [("colin", EXACT), ("raffel", EXACT)], False),
        ("org:MiniMax", ("organization",), [("minimax", EXACT)], False),
        ("-survey", ("title", "abstract"), [("survey", STEM)], True),
        ("-title:survey", ("title",), [("survey", STEM)], True),
        ("C++", ("title", "abstract"), [("c", STEM)], False),
    ],
)
def test_each_form_parses(text: str, fields: tuple, words: list, exclude: bool) -> None:
    interests = parse_interests(f"{text}\nanchor")
    entry = interests.entries[0]
    assert entry.label == text
    assert entry.exclude is exclude
    (clause,) = entry.clauses
    assert clause.fields == fields
    assert [(w.text, w.kind) for w in clause.words] == words


def test_and_needs_capitals_and_splits_outside_quotes_only() -> None:
    (both,) = parse_interests("rlhf AND reward model").entries
    assert [[w.text for w in c.words] for c in both.clauses] == [["rlhf"], ["reward", "model"]]
    (phrase,) = parse_interests("search and rescue").entries
    assert len(phrase.clauses) == 1
    (quoted,) = parse_interests('"research AND development"').entries
    assert len(quoted.clauses) == 1
    (mixed,) = parse_interests("title:agents AND ish AND author:Raffel").entries
    assert [c.fields for c in mixed.clauses] == [("title",), ("title", "abstract"), ("authors",)]


def test_duplicates_are_dropped_whatever_their_case() -> None:
    interests = parse_interests("Diffusion\ndiffusion\n-survey\n-Survey\nvideo")
    assert [e.label for e in interests] == ["Diffusion", "-survey", "video"]
    assert [e.label for e in interests.wanted] == ["Diffusion", "video"]
    assert [e.label for e in interests.excluded] == ["-survey"]


def test_the_canonical_text_parses_back_to_the_same_list() -> None:
    interests = parse_interests('diffusion,  "world   model", title:agents AND rl, -survey')
    assert interests.text == 'diffusion\n"world model"\ntitle:agents AND rl\n-survey'
    assert parse_interests(interests.text) == interests
    assert hash(parse_interests(interests.text)) == hash(interests)


@pytest.mark.parametrize(
    ("text", "entry", "bad", "message"),
    [
        ('diffusion, "world model', 2, '"world model', "quote is not closed"),
        ("diffusion\ntitle:", 2, "title:", "empty term"),
        ("rlhf AND", 1, "rlhf AND", "empty term"),
        ("AND rlhf", 1, "AND rlhf", "empty term"),
        ('video, ""', 2, '""', "nothing to match"),
        ("video, -", 2, "-", "nothing to match"),
        ("video, ***", 2, "***", "* goes at the end of a word"),
        ("video, quan*tize", 2, "quan*tize", "* goes at the end of a word"),
        ("video, ai*", 2, "ai*", "at least 3 letters"),
        ("video, ti:agents", 2, "ti:agents", "title:, abstract:, author:, org:"),
        ("arXiv:2401.00001", 1, "arXiv:2401.00001", "not a known field"),
        ('world "model"', 1, 'world "model"', "whole phrase"),
        ("video AND -survey", 1, "video AND -survey", "start of the entry"),
        ("\\alpha", 1, "\\alpha", "backslash"),
        ("one two three four five six seven eight nine ten eleven twelve thirteen", 1, None, "12"),
    ],
)
def test_errors_point_at_the_entry(text: str, entry: int, bad: str | None, message: str) -> None:
    with pytest.raises(InterestSyntaxError) as raised:
        parse_interests(text)
    assert raised.value.entry == entry
    assert raised.value.text == (bad if bad is not None else text)
    assert message in str(raised.value)
    assert str(raised.value).startswith(f"entry {entry} ")


def test_a_quoted_colon_is_not_a_field() -> None:
    (entry,) = parse_interests('"arXiv:2401"').entries
    assert [w.text for w in entry.clauses[0].words] == ["arxiv", "2401"]


def test_list_level_errors() -> None:
    with pytest.raises(InterestSyntaxError, match="empty") as raised:
        parse_interests(" \n , \n")
    assert raised.value.entry == 0
    with pytest.raises(InterestSyntaxError, match="only exclusions"):
        parse_interests("-survey, -benchmark")
    with pytest.raises(InterestSyntaxError, match="at most 2,000") as raised:
        parse_interests("x" * 2001)
    assert raised.value.entry == 0
    many = ", ".join(f"topic{i}" for i in range(51))
    with pytest.raises(InterestSyntaxError, match="at most 50") as raised:
        parse_interests(many)
    assert (raised.value.entry, raised.value.text) == (51, "topic50")
    assert len(parse_interests(", ".join(f"topic{i}" for i in range(50)))) == 50


def test_every_example_parses() -> None:
    for example, explanation in INTEREST_EXAMPLES:
        assert explanation
        assert parse_interests(f"{example}\ndiffusion")


@pytest.mark.parametrize(
    ("text", "code", "where"),
    [
        ("diffusion\x00", "U+0000", 'after "diffusion"'),
        ("diffusion, vid\x00eo", "U+0000", 'after "diffusion, vid"'),
        ("agents\n\x07rlhf", "U+0007", "at the start of a line"),
        ("title:agents\x1b[2J", "U+001B", 'after "title:agents"'),
        ("a\x0bb", "U+000B", 'after "a"'),  # a line break to splitlines, still refused
        ("diffusion\x7f", "U+007F", 'after "diffusion"'),
        ("diffusion\x85video", "U+0085", 'after "diffusion"'),
        ("x" * 40 + "\x01", "U+0001", 'after "...' + "x" * 30 + '"'),
    ],
)
def test_control_characters_are_refused_by_their_code(text: str, code: str, where: str) -> None:
    with pytest.raises(InterestSyntaxError) as raised:
        parse_interests(text)
    message = str(raised.value)
    assert raised.value.entry == 0
    assert message == f"the list holds an invisible control character ({code}) {where}: remove it"
    assert message.isprintable()  # never the character itself, on a terminal or a page


def test_line_breaks_and_tabs_are_layout_not_control_characters() -> None:
    text = "diffusion\r\nlarge\tlanguage model\rrlhf\n\tagents"
    assert parse_interests(text).text == "diffusion\nlarge language model\nrlhf\nagents"


def test_the_command_line_refuses_control_characters(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key != "DIGEST_CONFIG"}
    env["PYTHONPATH"] = str(Path(__file__).parents[1])
    result = subprocess.run(
        [sys.executable, "-m", "digest", "check-interests", "diffusion, title:agents\x1b[2J"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        "digest: the list holds an invisible control character (U+001B) after "
        '"diffusion, title:agents": remove it\n'
    )


# --- the trending rule ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "count", "minimum", "label"),
    [
        ("trending", 10, 0, "trending"),
        ("trending:5", 5, 0, "trending:5"),
        ("Trending : 5   upvotes >= 20", 5, 20, "trending:5 upvotes>=20"),
        ("trending upvotes>=3", 10, 3, "trending upvotes>=3"),
        ("TRENDING:10", 10, 0, "trending"),
    ],
)
def test_trending_asks_for_the_most_upvoted_papers(
    text: str, count: int, minimum: int, label: str
) -> None:
    parsed = parse_interests(text)
    assert parsed.trending is not None
    assert (parsed.trending.count, parsed.trending.min_upvotes) == (count, minimum)
    assert parsed.trending.label == label
    assert parsed.entries == ()  # a list of only trending is a whole list
    assert parse_interests(parsed.text) == parsed


def test_where_trending_stands_says_which_section_comes_first() -> None:
    assert parse_interests("trending\ndiffusion").trending_first
    assert parse_interests("-survey, trending, diffusion").trending_first  # exclusions don't count
    later = parse_interests("diffusion\ntrending:5\n-survey")
    assert not later.trending_first
    assert later.text == "diffusion\n-survey\ntrending:5"
    assert parse_interests(later.text) == later
    assert parse_interests("trending, -survey").trending_first  # nothing else to come first


def test_the_word_trending_is_a_keyword_when_quoted_fielded_or_in_a_phrase() -> None:
    for text in ('"trending"', "title:trending", "trending topics", "trending AND memes"):
        parsed = parse_interests(text)
        assert parsed.trending is None
        assert [entry.label for entry in parsed.entries] == [text]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("trending:0", "trending: takes from 1 to 100 papers (got 0)"),
        ("trending:101", "trending: takes from 1 to 100 papers (got 101)"),
        ("trending:five", "trending: takes a number of papers, as in trending:5 (got five)"),
        ("trending:\u0663", "trending: takes a number of papers"),
        ("-trending", "trending cannot be excluded"),
        ("trending upvotes", "write the least upvotes as upvotes>=20"),
        ("trending upvotes>20", "write the least upvotes as upvotes>=20"),
        ("trending upvotes>=many", "write the least upvotes as upvotes>=20"),
        ("trending upvotes>=2000000", "upvotes>= takes at most 1,000,000"),
        ("trending:5 please", "write trending alone, trending:5 for 5 papers"),
        ("diffusion, trending, trending:3", 'entry 3 "trending:3": trending is already asked'),
    ],
)
def test_a_malformed_trending_rule_is_named(text: str, reason: str) -> None:
    with pytest.raises(InterestSyntaxError) as raised:
        parse_interests(text)
    assert reason in str(raised.value)


def test_trending_is_held_to_the_digest_s_size_when_given() -> None:
    assert parse_interests("trending:20", max_trending=20).trending is not None
    with pytest.raises(InterestSyntaxError, match=r"from 1 to 20 papers \(got 21\)"):
        parse_interests("trending:21", max_trending=20)


def test_an_empty_subscription_is_refused_and_exclusions_alone_still_are() -> None:
    with pytest.raises(InterestSyntaxError, match="or trending"):
        parse_interests(" , ")
    with pytest.raises(InterestSyntaxError, match="only exclusions"):
        parse_interests("-survey")
    assert parse_interests("-survey\ntrending").excluded[0].label == "-survey"


# --- seed papers (like:ID) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seed"),
    [
        ("like:2509.24002", "2509.24002"),
        ("like: 2509.24002", "2509.24002"),
        ("Like : 2509.24002", "2509.24002"),
        ("like:2509.24002v2", "2509.24002"),
        ("like:arXiv:2509.24002", "2509.24002"),
        ("like:https://arxiv.org/abs/2509.24002v3", "2509.24002"),
        ("like:arxiv.org/pdf/2509.24002.pdf", "2509.24002"),
        ("like:0704.0001", "0704.0001"),
        ("like:1412.9999", "1412.9999"),
        ("like:hep-th/9901001", "hep-th/9901001"),
        ("like:hep-th/9901001v1", "hep-th/9901001"),
        ("like:math.GT/0309136", "math/0309136"),  # the id arXiv answers with
        ("like:HEP-TH/9901001", "hep-th/9901001"),
    ],
)
def test_like_names_a_seed_paper_by_its_versionless_id(text: str, seed: str) -> None:
    parsed = parse_interests(text)
    assert parsed.seeds == (seed,)
    assert parsed.entries == ()  # a seed is no keyword: a list of seeds alone is whole
    assert parsed.text == f"like:{seed}"
    assert parse_interests(parsed.text) == parsed


def test_seeds_keep_their_order_and_place_and_drop_duplicates() -> None:
    text = "like:2509.24002, diffusion\nlike:hep-th/9901001\n-survey, like:2509.24002v2, video"
    parsed = parse_interests(text)
    assert parsed.seeds == ("2509.24002", "hep-th/9901001")
    assert [entry.label for entry in parsed.entries] == ["diffusion", "-survey", "video"]
    assert parsed.text == "like:2509.24002\ndiffusion\nlike:hep-th/9901001\n-survey\nvideo"
    assert parse_interests(parsed.text) == parsed
    assert hash(parse_interests(parsed.text)) == hash(parsed)
    # Seeds change what a list asks for; where they stand does not.
    assert parsed != parse_interests("diffusion, -survey, video")
    assert parsed == parse_interests(
        "diffusion, -survey, video, like:2509.24002, like:hep-th/9901001"
    )
    assert parse_interests("like:2509.24002, like:2510.00001") != parse_interests(
        "like:2510.00001, like:2509.24002"
    )


def test_seeds_and_trending_keep_their_sections_order() -> None:
    parsed = parse_interests("like:2509.24002\ntrending:5\ndiffusion")
    assert parsed.trending_first  # a seed is no keyword entry: it does not come first
    assert parse_interests(parsed.text) == parsed
    later = parse_interests("diffusion, like:2509.24002, trending")
    assert not later.trending_first
    assert later.text == "diffusion\nlike:2509.24002\ntrending"


def test_a_seeds_only_list_is_valid_and_matches_nothing_by_keywords() -> None:
    from datetime import date

    from digest.match import match_subscriber
    from digest.paper import Paper

    paper = Paper(
        id="2509.24002",
        title="Like: a paper about 2509.24002",
        abstract="like 2509 24002",
        authors=("A. Author",),
        categories=("cs.LG",),
        published=date(2025, 9, 28),
        listed=date(2025, 9, 29),
        url_abs="https://arxiv.org/abs/2509.24002",
        url_pdf="https://arxiv.org/pdf/2509.24002",
        sources=("arxiv",),
    )
    for text in ("like:2509.24002", "like:2509.24002, -survey"):
        parsed = parse_interests(text)
        assert parsed.wanted == ()
        assert match_subscriber(parsed, [paper], 10).matches == ()


@pytest.mark.parametrize(
    ("text", "bad", "reason"),
    [
        (
            "diffusion, like:2509.240",
            "like:2509.240",
            "like:2509.240 is not an arXiv id: write like:2509.24002 (or like:hep-th/9901001)",
        ),
        ("diffusion, like:", "like:", "like: needs the arXiv id of a paper you like: write"),
        ("diffusion, like: diffusion models", "like: diffusion models", "not an arXiv id"),
        ("diffusion, like:2509.24002 2510.00001", "like:2509.24002 2510.00001", "not an arXiv"),
        ("diffusion, like:2513.00001", "like:2513.00001", "not an arXiv id"),  # no month 13
        ("diffusion, like:2509.2400", "like:2509.2400", "not an arXiv id"),  # 5 digits now
        ("diffusion, like:1412.12345", "like:1412.12345", "not an arXiv id"),  # 4 then
        ("diffusion, like:0612.0001", "like:0612.0001", "not an arXiv id"),  # old ids then
        ("diffusion, like:hep-th/1001001", "like:hep-th/1001001", "not an arXiv id"),
        ("diffusion, -like:2509.24002", "-like:2509.24002", '"less like this", use the link'),
        ("diffusion, - like:2509.24002", "- like:2509.24002", "cannot be excluded"),
    ],
)
def test_a_malformed_seed_is_named_with_the_right_form(text: str, bad: str, reason: str) -> None:
    with pytest.raises(InterestSyntaxError) as raised:
        parse_interests(text)
    assert (raised.value.entry, raised.value.text) == (2, bad)
    assert reason in str(raised.value)


def test_an_arxiv_id_alone_is_pointed_to_like() -> None:
    with pytest.raises(InterestSyntaxError) as raised:
        parse_interests("diffusion, arXiv:2509.24002")
    assert str(raised.value).endswith("to name a paper you like, write like:arXiv:2509.24002")
    assert parse_interests("like:arXiv:2509.24002").seeds == ("2509.24002",)


def test_like_is_a_keyword_when_quoted_or_without_a_colon() -> None:
    for text in ('"like:2509.24002"', "like minds", "title:like"):
        parsed = parse_interests(text)
        assert parsed.seeds == ()
        assert [entry.label for entry in parsed.entries] == [text]


def test_seeds_are_capped_apart_from_the_keyword_entries() -> None:
    seeds = [f"like:2509.{24000 + i:05d}" for i in range(50)]
    keywords = [f"topic{i}" for i in range(50)]
    parsed = parse_interests("\n".join(seeds + keywords))
    assert (len(parsed.seeds), len(parsed.entries)) == (50, 50)
    with pytest.raises(InterestSyntaxError) as raised:
        parse_interests("\n".join(["diffusion", *seeds, "like:2509.30000"]))
    assert (raised.value.entry, raised.value.text) == (52, "like:2509.30000")
    assert "too many like: entries: at most 50 seed papers" in str(raised.value)
    with pytest.raises(InterestSyntaxError, match="too many interests: at most 50") as raised:
        parse_interests("\n".join([*seeds, *keywords, "topic50"]))
    assert (raised.value.entry, raised.value.text) == (101, "topic50")
