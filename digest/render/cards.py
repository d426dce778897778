"""The digest's paper cards, made once and shared by every subscriber with the same matches.

A digest is mostly cards, and the same papers show up in thousands of digests of a run.
So a paper's card, HTML (CSS inlined by css-inline) and text, is rendered once per
paper as a `Skeleton` with placeholders for what depends on the subscriber's matches
(labels, highlighted title and snippet). The filled card is kept per (paper, matched
interests), already quoted-printable encoded in whole lines: subscribers with the same
matches share it, and a message joins it in as it is.

A card also has the reader's "more / less like this" links, which name the reader and
so cannot be shared: the card is cut where they go into a head (cached as above) and a
tail (static per paper), and each message joins its own small line between them:
`email/_feedback.*`, inlined and encoded once (`LinkLines`), the message's link base
joined on once per message (`feedback_base`) and each paper's path per card
(`feedback`), with no encoding per message. The cards stay shared.

Both caches are bounded (`CARD_CACHE_SIZE`, `PAPER_CACHE_SIZE`) and safe to share
between threads, like the renderer that owns them (`digest.render.renderer`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, NamedTuple

import css_inline
from jinja2 import Environment

from digest import tokens
from digest.match import Match
from digest.match.results import SUGGESTED
from digest.paper import Paper
from digest.render import mime
from digest.render.skeleton import LinkLines, Skeleton, html_text_escape, plain
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
_FEEDBACK_HOLES = ("more_url", "less_url")  # in the order email/_feedback.* have them


@dataclass(frozen=True, slots=True)
class _PaperCard:
    """A paper's card with holes for the per-match fields, HTML and text."""

    paper: Paper
    view: PaperView
    html: Skeleton  # the card up to the reader's feedback line
    text: Skeleton
    html_tail: bytes  # the card after it, encoded
    text_tail: bytes
    more_path: str  # "/more/PAPER_ID": the feedback link after its base
    less_path: str
    ends: tuple[bytes, bytes] | None  # the two made for `LinkLines.fill` (None: cannot be)


@dataclass(frozen=True, slots=True)
class _CardParts:
    """A filled card, ready to join into a message (quoted-printable, whole lines).

    The text card was encoded with a placeholder number in front ("00. ", as wide as
    the largest number), then the placeholder cut off: its encoding is itself, so the
    card's number takes its place as it is.

    The reader's feedback line (`Cards.feedback`) goes between `html` and `html_tail`,
    and between `text` and `text_tail`.
    """

    html: bytes
    text: bytes
    html_tail: bytes
    text_tail: bytes
    more_path: str
    less_path: str
    ends: tuple[bytes, bytes] | None


class FeedbackBase(NamedTuple):
    """The start of a message's feedback links, and the feedback lines' frames with it
    (`LinkLines.frame`), None when the links must be encoded."""

    url: str
    html_frame: list[bytes] | None
    text_frame: list[bytes] | None


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
        self._cards: dict[tuple[Any, ...], tuple[Paper, _CardParts]] = {}
        holes = {name: placeholder(name) for name in _FEEDBACK_HOLES}
        html = environment.get_template("email/_feedback.html").render(feedback=holes)
        self._feedback_html = LinkLines(
            self._inliner.inline_fragment(html, css), nonce, True, _FEEDBACK_HOLES
        )
        text = environment.get_template("email/_feedback.txt").render(feedback=holes)
        self._feedback_text = LinkLines(text, nonce, False, _FEEDBACK_HOLES)

    def card(self, match: Match, suggested: bool = False) -> _CardParts:
        """A match's card, filled and encoded once per (paper, matched interests); a
        `suggested` card shows its hits as the reasons it was suggested.

        The key is made of plain tuples: hashing the dataclasses themselves (through
        their generated __hash__ and __eq__) cost more than all the rest of a lookup.
        """
        paper, hits = match.paper, match.hits
        key: tuple[Any, ...]
        if len(hits) == 1:  # the usual case, without the comprehension's cost
            key = (paper.id, ((hits[0].interest, tuple(map(_SPAN, hits[0].spans))),))
        else:
            key = (paper.id, tuple([(hit.interest, tuple(map(_SPAN, hit.spans))) for hit in hits]))
        if suggested:  # reasons, not interests: never the card of a match
            key += (SUGGESTED,)
        found = self._cards.get(key)
        if found is not None and (found[0] is paper or found[0] == paper):
            return found[1]
        skeletons = self._paper_card(paper)
        view = match_view(skeletons.view, match.hits, suggested)
        html = skeletons.html.encode(html_fields(skeletons.view, view, self._style), {})
        slot = self._number_slot
        text = skeletons.text.fill(text_fields(skeletons.view, view))
        card = _CardParts(
            html=b"".join(html),
            text=mime.encode_lines(slot + text)[len(slot) :],
            html_tail=skeletons.html_tail,
            text_tail=skeletons.text_tail,
            more_path=skeletons.more_path,
            less_path=skeletons.less_path,
            ends=skeletons.ends,
        )
        bounded_put(self._cards, key, (paper, card), CARD_CACHE_SIZE)
        return card

    def feedback_base(self, url: str) -> FeedbackBase:
        """A message's feedback links' start (`digest.tokens.feedback_base`), joined to
        the feedback lines once for all the message's cards."""
        start = plain(url)
        if start is None:
            return FeedbackBase(url, None, None)
        starts = (start, start)
        return FeedbackBase(
            url, self._feedback_html.frame(starts), self._feedback_text.frame(starts)
        )

    def feedback(self, card: _CardParts, base: FeedbackBase) -> tuple[list[bytes], list[bytes]]:
        """The (HTML, text) of a card's "more / less like this" line for the reader whose
        feedback links start with `base`, encoded, as pieces to join: pieces encoded once
        per message and per paper, or (a link with characters to encode) encoded here."""
        ends = card.ends
        if ends is not None and base.html_frame is not None and base.text_frame is not None:
            return LinkLines.fill(base.html_frame, ends), LinkLines.fill(base.text_frame, ends)
        urls = (base.url + card.more_path, base.url + card.less_path)
        return [self._feedback_html.encode(urls)], [self._feedback_text.encode(urls)]

    def _paper_card(self, paper: Paper) -> _PaperCard:
        """A paper's card, HTML (CSS inlined) and text, rendered once with holes for what
        depends on the matches."""
        found = self._papers.get(paper.id)
        if found is None or (found.paper is not paper and found.paper != paper):
            view = paper_view(paper)
            cut = self._placeholder("feedback")
            html_holes = {name: self._placeholder(name) for name in HTML_CARD_FIELDS}
            html = self._environment.get_template("email/_card.html").render(
                card=card_context(view, html_holes, cut)
            )
            html_head, html_tail = _cut(self._inliner.inline_fragment(html, self._css), cut)
            text_holes = {name: self._placeholder(name) for name in TEXT_CARD_FIELDS}
            text = self._environment.get_template("email/_card.txt").render(
                card=text_card_context(view, text_holes, cut)
            )
            text_head, text_tail = _cut(text, cut)
            more_path = tokens.feedback_url("", "more", paper.id)
            less_path = tokens.feedback_url("", "less", paper.id)
            found = _PaperCard(
                paper=paper,
                view=view,
                html=Skeleton(html_head, self._nonce, escape_by_context=False),
                text=Skeleton(text_head, self._nonce, escape_by_context=False),
                html_tail=mime.encode_lines(html_tail) if html_tail else b"",
                text_tail=mime.encode_lines(text_tail) if text_tail else b"",
                more_path=more_path,
                less_path=less_path,
                ends=_ends(plain(more_path), plain(less_path)),
            )
            bounded_put(self._papers, paper.id, found, PAPER_CACHE_SIZE)
        return found

    def _inlined_tags(self, tags: tuple[str, str]) -> tuple[str, str]:
        """An element's opening and closing tags with its CSS inlined."""
        hole = self._placeholder("x")
        inlined = self._inliner.inline_fragment(tags[0] + hole + tags[1], self._css)
        before, _, after = inlined.partition(hole)
        return before, after


def _ends(more: bytes | None, less: bytes | None) -> tuple[bytes, bytes] | None:
    return None if more is None or less is None else (more, less)


def _cut(rendered: str, marker: str) -> tuple[str, str]:
    """`rendered` cut at `marker` (which starts a line) into the whole lines before it
    and those after it (the last ending with a newline, unless there are none)."""
    head, found, tail = rendered.partition(marker)
    if not found or not head.endswith("\n"):
        raise ValueError("the card's feedback line must start a line of the card")
    if tail and not tail.endswith("\n"):
        tail += "\n"
    return head, tail


def bounded_put(cache: dict[Any, Any], key: Any, value: Any, size: int) -> None:
    """Keep at most `size` entries, dropping the oldest (a run rarely gets there).

    Safe when threads share the renderer (the web app's threads, the scheduler): two
    threads may pick the same oldest entry, so dropping it tolerates its being gone.
    """
    if len(cache) >= size:
        with contextlib.suppress(StopIteration, RuntimeError):  # changed by another thread
            cache.pop(next(iter(cache)), None)
    cache[key] = value
