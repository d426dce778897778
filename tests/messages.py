"""Realistic test digests, built with the standard library until `digest.render` lands.

A digest of 20 real papers (titles and abstracts from `tests/data/papers.jsonl`) as a
multipart/alternative message with a text and an HTML part, about 50 KB on the wire,
the same shape and size as the renderer's output. Used by the send tests and by
`bench/send_bench.py`.
"""

from __future__ import annotations

import html
import json
from datetime import date, datetime
from email.message import EmailMessage
from email.policy import SMTP
from functools import cache
from pathlib import Path

from digest.message import Message
from digest.store import Database
from digest.store.models import SubscriberRow
from digest.store.outbox import Outgoing, queue_messages

PAPERS = Path(__file__).parent / "data" / "papers.jsonl"
SENDER = "digest@example.org"


@cache
def _papers() -> tuple[dict[str, str], ...]:
    with PAPERS.open(encoding="utf-8") as handle:
        return tuple(json.loads(line) for line in handle if line.strip())


def message_id(subscriber_id: int, day: date, kind: str = "digest") -> str:
    """The stable Message-ID of one subscriber's digest of one day."""
    return f"<{kind}.{day.isoformat()}.{subscriber_id}@example.org>"


def build_digest(
    subscriber_id: int,
    recipient: str,
    day: date = date(2026, 11, 23),
    *,
    papers: int = 20,
    kind: str = "digest",
    extra_body: bytes = b"",
) -> Message:
    """A complete digest `Message` of `papers` real papers for one subscriber.

    `extra_body` is appended to the text part (used to make oversized messages).
    """
    chosen = [_papers()[(subscriber_id * 7 + i) % len(_papers())] for i in range(papers)]
    text_lines = [f"Your paper digest for {day:%A %d %B %Y}", ""]
    html_parts = [f"<html><body><h1>Your paper digest for {day:%A %d %B %Y}</h1>"]
    for rank, paper in enumerate(chosen, 1):
        abstract = paper["abstract"][:900]
        text_lines += [f"{rank}. {paper['title']}", "", abstract, "", "Matched: interests", ""]
        html_parts.append(
            f'<div class="paper"><h2><a href="https://arxiv.org/abs/2511.{rank:05d}">'
            f"{html.escape(paper['title'])}</a></h2><p>{html.escape(abstract)}</p>"
            '<p class="why">Matched: <b>interests</b></p></div>'
        )
    html_parts.append("</body></html>")
    email = EmailMessage(policy=SMTP)
    email["From"] = f"Paper digest <{SENDER}>"
    email["To"] = recipient
    email["Subject"] = f"Your paper digest, {day.isoformat()}"
    email["Message-ID"] = message_id(subscriber_id, day, kind)
    text = "\n".join(text_lines)
    if extra_body:
        text += "\n" + extra_body.decode("ascii")
    email.set_content(text)
    email.add_alternative("".join(html_parts), subtype="html")
    return Message(
        sender=SENDER,
        recipient=recipient,
        message_id=email["Message-ID"],
        data=email.as_bytes(),
    )


@cache
def _template(day: date, papers: int) -> bytes:
    return build_digest(0, "reader0@template.example.org", day, papers=papers).data


def _from_template(subscriber_id: int, recipient: str, day: date, papers: int) -> Message:
    """A digest like `build_digest`'s, made by filling in one built message (fast)."""
    data = _template(day, papers)
    data = data.replace(b"reader0@template.example.org", recipient.encode(), 1)
    identifier = message_id(subscriber_id, day)
    data = data.replace(message_id(0, day).encode(), identifier.encode(), 1)
    return Message(sender=SENDER, recipient=recipient, message_id=identifier, data=data)


def queue_digests(
    database: Database,
    count: int,
    *,
    day: date = date(2026, 11, 23),
    now: datetime,
    status: str = "active",
    domain: str = "example.net",
    first: int = 0,
    papers: int = 20,
) -> list[Message]:
    """Create `count` subscribers and queue a digest of `day` for each; return the messages."""
    with database.session() as session:
        rows = [
            SubscriberRow(
                email=f"reader{n}@{domain}",
                interests="diffusion",
                status=status,
                send_time="08:00",
                timezone="UTC",
                created_at=now,
                status_changed_at=now,
                consecutive_failures=0,
            )
            for n in range(first, first + count)
        ]
        session.add_all(rows)
        session.flush()
        items = [
            Outgoing(row.id, "digest", day, _from_template(row.id, row.email, day, papers))
            for row in rows
        ]
        queue_messages(session, items, now=now)
    return [item.message for item in items]
