"""Signed link tokens: confirm, manage and unsubscribe links in emails.

A token is signed with the service's secret (itsdangerous), bound to one purpose (a
confirm token cannot unsubscribe, and the other way round) and to one subscriber: its
id and a hash of its address, so a token cannot be replayed against a later subscriber
who happens to get the same id. Confirm tokens expire after 7 days; manage and
unsubscribe tokens never do, since they sit in every email a person keeps.

With no secret configured, one is generated on first use and kept in the data folder.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from datetime import timedelta
from functools import lru_cache
from pathlib import Path

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from digest.config import Settings
from digest.errors import ConfigError, TokenError

PURPOSES = ("confirm", "manage", "unsubscribe")
MAX_AGE = {"confirm": timedelta(days=7)}
SECRET_FILE = "secret_key"


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
    path.parent.mkdir(parents=True, exist_ok=True)
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
    max_age = MAX_AGE.get(purpose)
    try:
        payload = _serializer(secret, purpose).loads(
            token, max_age=int(max_age.total_seconds()) if max_age else None
        )
    except SignatureExpired:
        raise TokenError(f"this {purpose} link has expired") from None
    except BadSignature:
        raise TokenError(f"this {purpose} link is not valid") from None
    if (
        not isinstance(payload, list)
        or len(payload) != 2
        or not isinstance(payload[0], int)
        or not isinstance(payload[1], str)
    ):
        raise TokenError(f"this {purpose} link is not valid")
    return payload[0], payload[1]


def token_matches(tag: str, email: str) -> bool:
    """Whether a token's address tag belongs to this address."""
    return secrets.compare_digest(tag, _address_tag(email))


def link(settings: Settings, secret: str, purpose: str, subscriber_id: int, email: str) -> str:
    """The absolute URL of a confirm, manage or unsubscribe link."""
    token = make_token(secret, purpose, subscriber_id, email)
    return f"{settings.service.base_url.rstrip('/')}/{purpose}/{token}"
