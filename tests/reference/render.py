"""The reference digest: the renderer's message, built the straightforward, slow way.

Every card and the page rendered by Jinja, the whole page CSS-inlined, the message built
by `EmailMessage` with the default policy. The tests check that `DigestRenderer` makes
the same message (same headers, same HTML and text); `bench/render_bench.py` measures
the difference. It reuses the renderer's own templates, settings and per-digest values
(through its private helpers, on purpose: only how the message is built differs).
"""

from __future__ import annotations

import email.policy
from dataclasses import replace
from datetime import UTC, date, datetime
from email.headerregistry import Address
from email.message import EmailMessage

from markupsafe import Markup

from digest.match import Selection
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
    html_cards, text_cards = [], []
    for match in digest.shown:
        paper = paper_view(match.paper)
        view = match_view(paper, match.hits)
        fields = html_fields(paper, view, r._plain_style)
        html_cards.append(card_template.render(card=card_context(paper, fields)))
        text_context = text_card_context(paper, text_fields(paper, view))
        text_cards.append(text_card_template.render(card=text_context))
    numbered = (r._number(i) + card for i, card in enumerate(text_cards, 1))
    html_page = replace(digest.html_page, cards=Markup("".join(html_cards)))
    text_page = replace(digest.text_page, cards="\n".join(numbered))
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
