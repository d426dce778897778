"""What the web tests share: a settable clock, and `Site`, the app with its test client,
its store and where its mail lands (a real aiosmtpd server, or the maildir).

`Site` drives the app as a browser would: it fetches a page before posting its form, so
the CSRF token and the session cookie are the real ones.
"""

from __future__ import annotations

import email
import email.policy
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from digest.config import Settings
from digest.store import Database
from digest.store.models import OutboxRow
from digest.store.subscribers import change_status, create_subscriber, find_subscriber
from digest.subscriber import Subscriber
from digest.tokens import make_token

NOW = datetime(2026, 6, 12, 10, 0, tzinfo=UTC)  # a Friday
SECRET = "web-tests-secret-0123456789-abcdefghijklmnop"
BASE_URL = "http://digest.test"
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
MAIL_WAIT = 20.0  # seconds: an upper bound for mail to arrive, never a measured time


class Clock:
    """The app's clock: stands still until a test moves it."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def csrf_token(page: str) -> str:
    """The CSRF token in a page's (first) form."""
    found = CSRF.search(page)
    assert found, "no CSRF token in the page"
    return found.group(1)


def link_path(message: EmailMessage, purpose: str) -> str:
    """The path of the confirm/manage/unsubscribe link in a message's text part."""
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    found = re.search(re.escape(BASE_URL) + rf"(/{purpose}/[A-Za-z0-9_.\-]+)", text)
    assert found, f"no {purpose} link in:\n{text}"
    return found.group(1)


@dataclass
class Site:
    """The app under test, its client, store, clock and mailbox."""

    app: Flask
    settings: Settings
    database: Database
    clock: Clock
    smtp: Any = None  # tests.smtp_server.SmtpServer when mail goes over SMTP
    client: FlaskClient = field(init=False)

    def __post_init__(self) -> None:
        self.client = self.app.test_client()

    # -- pages and forms -------------------------------------------------------------

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        return self.client.get(path, **kwargs)

    def submit(
        self, path: str, data: dict[str, str] | None = None, *, page: str | None = None, **kw: Any
    ) -> TestResponse:
        """Post a form the way a browser does: load `page` (default: `path`) first and
        send its CSRF token along with `data`."""
        shown = self.client.get(page or path, **kw)
        fields = {"csrf_token": csrf_token(shown.get_data(as_text=True)), **(data or {})}
        return self.client.post(path, data=fields, **kw)

    def signup(
        self,
        email: str = "ada@example.org",
        interests: str = "diffusion\nlarge language model",
        send_time: str = "07:30",
        timezone: str = "Europe/Paris",
        **extra: Any,
    ) -> TestResponse:
        data = {
            "email": email,
            "interests": interests,
            "send_time": send_time,
            "timezone": timezone,
            "website": "",
        }
        return self.submit("/", {**data, **extra.pop("data", {})}, **extra)

    # -- the store -------------------------------------------------------------------

    def add_reader(
        self, email: str, interests: str, *, status: str = "active", **values: Any
    ) -> Subscriber:
        """A subscriber stored directly (08:00 UTC unless `values` say otherwise), in
        `status`: "pending" as signed up, any other through `change_status`."""
        settings = {"send_time": "08:00", "timezone": "UTC", **values}
        with self.database.session() as session:
            start = "pending" if status == "pending" else "active"
            reader = create_subscriber(session, email, interests, now=NOW, status=start, **settings)
            if status != start:
                change_status(session, reader.id, status, NOW)
                reader = find_subscriber(session, email)
            return reader

    def subscriber(self, email: str = "ada@example.org") -> Subscriber | None:
        with self.database.session() as session:
            return find_subscriber(session, email)

    def outbox(self, kind: str | None = None) -> list[tuple[str, str]]:
        """(kind, recipient) of every message queued so far, oldest first."""
        query = select(OutboxRow.kind, OutboxRow.recipient).order_by(OutboxRow.id)
        if kind:
            query = query.where(OutboxRow.kind == kind)
        with self.database.session() as session:
            return [(row.kind, row.recipient) for row in session.execute(query)]

    def token(self, purpose: str, subscriber: Subscriber) -> str:
        return make_token(SECRET, purpose, subscriber.id, subscriber.email)

    # -- mail ------------------------------------------------------------------------

    def mails(self, count: int) -> list[EmailMessage]:
        """The first `count` messages delivered, once they have all arrived."""
        deadline = time.monotonic() + MAIL_WAIT
        while True:
            raw = self._delivered()
            if len(raw) >= count or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        assert len(raw) >= count, f"{len(raw)} messages arrived, expected {count}"
        return [email.message_from_bytes(data, policy=email.policy.default) for data in raw]  # type: ignore[misc]

    def _delivered(self) -> list[bytes]:
        if self.smtp is not None:
            return [message.data for message in self.smtp.received]
        new = Path(self.settings.maildir) / "new"
        if not new.is_dir():
            return []
        files = sorted(new.iterdir(), key=lambda path: path.stat().st_mtime_ns)
        return [path.read_bytes() for path in files]

    def stop(self) -> None:
        courier = self.app.extensions["digest"].courier
        if courier is not None:
            courier.stop()
        self.database.dispose()
