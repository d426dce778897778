"""Render a subscriber's matches into a complete email message.

`DigestRenderer(settings, secret)` is built once per run (templates loaded, CSS read,
DKIM key read and checked) and then makes one `Message` per subscriber:
`render_digest(subscriber, selection, digest_date)` for the daily digest and
`render_confirmation(subscriber, confirm_url)` for the double opt-in email.

The email is Jinja templates (`templates/email/`): an HTML part laid out in tables with
its CSS inlined into `style` attributes by css-inline, and a plain-text part with the
same content. Everything a paper supplies is escaped.

Speed: a run renders thousands of digests, and the straightforward way (render the
templates, inline the CSS of the whole page, build an `EmailMessage`) manages a few
hundred a second. So the renderer does the expensive work once and reuses it:

- The page around the cards is rendered and CSS-inlined once per layout variant with
  placeholders where per-message values go (`digest.render.skeleton`); a message fills
  them in.
- A paper's card is rendered and inlined once per paper, and kept filled and
  quoted-printable encoded per (paper, matched interests), so subscribers with the same
  matches share it: `digest.render.cards`.
- Each card has the reader's own "more / less like this" links: one feedback token per
  message (`digest.tokens.feedback_base`), and a small line prebuilt and encoded once,
  joined per card with the token and the paper's id between the shared card's two
  halves, with no encoding per message (`Cards.feedback`, `skeleton.LinkLines`).
- The message is written as bytes by `digest.render.mime` instead of through
  `EmailMessage`.

`tests/reference/render.py` builds the same message the straightforward way; the tests
check the two against each other (same headers, same HTML and text), and
`bench/render_bench.py` measures one against the other.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, fields, replace
from datetime import UTC, date, datetime
from email.utils import format_datetime
from typing import Any

import css_inline
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from markupsafe import escape as jinja_escape

from digest import tokens
from digest.address import check_address, check_url
from digest.config import Settings
from digest.config.mail import mail_identity
from digest.errors import DigestError
from digest.match import Match, Selection
from digest.match.results import MATCHING, SUGGESTED, TRENDING
from digest.message import Message
from digest.paths import templates_dir
from digest.render import mime
from digest.render.cards import Cards, FeedbackBase, bounded_put
from digest.render.skeleton import Skeleton
from digest.render.view import (
    INTERESTS_CHARS,
    HtmlStyle,
    digest_heading,
    long_date,
    one_line,
    short_date,
    wrap,
)
from digest.subscriber import MAX_SUGGESTIONS, WEEKDAYS, Subscriber, cadence_weekday

SUBJECT_CACHE_SIZE = 5_000  # encoded Subject headers kept per renderer
_SUGGESTED_TITLE = "Suggested for you"
_SUGGESTED_NOTE = (
    "Papers none of your keywords matched, chosen by what you marked “more like this”. "
    "Each says why."
)
_SUGGESTED_NOTE_WRAPPED = wrap(_SUGGESTED_NOTE, "")  # the same for everyone: wrapped once
_UNSUBSCRIBE_POST = b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
_AUTO_SUBMITTED = b"Auto-Submitted: auto-generated\r\n"


# ---------------------------------------------------------------------------------------
# Pages


@dataclass(frozen=True, slots=True)
class _DigestPage:
    """The per-message values of a digest page (the same names in HTML and text)."""

    subject: str
    preheader: str
    date: str
    heading: str
    more: str
    reason: str
    manage_url: str
    unsubscribe_url: str
    cards: str
    has_matches: bool
    has_more: bool
    # A reader with trending gets sections, each titled, with a note and its own cards
    # (`cards`, then `cards2`); `has_matches` and `has_second` say which have any.
    first_title: str = ""
    first_note: str = ""
    first_empty: str = ""
    second_title: str = ""
    second_note: str = ""
    second_empty: str = ""
    cards2: str = ""
    sectioned: bool = False
    two: bool = False
    has_second: bool = False
    more_first: bool = False
    # Papers the reader's feedback suggests, none matched by their keywords: a last
    # section of its own (`cards3`) in either layout, shown only when it has any.
    third_title: str = ""
    third_note: str = ""
    cards3: str = ""
    has_third: bool = False
    # What the digest covers, for "nothing new matched ...": "today" or "this week".
    period: str = "today"


_CARD_BLOCKS = ("cards", "cards2", "cards3")  # the sections' cards, in order
# The page's text values, each a hole in the prebuilt page (the cards are a block, the
# flags choose the layout variant).
_PAGE_VALUES = tuple(
    field.name
    for field in fields(_DigestPage)
    if field.type == "str" and field.name not in _CARD_BLOCKS
)
_LAYOUT = tuple(field.name for field in fields(_DigestPage) if field.type == "bool")


@dataclass(frozen=True, slots=True)
class _Digest:
    """Everything a digest message needs, before it is written out."""

    recipient: str
    message_id: str
    boundary: str
    shown: tuple[Match, ...]
    second: tuple[Match, ...]  # the second section's cards, when there are two
    third: tuple[Match, ...]  # the suggested papers' cards
    feedback_base: str  # the reader's feedback links start with this (one token)
    html_page: _DigestPage
    text_page: _DigestPage


class DigestRenderer:
    """Renders digests and confirmation emails; build one per run and reuse it.

    `secret` signs the manage/unsubscribe links and keys the Message-IDs: pass
    `digest.tokens.secret_key(settings)`. Raises ConfigError for settings that cannot make
    a valid message (sender address, base URL, list id, DKIM key).
    """

    def __init__(self, settings: Settings, secret: str) -> None:
        self.settings = settings
        self._secret = secret.encode()
        identity = mail_identity(settings)
        self._from_name = identity.from_name
        self._from_address = identity.from_address
        self._confirm_address = identity.confirm_address
        self._domain = identity.domain
        self._base_url = identity.base_url
        self._site = identity.site
        self._unsubscribe_mailto = identity.unsubscribe_mailto
        self._list_name, self._list_address = identity.list_name, identity.list_address
        self._postal_address = identity.postal_address
        self._max_papers = settings.match.max_papers
        # Two sections (trending and matching) hold up to max_papers each, then up to
        # MAX_SUGGESTIONS suggested papers.
        most = 2 * self._max_papers + MAX_SUGGESTIONS
        self._number_width = max(2, len(str(most)))
        self._numbers = [self._number(i).encode("ascii") for i in range(most + 1)]
        self._dkim = identity.dkim
        self._from_line = mime.header_line(
            "From", mime.address_tokens(self._from_name, self._from_address)
        )
        self._confirm_from_line = mime.header_line(
            "From", mime.address_tokens(self._from_name, self._confirm_address)
        )
        list_name = mime.encode_phrase(self._list_name) if self._list_name else []
        self._list_id_line = mime.header_line("List-Id", [*list_name, f"<{self._list_address}>"])
        self._environment = Environment(
            loader=FileSystemLoader(templates_dir()),
            autoescape=select_autoescape(["html"], default_for_string=False, default=False),
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            undefined=StrictUndefined,
            auto_reload=False,  # templates are read once per renderer
        )
        self._css = (templates_dir() / "email" / "style.css").read_text(encoding="utf-8")
        # The page keeps its <style data-css-inline="ignore"> block (dark mode, small
        # screens); the main stylesheet is given to the inliner and never sent.
        self._page_inliner = css_inline.CSSInliner(
            minify_css=True, keep_style_tags=True, extra_css=self._css,
            load_remote_stylesheets=False,
        )  # fmt: skip
        self._nonce = secrets.token_hex(8)
        self._plain_style = HtmlStyle(
            escape=lambda value: str(jinja_escape(value)),
            mark=("<mark>", "</mark>"),
            label=('<span class="label">', "</span>"),
        )
        self._cards = Cards(
            self._environment,
            self._css,
            self._nonce,
            self._placeholder,
            number_slot=self._number(0),
            plain_style=self._plain_style,
        )
        self._page_skeletons: dict[tuple[object, ...], Skeleton] = {}
        self._subject_lines: dict[str, bytes] = {}
        self._date: tuple[datetime | None, bytes] = (None, b"")

    # -- public ------------------------------------------------------------------------

    def render_digest(
        self,
        subscriber: Subscriber,
        selection: Selection,
        digest_date: date,
        *,
        now: datetime | None = None,
    ) -> Message:
        """The digest email of `selection` for `subscriber`, dated `digest_date`.

        At most [match] max_papers papers are shown per section (the rest are counted
        with `selection.more`), then the suggested papers (at most MAX_SUGGESTIONS); each
        card has "more / less like this" links for this subscriber. The Message-ID is
        the same for the same subscriber and date. `now` is the Date header (default:
        the current time). DigestError if the subscriber's address cannot be mailed.
        """
        digest = self._prepare(subscriber, selection, digest_date)
        html_blocks: dict[str, list[bytes]] = {}
        text_blocks: dict[str, list[bytes]] = {}
        number = 1  # the text numbers the cards on across the sections
        sections = (digest.shown, digest.second, digest.third)
        base = self._cards.feedback_base(digest.feedback_base)
        for name, matches in zip(_CARD_BLOCKS, sections, strict=True):
            html_blocks[name], text_blocks[name] = self._section_cards(
                matches, number, base, suggested=name == "cards3"
            )
            number += len(matches)
        html = self._page_skeleton("html", digest.html_page).encode(
            self._page_values(digest.html_page), html_blocks
        )
        text = self._page_skeleton("txt", digest.text_page).encode(
            self._page_values(digest.text_page), text_blocks
        )
        headers = self._digest_headers(digest, self._date_line(now))
        data = mime.assemble_alternative(headers, text, html, digest.boundary)
        return self._finish(self._from_address, digest.recipient, digest.message_id, data)

    def _section_cards(
        self, matches: tuple[Match, ...], first: int, base: FeedbackBase, suggested: bool
    ) -> tuple[list[bytes], list[bytes]]:
        """A section's (HTML, text) cards, each with the reader's feedback line between its
        shared halves; the text cards numbered from `first`, a blank line between two."""
        make_card, feedback, numbers = self._cards.card, self._cards.feedback, self._numbers
        html: list[bytes] = []
        text: list[bytes] = []
        for position, match in enumerate(matches, first):
            card = make_card(match, suggested)
            html_line, text_lines = feedback(card, base)
            html.append(card.html)
            html += html_line
            html.append(card.html_tail)
            if position > first:
                text.append(mime.CRLF)
            text += (numbers[position], card.text)
            text += text_lines
            text.append(card.text_tail)
        return html, text

    def render_confirmation(
        self, subscriber: Subscriber, confirm_url: str, *, now: datetime | None = None
    ) -> Message:
        """The double opt-in email: the confirm link and the interests signed up for.

        Sent from [mail] confirm_from, without List-Unsubscribe (there is no
        subscription yet); its Message-ID is new for every call. DigestError if the
        address cannot be mailed or the link is not an http(s) URL.
        """
        return self._transactional(
            "confirm",
            subscriber,
            f"Confirm your subscription to {self._from_name}",
            preheader="One click to start.",
            url=confirm_url,
            now=now,
        )

    def render_manage_link(
        self, subscriber: Subscriber, manage_url: str, *, now: datetime | None = None
    ) -> Message:
        """The email an already subscribed address gets when it signs up again: its
        manage link (change interests, pause, unsubscribe), nothing changed meanwhile.

        Sent like the confirmation: from [mail] confirm_from, no List-Unsubscribe.
        """
        return self._transactional(
            "manage_link",
            subscriber,
            f"Your subscription to {self._from_name}",
            preheader="You are already subscribed.",
            url=manage_url,
            now=now,
        )

    def _transactional(
        self,
        kind: str,
        subscriber: Subscriber,
        subject: str,
        *,
        preheader: str,
        url: str,
        now: datetime | None,
    ) -> Message:
        """A one-off email to one person (not the digest list): templates `email/KIND.*`."""
        recipient = check_address(subscriber.email).ascii
        try:
            url = check_url(url)
        except ValueError as error:
            raise DigestError(f"the link for the {kind.replace('_', ' ')} email {error}") from None
        interests = one_line(subscriber.interests, INTERESTS_CHARS)
        page = {
            "subject": subject,
            "preheader": preheader,
            "interests": interests,
            "url": url,
            "often": _often(subscriber.cadence),
        }
        html = self._page_inliner.inline(self._render_page(f"email/{kind}.html", page))
        text = self._render_page(f"email/{kind}.txt", {**page, "interests": wrap(interests)})
        message_id = f"<{kind.replace('_', '-')}.{secrets.token_hex(12)}@{self._domain}>"
        headers = [
            self._confirm_from_line,
            mime.header_line("To", [recipient]),
            mime.header_line("Subject", mime.encode_text(subject)),
            self._date_line(now),
            b"Message-ID: " + message_id.encode("ascii") + mime.CRLF,
            _AUTO_SUBMITTED,
        ]
        data = mime.assemble_alternative(
            headers,
            [mime.encode_lines(_ending_newline(text))],
            [mime.encode_lines(_ending_newline(html))],
            mime.boundary_for(secrets.token_hex(8)),
        )
        return self._finish(self._confirm_address, recipient, message_id, data)

    # -- building a digest ---------------------------------------------------------------

    def _prepare(self, subscriber: Subscriber, selection: Selection, day: date) -> _Digest:
        recipient = check_address(subscriber.email).ascii
        matching = tuple(selection.matches[: self._max_papers])
        more = max(0, selection.more) + len(selection.matches) - len(matching)
        trending = tuple(selection.trending[: self._max_papers])
        suggested = tuple(selection.suggested[:MAX_SUGGESTIONS])  # the store allows no more
        heading = digest_heading(selection, matching, more, trending)
        weekly = cadence_weekday(subscriber.cadence) is not None
        period = "this week" if weekly else "today"
        # A weekly digest is dated by its send day and says that it covers the week to it.
        subject = f"{heading} — {'week to ' if weekly else ''}{short_date(day)}"
        tag = hmac.new(
            self._secret, f"{subscriber.id}\n{recipient}\n{day.isoformat()}".encode(), "sha256"
        ).hexdigest()[:20]
        more_text = f"…and {more} more matched. Refine your interests" if more else ""
        interests = one_line(subscriber.interests, INTERESTS_CHARS)
        reason = (
            f"You get this email because you subscribed to {self._from_name} at {self._site} "
            f"with these interests: {interests}"
        )
        sections = [
            (kind, trending if kind == TRENDING else matching)
            for kind, _ in selection.sections
            if kind != SUGGESTED  # a section of its own, after the others in any layout
        ]
        everything = [match for _, shown in sections for match in shown] or list(suggested)
        if everything:
            preheader = " · ".join(one_line(m.paper.title, 80) for m in everything[:2])
        elif selection.rule is not None and not selection.matching:
            preheader = "Nothing new on Hugging Face Daily Papers."
        else:
            preheader = f"Nothing new matched {period}."
        first, second = sections[0], sections[1] if len(sections) > 1 else (MATCHING, ())
        titles = {kind: self._section_text(kind, selection) for kind, _ in sections}
        html_page = _DigestPage(
            subject=subject,
            preheader=preheader,
            date=long_date(day),
            heading=heading,
            more=more_text + " →" if more else "",
            reason=reason,
            manage_url=self._link("manage", subscriber),
            unsubscribe_url=self._link("unsubscribe", subscriber),
            cards="",
            has_matches=bool(first[1]) if selection.rule else bool(matching),
            has_more=bool(more),
            first_title=titles[first[0]][0],
            first_note=titles[first[0]][1],
            first_empty=titles[first[0]][2],
            second_title=titles.get(second[0], ("", "", ""))[0],
            second_note=titles.get(second[0], ("", "", ""))[1],
            second_empty=titles.get(second[0], ("", "", ""))[2],
            sectioned=selection.rule is not None,
            two=len(sections) > 1,
            has_second=bool(second[1]),
            more_first=first[0] == MATCHING,
            third_title=_SUGGESTED_TITLE,
            third_note=_SUGGESTED_NOTE,
            has_third=bool(suggested),
            period=period,
        )
        text_page = replace(
            html_page,
            heading=wrap(heading, ""),
            more=more_text,
            reason=wrap(reason, ""),
            first_note=wrap(html_page.first_note, ""),
            second_note=wrap(html_page.second_note, ""),
            third_note=_SUGGESTED_NOTE_WRAPPED,
        )
        return _Digest(
            recipient=recipient,
            message_id=f"<digest.{day:%Y%m%d}.{subscriber.id}.{tag}@{self._domain}>",
            boundary=mime.boundary_for(tag),
            shown=first[1] if selection.rule else matching,
            second=second[1] if len(sections) > 1 else (),
            third=suggested,
            feedback_base=tokens.feedback_base(
                self.settings, self._secret.decode(), subscriber.id, subscriber.email
            ),
            html_page=html_page,
            text_page=text_page,
        )

    def _section_text(self, kind: str, selection: Selection) -> tuple[str, str, str]:
        """A section's title, its note (how its papers were chosen) and its empty text."""
        if kind == TRENDING:
            assert selection.rule is not None
            # "The N most upvoted": N as far as the ranks shown reach (fewer than asked
            # for when the matches above took the digest's room).
            ranks = [h.rank for m in (*selection.trending, *selection.matches) for h in m.hits]
            reached = max(ranks, default=0)
            chosen = selection.rule.describe(reached or self._max_papers)
            return (
                "Trending",
                chosen[:1].upper() + chosen[1:] + ". Trending covers the papers listed on "
                "Hugging Face; arXiv papers have no upvotes.",
                "Nothing new on Hugging Face Daily Papers since your last digest.",
            )
        return (
            "Matching your interests",
            "New papers that match your interests, best first.",
            "Nothing new matched your interests this time.",
        )

    def _link(self, purpose: str, subscriber: Subscriber) -> str:
        return tokens.link(self.settings, self._secret.decode(), purpose, subscriber.id,
                           subscriber.email)  # fmt: skip

    def _unsubscribe_targets(self, digest: _Digest) -> list[str]:
        targets = [f"<{digest.html_page.unsubscribe_url}>"]
        if self._unsubscribe_mailto:
            targets.append(f"<mailto:{self._unsubscribe_mailto}?subject=unsubscribe>")
        return targets

    def _digest_headers(self, digest: _Digest, date_line: bytes) -> list[bytes]:
        targets = self._unsubscribe_targets(digest)
        subject = digest.html_page.subject
        subject_line = self._subject_lines.get(subject)
        if subject_line is None:  # many subscribers share a subject: encode it once
            subject_line = mime.header_line("Subject", mime.encode_text(subject))
            bounded_put(self._subject_lines, subject, subject_line, SUBJECT_CACHE_SIZE)
        return [
            self._from_line,
            mime.header_line("To", [digest.recipient]),
            subject_line,
            date_line,
            b"Message-ID: " + digest.message_id.encode("ascii") + mime.CRLF,
            self._list_id_line,
            mime.header_line("List-Unsubscribe", [t + "," for t in targets[:-1]] + targets[-1:]),
            _UNSUBSCRIBE_POST,
            _AUTO_SUBMITTED,
        ]

    def _date_line(self, now: datetime | None) -> bytes:
        """The Date header of a message made at `now` (default: the current time); the
        header shows whole seconds, so it is made again only when the second changes."""
        second = (now or datetime.now(UTC)).replace(microsecond=0)
        if second != self._date[0]:
            self._date = (second, b"Date: " + format_datetime(second).encode("ascii") + mime.CRLF)
        return self._date[1]

    def _finish(self, sender: str, recipient: str, message_id: str, data: bytes) -> Message:
        """The message, DKIM-signed when that is set up."""
        if self._dkim:
            data = self._dkim.sign(data)
        return Message(sender, recipient, message_id, data)

    # -- templates and the page's skeletons ------------------------------------------------

    def _render_page(self, name: str, page: Any) -> str:
        return self._environment.get_template(name).render(
            page=page,
            sender_name=self._from_name,
            site=self._site,
            postal_address=self._postal_address,
        )

    def _number(self, position: int) -> str:
        """A text card's number, as wide as the largest: `" 7. "`; 0 gives the slot `"00. "`."""
        if position == 0:
            return "0" * self._number_width + ". "
        return f"{position:>{self._number_width}}. "

    def _placeholder(self, name: str) -> str:
        return f"@@{self._nonce}:{name}@@"

    def _page_values(self, page: _DigestPage) -> dict[str, str]:
        return {name: getattr(page, name) for name in _PAGE_VALUES}

    def _page_skeleton(self, kind: str, page: _DigestPage) -> Skeleton:
        """The digest page of this layout variant, rendered (and inlined) once."""
        key = (kind, *(getattr(page, name) for name in _LAYOUT))
        skeleton = self._page_skeletons.get(key)
        if skeleton is None:
            holes = {name: self._placeholder(name) for name in _PAGE_VALUES}
            blocks = {name: Markup(self._placeholder(f"block:{name}")) for name in _CARD_BLOCKS}
            blank = replace(page, **blocks, **holes)
            rendered = self._render_page(f"email/digest.{kind}", blank)
            if kind == "html":
                rendered = self._page_inliner.inline(rendered)
            skeleton = Skeleton(rendered, self._nonce, escape_by_context=kind == "html")
            self._page_skeletons[key] = skeleton
        return skeleton


def _ending_newline(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


def _often(cadence: str) -> str:
    """Which email a cadence gets: "a daily email", "a weekly email (Mondays)"."""
    weekday = cadence_weekday(cadence)
    if weekday is None:
        return "a daily email"
    return f"a weekly email ({WEEKDAYS[weekday].capitalize()}s)"
