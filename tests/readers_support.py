"""What the tests of readers (`digest.jobs.readers`) and of their CSV files
(`digest.jobs.reader_files`) share: settings that can mail, and readers stored directly."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from digest.config import Settings
from digest.jobs.readers import ReaderError
from digest.store import Database
from digest.store.models import OutboxMessageRow, OutboxRow, SubscriberRow
from digest.store.subscribers import change_status, create_subscriber, find_subscriber
from digest.subscriber import Subscriber
from tests.web_support import BASE_URL, NOW, SECRET

EARLIER = NOW - timedelta(days=20)


def store_reader(database: Database, email: str, status: str, interests: str = "astrology") -> None:
    """A reader stored 20 days ago, in `status`."""
    with database.session() as session:
        first = "pending" if status == "pending" else "active"
        reader = create_subscriber(
            session, email, interests, send_time="08:00", timezone="UTC", now=EARLIER,
            status=first, consent=None if first == "pending" else "link",
        )  # fmt: skip
        if status != first:
            change_status(session, reader.id, status, EARLIER + timedelta(days=1))


def stored(database: Database, email: str) -> Subscriber:
    with database.session() as session:
        found = find_subscriber(session, email)
    assert found is not None, email
    return found


def outbox(database: Database) -> list[tuple[str, str]]:
    with database.session() as session:
        rows = session.execute(select(OutboxRow.kind, OutboxRow.recipient).order_by(OutboxRow.id))
        return [(kind, recipient) for kind, recipient in rows]


def counts(database: Database) -> tuple[int, int, int]:
    """Subscribers, outbox rows, outbox messages: what "nothing stored" compares."""
    with database.session() as session:
        return (
            session.scalar(select(func.count()).select_from(SubscriberRow)) or 0,
            session.scalar(select(func.count()).select_from(OutboxRow)) or 0,
            session.scalar(select(func.count()).select_from(OutboxMessageRow)) or 0,
        )


def refused_with(call: Any, message: str) -> None:
    """`call()` raises ReaderError, its one line starting with `message`."""
    with pytest.raises(ReaderError) as refused:
        call()
    assert str(refused.value).startswith(message), str(refused.value)


def mail_settings(make_settings: Any) -> Settings:
    """Settings that can mail: a base URL for the links, a sender, a secret."""
    return make_settings(
        service={"base_url": BASE_URL, "timezone": "Europe/Paris"},
        web={"secret_key": SECRET},
        mail={"from_address": "digest@example.org"},
        schedule={"default_send_time": "07:00"},
    )
