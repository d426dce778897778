"""Preview: one digest rendered for an operator to look at, nothing sent.

`preview_digest` runs store -> match -> render for a stored subscriber or for ad-hoc
interests, on the papers first seen on one day; `save_preview` writes the .eml, .html
and .txt files.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from digest import match, tokens
from digest.config import Settings
from digest.errors import DigestError
from digest.message import Message
from digest.render import DigestRenderer
from digest.store import Database
from digest.store.papers import papers_first_seen_between
from digest.store.subscribers import find_subscriber
from digest.subscriber import Subscriber


@dataclass(frozen=True)
class Preview:
    """A rendered digest that was not sent, and where it came from."""

    message: Message
    subscriber: Subscriber
    synthetic: bool  # True: ad-hoc interests, not a stored subscriber
    day: date
    papers: int  # papers first seen that day
    matched: int  # papers in the digest, plus those counted as "more"


def preview_digest(
    settings: Settings,
    database: Database,
    *,
    email: str | None = None,
    interests: str | None = None,
    day: date | None = None,
    now: datetime,
) -> Preview:
    """Render the digest a subscriber (by address) or ad-hoc interests would get for the
    papers first seen on `day` (UTC; default: today), without sending anything.

    With `interests`, the digest is addressed to a synthetic subscriber (id 0, the
    sender's own address). DigestError if neither or both are given, if the address is
    not a subscriber's, or if the interests do not parse.
    """
    if (email is None) == (interests is None):
        raise DigestError("preview needs either an email address or interests, not both")
    day = day or now.astimezone(UTC).date()
    start = datetime.combine(day, time.min, tzinfo=UTC)
    with database.session() as session:
        if interests is not None:
            subscriber = subscriber_for_interests(settings, interests, now)
        else:
            found = find_subscriber(session, email or "")
            if found is None:
                raise DigestError(f"no subscriber with the address {email}; check the spelling")
            subscriber = found
        papers = papers_first_seen_between(session, start, start + timedelta(days=1))
    selection = match.match_subscriber(
        match.parse_interests(subscriber.interests), papers, settings.match.max_papers
    )
    renderer = DigestRenderer(settings, tokens.secret_key(settings))
    message = renderer.render_digest(subscriber, selection, day, now=now)
    return Preview(
        message=message,
        subscriber=subscriber,
        synthetic=interests is not None,
        day=day,
        papers=len(papers),
        matched=len(selection.matches) + selection.more,
    )


def subscriber_for_interests(settings: Settings, interests: str, now: datetime) -> Subscriber:
    """A stand-in subscriber for previewing ad-hoc interests: id 0, the sender's address."""
    return Subscriber(
        id=0,
        email=settings.mail.from_address,
        interests=interests,
        status="active",
        send_time=settings.schedule.default_send_time,
        timezone=settings.service.timezone,
        created_at=now,
        confirmed_at=now,
    )


def save_preview(preview: Preview, folder: Path) -> list[Path]:
    """Write the preview as `.eml`, `.html` and `.txt` files in `folder`; their paths."""
    message = preview.message
    who = "interests" if preview.synthetic else f"subscriber-{preview.subscriber.id}"
    stem = f"digest-{preview.day.isoformat()}-{who}"
    contents = {".eml": message.data}
    for suffix, kind in ((".html", "html"), (".txt", "plain")):
        contents[suffix] = message.body(kind).encode("utf-8")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for suffix, data in contents.items():
            path = folder / (stem + suffix)
            path.write_bytes(data)
            paths.append(path)
    except OSError as error:
        raise DigestError(f"cannot write the preview to {folder}: {error.strerror}") from None
    return paths
