"""The fast matcher and the naive regex baseline agree, on random papers and interests.

The two share only definitions (parser, folding, stemming rules, score formula), so
agreement on every field of every `Selection` (order, scores, hits, spans) checks the
index, the joined-word logic and the ranking against an independent implementation.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digest.errors import InterestSyntaxError
from digest.match import Matcher, match_many, match_subscriber, parse_interests
from digest.paper import Paper
from tests.reference.naive import naive_match_many, naive_match_subscriber

# A small vocabulary so that random interests often match random papers: inflected
# forms, joined and hyphenated compounds, acronyms, Unicode, LaTeX and punctuation.
WORDS = [
    "model",
    "models",
    "modeling",
    "modelling",
    "language",
    "languages",
    "fine",
    "tune",
    "tuning",
    "tuned",
    "finetuning",
    "fine-tuning",
    "pre-training",
    "pretrain",
    "train",
    "training",
    "trains",
    "data",
    "set",
    "dataset",
    "datasets",
    "rl",
    "RL",
    "URL",
    "urls",
    "bound",
    "bounds",
    "boundary",
    "agent",
    "agents",
    "agentic",
    "multi",
    "agent-based",
    "naïve",
    "naive",
    "Schrödinger",
    "café",
    "ﬁne",
    "GPT-4",
    "gpt4",
    "4.5",
    "Q&A",
    "e.g.",
    "s",
    "ing",
    "ed",
    "\\alpha",
    "\\times",
    "$O(n^2)$",
    "x",
    "study",
    "studies",
    "studied",
    "LLMs",
    "LLM",
    "embed",
    "embedding",
    "embedded",
    "a",
    "the",
    "of",
    "chain",
    "thought",
]
SEPARATORS = [" ", " ", " ", "-", " - ", ", ", ". ", "/", "\n", "–", "'s "]

texts = st.lists(
    st.tuples(st.sampled_from(WORDS), st.sampled_from(SEPARATORS)), min_size=0, max_size=30
).map(lambda parts: "".join(word + sep for word, sep in parts).strip())

QUERY_WORDS = [w for w in WORDS if "\\" not in w and "$" not in w]
phrases = st.lists(st.sampled_from(QUERY_WORDS), min_size=1, max_size=3).map(" ".join)


@st.composite
def entries(draw: st.DrawFn) -> str:
    phrase = draw(phrases)
    form = draw(st.sampled_from(["plain", "plain", "quoted", "prefix", "title", "and", "not"]))
    if form == "quoted":
        return f'"{phrase}"'
    if form == "prefix":
        word = draw(st.sampled_from([w for w in QUERY_WORDS if len(w) >= 3 and w.isalpha()]))
        return word[: draw(st.integers(3, len(word)))] + "*"
    if form == "title":
        return f"title:{phrase}"
    if form == "and":
        return f"{phrase} AND {draw(phrases)}"
    if form == "not":
        return f"-{phrase}"
    return phrase


interest_lists = st.lists(entries(), min_size=1, max_size=5).map(", ".join)

NOW = datetime(2026, 6, 12, 20, 0, tzinfo=UTC)


@st.composite
def paper_lists(draw: st.DrawFn) -> list[Paper]:
    count = draw(st.integers(0, 8))
    return [
        Paper(
            id=f"2606.{i:05d}",
            title=draw(texts),
            abstract=draw(texts),
            authors=tuple(draw(st.lists(st.sampled_from(["Ana Núñez", "R. Li", "Bo Chen"]))))
            if i % 2
            else (),
            organization=draw(st.sampled_from([None, "Kolors Team, Kuaishou", "MIT"])),
            upvotes=draw(st.sampled_from([None, 0, 1, 5, 5, 40])),
            first_seen_at=NOW - timedelta(hours=draw(st.integers(0, 48))),
        )
        for i in range(count)
    ]


def parsed(text: str):  # type: ignore[no-untyped-def]
    try:
        return parse_interests(text)
    except InterestSyntaxError:
        return None


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(papers=paper_lists(), text=interest_lists, max_papers=st.integers(1, 4))
def test_fast_and_naive_agree_for_one_subscriber(papers, text, max_papers):
    interests = parsed(text)
    if interests is None:
        return
    fast = match_subscriber(interests, papers, max_papers)
    naive = naive_match_subscriber(interests, papers, max_papers)
    assert fast == naive


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    papers=paper_lists(),
    lists=st.lists(
        st.tuples(interest_lists, st.sampled_from([None, 0, 6, 24, 40, 60])),
        min_size=1,
        max_size=6,
    ),
)
def test_fast_and_naive_agree_for_many_subscribers_with_windows(papers, lists):
    subscribers = []
    for number, (text, hours) in enumerate(lists):
        interests = parsed(text)
        if interests is not None:
            watermark = None if hours is None else NOW - timedelta(hours=hours)
            subscribers.append((number, interests, watermark))
    fast = list(match_many(papers, subscribers, 3))
    naive = list(naive_match_many(papers, subscribers, 3))
    assert fast == naive


def test_a_matcher_gives_the_same_answers_when_reused():
    papers = [Paper(id="2606.00001", title="Fine-tuning language models", abstract="RL.")]
    matcher = Matcher(papers)
    interests = parse_interests("finetuning, language model")
    assert matcher.select(interests, None, 5) == matcher.select(interests, None, 5)
    assert matcher.select(interests, None, 5).matches[0].interests == (
        "finetuning",
        "language model",
    )
