"""Subscribers in the store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from digest.store import Database
from digest.store.subscribers import (
    count_by_status,
    create_subscriber,
    delete_expired_pending,
    find_subscriber,
    get_subscriber,
    record_confirm_sent,
    set_status,
    update_preferences,
)

NOW = datetime(2026, 6, 12, 8, 30, tzinfo=UTC)


def add(database: Database, email: str, status: str = "pending") -> int:
    with database.session() as session:
        return create_subscriber(
            session,
            email,
            "diffusion\nrlhf",
            send_time="07:15",
            timezone="Europe/Paris",
            now=NOW,
            status=status,
        ).id


def test_create_and_read_back(store_database: Database) -> None:
    subscriber_id = add(store_database, "ada@example.org")
    with store_database.session() as session:
        subscriber = get_subscriber(session, subscriber_id)
    assert subscriber is not None
    assert subscriber.email == "ada@example.org"
    assert subscriber.interests == "diffusion\nrlhf"
    assert (subscriber.status, subscriber.send_time, subscriber.timezone) == (
        "pending",
        "07:15",
        "Europe/Paris",
    )
    assert subscriber.created_at == NOW and subscriber.confirmed_at is None


def test_address_is_unique(store_database: Database) -> None:
    add(store_database, "ada@example.org")
    with pytest.raises(IntegrityError):
        add(store_database, "ada@example.org")
    with store_database.session() as session:
        assert count_by_status(session)["pending"] == 1


def test_find_ignores_case_and_space(store_database: Database) -> None:
    add(store_database, "Ada@Example.org")
    with store_database.session() as session:
        assert find_subscriber(session, "  ada@example.ORG ") is not None
        assert find_subscriber(session, "bob@example.org") is None
        assert get_subscriber(session, 999) is None


def test_status_changes(store_database: Database) -> None:
    subscriber_id = add(store_database, "ada@example.org")
    later = NOW + timedelta(hours=1)
    with store_database.session() as session:
        set_status(session, subscriber_id, "active", later)
    with store_database.session() as session:
        subscriber = get_subscriber(session, subscriber_id)
        assert subscriber is not None
        assert subscriber.status == "active"
        assert subscriber.confirmed_at == later == subscriber.status_changed_at
        set_status(session, subscriber_id, "paused", later + timedelta(days=1))
        set_status(session, subscriber_id, "active", later + timedelta(days=2))
    with store_database.session() as session:
        subscriber = get_subscriber(session, subscriber_id)
        assert subscriber is not None and subscriber.confirmed_at == later
        assert count_by_status(session) == {
            "pending": 0,
            "active": 1,
            "paused": 0,
            "unsubscribed": 0,
            "bounced": 0,
        }


def test_unknown_status_and_subscriber(store_database: Database) -> None:
    subscriber_id = add(store_database, "ada@example.org")
    with store_database.session() as session, pytest.raises(ValueError, match="unknown"):
        set_status(session, subscriber_id, "deleted", NOW)
    with store_database.session() as session, pytest.raises(LookupError):
        set_status(session, 12345, "active", NOW)


def test_pending_sign_ups_expire_a_week_after_their_last_confirmation_link(
    store_database: Database,
) -> None:
    stale = add(store_database, "stale@example.org")
    active = add(store_database, "active@example.org", status="active")
    resent = add(store_database, "resent@example.org")
    rejoined = add(store_database, "rejoined@example.org", status="active")
    with store_database.session() as session:
        record_confirm_sent(session, stale, NOW)
        record_confirm_sent(session, resent, NOW + timedelta(days=5))
        # Subscribed at NOW, unsubscribed, and signed up again (pending anew) on day 7.
        set_status(session, rejoined, "unsubscribed", NOW + timedelta(hours=1))
        update_preferences(session, rejoined, interests="agents")
        set_status(session, rejoined, "pending", NOW + timedelta(days=7))
        record_confirm_sent(session, rejoined, NOW + timedelta(days=7))
    cleanup = NOW + timedelta(days=8)
    with store_database.session() as session:
        assert delete_expired_pending(session, cleanup - timedelta(days=7)) == 1
    with store_database.session() as session:
        assert get_subscriber(session, stale) is None
        for kept in (active, resent, rejoined):
            assert get_subscriber(session, kept) is not None
        # A week after the last resend, that one goes too; active subscribers never do.
        assert delete_expired_pending(session, NOW + timedelta(days=5, seconds=1)) == 1
    with store_database.session() as session:
        assert get_subscriber(session, resent) is None
        assert get_subscriber(session, active) is not None
