"""Realistic inputs for the render stage, built from real papers (tests/data/papers.jsonl).

The matcher is a separate stage, so tests and the render benchmark make its output
themselves: a `Match` per paper whose title or abstract contains an interest (a plain
case-insensitive `str.find`), with a `Span` for every occurrence.
papers.jsonl has real titles and abstracts, author counts, dates and upvotes; names and
organisations are drawn from the real ones of a saved Hugging Face listing.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

from digest.match import Hit, Match, Selection, Span
from digest.paper import Paper, arxiv_abs_url, arxiv_pdf_url, hf_paper_url
from digest.subscriber import Subscriber

DATA = Path(__file__).parent / "data"

# Interests people plausibly have, all found in papers.jsonl.
VOCABULARY = (
    "diffusion", "reinforcement learning", "language model", "benchmark", "agent",
    "video", "reasoning", "retrieval", "multimodal", "vision", "robot", "transformer",
    "attention", "alignment", "RLHF", "code", "math", "speech", "3D", "graph",
    "efficient", "distillation", "quantization", "safety", "evaluation", "dataset",
    "image generation", "tokenizer", "scaling", "memory", "planning", "preference",
    "embedding", "segmentation", "inference", "fine-tuning", "LLM", "survey",
)  # fmt: skip


def _dates(row: dict, today: date = date(2026, 6, 12)) -> tuple[date | None, date | None]:
    def parse(text: str | None) -> date | None:
        if not text:
            return None
        for pattern in ("%b %d, %Y", "%b %d"):
            try:
                parsed = datetime.strptime(text, pattern).date()
            except ValueError:
                continue
            if "%Y" in pattern:
                return parsed
            # "Jun 22" is this year's, or last year's if that is still to come.
            parsed = parsed.replace(year=today.year)
            return parsed if parsed <= today else parsed.replace(year=today.year - 1)
        return None

    return parse(row.get("date")), parse(row.get("page_date"))


def load_papers(path: Path = DATA / "papers.jsonl") -> list[Paper]:
    """The papers of papers.jsonl as the store would hold them."""
    names = (DATA / "author_names.txt").read_text(encoding="utf-8").split("\n")[:-1]
    organizations = (DATA / "organizations.txt").read_text(encoding="utf-8").split("\n")[:-1]
    papers = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        row = json.loads(line)
        paper_id = f"2606.{10000 + number:05d}"
        count = row.get("authors") or 1 + number % 5
        published, listed = _dates(row)
        papers.append(
            Paper(
                id=paper_id,
                title=row["title"],
                abstract=row["abstract"],
                authors=tuple(names[(number * 7 + k) % len(names)] for k in range(count)),
                organization=row.get("org") or (organizations[number % 8] if number % 3 else None),
                published=published,
                listed=listed,
                upvotes=row.get("upvotes"),
                url_abs=arxiv_abs_url(paper_id),
                url_pdf=arxiv_pdf_url(paper_id),
                url_hf=hf_paper_url(paper_id) if "upvotes" in row else None,
                url_code=f"https://github.com/example/{paper_id}" if number % 4 == 0 else None,
                sources=("hf",) if "upvotes" in row else ("arxiv",),
                first_seen_at=datetime(2026, 6, 12, 6, 0, tzinfo=UTC),
            )
        )
    return papers


def find_spans(text: str, field: str, interest: str) -> tuple[Span, ...]:
    """Every case-insensitive occurrence of `interest` in `text`."""
    spans = []
    haystack, needle = text.lower(), interest.lower()
    start = haystack.find(needle)
    while needle and start != -1:
        spans.append(Span(field, start, start + len(needle)))
        start = haystack.find(needle, start + len(needle))
    return tuple(spans)


def match_paper(paper: Paper, interests: list[str]) -> Match | None:
    """The paper's match for these interests, or None if none occurs in it."""
    hits = []
    for interest in interests:
        spans = find_spans(paper.title, "title", interest) + find_spans(
            paper.abstract, "abstract", interest
        )
        if spans:
            hits.append(Hit(interest, spans))
    if not hits:
        return None
    score = sum(3 * (s.field == "title") + 1 for hit in hits for s in hit.spans)
    return Match(paper, float(score), tuple(hits))


def select(papers: list[Paper], interests: list[str], max_papers: int = 20) -> Selection:
    """A subscriber's selection: the matching papers best first, the rest counted."""
    matches = [m for m in (match_paper(p, interests) for p in papers) if m is not None]
    matches.sort(key=lambda m: (-m.score, m.paper.id))
    return Selection(tuple(matches[:max_papers]), max(0, len(matches) - max_papers))


def subscriber(
    interests: str, subscriber_id: int = 42, email: str = "reader@example.org"
) -> Subscriber:
    """An active subscriber."""
    created = datetime(2026, 6, 1, 9, 30, tzinfo=UTC)
    return Subscriber(
        id=subscriber_id,
        email=email,
        interests=interests,
        status="active",
        send_time="08:00",
        timezone="Europe/Paris",
        created_at=created,
        confirmed_at=created,
    )
