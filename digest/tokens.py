"""Signed link tokens: confirm, manage, unsubscribe and feedback links in emails.

A token is signed with the service's secret (itsdangerous), bound to one purpose (a
confirm token cannot unsubscribe, and the other way round) and to one subscriber: its
id and a hash of its address, so a token cannot be replayed against a later subscriber
who happens to get the same id. Confirm tokens expire after 7 days; manage and
unsubscribe tokens never do, since they sit in every email a person keeps.

Two tokens carry more than that. A confirm token made by `make_confirm_token` carries the
interests, time and zone the sign-up asked for: the email shows them and the click
applies them, so a sign-up changes nothing stored before the mailbox's owner agrees. An
undo token (`make_undo_token`) is the "Resubscribe" button of the page that confirms an
unsubscribe: it names the unsubscribe it undoes and the browser that made it, and lasts
15 minutes by the caller's clock. The unsubscribe link, which never expires, brings
nobody back.

With no secret configured, one is generated on first use and kept in the data folder.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from digest.config import Settings
from digest.errors import ConfigError, TokenError
from digest.paths import private_folder
from digest.subscriber import DAILY

PURPOSES = ("confirm", "manage", "unsubscribe", "undo", "feedback")
MAX_AGE = {"confirm": timedelta(days=7)}
SECRET_FILE = "secret_key"
# Subscriber ids are positive and fit the id column on every backend (PostgreSQL's
# INTEGER is 32-bit): a signed id outside this range names nobody, and handed to the
# database it would fail there (SQLite overflows past 64 bits, PostgreSQL past 32).
MAX_ID = 2**31 - 1


def secret_key(settings: Settings) -> str:
    """The signing secret: from the config/environment, else kept in the data folder."""
    if settings.web.secret_key:
        return settings.web.secret_key
    path = settings.data_dir / SECRET_FILE
    try:
        return _read_or_create_secret(path)
    except OSError as error:
        raise ConfigError(
            f"cannot keep the generated secret in {path}: {error.strerror}; "
            "set [web] secret_key or DIGEST_SECRET_KEY"
        ) from None


def _read_or_create_secret(path: Path) -> str:
    if path.is_file():
        text = path.read_text().strip()
        if text:
            return text
    private_folder(path.parent)  # the data folder: private, whoever makes it first
    secret = secrets.token_urlsafe(48)
    # Created exclusively and readable by the owner only; a concurrent first run that
    # loses the race reads the winner's secret.
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secret + "\n")
    return secret


def _address_tag(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:16]


@lru_cache(maxsize=16)  # one per (secret, purpose); building one costs as much as a signature
def _serializer(secret: str, purpose: str) -> URLSafeTimedSerializer:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}")
    return URLSafeTimedSerializer(secret, salt=f"digest-{purpose}")


def make_token(secret: str, purpose: str, subscriber_id: int, email: str) -> str:
    """A URL-safe token for one purpose and one subscriber."""
    return _serializer(secret, purpose).dumps([subscriber_id, _address_tag(email)])


def read_token(secret: str, purpose: str, token: str) -> tuple[int, str]:
    """The (subscriber id, address tag) a token names; TokenError if it is not valid.

    Callers must check the tag against the subscriber's address with `token_matches`.
    """
    payload = _load(secret, purpose, token)
    if not _names_subscriber(payload, 2):
        raise TokenError(f"this {purpose} link is not valid")
    return payload[0], payload[1]


def token_matches(tag: str, email: str) -> bool:
    """Whether a token's address tag belongs to this address."""
    return secrets.compare_digest(tag, _address_tag(email))


def link(settings: Settings, secret: str, purpose: str, subscriber_id: int, email: str) -> str:
    """The absolute URL of a confirm, manage or unsubscribe link."""
    token = make_token(secret, purpose, subscriber_id, email)
    return f"{settings.service.base_url.rstrip('/')}/{purpose}/{token}"


# What a sign-up asks for, in the order a confirm token carries it. Tokens made before
# readers chose a cadence carry the first three: they confirm a daily digest.
PREFERENCES = ("interests", "send_time", "timezone", "cadence")
_EARLIER_PREFERENCES = PREFERENCES[:3]
# How long the page that confirms an unsubscribe can undo it; after that, coming back
# means signing up again and confirming from the email.
UNDO_MAX_AGE = timedelta(minutes=15)
# The statuses an undo may return to: a subscription the person had. Never "pending" (an
# unconfirmed sign-up, perhaps a stranger's) nor "bounced".
UNDO_STATUSES = ("active", "paused")


def _load(secret: str, purpose: str, token: str) -> Any:
    """A token's payload, signature and (for confirm) age checked; TokenError if not."""
    max_age = MAX_AGE.get(purpose)
    try:
        return _serializer(secret, purpose).loads(
            token, max_age=int(max_age.total_seconds()) if max_age else None
        )
    except SignatureExpired:
        raise TokenError(f"this {purpose} link has expired") from None
    except BadSignature:
        raise TokenError(f"this {purpose} link is not valid") from None


def _names_subscriber(payload: Any, size: int) -> bool:
    """Whether a payload is a list of `size` items starting with a valid id and tag."""
    return (
        isinstance(payload, list)
        and len(payload) == size
        and type(payload[0]) is int  # not a bool: JSON true is no id
        and 1 <= payload[0] <= MAX_ID
        and isinstance(payload[1], str)
    )


def make_confirm_token(
    secret: str, subscriber_id: int, email: str, preferences: Mapping[str, str]
) -> str:
    """A confirm token that also carries the preferences the sign-up asked for."""
    values = [preferences[key] for key in PREFERENCES]
    return _serializer(secret, "confirm").dumps([subscriber_id, _address_tag(email), *values])


def read_confirm_token(secret: str, token: str) -> tuple[int, str, dict[str, str] | None]:
    """(subscriber id, address tag, preferences to apply) of a confirm token; the
    preferences are None for a token that carries none (`make_token`, links sent by
    earlier versions): the stored ones stay. TokenError if not valid or expired."""
    payload = _load(secret, "confirm", token)
    if _names_subscriber(payload, 2):
        return payload[0], payload[1], None
    for names in (PREFERENCES, _EARLIER_PREFERENCES):
        if _names_subscriber(payload, 2 + len(names)) and all(
            isinstance(v, str) for v in payload[2:]
        ):
            preferences = dict(zip(names, payload[2:], strict=True))
            preferences.setdefault("cadence", DAILY)
            return payload[0], payload[1], preferences
    raise TokenError("this confirm link is not valid")


class Undo(NamedTuple):
    """What an undo token names: the subscriber, the unsubscribe (when it was written and
    the status it left) and the browser it was shown to (see `browser_tag`)."""

    subscriber_id: int
    tag: str
    unsubscribed_at: datetime
    back_to: str
    browser: str


def browser_tag(browser_secret: str) -> str:
    """What an undo token keeps of a browser's session secret (never the secret itself)."""
    return hashlib.sha256(browser_secret.encode()).hexdigest()[:32]


def make_undo_token(
    secret: str,
    subscriber_id: int,
    email: str,
    *,
    unsubscribed_at: datetime,
    back_to: str,
    browser: str,
) -> str:
    """The token of the button that undoes one unsubscribe, for one browser."""
    if back_to not in UNDO_STATUSES:
        raise ValueError(f"an unsubscribe cannot be undone back to {back_to!r}")
    payload = [subscriber_id, _address_tag(email), unsubscribed_at.isoformat(), back_to, browser]
    return _serializer(secret, "undo").dumps(payload)


def read_undo_token(secret: str, token: str, now: datetime) -> Undo:
    """What an undo token names, if it is valid and its unsubscribe less than
    `UNDO_MAX_AGE` old at `now` (the caller's clock); TokenError otherwise."""
    payload = _load(secret, "undo", token)
    if not (
        _names_subscriber(payload, 5)
        and all(isinstance(value, str) for value in payload[2:])
        and payload[3] in UNDO_STATUSES
    ):
        raise TokenError("this undo button is not valid")
    try:
        unsubscribed_at = datetime.fromisoformat(payload[2])
    except ValueError:
        raise TokenError("this undo button is not valid") from None
    if unsubscribed_at.tzinfo is None:
        raise TokenError("this undo button is not valid")
    if not timedelta(0) <= now - unsubscribed_at <= UNDO_MAX_AGE:
        raise TokenError("this undo button has expired")
    return Undo(payload[0], payload[1], unsubscribed_at, payload[3], payload[4])


FEEDBACK_VOTES = ("more", "less")


def feedback_base(settings: Settings, secret: str, subscriber_id: int, email: str) -> str:
    """The start of a reader's "more / less like this" links: one token per digest, bound
    to the purpose "feedback" and to the reader; `feedback_url` adds the vote and paper."""
    token = make_token(secret, "feedback", subscriber_id, email)
    return f"{settings.service.base_url.rstrip('/')}/feedback/{token}"


def feedback_url(base: str, vote: str, paper_id: str) -> str:
    """A "more like this" / "less like this" link: `BASE/more/PAPER_ID` (the page it
    opens has the one button that records the vote, so a mail scanner records nothing)."""
    if vote not in FEEDBACK_VOTES:
        raise ValueError(f"unknown vote {vote!r}")
    return f"{base}/{vote}/{quote(paper_id, safe='/')}"
