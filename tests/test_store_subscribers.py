"""Subscribers in the store."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError

from digest.store import Database
from digest.store.models import SubscriberRow
from digest.store.outbox import Result, claim_due, queue_message, record_results
from digest.store.outbox_admin import reactivate_subscriber, subscriber_messages
from digest.store.subscribers import (
    FIRST_DIGEST_LOOKBACK,
    Erased,
    NewReader,
    change_status,
    count_by_status,
    create_subscriber,
    create_subscribers,
    delete_expired_pending,
    erase_subscriber,
    find_subscriber,
    find_subscribers,
    get_subscriber,
    iter_subscribers,
    lock_subscribers,
    record_confirm_sent,
    update_preferences,
)
from digest.subscriber import STATUSES, Subscriber, next_send_at
from tests.messages import build_digest
from tests.outbox_rows import get_entry

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
        change_status(session, subscriber_id, "active", later)
    with store_database.session() as session:
        subscriber = get_subscriber(session, subscriber_id)
        assert subscriber is not None
        assert subscriber.status == "active"
        assert subscriber.confirmed_at == later == subscriber.status_changed_at
        change_status(session, subscriber_id, "paused", later + timedelta(days=1))
        change_status(session, subscriber_id, "active", later + timedelta(days=2))
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
        change_status(session, subscriber_id, "deleted", NOW)
    with store_database.session() as session:
        assert change_status(session, 12345, "active", NOW) == []  # no such subscriber


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
        change_status(session, rejoined, "unsubscribed", NOW + timedelta(hours=1))
        update_preferences(session, rejoined, interests="agents")
        change_status(session, rejoined, "pending", NOW + timedelta(days=7))
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


# --- change_status: every transition keeps the subscriber's invariants ----------------


def read(database: Database, subscriber_id: int) -> Subscriber:
    """The subscriber as stored, read in a fresh session (no object cached from a write)."""
    with database.session() as session:
        subscriber = get_subscriber(session, subscriber_id)
    assert subscriber is not None
    return subscriber


def assert_consistent(subscriber: Subscriber) -> None:
    """The rules every stored subscriber keeps, whatever happened to them."""
    assert subscriber.status in STATUSES
    assert (subscriber.next_digest_at is not None) == (subscriber.status == "active")
    if subscriber.status == "active":
        assert subscriber.confirmed_at is not None


def assert_scheduled_from(subscriber: Subscriber, when: datetime) -> None:
    """Scheduled as someone who became active at `when` (their own time and zone)."""
    due = next_send_at(subscriber.send_time, subscriber.timezone, when)
    assert subscriber.next_digest_at == due
    assert subscriber.last_digest_at is not None
    assert subscriber.last_digest_at >= when - FIRST_DIGEST_LOOKBACK


def move(
    database: Database,
    ids: int | Iterable[int],
    status: str,
    when: datetime,
    only_from: Collection[str] | None = None,
) -> list[int]:
    with database.session() as session:
        return change_status(session, ids, status, when, only_from=only_from)


def set_fields(database: Database, subscriber_id: int, **fields: object) -> None:
    with database.session() as session:
        row = session.get(SubscriberRow, subscriber_id)
        for name, value in fields.items():
            setattr(row, name, value)


def test_confirming_schedules_the_first_digest(store_database: Database) -> None:
    ada = add(store_database, "ada@example.org")
    assert read(store_database, ada).next_digest_at is None
    confirmed = NOW + timedelta(hours=1)
    assert move(store_database, ada, "active", confirmed, only_from=("pending",)) == [ada]
    subscriber = read(store_database, ada)
    assert_consistent(subscriber)
    assert subscriber.status == "active"
    assert subscriber.status_changed_at == subscriber.confirmed_at == confirmed
    # 07:15 in Paris (05:15 UTC) has passed on the 12th: the first digest is the next day's.
    assert subscriber.next_digest_at == datetime(2026, 6, 13, 5, 15, tzinfo=UTC)
    assert subscriber.last_digest_at == confirmed - FIRST_DIGEST_LOOKBACK
    assert subscriber.consecutive_failures == 0


def test_created_active_follows_the_same_rules(store_database: Database) -> None:
    ada = add(store_database, "ada@example.org", status="active")
    paused = add(store_database, "bob@example.org", status="paused")
    subscriber = read(store_database, ada)
    assert_consistent(subscriber)
    assert subscriber.status_changed_at == subscriber.confirmed_at == NOW
    assert_scheduled_from(subscriber, NOW)
    assert subscriber.last_digest_at == NOW - FIRST_DIGEST_LOOKBACK
    never_active = read(store_database, paused)
    assert_consistent(never_active)
    assert (never_active.status, never_active.confirmed_at) == ("paused", None)


@pytest.mark.parametrize("status", ["paused", "unsubscribed", "bounced", "pending"])
def test_leaving_active_clears_the_schedule(store_database: Database, status: str) -> None:
    ada = add(store_database, "ada@example.org", status="active")
    set_fields(store_database, ada, consecutive_failures=1)
    left = NOW + timedelta(days=2)
    assert move(store_database, [ada], status, left) == [ada]
    subscriber = read(store_database, ada)
    assert_consistent(subscriber)
    assert (subscriber.status, subscriber.status_changed_at) == (status, left)
    assert subscriber.next_digest_at is None
    # Only becoming active touches these.
    assert subscriber.confirmed_at == NOW
    assert subscriber.consecutive_failures == 1


def test_resuming_reschedules_from_now_and_keeps_the_first_confirmation(
    store_database: Database,
) -> None:
    ada = add(store_database, "ada@example.org", status="active")
    move(store_database, ada, "paused", NOW + timedelta(days=1))
    resumed = NOW + timedelta(days=10, hours=3)
    assert move(store_database, ada, "active", resumed, only_from=("paused",)) == [ada]
    subscriber = read(store_database, ada)
    assert_consistent(subscriber)
    assert subscriber.confirmed_at == NOW  # set once, when first active
    assert subscriber.status_changed_at == resumed
    assert_scheduled_from(subscriber, resumed)
    # The papers seen during the pause are skipped: the watermark moves up to a day back.
    assert subscriber.last_digest_at == resumed - FIRST_DIGEST_LOOKBACK


def test_a_recent_watermark_is_never_moved_back(store_database: Database) -> None:
    ada = add(store_database, "ada@example.org", status="active")
    move(store_database, ada, "paused", NOW + timedelta(hours=1))
    recent = NOW + timedelta(hours=2)  # a digest was done just before the pause took
    set_fields(store_database, ada, last_digest_at=recent)
    assert move(store_database, ada, "active", NOW + timedelta(hours=3)) == [ada]
    assert read(store_database, ada).last_digest_at == recent


def test_reactivating_a_bounced_address_forgets_its_failures(store_database: Database) -> None:
    ada = add(store_database, "ada@example.org", status="active")
    set_fields(store_database, ada, consecutive_failures=3)
    move(store_database, ada, "bounced", NOW + timedelta(days=1))
    later = NOW + timedelta(days=5)
    with store_database.session() as session:
        assert reactivate_subscriber(session, ada, later) is True
        assert reactivate_subscriber(session, ada, later) is False
    subscriber = read(store_database, ada)
    assert_consistent(subscriber)
    assert (subscriber.status, subscriber.consecutive_failures) == ("active", 0)
    assert subscriber.status_changed_at == later and subscriber.confirmed_at == NOW
    assert_scheduled_from(subscriber, later)
    # Only a bounced address is reactivated; a paused one stays paused.
    move(store_database, ada, "paused", later)
    with store_database.session() as session:
        assert reactivate_subscriber(session, ada, later) is False
        with pytest.raises(LookupError):
            reactivate_subscriber(session, 12345, later)
    assert read(store_database, ada).status == "paused"


def test_signing_up_again_is_pending_and_unscheduled(store_database: Database) -> None:
    left = add(store_database, "left@example.org", status="active")
    staying = add(store_database, "staying@example.org", status="active")
    move(store_database, left, "unsubscribed", NOW + timedelta(hours=1))
    again = NOW + timedelta(days=3)
    rejoining = ("pending", "unsubscribed", "bounced")
    changed = move(store_database, [left, staying], "pending", again, only_from=rejoining)
    assert changed == [left]
    pending = read(store_database, left)
    assert_consistent(pending)
    assert (pending.status, pending.status_changed_at, pending.next_digest_at) == (
        "pending",
        again,
        None,
    )
    assert read(store_database, staying).status == "active"


def test_a_subscriber_already_there_or_unknown_is_left_alone(store_database: Database) -> None:
    ada = add(store_database, "ada@example.org", status="active")
    before = read(store_database, ada)
    assert move(store_database, [ada, 12345], "active", NOW + timedelta(days=1)) == []
    assert read(store_database, ada) == before
    with store_database.session() as session, pytest.raises(ValueError, match="unknown"):
        change_status(session, ada, "paused", NOW, only_from=("gone",))


def test_objects_the_session_holds_read_the_change(store_database: Database) -> None:
    ada = add(store_database, "ada@example.org")
    with store_database.session() as session:
        assert get_subscriber(session, ada).status == "pending"  # now in the session
        change_status(session, ada, "active", NOW)
        subscriber = get_subscriber(session, ada)
        assert subscriber.status == "active" and subscriber.next_digest_at is not None
        change_status(session, ada, "bounced", NOW)
        subscriber = get_subscriber(session, ada)
        assert subscriber.status == "bounced" and subscriber.next_digest_at is None


def test_many_subscribers_change_at_once(store_database: Database) -> None:
    # More than one statement's worth of ids, in several time zones and times.
    zones = [("07:15", "Europe/Paris"), ("06:00", "America/New_York"), ("21:30", "Asia/Tokyo")]
    with store_database.session() as session:
        ids = [
            create_subscriber(
                session,
                f"reader{n}@example.org",
                "x",
                send_time=zones[n % 3][0],
                timezone=zones[n % 3][1],
                now=NOW,
                status="paused" if n % 4 == 0 else "pending",
            ).id
            for n in range(1100)
        ]
    paused = [sid for n, sid in enumerate(ids) if n % 4 == 0]
    pending = sorted(set(ids) - set(paused))
    set_fields(store_database, pending[0], last_digest_at=NOW + timedelta(hours=1))
    confirmed = NOW + timedelta(hours=2)
    changed = move(store_database, ids, "active", confirmed, only_from=("pending",))
    assert changed == pending
    with store_database.session() as session:
        assert count_by_status(session)["active"] == len(pending)
    for sid in (*pending[:3], pending[-1], paused[0], paused[-1]):
        subscriber = read(store_database, sid)
        assert_consistent(subscriber)
        if sid in paused:
            assert subscriber.status == "paused" and subscriber.confirmed_at is None
            continue
        assert subscriber.status_changed_at == subscriber.confirmed_at == confirmed
        assert_scheduled_from(subscriber, confirmed)
    assert read(store_database, pending[0]).last_digest_at == NOW + timedelta(hours=1)
    assert read(store_database, pending[1]).last_digest_at == confirmed - FIRST_DIGEST_LOOKBACK
    # And all of them bounced: those already paused too, none scheduled any more.
    bounced = NOW + timedelta(days=1)
    assert move(store_database, reversed(ids), "bounced", bounced) == sorted(ids)
    with store_database.session() as session:
        assert count_by_status(session)["bounced"] == len(ids)
        scheduled = select(func.count()).where(SubscriberRow.next_digest_at.is_not(None))
        assert session.scalar(scheduled) == 0
    assert read(store_database, ids[-1]).status_changed_at == bounced


# --- the bounce path: a permanent failure recorded by the sender -------------------------

DAY = date(2026, 6, 13)


def queue_and_claim(database: Database, subscriber_id: int, days: int = 1) -> list[int]:
    """Queue `days` digests for a subscriber and claim them; the outbox row ids."""
    with database.session() as session:
        for offset in range(days):
            day = DAY + timedelta(days=offset)
            queue_message(
                session,
                subscriber_id=subscriber_id,
                kind="digest",
                digest_date=day,
                message=build_digest(subscriber_id, "ada@example.org", day, papers=2),
                now=NOW,
            )
        return [job.id for job in claim_due(session, now=NOW, limit=days, claimer="h:1:z")]


def test_a_550_unschedules_the_bounced_subscriber(store_database: Database) -> None:
    ada = add(store_database, "ada@example.org", status="active")
    assert read(store_database, ada).next_digest_at is not None
    (row,) = queue_and_claim(store_database, ada)
    failed = Result(
        row, ada, "failed", reply_code=550, reply="5.1.1 no such user", bounce="suppress"
    )
    with store_database.session() as session:
        assert record_results(session, [failed], now=NOW, bounce_threshold=3) == [ada]
    subscriber = read(store_database, ada)
    assert_consistent(subscriber)
    assert (subscriber.status, subscriber.status_changed_at) == ("bounced", NOW)
    assert subscriber.next_digest_at is None
    with store_database.session() as session:
        assert get_entry(session, row).state == "failed"


def test_counted_bounces_unschedule_at_the_threshold(store_database: Database) -> None:
    ada = add(store_database, "ada@example.org", status="active")
    rows = queue_and_claim(store_database, ada, days=2)
    for n, row in enumerate(rows, 1):
        failed = Result(row, ada, "failed", reply_code=552, reply="too big", bounce="count")
        with store_database.session() as session:
            bounced = record_results(session, [failed], now=NOW, bounce_threshold=2)
        subscriber = read(store_database, ada)
        assert_consistent(subscriber)
        assert subscriber.consecutive_failures == n
        if n < 2:
            assert bounced == [] and subscriber.next_digest_at is not None
    assert bounced == [ada]
    assert (subscriber.status, subscriber.next_digest_at) == ("bounced", None)


def _paused_behind_the_sessions_back(session, subscriber_id: int) -> SubscriberRow:
    """Another request pauses the reader: the row the session holds still says active
    (returned, so the session keeps holding it: it holds rows weakly)."""
    held = session.get(SubscriberRow, subscriber_id)
    assert held.status == "active"
    session.execute(
        update(SubscriberRow)
        .where(SubscriberRow.id == subscriber_id)
        .values(status="paused", next_digest_at=None),
        execution_options={"synchronize_session": False},
    )
    assert held.status == "active"  # stale, as a row read before a concurrent change
    return held


def test_a_new_time_reschedules_only_a_reader_still_active(store_database: Database) -> None:
    active = add(store_database, "ada@example.org", status="active")
    with store_database.session() as session:
        held = _paused_behind_the_sessions_back(session, active)
        update_preferences(session, active, send_time="18:00", now=NOW)
        del held
    with store_database.session() as session:
        reader = get_subscriber(session, active)
    assert (reader.status, reader.send_time, reader.next_digest_at) == ("paused", "18:00", None)


def test_a_new_time_of_an_active_reader_is_read_back_in_the_same_session(
    store_database: Database,
) -> None:
    active = add(store_database, "ada@example.org", status="active")
    with store_database.session() as session:
        update_preferences(session, active, send_time="18:00", now=NOW)
        # 18:00 in Paris is 16:00 UTC, still to come on 12 June.
        assert get_subscriber(session, active).next_digest_at == datetime(
            2026, 6, 12, 16, 0, tzinfo=UTC
        )


def test_addresses_are_found_through_an_index_whatever_their_case(
    store_database: Database,
) -> None:
    """`find_subscriber` compares lower(email): an expression index answers it (a scan
    of every subscriber cost each sign-up 5 ms at 33,000)."""
    catalog = {
        "sqlite": "SELECT name FROM sqlite_master WHERE type = 'index'",
        "postgresql": "SELECT indexname FROM pg_indexes WHERE tablename = 'subscribers'",
    }[store_database.engine.dialect.name]
    with store_database.engine.connect() as connection:
        names = set(connection.execute(text(catalog)).scalars())
        assert "ix_subscribers_email_lower" in names
        if store_database.engine.dialect.name == "sqlite":
            plan = connection.execute(
                text("EXPLAIN QUERY PLAN SELECT id FROM subscribers WHERE lower(email) = 'a@b.c'")
            ).all()
            assert "USING INDEX ix_subscribers_email_lower" in str(plan)


# --- many at once, and erasure (digest subscribers import/export/remove) ---------------


def _readers(count: int, start: int = 0) -> list[NewReader]:
    return [
        NewReader(f"Reader{n}@Example.org", f"topic {n}", "07:15", "Europe/Paris", "weekly:tue")
        for n in range(start, start + count)
    ]


def test_many_readers_are_created_at_once_in_order(store_database: Database) -> None:
    add(store_database, "first@example.org")
    with store_database.session() as session:
        ids = create_subscribers(session, _readers(1_203), now=NOW, confirm_sent=True)
    assert len(ids) == 1_203 and ids == sorted(ids) and len(set(ids)) == 1_203
    with store_database.session() as session:
        last = get_subscriber(session, ids[-1])
        assert last is not None
        assert (last.email, last.interests, last.cadence) == (
            "Reader1202@Example.org",
            "topic 1202",
            "weekly:tue",
        )
        assert (last.status, last.created_at, last.confirm_sent_at) == ("pending", NOW, NOW)
        assert last.next_digest_at is None and last.consent is None
        # Moved on as any subscriber: by change_status, its rules and all.
        change_status(session, ids, "active", NOW, consent="operator")
        active = get_subscriber(session, ids[0])
        assert active is not None and active.consent == "operator"
        assert active.next_digest_at == datetime(2026, 6, 16, 5, 15, tzinfo=UTC)  # Tuesday


def test_a_bulk_insert_of_a_stored_address_fails_whole(store_database: Database) -> None:
    add(store_database, "Reader3@Example.org")
    with pytest.raises(IntegrityError), store_database.session() as session:
        create_subscribers(session, _readers(10), now=NOW)
    with store_database.session() as session:
        assert count_by_status(session)["pending"] == 1


def test_stored_addresses_are_found_many_at_once_whatever_their_case(
    store_database: Database,
) -> None:
    with store_database.session() as session:
        create_subscribers(session, _readers(1_100), now=NOW)
    wanted = [f"  reader{n}@EXAMPLE.ORG " for n in range(0, 2_000, 3)]
    with store_database.session() as session:
        found = find_subscribers(session, wanted)
        assert not session.identity_map  # plain rows: nothing kept in the session
    assert sorted(found) == sorted(f"reader{n}@example.org" for n in range(0, 1_100, 3))
    assert found["reader3@example.org"].email == "Reader3@Example.org"


def test_every_subscriber_is_read_a_chunk_at_a_time(store_database: Database) -> None:
    with store_database.session() as session:
        ids = create_subscribers(session, _readers(25), now=NOW)
        change_status(session, ids[::2], "active", NOW)
    with store_database.session() as session:
        everyone = list(iter_subscribers(session, chunk=4))
        active = list(iter_subscribers(session, status="active", chunk=4))
        assert not session.identity_map
        with pytest.raises(ValueError, match="unknown subscriber status"):
            list(iter_subscribers(session, status="gone"))
    assert [s.id for s in everyone] == ids
    assert [s.id for s in active] == ids[::2] and {s.status for s in active} == {"active"}


def test_erasing_a_subscriber_deletes_their_outbox_rows_and_messages(
    store_database: Database,
) -> None:
    ada = add(store_database, "ada@example.org", status="active")
    bob = add(store_database, "bob@example.org", status="active")
    with store_database.session() as session:
        for day in (date(2026, 6, 10), date(2026, 6, 11)):
            for who, email in ((ada, "ada@example.org"), (bob, "bob@example.org")):
                queue_message(
                    session,
                    subscriber_id=who,
                    kind="digest",
                    digest_date=day,
                    message=build_digest(who, email, day, papers=2),
                    now=NOW,
                )
        # One of ada's messages was freed by the cleanup already: its row stays.
        session.execute(text("DELETE FROM outbox_messages WHERE outbox_id = 1"))
    with store_database.session() as session:
        assert [m.digest_date for m in subscriber_messages(session, ada)] == [
            date(2026, 6, 11),
            date(2026, 6, 10),
        ]
        assert erase_subscriber(session, ada) == Erased(outbox_rows=2, messages=1)
        assert erase_subscriber(session, ada) is None  # gone already
        assert get_subscriber(session, ada) is None
    with store_database.session() as session:
        left = session.execute(text("SELECT recipient FROM outbox ORDER BY id")).scalars().all()
        assert left == ["bob@example.org", "bob@example.org"]
        bodies = session.execute(text("SELECT count(*) FROM outbox_messages")).scalar()
        assert bodies == 2
        assert find_subscriber(session, "ada@example.org") is None
        assert len(subscriber_messages(session, bob, limit=1)) == 1


def test_the_operators_lock_holds_other_writers_off(store_database: Database) -> None:
    with store_database.session() as session:
        lock_subscribers(session)
        if store_database.engine.dialect.name == "postgresql":
            with store_database.engine.connect() as other:
                taken = other.execute(
                    text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": 0x646967657374}
                ).scalar()
            assert taken is False
        else:
            import sqlite3

            path = store_database.engine.url.database
            other = sqlite3.connect(path, timeout=0.05)
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
            other.close()
    with store_database.session() as session:  # released with the transaction
        lock_subscribers(session)
