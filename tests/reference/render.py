"""The reference digest: the renderer's message, built the straightforward, slow way.

Every card and the page rendered by Jinja, the whole page CSS-inlined, the message built
by `EmailMessage` with the default policy. The tests check that `DigestRenderer` makes
the same message (same headers, same HTML and text); `bench/render_bench.py` measures
the difference. It reuses the renderer's own templates, settings and per-digest values
(through its private helpers, on purpose: only how the message is built differs).
Every card gets its reader's feedback line rendered by Jinja with the links made by
`digest.tokens.feedback_url`, and the sections' cards are numbered on in the text.
"""

from __future__ import annotations

import email.policy
from dataclasses import replace
from datetime import UTC, date, datetime
from email.headerregistry import Address
from email.message import EmailMessage

from markupsafe import Markup

from digest import tokens
from digest.match import Match, Selection
from digest.message import Message
from digest.render import DigestRenderer
from digest.render.view import (
    card_context,
    html_fields,
    match_view,
    paper_view,
    text_card_context,
    text_fields,
)
from digest.subscriber import Subscriber


def reference_digest(
    renderer: DigestRenderer,
    subscriber: Subscriber,
    selection: Selection,
    digest_date: date,
    *,
    now: datetime | None = None,
) -> Message:
    """The same message as `renderer.render_digest(...)`, built the slow way."""
    r = renderer
    digest = r._prepare(subscriber, selection, digest_date)
    card_template = r._environment.get_template("email/_card.html")
    text_card_template = r._environment.get_template("email/_card.txt")
    feedback_template = r._environment.get_template("email/_feedback.html")
    text_feedback_template = r._environment.get_template("email/_feedback.txt")

    def cards(matches: tuple[Match, ...], suggested: bool) -> tuple[list[str], list[str]]:
        html_cards, text_cards = [], []
        for match in matches:
            paper = paper_view(match.paper)
            view = match_view(paper, match.hits, suggested)
            links = {
                f"{vote}_url": tokens.feedback_url(digest.feedback_base, vote, match.paper.id)
                for vote in ("more", "less")
            }
            feedback = feedback_template.render(feedback=links)
            fields = html_fields(paper, view, r._plain_style)
            html_cards.append(card_template.render(card=card_context(paper, fields, feedback)))
            text_feedback = text_feedback_template.render(feedback=links)
            text_context = text_card_context(paper, text_fields(paper, view), text_feedback)
            text_cards.append(text_card_template.render(card=text_context))
        return html_cards, text_cards

    sections = ((digest.shown, False), (digest.second, False), (digest.third, True))
    html_blocks, text_blocks = {}, {}
    first = 1  # the text numbers the cards on across the sections
    for name, (matches, suggested) in zip(("cards", "cards2", "cards3"), sections, strict=True):
        html_cards, text_cards = cards(matches, suggested)
        numbered = (r._number(i) + card for i, card in enumerate(text_cards, first))
        html_blocks[name] = Markup("".join(html_cards))
        text_blocks[name] = "\n".join(numbered)
        first += len(matches)
    html_page = replace(digest.html_page, **html_blocks)
    text_page = replace(digest.text_page, **text_blocks)
    html = r._page_inliner.inline(r._render_page("email/digest.html", html_page))
    text = r._render_page("email/digest.txt", text_page)
    message = EmailMessage(policy=email.policy.default)
    message["From"] = Address(r._from_name, addr_spec=r._from_address)
    message["To"] = digest.recipient
    message["Subject"] = digest.html_page.subject
    message["Date"] = now or datetime.now(UTC)
    message["Message-ID"] = digest.message_id
    message["List-Id"] = f"{r._list_name} <{r._list_address}>".strip()
    message["List-Unsubscribe"] = ", ".join(r._unsubscribe_targets(digest))
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(_ending_newline(text), cte="quoted-printable")
    message.add_alternative(_ending_newline(html), subtype="html", cte="quoted-printable")
    data = message.as_bytes(policy=email.policy.SMTP)
    return r._finish(r._from_address, digest.recipient, digest.message_id, data)


def _ending_newline(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"
