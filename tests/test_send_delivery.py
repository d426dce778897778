"""`send_due` against a real SMTP server (aiosmtpd on loopback) that misbehaves on purpose.

For each fault: what arrived at the server (exactly once), what the outbox says, and that
a later run finishes the job. The clock is injected: retries are due minutes "later"
without anyone sleeping.
"""

from __future__ import annotations

import base64
import itertools
import random
import threading
import zlib
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from digest.message import dot_stuff
from digest.send import delivery, owner, send_due
from digest.send.delivery import Pacer
from digest.store import Database
from digest.store.models import OutboxMessageRow, OutboxRow
from digest.store.outbox import claim_due, queue_message, recover_interrupted
from digest.store.outbox_admin import (
    compress_finished,
    queue_again,
    reactivate_subscriber,
    resolve_unknown,
    state_counts,
)
from digest.store.subscribers import (
    change_status,
    create_subscriber,
    find_subscriber,
    get_subscriber,
)
from tests.messages import build_digest, queue_digests
from tests.outbox_rows import get_entry
from tests.owners import other_sender

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
DAY = date(2026, 11, 23)
LATER = NOW + timedelta(minutes=2)  # past the first retry delay (1 min + jitter)


def offer_pipelining(server: Any) -> Any:
    """Make `server` (aiosmtpd, which reads commands as they come) offer PIPELINING, and
    count in `server.pipelined` the MAIL commands whose RCPT had arrived with them."""
    server.pipelined = 0
    handler = server.controller.handler

    async def handle_EHLO(smtp: Any, session: Any, envelope: Any, host: str, lines: list) -> list:
        session.host_name = host
        return [*lines[:-1], "250-PIPELINING", lines[-1]]

    async def handle_MAIL(
        smtp: Any, session: Any, envelope: Any, address: str, options: list
    ) -> str:
        if b"RCPT TO:" in bytes(smtp._reader._buffer):  # sent in the same write as MAIL
            server.pipelined += 1
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    handler.handle_EHLO, handler.handle_MAIL = handle_EHLO, handle_MAIL
    return server


@pytest.fixture(params=["one command at a time", "pipelining"])
def smtp_server(request: pytest.FixtureRequest, start_smtp_server: Any) -> Any:
    """The conftest's server, and the same offering PIPELINING: every test here runs
    against both, faults included."""
    server = start_smtp_server()
    return offer_pipelining(server) if request.param == "pipelining" else server


@pytest.fixture
def send_settings(make_settings: Any, smtp_server: Any) -> Any:
    return make_settings(
        smtp=smtp_server.smtp_settings(connections=2), delivery={"backend": "smtp"}
    )


@pytest.fixture
def db(store_database: Database) -> Database:
    """The store on SQLite and on PostgreSQL: tests that make their own settings use it too
    (on SQLite it is the file of every settings' data folder)."""
    return store_database


def states(database: Database) -> Counter[str]:
    """How many rows are in each state, over every digest date and kind."""
    counts: Counter[str] = Counter()
    with database.session() as session:
        for _day, _kind, state, n in state_counts(session):
            counts[state] += n  # one group per date and kind: add them up, not overwrite
    return counts


def entry_for(database: Database, email: str) -> Any:
    with database.session() as session:
        subscriber = find_subscriber(session, email)
        row_id = session.scalar(
            select(OutboxRow.id).where(OutboxRow.subscriber_id == subscriber.id)
        )
        return get_entry(session, row_id)


def exactly_once(server: Any, messages: list[Any]) -> None:
    counts = server.message_ids()
    assert counts == Counter({m.message_id: 1 for m in messages})


def test_every_message_arrives_once_over_reused_connections(
    send_settings: Any, db: Any, smtp_server: Any
) -> None:
    messages = queue_digests(db, 30, now=NOW)
    report = send_due(send_settings, db, now=NOW)
    assert (report.due, report.sent, report.error) == (30, 30, None)
    exactly_once(smtp_server, messages)
    assert smtp_server.connections == 2  # two persistent connections carried all 30
    by_id = {m.message_id: m for m in messages}
    for received in smtp_server.received:
        # The bytes that arrive are the bytes that were queued (after un-dot-stuffing).
        assert received.data.rstrip(b"\r\n") == by_id[received.message_id].data.rstrip(b"\r\n")
        assert received.sender == "digest@example.org"
    assert states(db) == {"sent": 30}
    # With PIPELINING, MAIL, RCPT and DATA went out together for every message.
    assert getattr(smtp_server, "pipelined", 30) == 30
    again = send_due(send_settings, db, now=LATER)
    assert (again.due, again.sent) == (0, 0)
    assert len(smtp_server.received) == 30


def test_lines_starting_with_a_dot_survive(send_settings: Any, db: Any, smtp_server: Any) -> None:
    message = build_digest(1, "reader0@example.net")
    # Lines that start with "." (and one that is only "."): dot-stuffing must keep them.
    dotted = message.data.replace(b"\r\n\r\n", b"\r\n\r\n.hidden\r\n..two\r\n.\r\n", 1)
    with db.session() as session:
        sid = create_subscriber(
            session,
            "reader0@example.net",
            "x",
            send_time="08:00",
            timezone="UTC",
            now=NOW,
            status="active",
        ).id
        queue_message(
            session,
            subscriber_id=sid,
            kind="digest",
            digest_date=DAY,
            message=type(message)(message.sender, message.recipient, message.message_id, dotted),
            now=NOW,
        )
    assert send_due(send_settings, db, now=NOW).sent == 1
    (arrived,) = smtp_server.received
    assert arrived.data == dotted


def _queue_one(db: Database, message: Any) -> int:
    with db.session() as session:
        sid = create_subscriber(
            session, message.recipient, "x", send_time="08:00", timezone="UTC", now=NOW,
            status="active",
        ).id  # fmt: skip
        row_id = queue_message(
            session, subscriber_id=sid, kind="digest", digest_date=DAY, message=message, now=NOW
        )
    assert row_id is not None
    return row_id


def _dotted(message: Any) -> Any:
    dotted = message.data.replace(b"\r\n\r\n", b"\r\n\r\n.hidden\r\n..two\r\n.\r\n", 1)
    return type(message)(message.sender, message.recipient, message.message_id, dotted)


def test_a_row_queued_before_the_wire_form_is_sent_byte_for_byte(
    send_settings: Any, db: Any, smtp_server: Any
) -> None:
    message = _dotted(build_digest(1, "reader0@example.net"))
    row_id = _queue_one(db, message)
    with db.session() as session:  # what versions before the wire form stored
        session.execute(
            update(OutboxMessageRow)
            .where(OutboxMessageRow.outbox_id == row_id)
            .values(data=zlib.compress(message.data, 6))
        )
    assert send_due(send_settings, db, now=NOW).sent == 1
    (arrived,) = smtp_server.received
    assert arrived.data == message.data


def test_a_compressed_row_sent_again_arrives_byte_for_byte(
    send_settings: Any, db: Any, smtp_server: Any
) -> None:
    message = _dotted(build_digest(1, "reader0@example.net"))
    row_id = _queue_one(db, message)
    smtp_server.faults.cut_after_dot["reader0@example.net"] = 1
    assert send_due(send_settings, db, now=NOW).unknown == 1
    with db.session() as session:
        assert compress_finished(session) == 1  # the hourly cleanup compresses it
        resolve_unknown(session, row_id, delivered=False, now=LATER)
    assert send_due(send_settings, db, now=LATER).sent == 1
    (arrived,) = smtp_server.received
    assert arrived.data == message.data


def test_a_dkim_signature_still_verifies_where_the_message_arrives(
    send_settings: Any, db: Any, smtp_server: Any, tmp_path: Any
) -> None:
    import dkim
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from digest.config.mail import DkimSigner

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    unsigned = _dotted(build_digest(1, "reader0@example.net"))
    # Signed as the renderer signs, on the message; the outbox stuffs it afterwards.
    signed = DkimSigner("mail", "example.org", pem).sign(unsigned.data)
    message = type(unsigned)(unsigned.sender, unsigned.recipient, unsigned.message_id, signed)
    _queue_one(db, message)
    assert send_due(send_settings, db, now=NOW).sent == 1
    (arrived,) = smtp_server.received
    assert arrived.data == signed and b"\r\n..two\r\n" in arrived.data
    assert dkim.verify(arrived.data, dnsfunc=lambda name, timeout=5: record)
    assert not dkim.verify(dot_stuff(signed), dnsfunc=lambda name, timeout=5: record)


def test_421_at_connect_is_retried_later(
    make_settings: Any, smtp_server: Any, db: Database
) -> None:
    settings = make_settings(
        smtp=smtp_server.smtp_settings(connections=1), delivery={"backend": "smtp"}
    )
    messages = queue_digests(db, 3, now=NOW)
    smtp_server.faults.greeting_421 = 1
    report = send_due(settings, db, now=NOW)
    assert report.sent == 0 and report.retrying == 1
    assert "refused the connection: 421" in report.error
    assert smtp_server.received == []
    assert states(db) == {"retrying": 1, "queued": 2}
    report = send_due(settings, db, now=LATER)
    assert (report.sent, report.error) == (3, None)
    exactly_once(smtp_server, messages)


def test_451_on_rcpt_retries_with_backoff(send_settings: Any, db: Any, smtp_server: Any) -> None:
    messages = queue_digests(db, 3, now=NOW)
    smtp_server.faults.rcpt_451["reader1@example.net"] = 1
    report = send_due(send_settings, db, now=NOW, rng=random.Random(1))
    assert (report.sent, report.retrying) == (2, 1)
    entry = entry_for(db, "reader1@example.net")
    assert (entry.state, entry.reply_code, entry.attempts) == ("retrying", 451, 1)
    assert "Temporary lookup failure" in entry.reply
    assert NOW + timedelta(minutes=1) <= entry.next_attempt_at <= NOW + timedelta(seconds=73)
    assert send_due(send_settings, db, now=NOW).sent == 0  # not due yet
    assert send_due(send_settings, db, now=LATER).sent == 1
    exactly_once(smtp_server, messages)
    assert entry_for(db, "reader1@example.net").attempts == 2


def test_550_on_rcpt_suppresses_the_address_at_once(
    send_settings: Any, db: Any, smtp_server: Any
) -> None:
    messages = queue_digests(db, 3, now=NOW)
    smtp_server.faults.rcpt_550.add("reader1@example.net")
    with db.session() as session:  # a confirmation waiting for the same person
        sid = find_subscriber(session, "reader1@example.net").id
        queue_message(
            session,
            subscriber_id=sid,
            kind="confirm",
            digest_date=None,
            message=build_digest(sid, "reader1@example.net", kind="confirm"),
            now=NOW + timedelta(seconds=1),
        )
    report = send_due(send_settings, db, now=NOW)
    assert (report.sent, report.failed, report.suppressed) == (2, 1, 1)
    entry = entry_for(db, "reader1@example.net")
    assert (entry.state, entry.reply_code) == ("failed", 550)
    assert "User unknown" in entry.reply
    with db.session() as session:
        assert get_subscriber(session, sid).status == "bounced"
    assert states(db)["skipped"] == 1  # the confirmation is not sent
    later = send_due(send_settings, db, now=LATER + timedelta(seconds=1))
    assert later.sent == 0
    exactly_once(smtp_server, [messages[0], messages[2]])


def test_a_relay_that_refuses_us_bounces_nobody_and_the_mail_goes_once_it_is_fixed(
    send_settings: Any, db: Any, smtp_server: Any
) -> None:
    messages = queue_digests(db, 3, now=NOW)
    smtp_server.faults.relay_denied = True  # e.g. AUTH missing from [smtp]
    report = send_due(send_settings, db, now=NOW)
    assert (report.sent, report.retrying, report.failed, report.suppressed) == (0, 3, 0, 0)
    entry = entry_for(db, "reader0@example.net")
    assert (entry.state, entry.reply_code) == ("retrying", 554)
    assert "Relay access denied" in entry.reply and "check the [smtp] settings" in entry.reply
    with db.session() as session:
        for number in range(3):
            subscriber = find_subscriber(session, f"reader{number}@example.net")
            assert (subscriber.status, subscriber.consecutive_failures) == ("active", 0)
    smtp_server.faults.relay_denied = False  # the operator fixes the settings
    assert send_due(send_settings, db, now=LATER).sent == 3
    exactly_once(smtp_server, messages)


def test_552_on_data_fails_the_message_and_counts_towards_bouncing(
    send_settings: Any, db: Any, smtp_server: Any
) -> None:
    messages = queue_digests(db, 2, now=NOW)
    smtp_server.faults.data_552.add("reader0@example.net")
    report = send_due(send_settings, db, now=NOW)
    assert (report.sent, report.failed, report.suppressed) == (1, 1, 0)
    entry = entry_for(db, "reader0@example.net")
    assert (entry.state, entry.reply_code) == ("failed", 552)
    assert "exceeds fixed limit" in entry.reply
    with db.session() as session:
        subscriber = find_subscriber(session, "reader0@example.net")
    assert (subscriber.status, subscriber.consecutive_failures) == ("active", 1)
    assert send_due(send_settings, db, now=LATER).sent == 0
    exactly_once(smtp_server, messages[1:])


def test_connection_cut_in_the_middle_of_data_is_retried(
    send_settings: Any, db: Any, smtp_server: Any
) -> None:
    messages = queue_digests(db, 2, now=NOW)
    # A big message (15 MB), so that we are still writing it when the server resets: the
    # final "." never went out, so the server cannot have accepted it.
    with db.session() as session:
        sid = create_subscriber(
            session,
            "big@example.net",
            "x",
            send_time="08:00",
            timezone="UTC",
            now=NOW,
            status="active",
        ).id
        big = build_digest(sid, "big@example.net", DAY, extra_body=b"x" * 76 * 200_000)
        queue_message(
            session, subscriber_id=sid, kind="digest", digest_date=DAY, message=big, now=NOW
        )
    smtp_server.faults.cut_in_data["big@example.net"] = 1
    report = send_due(send_settings, db, now=NOW)
    assert smtp_server.cut_in_data == 1
    assert (report.sent, report.retrying, report.unknown) == (2, 1, 0)
    entry = entry_for(db, "big@example.net")
    assert entry.state == "retrying" and "connection lost" in entry.reply
    assert send_due(send_settings, db, now=LATER).sent == 1
    exactly_once(smtp_server, [*messages, big])


def test_connection_cut_after_the_final_dot_is_unknown_not_retried(
    send_settings: Any, db: Any, smtp_server: Any
) -> None:
    messages = queue_digests(db, 3, now=NOW)
    smtp_server.faults.cut_after_dot["reader1@example.net"] = 1
    report = send_due(send_settings, db, now=NOW)
    assert (report.sent, report.unknown, report.retrying) == (2, 1, 0)
    assert report.unknown_ids == [messages[1].message_id]
    assert [r.message_id for r in smtp_server.cut_after_dot] == [messages[1].message_id]
    entry = entry_for(db, "reader1@example.net")
    assert entry.state == "unknown" and "after the end of data" in entry.reply
    assert send_due(send_settings, db, now=LATER).sent == 0  # never resent blindly
    # The operator finds it missing from the server's log: send it again.
    with db.session() as session:
        resolve_unknown(session, entry.id, delivered=False, now=LATER)
    assert send_due(send_settings, db, now=LATER).sent == 1
    exactly_once(smtp_server, messages)


def test_a_server_that_stalls_past_the_timeout_is_retried(
    make_settings: Any, smtp_server: Any, db: Database
) -> None:
    settings = make_settings(
        smtp=smtp_server.smtp_settings(connections=1, timeout=0.3), delivery={"backend": "smtp"}
    )
    messages = queue_digests(db, 1, now=NOW)
    smtp_server.faults.stall_rcpt = 1.0
    report = send_due(settings, db, now=NOW)
    assert (report.sent, report.retrying) == (0, 1)
    assert "timed out" in entry_for(db, "reader0@example.net").reply
    smtp_server.faults.stall_rcpt = 0
    assert send_due(settings, db, now=LATER).sent == 1
    exactly_once(smtp_server, messages)


def test_a_server_that_is_down_and_comes_back(
    make_settings: Any, start_smtp_server: Any, db: Database
) -> None:
    server = start_smtp_server(listen=False)
    settings = make_settings(smtp=server.smtp_settings(connections=2), delivery={"backend": "smtp"})
    messages = queue_digests(db, 5, now=NOW)
    report = send_due(settings, db, now=NOW)
    assert report.sent == 0 and 1 <= report.retrying <= 2
    assert report.error == (
        f"cannot connect to SMTP server 127.0.0.1:{server.port}: Connection refused; "
        "check [smtp] host and port"
    )
    server.start()
    report = send_due(settings, db, now=LATER)
    assert (report.sent, report.error) == (5, None)
    exactly_once(server, messages)


def test_temporary_failures_give_up_at_the_retry_deadline(
    make_settings: Any, smtp_server: Any, db: Database
) -> None:
    settings = make_settings(
        smtp=smtp_server.smtp_settings(connections=1),
        delivery={"backend": "smtp", "retry_deadline_hours": 1},
    )
    queue_digests(db, 1, now=NOW)
    smtp_server.faults.rcpt_451["*"] = 100
    schedule = []
    when = NOW
    for _ in range(10):
        report = send_due(settings, db, now=when, rng=random.Random(7))
        entry = entry_for(db, "reader0@example.net")
        schedule.append((when, entry.state))
        if entry.state != "retrying":
            break
        when = entry.next_attempt_at
    assert [state for _, state in schedule] == ["retrying"] * 4 + ["failed"]
    # 1 min, 5 min, 30 min (with up to 20 % jitter), then the last try at the deadline.
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(schedule)]
    assert timedelta(minutes=1) <= gaps[0] <= timedelta(minutes=1.2)
    assert timedelta(minutes=5) <= gaps[1] <= timedelta(minutes=6)
    assert timedelta(minutes=30) <= gaps[2] <= timedelta(minutes=36)
    assert schedule[-1][0] == NOW + timedelta(hours=1)
    assert "gave up after 1 h" in entry.reply and report.failed == 1
    assert smtp_server.received == []
    # Once the server is back, the operator sends it again with a fresh deadline.
    smtp_server.faults.rcpt_451.clear()
    back = when + timedelta(hours=5)
    with db.session() as session:
        queue_again(session, entry.id, now=back)
        with pytest.raises(ValueError, match="is retrying; only unknown or failed"):
            queue_again(session, entry.id, now=back)
    assert send_due(settings, db, now=back).sent == 1
    assert len(smtp_server.received) == 1


def test_consecutive_permanent_failures_bounce_and_a_success_resets(
    make_settings: Any, smtp_server: Any, db: Database
) -> None:
    settings = make_settings(
        smtp=smtp_server.smtp_settings(connections=1),
        delivery={"backend": "smtp", "bounce_threshold": 2},
    )
    days = [DAY + timedelta(days=n) for n in range(4)]
    queue_digests(db, 1, now=NOW, day=days[0])
    address = "reader0@example.net"

    def send_day(n: int, refuse: bool) -> Any:
        with db.session() as session:
            sid = find_subscriber(session, address).id
            queue_message(
                session,
                subscriber_id=sid,
                kind="digest",
                digest_date=days[n],
                message=build_digest(sid, address, days[n]),
                now=NOW + timedelta(days=n),
            )
        if refuse:
            smtp_server.faults.data_552.add(address)
        else:
            smtp_server.faults.data_552.discard(address)
        send_due(settings, db, now=NOW + timedelta(days=n), day=days[n])
        with db.session() as session:
            return find_subscriber(session, address)

    assert send_day(0, refuse=True).consecutive_failures == 1
    assert send_day(1, refuse=False).consecutive_failures == 0
    assert send_day(2, refuse=True).consecutive_failures == 1
    subscriber = send_day(3, refuse=True)
    assert (subscriber.status, subscriber.consecutive_failures) == ("bounced", 2)
    assert len(smtp_server.received) == 1
    assert states(db) == {"failed": 3, "sent": 1}  # four digest dates, four groups


def test_a_bounced_subscriber_gets_nothing_until_reactivated(
    send_settings: Any, db: Any, smtp_server: Any
) -> None:
    messages = queue_digests(db, 2, now=NOW)
    with db.session() as session:
        sid = find_subscriber(session, "reader0@example.net").id
        change_status(session, sid, "bounced", NOW)
    report = send_due(send_settings, db, now=NOW)
    assert (report.sent, report.skipped) == (1, 1)
    entry = entry_for(db, "reader0@example.net")
    assert entry.state == "skipped" and "bounced" in entry.reply
    with db.session() as session:
        assert reactivate_subscriber(session, sid, NOW)
        tomorrow = DAY + timedelta(days=1)
        fresh = build_digest(sid, "reader0@example.net", tomorrow)
        queue_message(
            session,
            subscriber_id=sid,
            kind="digest",
            digest_date=tomorrow,
            message=fresh,
            now=LATER,
        )
    assert send_due(send_settings, db, now=LATER).sent == 1
    exactly_once(smtp_server, [messages[1], fresh])
    assert states(db) == {"sent": 2, "skipped": 1}


def test_rate_limit_spaces_messages_out(make_settings: Any, smtp_server: Any, db: Database) -> None:
    settings = make_settings(
        smtp=smtp_server.smtp_settings(connections=2, rate=20.0), delivery={"backend": "smtp"}
    )
    queue_digests(db, 6, now=NOW)
    assert send_due(settings, db, now=NOW).sent == 6
    arrivals = sorted(r.at for r in smtp_server.received)
    # Six messages at 20/s take at least 5 intervals of 50 ms (a lower bound only).
    assert arrivals[-1] - arrivals[0] >= 5 * 0.05 * 0.9


def test_pacer_spaces_slots_by_the_rate() -> None:
    now = [100.0]
    waits: list[float] = []

    class Stop(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            waits.append(timeout or 0.0)
            now[0] += timeout or 0.0
            return False

    pacer = Pacer(4.0, Stop(), clock=lambda: now[0])
    for _ in range(5):
        pacer.wait()
    assert waits == pytest.approx([0.25] * 4)
    assert now[0] == pytest.approx(101.0)


def test_stop_request_finishes_in_flight_and_hands_back_the_rest(
    send_settings: Any, db: Any, smtp_server: Any
) -> None:
    messages = queue_digests(db, 40, now=NOW)
    stop = threading.Event()
    finished = []

    def progress(done: int, due: int) -> None:
        finished.append(done)
        if sum(finished) >= 10:
            stop.set()

    report = send_due(send_settings, db, now=NOW, progress=progress, stop=stop)
    assert report.stopped and 10 <= report.sent < 40
    assert len(smtp_server.received) == report.sent
    assert states(db) == {"sent": report.sent, "queued": 40 - report.sent}  # none left sending
    rest = send_due(send_settings, db, now=NOW)
    assert rest.sent == 40 - report.sent
    exactly_once(smtp_server, messages)


def test_dry_run_counts_without_sending(send_settings: Any, db: Any, smtp_server: Any) -> None:
    queue_digests(db, 4, now=NOW)
    report = send_due(send_settings, db, now=NOW, dry_run=True)
    assert (report.dry_run, report.due, report.sent) == (True, 4, 0)
    assert report.summary() == "4 messages due (dry run: nothing sent)"
    assert smtp_server.received == [] and states(db) == {"queued": 4}


def test_only_the_given_date(send_settings: Any, db: Any, smtp_server: Any) -> None:
    queue_digests(db, 2, now=NOW, day=DAY)
    queue_digests(db, 3, now=NOW, day=DAY + timedelta(days=1), first=10)
    assert send_due(send_settings, db, now=NOW, day=DAY + timedelta(days=1)).sent == 3
    assert states(db) == {"sent": 3, "queued": 2}
    assert send_due(send_settings, db, now=NOW).sent == 2
    assert states(db) == {"sent": 5}


def test_a_second_sender_is_told_who_holds_the_send_lock(send_settings: Any, db: Database) -> None:
    import os

    from digest.send.delivery import SenderBusy, _send_lock

    queue_digests(db, 1, now=NOW)
    with _send_lock(send_settings.data_dir), pytest.raises(SenderBusy) as busy:
        send_due(send_settings, db, now=NOW)
    assert f"(pid {os.getpid()} holds {send_settings.data_dir / 'send.lock'})" in str(busy.value)
    assert states(db) == Counter({"queued": 1})  # nothing claimed, nothing sent


def test_claims_of_a_live_sender_of_this_host_are_left_to_it(
    send_settings: Any, db: Database, smtp_server: Any
) -> None:
    # Another sender of this host, from another data folder (so another send lock): its
    # claims are a live run's, not a dead one's. Killed, they are taken over at once.
    messages = queue_digests(db, 5, now=NOW)
    with other_sender() as (process, claimer):
        with db.session() as session:
            claim_due(session, now=NOW, limit=3, claimer=claimer)
        report = send_due(send_settings, db, now=NOW)
        assert (report.recovered, report.sent) == (0, 2)
        assert states(db) == {"sent": 2, "sending": 3}
        process.kill()
        process.wait(timeout=30)
    report = send_due(send_settings, db, now=NOW)  # no lease to wait for
    assert (report.recovered, report.sent) == (3, 3)
    exactly_once(smtp_server, messages)


def test_claims_left_by_an_ended_run_of_this_process_are_taken_over_at_once(
    send_settings: Any, db: Database, smtp_server: Any
) -> None:
    # A run of the scheduler's process that ended without recording or handing back (its
    # coordinator failed, say): the process lives on, the run does not.
    messages = queue_digests(db, 3, now=NOW)
    with owner.claiming() as claimer, db.session() as session:
        claim_due(session, now=NOW, limit=3, claimer=claimer)
    report = send_due(send_settings, db, now=NOW)
    assert (report.recovered, report.sent) == (3, 3)
    exactly_once(smtp_server, messages)


def test_a_run_renews_its_lease_while_it_sends(
    make_settings: Any, smtp_server: Any, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delivery, "RENEW_EVERY", 0.05)
    settings = make_settings(
        smtp=smtp_server.smtp_settings(connections=1, rate=20.0), delivery={"backend": "smtp"}
    )
    queue_digests(db, 6, now=NOW)
    leases: list[tuple[datetime, datetime]] = []

    def progress(done: int, due: int) -> None:
        with db.session() as session:
            query = select(OutboxRow.claimed_at, OutboxRow.renewed_at)
            leases.extend(session.execute(query.where(OutboxRow.state == "sending")).all())

    assert send_due(settings, db, now=NOW, progress=progress).sent == 6
    # Six messages at 20/s take a quarter of a second: the rows waiting their turn were
    # renewed after they were claimed.
    assert any(renewed > claimed for claimed, renewed in leases)


def test_a_run_whose_claims_were_taken_over_sends_no_more_of_them(
    make_settings: Any, smtp_server: Any, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delivery, "RENEW_EVERY", 0.0)  # check the lease at every commit
    settings = make_settings(
        smtp=smtp_server.smtp_settings(connections=2, rate=20.0), delivery={"backend": "smtp"}
    )
    queue_digests(db, 20, now=NOW)
    elsewhere = "elsewhere:1:s:x"
    taken: list[str] = []

    def progress(done: int, due: int) -> None:
        if taken:
            return
        # As if this run had stalled past its lease: another sender takes its claims over.
        later = NOW + delivery.LEASE + timedelta(minutes=1)
        with db.session() as session:
            recover_interrupted(session, now=later, lease=delivery.LEASE, gone=lambda o: False)
            jobs = claim_due(session, now=later, limit=100, claimer=elsewhere)
            taken.extend(job.message_id for job in jobs)

    report = send_due(settings, db, now=NOW, progress=progress)
    assert report.error is not None and "took over" in report.error
    arrived = smtp_server.message_ids()
    assert taken and max(arrived.values()) == 1
    # At most the message each connection was already ending went out after the takeover.
    assert len(set(taken) & set(arrived)) <= 2
    with db.session() as session:
        still_theirs = set(
            session.scalars(
                select(OutboxRow.message_id).where(
                    OutboxRow.state == "sending", OutboxRow.claimed_by == elsewhere
                )
            )
        )
    assert still_theirs == set(taken) - set(arrived)  # neither sent nor handed back by us
