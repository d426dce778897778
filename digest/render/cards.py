"""The digest's paper cards, made once and shared by every subscriber with the same matches.

A digest is mostly cards, and the same papers show up in thousands of digests of a run.
So a paper's card, HTML (CSS inlined by css-inline) and text, is rendered once per
paper as a `Skeleton` with placeholders for what depends on the subscriber's matches
(labels, highlighted title and snippet). The filled card is kept per (paper, matched
interests), already quoted-printable encoded in whole lines: subscribers with the same
matches share it, and a message joins it in as it is.

Both caches are bounded (`CARD_CACHE_SIZE`, `PAPER_CACHE_SIZE`) and safe to share
between threads, like the renderer that owns them (`digest.render.renderer`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import css_inline
from jinja2 import Environment

from digest.match import Match
from digest.paper import Paper
from digest.render import mime
from digest.render.skeleton import Skeleton, html_text_escape
from digest.render.view import (
    HTML_CARD_FIELDS,
    TEXT_CARD_FIELDS,
    HtmlStyle,
    PaperView,
    card_context,
    html_fields,
    match_view,
    paper_view,
    text_card_context,
    text_fields,
)

CARD_CACHE_SIZE = 20_000  # filled cards kept per renderer (a few KB each)
PAPER_CACHE_SIZE = 5_000  # paper card skeletons kept per renderer

_SPAN = attrgetter("field", "start", "end")


@dataclass(frozen=True, slots=True)
class _PaperCard:
    """A paper's card with holes for the per-match fields, HTML and text."""

    paper: Paper
    view: PaperView
    html: Skeleton
    text: Skeleton


@dataclass(frozen=True, slots=True)
class _CardParts:
    """A filled card, ready to join into a message (quoted-printable, whole lines).

    The text card was encoded with a placeholder number in front ("00. ", as wide as
    the largest number), then the placeholder cut off: its encoding is itself, so the
    card's number takes its place as it is.
    """

    html: bytes
    text: bytes


class Cards:
    """Makes and keeps the cards of one renderer: `card(match)` is a match's card.

    `environment` has the `email/_card.*` templates; `css` is the stylesheet inlined
    into the HTML card; `nonce` and `placeholder` (name -> `@@NONCE:name@@`) make the
    cards' holes; `number_slot` is the text card's number as a placeholder (`"00. "`, as
    wide as the largest number); `plain_style` is the HTML style before inlining.
    """

    def __init__(
        self,
        environment: Environment,
        css: str,
        nonce: str,
        placeholder: Callable[[str], str],
        number_slot: str,
        plain_style: HtmlStyle,
    ) -> None:
        self._environment = environment
        self._css = css
        self._nonce = nonce
        self._placeholder = placeholder
        self._number_slot = number_slot
        self._inliner = css_inline.CSSInliner(minify_css=True, load_remote_stylesheets=False)
        # What goes into an inlined card must read as css-inline would have written it.
        self._style = HtmlStyle(
            escape=html_text_escape,
            mark=self._inlined_tags(plain_style.mark),
            label=self._inlined_tags(plain_style.label),
        )
        self._papers: dict[str, _PaperCard] = {}
        self._cards: dict[tuple[str, tuple[Any, ...]], tuple[Paper, _CardParts]] = {}

    def card(self, match: Match) -> _CardParts:
        """A match's card, filled and encoded once per (paper, matched interests).

        The key is made of plain tuples: hashing the dataclasses themselves (through
        their generated __hash__ and __eq__) cost more than all the rest of a lookup.
        """
        paper, hits = match.paper, match.hits
        if len(hits) == 1:  # the usual case, without the comprehension's cost
            key = (paper.id, ((hits[0].interest, tuple(map(_SPAN, hits[0].spans))),))
        else:
            key = (paper.id, tuple([(hit.interest, tuple(map(_SPAN, hit.spans))) for hit in hits]))
        found = self._cards.get(key)
        if found is not None and (found[0] is paper or found[0] == paper):
            return found[1]
        skeletons = self._paper_card(paper)
        view = match_view(skeletons.view, match.hits)
        html = skeletons.html.encode(html_fields(skeletons.view, view, self._style), {})
        slot = self._number_slot
        text = skeletons.text.fill(text_fields(skeletons.view, view))
        card = _CardParts(html=b"".join(html), text=mime.encode_lines(slot + text)[len(slot) :])
        bounded_put(self._cards, key, (paper, card), CARD_CACHE_SIZE)
        return card

    def _paper_card(self, paper: Paper) -> _PaperCard:
        """A paper's card, HTML (CSS inlined) and text, rendered once with holes for what
        depends on the matches."""
        found = self._papers.get(paper.id)
        if found is None or (found.paper is not paper and found.paper != paper):
            view = paper_view(paper)
            html_holes = {name: self._placeholder(name) for name in HTML_CARD_FIELDS}
            html = self._environment.get_template("email/_card.html").render(
                card=card_context(view, html_holes)
            )
            inlined = self._inliner.inline_fragment(html, self._css)
            text_holes = {name: self._placeholder(name) for name in TEXT_CARD_FIELDS}
            text = self._environment.get_template("email/_card.txt").render(
                card=text_card_context(view, text_holes)
            )
            found = _PaperCard(
                paper=paper,
                view=view,
                html=Skeleton(inlined, self._nonce, escape_by_context=False),
                text=Skeleton(text, self._nonce, escape_by_context=False),
            )
            bounded_put(self._papers, paper.id, found, PAPER_CACHE_SIZE)
        return found

    def _inlined_tags(self, tags: tuple[str, str]) -> tuple[str, str]:
        """An element's opening and closing tags with its CSS inlined."""
        hole = self._placeholder("x")
        inlined = self._inliner.inline_fragment(tags[0] + hole + tags[1], self._css)
        before, _, after = inlined.partition(hole)
        return before, after


def bounded_put(cache: dict[Any, Any], key: Any, value: Any, size: int) -> None:
    """Keep at most `size` entries, dropping the oldest (a run rarely gets there).

    Safe when threads share the renderer (the web app's threads, the scheduler): two
    threads may pick the same oldest entry, so dropping it tolerates its being gone.
    """
    if len(cache) >= size:
        with contextlib.suppress(StopIteration, RuntimeError):  # changed by another thread
            cache.pop(next(iter(cache)), None)
    cache[key] = value
