"""What each interest form matches, on real titles and abstracts (tests/data/papers.jsonl).

Each case names a paper by the start of its title and one piece the interest highlights
there ("field: text"), a piece it must not highlight ("!field: text"), or None when the
paper must not be chosen at all.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from digest.match import match_subscriber, parse_interests
from digest.match.index import PaperIndex
from digest.paper import Paper
from tests.reference.naive import naive_match_subscriber

DATA = Path(__file__).parent / "data"


def load_papers() -> list[Paper]:
    papers = []
    with open(DATA / "papers.jsonl", encoding="utf-8") as lines:
        for number, line in enumerate(lines):
            record = json.loads(line)
            papers.append(
                Paper(
                    id=f"2601.{number:05d}",
                    title=record["title"],
                    abstract=record["abstract"],
                    organization=record.get("org"),
                    upvotes=record.get("upvotes"),
                )
            )
    return papers


PAPERS = load_papers()


def paper_titled(start: str) -> Paper:
    found = [p for p in PAPERS if p.title.startswith(start)]
    assert found, start
    return found[0]


def highlighted(interest: str, paper: Paper, others: list[Paper] | None = None) -> list[str]:
    """The "field: text" pieces the interest highlights in `paper` ([] if not chosen)."""
    selection = match_subscriber(parse_interests(interest), [paper, *(others or [])], 50)
    for match in selection.matches:
        if match.paper.id == paper.id:
            return [
                f"{span.field}: {getattr(paper, span.field)[span.start : span.end]}"
                for hit in match.hits
                for span in hit.spans
            ]
    return []


CASES = [
    # plain words: case, plurals and simple inflections
    ("transformer", "Understanding Transformers", "title: Transformers"),
    ("Diffusion", "Diffusion Models Learn", "title: Diffusion"),
    ("diffusion models", "Diffusion Models Learn", "title: Diffusion Models"),
    ("language model", "Transformers Don't Need LayerNorm", "abstract: language modeling"),
    ("large language models", "Of Models and Tin Men", "title: Large-Language Models"),
    ("reward model", "RLHF Workflow", "title: Reward Modeling"),
    ("agent", "Do LLM Agents Have Regret?", "title: Agents"),
    ("study", "Do LLM Agents Have Regret?", "title: Study"),
    ("llm", "Do LLM Agents Have Regret?", "title: LLM"),
    # hyphens, spaces and joined forms are alike
    ("fine-tuning", "Scaling Towards the Information Boundary", "abstract: finetuned"),
    ("fine tuning", "RoSTE", "title: Fine-Tuning"),
    ("finetuned", "RoSTE", "abstract: fine-tuned"),
    ("pretraining", "Do LLM Agents Have Regret?", "abstract: pre-training"),
    ("pre-training", "Multimodal Molecular Pretraining", "title: Pretraining"),
    ("multiagent", "Do LLM Agents Have Regret?", "abstract: multi-agent"),
    ("dataset", "Adapt then Unlearn", "abstract: data set"),
    ("chain of thought", "CTRLS", "title: Chain-of-Thought"),
    ("gpt4", "Do LLM Agents Have Regret?", "abstract: GPT-4"),
    ("f-divergence", "Robust Offline Reinforcement", "title: f$-Divergence"),
    # acronyms and words inside words
    ("RL", "RL-PLUS", "title: RL"),
    ("rl", "CTRLS", None),
    ("bound", "The Reasoning Boundary Paradox", None),
    ("bound*", "The Reasoning Boundary Paradox", "title: Boundary"),
    ("bound", "GradSign", "abstract: bounded"),
    # exact phrases: no stemming, but hyphens and spaces still alike
    ('"chain of thought"', "Towards Revealing the Mystery", "title: Chain of Thought"),
    ('"language model"', "Transformers Don't Need LayerNorm", None),
    ('"language modeling"', "Transformers Don't Need LayerNorm", "abstract: language modeling"),
    ('"fine-tuning"', "RoSTE", "title: Fine-Tuning"),
    ('"finetuning"', "RoSTE", None),
    # prefixes
    ("quantiz*", "RoSTE", "title: Quantization"),
    ("quantiz", "RoSTE", "!title: Quantization"),  # a stem: matches "quantized" only
    # fields
    ("title:regret", "Do LLM Agents Have Regret?", "title: Regret"),
    ("title:RLHF", "Watermarking Degrades Alignment", None),
    ("abstract:agents", "Do LLM Agents Have Regret?", "abstract: agents"),
    ("org:LAMDA", PAPERS[1].title[:20], "organization: LAMDA"),
    # AND needs every clause
    ("rlhf AND reward model", "RLHF Workflow", "title: RLHF"),
    ("rlhf AND diffusion", "RLHF Workflow", None),
    # LaTeX commands are not words
    ("psi", "GradSign", None),
    ("rho", "GradSign", None),
    ("spearman", "GradSign", "abstract: Spearman"),
]


@pytest.mark.parametrize(("interest", "title", "expected"), CASES)
def test_interest_highlights(interest: str, title: str, expected: str | None) -> None:
    found = highlighted(interest, paper_titled(title))
    if expected is None:
        assert found == []
    elif expected.startswith("!"):
        assert found
        assert expected[1:] not in found
    else:
        assert expected in found


def test_an_exclusion_removes_a_paper_that_would_match() -> None:
    survey = paper_titled("Few-shot Adaptation of Multi-modal Foundation Models")
    assert highlighted("foundation model", survey)
    assert highlighted("foundation model, -survey", survey) == []
    assert highlighted("foundation model, -title:survey", survey) == []


def test_a_phrase_does_not_cross_a_full_stop() -> None:
    paper = replace(PAPERS[0], title="We train a language. Model sizes vary.")
    assert highlighted("language model", paper) == []
    assert highlighted('"language. model"', paper) == ["title: language. Model"]


def test_unicode_is_folded_and_spans_point_into_the_original() -> None:
    paper = replace(
        PAPERS[0],
        title="Naïve Schrödinger Bridges for ﬁne-tuning Straße Models",
        abstract="A cafe\u0301 of nai\u0308ve agents.",
    )
    assert highlighted("naive", paper) == ["title: Naïve", "abstract: nai\u0308ve"]
    assert highlighted("schrodinger bridge", paper) == ["title: Schrödinger Bridges"]
    assert highlighted("finetuning", paper) == ["title: ﬁne-tuning"]
    assert highlighted("strasse", paper) == ["title: Straße"]
    assert highlighted("café", paper) == ["abstract: cafe\u0301"]


def test_a_very_long_abstract_is_matched_everywhere() -> None:
    text = " ".join(p.abstract for p in PAPERS)
    paper = replace(PAPERS[0], title="All abstracts", abstract=text)
    found = highlighted("reinforcement learning", paper)
    assert len(found) == text.lower().count("reinforcement learning")
    assert naive_match_subscriber(
        parse_interests("reinforcement learning"), [paper], 5
    ) == match_subscriber(parse_interests("reinforcement learning"), [paper], 5)


def test_authors_and_organisations_match_names_as_written(data_dir: Path) -> None:
    listing = json.loads((data_dir / "hf_api_daily_papers_2026-06-12.json").read_text("utf-8"))
    papers = [
        Paper(
            id=entry["paper"]["id"],
            title=" ".join(entry["paper"]["title"].split()),
            abstract=entry["paper"]["summary"],
            authors=tuple(a["name"] for a in entry["paper"]["authors"]),
            organization=(entry.get("organization") or {}).get("fullname"),
        )
        for entry in listing
    ]

    def found(interest: str) -> list[str]:
        selection = match_subscriber(parse_interests(interest), papers, 50)
        return [
            f"{m.paper.id} {span.field}: "
            + (", ".join(m.paper.authors) if span.field == "authors" else m.paper.organization)[
                span.start : span.end
            ]
            for m in selection.matches
            for hit in m.hits
            for span in hit.spans
        ]

    assert found("author:Colin Raffel") == ["2606.11409 authors: Colin Raffel"]
    assert found("author:boglarka ecsedi") == ["2606.11409 authors: Boglárka Ecsedi"]
    assert found("author:Niccolo") == ["2606.12488 authors: Niccolò"]
    assert found("author:R Michael Alvarez") == [
        "2606.00467 authors: R. Michael Alvarez",
        "2606.12730 authors: R. Michael Alvarez",
    ]
    assert found("org:kuaishou") == ["2606.06113 organization: Kuaishou"]
    assert found("author:raffels") == []  # names are not stemmed


def test_the_index_lists_every_match_of_a_clause() -> None:
    paper = replace(PAPERS[0], title="Deep deep deep learning", abstract="")
    index = PaperIndex([paper])
    (found,) = index.find(parse_interests("deep deep").entries[0].clauses[0])
    assert list(zip(found.start.tolist(), found.end.tolist(), strict=True)) == [(0, 9), (5, 14)]
