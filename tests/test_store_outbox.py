"""The outbox queries: queueing, claiming, recording outcomes, and what operators do."""

from __future__ import annotations

import zlib
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select, update

from digest.message import Message, WireMessage, dot_stuff
from digest.store import Database
from digest.store.models import OutboxMessageRow, OutboxRow
from digest.store.outbox import (
    Outgoing,
    Result,
    claim_due,
    count_due,
    queue_message,
    queue_messages,
    record_results,
    recover_interrupted,
    release_claims,
    renew_claims,
)
from digest.store.outbox_admin import (
    compress_finished,
    drop_old_messages,
    reactivate_subscriber,
    recent_problems,
    resolve_unknown,
    state_counts,
)
from digest.store.subscribers import change_status, create_subscriber, get_subscriber
from tests.messages import build_digest
from tests.outbox_rows import get_entry, get_message

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
DAY = date(2026, 11, 23)


@pytest.fixture
def database(store_database: Database) -> Database:
    """Every test here runs on SQLite and on PostgreSQL (where several hosts share a store)."""
    return store_database


def _subscriber(session, n: int = 1, status: str = "active") -> int:
    return create_subscriber(
        session,
        f"reader{n}@example.net",
        "x",
        send_time="08:00",
        timezone="UTC",
        now=NOW,
        status=status,
    ).id


def _queue(session, subscriber_id: int, day: date = DAY, kind: str = "digest") -> int | None:
    message = build_digest(subscriber_id, f"reader{subscriber_id}@example.net", day, papers=2)
    return queue_message(
        session,
        subscriber_id=subscriber_id,
        kind=kind,
        digest_date=day if kind == "digest" else None,
        message=message,
        now=NOW,
    )


def test_a_digest_is_queued_once_per_subscriber_and_day(database: Database) -> None:
    with database.session() as session:
        sid = _subscriber(session)
        first = _queue(session, sid)
        again = _queue(session, sid)
        next_day = _queue(session, sid, DAY + timedelta(days=1))
    assert first is not None and next_day is not None
    assert again is None
    with database.session() as session:
        assert count_due(session, now=NOW) == 2
        assert count_due(session, now=NOW, day=DAY) == 1


def test_confirmation_emails_may_be_queued_many_times(database: Database) -> None:
    with database.session() as session:
        sid = _subscriber(session, status="pending")
        ids = [_queue(session, sid, kind="confirm") for _ in range(3)]
    assert None not in ids and len(set(ids)) == 3


def _dotted(subscriber_id: int) -> Message:
    """A digest with lines that start with "." (one of them only "."), which the wire
    form stuffs."""
    message = build_digest(subscriber_id, f"reader{subscriber_id}@example.net", DAY)
    data = message.data.replace(b"\r\n\r\n", b"\r\n\r\n.hidden\r\n..two\r\n.\r\n", 1)
    return Message(message.sender, message.recipient, message.message_id, data)


def _stored(session, row_id: int) -> bytes:
    return session.scalar(select(OutboxMessageRow.data).where(OutboxMessageRow.outbox_id == row_id))


def test_a_message_is_stored_in_its_wire_form_and_compressed_once_finished(
    database: Database,
) -> None:
    with database.session() as session:
        sid = _subscriber(session)
        message = _dotted(sid)
        row_id = queue_message(
            session, subscriber_id=sid, kind="digest", digest_date=DAY, message=message, now=NOW
        )
        waiting = _queue(session, _subscriber(session, 2))
    with database.session() as session:
        # Ready to write to the socket: dot-stuffed, uncompressed, tagged.
        assert _stored(session, row_id) == b"W" + dot_stuff(message.data)
        assert b"\r\n..hidden\r\n...two\r\n..\r\n" in _stored(session, row_id)
        assert get_message(session, row_id) == message
        entry = get_entry(session, row_id)
        assert entry.state == "queued" and entry.size == len(message.data)
        assert entry.message_id == message.message_id
        job, _ = claim_due(session, now=NOW, limit=2, claimer="h:1:z")
        assert job.outgoing() == WireMessage.of(message)
        assert job.message() == message
        assert compress_finished(session) == 0  # nothing is finished yet
        record_results(session, [Result(row_id, sid, "sent")], now=NOW, bounce_threshold=3)
    with database.session() as session:
        assert compress_finished(session) == 1
        assert compress_finished(session) == 0  # once compressed, not found again
    with database.session() as session:
        kept = _stored(session, row_id)
        assert kept.startswith(b"Z") and len(kept) < len(message.data) / 2
        assert get_message(session, row_id) == message  # byte for byte
        assert _stored(session, waiting).startswith(b"W")  # still waiting: left as it is


def test_a_row_queued_the_older_way_comes_back_byte_for_byte(database: Database) -> None:
    with database.session() as session:
        sid = _subscriber(session)
        message = _dotted(sid)
        row_id = queue_message(
            session, subscriber_id=sid, kind="digest", digest_date=DAY, message=message, now=NOW
        )
        # How versions before the wire form stored it: the message, zlib level 6.
        session.execute(
            update(OutboxMessageRow)
            .where(OutboxMessageRow.outbox_id == row_id)
            .values(data=zlib.compress(message.data, 6))
        )
    with database.session() as session:
        (job,) = claim_due(session, now=NOW, limit=2, claimer="h:1:z")
        assert job.outgoing() == message  # a plain Message: the sender stuffs it
        record_results(session, [Result(row_id, sid, "sent")], now=NOW, bounce_threshold=3)
    with database.session() as session:
        assert compress_finished(session) == 0  # already compact
        assert get_message(session, row_id) == message


def test_a_digest_needs_its_date(database: Database) -> None:
    with database.session() as session:
        sid = _subscriber(session)
        with pytest.raises(ValueError, match="digest_date"):
            queue_message(
                session,
                subscriber_id=sid,
                kind="digest",
                digest_date=None,
                message=build_digest(sid, "x@example.net"),
                now=NOW,
            )


def test_claimed_rows_are_not_claimed_again_until_released(database: Database) -> None:
    with database.session() as session:
        for n in range(5):
            _queue(session, _subscriber(session, n))
    with database.session() as session:
        first = claim_due(session, now=NOW, limit=3, claimer="host:1:a")
        second = claim_due(session, now=NOW, limit=10, claimer="host:2:b")
        third = claim_due(session, now=NOW, limit=10, claimer="host:3:c")
    assert len(first) == 3 and len(second) == 2 and third == []
    assert {job.id for job in first}.isdisjoint(job.id for job in second)
    assert first[0].message().data.startswith(b"From: ")
    assert first[0].subscriber_status == "active"
    with database.session() as session:
        release_claims(session, [job.id for job in first])
        assert count_due(session, now=NOW) == 3
        assert {e.state for e in map(lambda j: get_entry(session, j.id), first)} == {"queued"}


def test_hosts_claiming_at_the_same_time_take_different_rows_without_waiting(
    postgres_database: Database,
) -> None:
    # PostgreSQL only: a SQLite store serves one host, whose send lock lets one sender claim.
    database = postgres_database
    with database.session() as session:
        for n in range(5):
            _queue(session, _subscriber(session, n))

    def other_host() -> list[int]:
        with database.session() as session:
            return [job.id for job in claim_due(session, now=NOW, limit=3, claimer="b:2:y")]

    pool = ThreadPoolExecutor(max_workers=1)
    try:
        with database.session() as session:  # host a's claim, not yet committed
            mine = [job.id for job in claim_due(session, now=NOW, limit=3, claimer="a:1:x")]
            pending = pool.submit(other_host)
            done, _ = wait([pending], timeout=5)
        theirs = pending.result(timeout=30)  # a's claim is committed now, whatever happened
    finally:
        pool.shutdown()
    assert done, "host b waited for host a's claim to commit"
    # Host b took the rows host a had not: none twice, and none left behind while due.
    assert len(mine) == 3 and sorted(theirs) == sorted(set(range(1, 6)) - set(mine))


def test_nothing_is_due_before_its_next_attempt(database: Database) -> None:
    with database.session() as session:
        _queue(session, _subscriber(session))
        assert count_due(session, now=NOW - timedelta(seconds=1)) == 0
        assert claim_due(session, now=NOW - timedelta(seconds=1), limit=5, claimer="h:1") == []


def _recover(session, at: datetime, *dead: str) -> list[str]:
    """Recover with a one-hour lease, the owners `dead` being provably gone."""
    return recover_interrupted(
        session, now=at, lease=timedelta(hours=1), gone=lambda owner: owner in dead
    )


def test_rows_left_sending_by_a_dead_sender_are_requeued(database: Database) -> None:
    with database.session() as session:
        for n in range(3):
            _queue(session, _subscriber(session, n))
    with database.session() as session:
        mine = claim_due(session, now=NOW, limit=2, claimer="here:123:s:x")
        other = claim_due(session, now=NOW, limit=1, claimer="there:9:s:y")
    with database.session() as session:
        recovered = _recover(session, NOW, "here:123:s:x")
        assert sorted(recovered) == sorted(job.message_id for job in mine)
        assert get_entry(session, other[0].id).state == "sending"  # alive, still leased
        later = NOW + timedelta(hours=2)
        assert _recover(session, later) == [other[0].message_id]  # stopped renewing
        entry = get_entry(session, mine[0].id)
    assert entry.state == "queued" and "may arrive twice" in entry.reply


def test_owner_ids_are_compared_whole_not_as_patterns(database: Database) -> None:
    # Recovery once matched `claimed_by LIKE 'host:%'`: "_" matched any character, and
    # SQLite's LIKE ignores case, so a dead "lab_1" took "labX1"'s and "LAB_1"'s claims.
    owners = ["lab_1:5:s:a", "labX1:5:s:b", "LAB_1:5:s:c", "lab_1:50:s:d"]
    with database.session() as session:
        for n in range(len(owners)):
            _queue(session, _subscriber(session, n))
    with database.session() as session:
        claims = {who: claim_due(session, now=NOW, limit=1, claimer=who)[0] for who in owners}
    with database.session() as session:
        assert _recover(session, NOW, "lab_1:5:s:a") == [claims["lab_1:5:s:a"].message_id]
        states = {who: get_entry(session, job.id).state for who, job in claims.items()}
    assert states == dict.fromkeys(owners, "sending") | {"lab_1:5:s:a": "queued"}


def test_a_renewed_lease_keeps_a_claim_however_old(database: Database) -> None:
    with database.session() as session:
        _queue(session, _subscriber(session))
    with database.session() as session:
        (job,) = claim_due(session, now=NOW, limit=1, claimer="a:1:s:x")
    for hours in range(1, 6):  # a long run, renewing well within its lease
        with database.session() as session:
            now = NOW + timedelta(hours=hours)
            assert renew_claims(session, "a:1:s:x", [job.id], now=now - timedelta(minutes=10))
            assert _recover(session, now) == []
    with database.session() as session:  # then it stops renewing: taken over after the lease
        assert _recover(session, NOW + timedelta(hours=5, minutes=49)) == []
        assert _recover(session, NOW + timedelta(hours=5, minutes=51)) == [job.message_id]


def test_a_sender_finds_out_its_claims_were_taken_and_cannot_hand_them_back(
    database: Database,
) -> None:
    with database.session() as session:
        for n in range(3):
            _queue(session, _subscriber(session, n))
    with database.session() as session:
        stalled = [job.id for job in claim_due(session, now=NOW, limit=2, claimer="a:1:s:x")]
        kept = [job.id for job in claim_due(session, now=NOW, limit=1, claimer="a:1:s:x")]
        # a:1 renews one of its claims only (it had recorded the other's outcome, say)
        assert renew_claims(session, "a:1:s:x", kept, now=NOW + timedelta(minutes=30)) == 1
    with database.session() as session:  # a:1 stalled: b:2 takes the stale claims over
        later = NOW + timedelta(minutes=61)
        assert len(_recover(session, later)) == 2
        taken = [job.id for job in claim_due(session, now=later, limit=5, claimer="b:2:s:y")]
    assert sorted(taken) == sorted(stalled)
    with database.session() as session:  # a:1 wakes up
        assert renew_claims(session, "a:1:s:x", stalled + kept, now=NOW) == 1
        release_claims(session, stalled + kept, "a:1:s:x")
        claims = {job_id: get_entry(session, job_id).state for job_id in stalled + kept}
    # b:2 still holds what it took; only the row a:1 still held went back to the queue.
    assert claims == dict.fromkeys(stalled, "sending") | dict.fromkeys(kept, "queued")


def test_a_claim_made_before_leases_were_renewed_is_leased_from_its_claim(
    database: Database,
) -> None:
    # Rows claimed by a version before migration 0005 have no renewal time.
    with database.session() as session:
        _queue(session, _subscriber(session))
    with database.session() as session:
        (job,) = claim_due(session, now=NOW, limit=1, claimer="old:1:abcd")
        session.execute(update(OutboxRow).values(renewed_at=None))
    with database.session() as session:
        assert _recover(session, NOW + timedelta(minutes=59)) == []
        assert _recover(session, NOW + timedelta(minutes=61)) == [job.message_id]


def test_a_claim_made_late_in_a_long_run_is_leased_from_when_it_was_made(
    database: Database,
) -> None:
    with database.session() as session:
        _queue(session, _subscriber(session))
    run_started, claimed = NOW, NOW + timedelta(hours=3)  # a slow, rate-limited run
    with database.session() as session:
        (job,) = claim_due(session, now=run_started, limit=1, claimer="a:1:x", claimed_at=claimed)
    with database.session() as session:
        soon = claimed + timedelta(minutes=30)
        assert _recover(session, soon) == []
        assert get_entry(session, job.id).state == "sending"


def test_record_results_writes_outcomes_and_subscriber_effects(database: Database) -> None:
    with database.session() as session:
        a, b, c = (_subscriber(session, n) for n in range(3))
        for sid in (a, b, c):
            _queue(session, sid)
        extra = _queue(session, b, kind="confirm")
        jobs = claim_due(session, now=NOW, limit=3, claimer="h:1:z")
    by_sub = {job.subscriber_id: job for job in jobs}
    later = NOW + timedelta(minutes=1)
    with database.session() as session:
        set_failures(session, a, 2)
        bounced = record_results(
            session,
            [
                Result(by_sub[a].id, a, "sent", reply_code=250, reply="2.0.0 Ok: queued as X"),
                Result(
                    by_sub[b].id,
                    b,
                    "failed",
                    reply_code=550,
                    reply="no such user",
                    bounce="suppress",
                ),
                Result(
                    by_sub[c].id,
                    c,
                    "retrying",
                    reply_code=451,
                    reply="later",
                    next_attempt_at=later,
                ),
            ],
            now=NOW,
            bounce_threshold=3,
        )
    assert bounced == [b]
    with database.session() as session:
        sent = get_entry(session, by_sub[a].id)
        assert (sent.state, sent.attempts, sent.sent_at) == ("sent", 1, NOW)
        assert sent.reply == "2.0.0 Ok: queued as X"
        assert get_subscriber(session, a).consecutive_failures == 0
        assert get_subscriber(session, b).status == "bounced"
        assert get_entry(session, extra).state == "skipped"  # the bounced address's confirm
        retry = get_entry(session, by_sub[c].id)
        assert (retry.state, retry.next_attempt_at, retry.reply_code) == ("retrying", later, 451)
        assert count_due(session, now=later) == 1
        problems = recent_problems(session)
    assert {p.state for p in problems} == {"failed", "retrying"}


def set_failures(session, subscriber_id: int, count: int) -> None:
    from digest.store.models import SubscriberRow

    session.get(SubscriberRow, subscriber_id).consecutive_failures = count


def test_permanent_failures_in_a_row_bounce_at_the_threshold(database: Database) -> None:
    with database.session() as session:
        sid = _subscriber(session)
        for offset in range(3):
            _queue(session, sid, DAY + timedelta(days=offset))
        jobs = claim_due(session, now=NOW, limit=3, claimer="h:1:z")
    for n, job in enumerate(jobs, 1):
        with database.session() as session:
            bounced = record_results(
                session,
                [Result(job.id, sid, "failed", reply_code=552, reply="too big", bounce="count")],
                now=NOW,
                bounce_threshold=3,
            )
            assert get_subscriber(session, sid).consecutive_failures == n
        assert bounced == ([sid] if n == 3 else [])
    with database.session() as session:
        assert get_subscriber(session, sid).status == "bounced"
        assert reactivate_subscriber(session, sid, NOW) is True
        assert reactivate_subscriber(session, sid, NOW) is False
        again = get_subscriber(session, sid)
    assert (again.status, again.consecutive_failures) == ("active", 0)


def test_reactivating_schedules_the_next_digest_from_now(database: Database) -> None:
    later = NOW + timedelta(days=20, hours=3)  # 2026-12-13 11:00, after the 08:00 send time
    with database.session() as session:
        sid = _subscriber(session)
        change_status(session, sid, "bounced", NOW + timedelta(days=1))
        assert reactivate_subscriber(session, sid, later)
        again = get_subscriber(session, sid)
    assert again.next_digest_at == datetime(2026, 12, 14, 8, 0, tzinfo=UTC)
    # The first digest after the pause holds the last day's papers, not three weeks' worth.
    assert again.last_digest_at == later - timedelta(days=1)


def test_an_unknown_row_is_settled_by_the_operator(database: Database) -> None:
    with database.session() as session:
        sid = _subscriber(session)
        first, second = _queue(session, sid), _queue(session, sid, DAY + timedelta(days=1))
        claim_due(session, now=NOW, limit=2, claimer="h:1:z")
        record_results(
            session,
            [Result(first, sid, "unknown", reply="lost"), Result(second, sid, "unknown")],
            now=NOW,
            bounce_threshold=3,
        )
    with database.session() as session:
        resolve_unknown(session, first, delivered=True, now=NOW)
        resolve_unknown(session, second, delivered=False, now=NOW)
        with pytest.raises(ValueError, match="not unknown"):
            resolve_unknown(session, first, delivered=True, now=NOW)
        with pytest.raises(LookupError):
            resolve_unknown(session, 999, delivered=True, now=NOW)
    with database.session() as session:
        assert get_entry(session, first).state == "sent"
        assert get_entry(session, second).state == "retrying"
        assert count_due(session, now=NOW) == 1


def test_state_counts_and_dropping_old_message_bytes(database: Database) -> None:
    with database.session() as session:
        a, b = _subscriber(session, 1), _subscriber(session, 2, status="pending")
        sent = _queue(session, a)
        _queue(session, b, kind="confirm")
        claim_due(session, now=NOW, limit=1, claimer="h:1:z")
        record_results(session, [Result(sent, a, "sent")], now=NOW, bounce_threshold=3)
    with database.session() as session:
        assert state_counts(session) == [(DAY, "digest", "sent", 1), (None, "confirm", "queued", 1)]
        assert drop_old_messages(session, before=NOW) == 0
        assert drop_old_messages(session, before=NOW + timedelta(days=30)) == 1
        assert get_message(session, sent) is None
        assert get_entry(session, sent).state == "sent"


def test_bounced_status_set_elsewhere_is_seen_by_the_claim(database: Database) -> None:
    with database.session() as session:
        sid = _subscriber(session)
        _queue(session, sid)
        change_status(session, sid, "bounced", NOW)
    with database.session() as session:
        (job,) = claim_due(session, now=NOW, limit=5, claimer="h:1:z")
    assert job.subscriber_status == "bounced"


def test_queue_messages_in_bulk_skips_digests_already_queued(database: Database) -> None:
    with database.session() as session:
        ids = [_subscriber(session, n) for n in range(4)]
        _queue(session, ids[0])
        items = [
            Outgoing(sid, "digest", DAY, build_digest(sid, f"reader{sid}@example.net", papers=2))
            for sid in ids
        ]
        confirm = Outgoing(ids[1], "confirm", None, build_digest(ids[1], "c@example.net", papers=1))
        assert queue_messages(session, [*items, items[2], confirm], now=NOW) == 4
        assert queue_messages(session, items, now=NOW) == 0
        assert count_due(session, now=NOW) == 5
        with pytest.raises(ValueError, match="digest_date"):
            queue_messages(session, [Outgoing(ids[0], "digest", None, items[0].message)], now=NOW)
