"""Realistic inputs for the render stage, built from real papers (tests/data/papers.jsonl).

Also the hardest inputs (`worst_case`, `nasty_selection`) and helpers that read a
rendered message back with the standard library (`parse`, `html_of`, `text_of`).

The matcher is a separate stage, so tests and the render benchmark make its output
themselves: a `Match` per paper whose title or abstract contains an interest (a plain
case-insensitive `str.find`), with a `Span` for every occurrence.
papers.jsonl has real titles and abstracts, author counts, dates and upvotes; names and
organisations are drawn from the real ones of a saved Hugging Face listing.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
import json
from datetime import UTC, date, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from digest.match import Hit, Match, Selection, Span
from digest.message import Message
from digest.paper import Paper, arxiv_abs_url, arxiv_pdf_url, hf_paper_url
from digest.render.view import URL_CHARS
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


def worst_case(papers: list[Paper]) -> tuple[Any, Selection]:
    """20 of the longest abstracts, with the longest title, 27 long author names, a long
    organisation, every link at the longest URL allowed, 8 long interests and dense
    highlights everywhere."""
    longest = sorted(papers, key=lambda paper: len(paper.abstract), reverse=True)[:20]
    longest_title = max((paper.title for paper in papers), key=len)
    interests = [f"interest number {n} about something rather specific" for n in range(8)]
    matches = []
    for number, paper in enumerate(longest):
        worst = dataclasses.replace(
            paper,
            title=f"{longest_title} {longest_title} Unbreakable{'x' * 90}",
            authors=tuple(f"Maximiliana Alexandra {n} von Habsburg-Lothringen" for n in range(27)),
            organization="The Extremely Long Institute for Advanced Studies of " * 4,
            upvotes=12345,
            **{  # every link as long as the renderer accepts
                f"url_{kind}": f"https://{kind}.example.org/{paper.id}/".ljust(URL_CHARS, "x")
                for kind in ("abs", "pdf", "hf", "code", "project")
            },
        )
        # Every word of every field highlighted, as an interest matching "e" would do.
        words = (
            find_spans(worst.title, "title", "e")
            + find_spans(worst.abstract, "abstract", "e")
            + find_spans(", ".join(worst.authors), "authors", "e")
            + find_spans(worst.organization or "", "organization", "e")
        )
        hits = [Hit(interest, words) for interest in interests]
        matches.append(Match(worst, 100.0 - number, tuple(hits)))
    return subscriber(", ".join(interests) * 5), Selection(tuple(matches), more=123)


NASTY_TITLE = "<script>alert('x')</script> & Q&A: <b>bold</b> claims 🚀 — \"quoted\""
NASTY_ABSTRACT = (
    "We study $\\alpha < \\beta$ & $x_{i}^{2} > 0$ with <img src=x onerror=alert(1)> and "
    "emoji 🤖🧪 in a diffusion model. Non-breaking\u00a0space, tab\tand an &amp; entity. "
    + "Filler sentence about nothing in particular. "
    * 10
)


def nasty_selection(papers: list[Paper]) -> Selection:
    paper = dataclasses.replace(
        papers[0],
        title=NASTY_TITLE,
        abstract=NASTY_ABSTRACT,
        authors=("Zoë <Müller>", "O'Brien & Sons", "李明", "Fourth Author"),
        organization="Lab <i>of</i> Things & Co",
        url_code="javascript:alert(1)",
        url_project='https://example.org/"><script>alert(1)</script>',
    )
    hits = (
        Hit("diffusion", find_spans(paper.abstract, "abstract", "diffusion")),
        Hit("<b>bold</b> & co", find_spans(paper.title, "title", "<b>bold</b>")),
        Hit("alpha", find_spans(paper.abstract, "abstract", "$\\alpha < \\beta$")),
    )
    return Selection((Match(paper, 3.0, hits),), more=0)


# Reading a rendered message back


def parse(message: Message) -> EmailMessage:
    parsed = email.message_from_bytes(message.data, policy=email.policy.default)
    assert not parsed.defects
    return parsed  # type: ignore[return-value]


def html_of(message: Message) -> str:
    """The HTML part, decoded, with its lines ending in \\n."""
    part = parse(message).get_body(("html",))
    return part.get_content().replace("\r\n", "\n")  # type: ignore[union-attr]


def text_of(message: Message) -> str:
    """The plain-text part, decoded, with its lines ending in \\n."""
    part = parse(message).get_body(("plain",))
    return part.get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
