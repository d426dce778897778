"""Preview: one digest rendered for an operator to look at, nothing sent.

`preview_digest` runs store -> match -> render for a stored subscriber or for ad-hoc
interests, on the papers of one day; `save_preview` writes the .eml, .html and .txt
files.

"A day's papers" means here what `digest papers` shows: the papers listed that day (the
HF list or arXiv announcement of that date, `Paper.listed`), or for a paper without a
listing day, those first seen that day (UTC). So loading a saved listing and previewing
its day shows that listing's papers, whenever it was loaded. (The daily digests keep
their own window, the papers first seen since each reader's previous digest.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from digest import match, tokens
from digest.config import Settings
from digest.errors import DigestError
from digest.message import Message
from digest.paper import Paper
from digest.render import DigestRenderer
from digest.store import Database
from digest.store.papers import papers_listed_between
from digest.store.subscribers import find_subscriber
from digest.subscriber import Subscriber


@dataclass(frozen=True)
class Preview:
    """A rendered digest that was not sent, and where it came from."""

    message: Message
    subscriber: Subscriber
    synthetic: bool  # True: ad-hoc interests, not a stored subscriber
    day: date
    papers: int  # papers of that day (listed that day, see the module docstring)
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
    papers of `day` (listed that day; default: today, UTC), without sending anything.

    With `interests`, the digest is addressed to a synthetic subscriber (id 0, the
    sender's own address). DigestError if neither or both are given, if the address is
    not a subscriber's, or if the interests do not parse.
    """
    if (email is None) == (interests is None):
        raise DigestError("preview needs either an email address or interests, not both")
    day = day or now.astimezone(UTC).date()
    with database.session() as session:
        if interests is not None:
            subscriber = subscriber_for_interests(settings, interests, now)
        else:
            found = find_subscriber(session, email or "")
            if found is None:
                raise DigestError(f"no subscriber with the address {email}; check the spelling")
            subscriber = found
        papers = papers_listed_between(session, day, day + timedelta(days=1))
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
        matched=selection.papers + selection.more,
    )


def listing_day(paper: Paper) -> date | None:
    """The day a paper counts under for `preview --date` and `papers --since`: its
    Daily Papers day, else its listing day, else the UTC day it was first seen (None for
    a paper never stored)."""
    if paper.hf_listed is not None:
        return paper.hf_listed
    if paper.listed is not None:
        return paper.listed
    return paper.first_seen_at.astimezone(UTC).date() if paper.first_seen_at else None


def papers_listed_since(database: Database, since: date) -> list[Paper]:
    """The stored papers of `since` and later days (see `listing_day`), newest first."""
    with database.session() as session:
        return papers_listed_between(session, since, None)


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
