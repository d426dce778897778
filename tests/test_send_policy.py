"""What each outcome does: backoff schedule, deadline, bounces, who still receives mail."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest

from digest.send.backends import PERMANENT, SENT, TEMPORARY, UNKNOWN, Outcome
from digest.send.policy import expired, ineligible, result_for, retry_delay
from digest.store.outbox import OutboxJob

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def job(attempts: int = 0, status: str = "active", kind: str = "digest", **extra) -> OutboxJob:
    values = dict(
        id=7,
        subscriber_id=3,
        subscriber_status=status,
        kind=kind,
        digest_date=date(2026, 11, 23),
        attempts=attempts,
        queued_at=NOW,
        sender="s@x",
        recipient="r@x",
        message_id="<m@x>",
        packed=b"",
    )
    values.update(extra)
    return OutboxJob(**values)


def test_retry_delays_grow_then_stay_at_two_hours_with_bounded_jitter() -> None:
    rng = random.Random(3)
    for failures, base in [(1, 1), (2, 5), (3, 30), (4, 120), (9, 120)]:
        for _ in range(50):
            delay = retry_delay(failures, rng)
            assert timedelta(minutes=base) <= delay <= timedelta(minutes=base * 1.2)
    spread = {retry_delay(1, rng) for _ in range(20)}
    assert len(spread) > 10  # jitter spreads a crowd of retries


def test_outcomes_map_to_row_states() -> None:
    def result(outcome: Outcome, **kw) -> object:
        return result_for(
            job(**kw), outcome, now=NOW, retry_deadline_hours=24, rng=random.Random(0)
        )

    assert result(Outcome(SENT, "end", 250, "ok")).state == "sent"
    unknown = result(Outcome(UNKNOWN, "end", None, "lost"))
    assert (unknown.state, unknown.bounce) == ("unknown", "")
    for code in (550, 551, 553):
        assert result(Outcome(PERMANENT, "rcpt", code, "no such user")).bounce == "suppress"
    assert result(Outcome(PERMANENT, "rcpt", 554, "policy")).bounce == "count"
    assert result(Outcome(PERMANENT, "end", 550, "spam")).bounce == "count"
    retry = result(Outcome(TEMPORARY, "rcpt", 451, "later"), attempts=2)
    assert retry.state == "retrying" and retry.reply == "451 later"
    assert NOW + timedelta(minutes=30) <= retry.next_attempt_at <= NOW + timedelta(minutes=36)


@pytest.mark.parametrize(
    ("code", "stage", "reply", "state", "bounce"),
    [
        (550, "rcpt", "5.1.1 <a@x>: Recipient rejected: User unknown", "failed", "suppress"),
        (550, "rcpt", "No such user here", "failed", "suppress"),
        (550, "rcpt", "5.2.1 Mailbox disabled", "failed", "count"),
        (550, "rcpt", "relay not permitted", "retrying", ""),  # Exim
        (554, "rcpt", "5.7.1 <a@x>: Relay access denied", "retrying", ""),  # Postfix
        (553, "rcpt", "sorry, that domain isn't in my list of allowed rcpthosts", "retrying", ""),
        (550, "rcpt", "5.7.54 SMTP; Unable to relay recipient", "retrying", ""),
        (530, "mail", "5.7.0 Authentication required", "retrying", ""),
        (550, "mail", "5.7.1 SPF check failed", "retrying", ""),
        (554, "end", "5.7.1 Message rejected as spam", "retrying", ""),
        # Postfix checks our sender at RCPT: a wrong from address is not the reader's.
        (550, "rcpt", "5.1.0 <news@x>: Sender address rejected: User unknown", "retrying", ""),
        (553, "rcpt", "5.1.8 <news@x>: Sender address rejected: Domain not found", "retrying", ""),
        (553, "rcpt", "5.1.7 Bad sender address syntax", "retrying", ""),
        # Microsoft 365's word for a recipient that does not exist.
        (550, "rcpt", "5.4.1 Recipient address rejected: Access denied", "failed", "suppress"),
        # Recipient verification quoting a downstream relay refusal: still the reader's.
        (550, "rcpt", "5.1.1 <a@x>: said: 554 5.7.1 Relay access denied", "failed", "suppress"),
    ],
)
def test_refusals_that_blame_our_side_never_bounce_the_reader(
    code: int, stage: str, reply: str, state: str, bounce: str
) -> None:
    outcome = Outcome(PERMANENT, stage, code, reply)
    result = result_for(job(), outcome, now=NOW, retry_deadline_hours=24, rng=random.Random(0))
    assert (result.state, result.bounce) == (state, bounce)
    if state == "retrying":
        assert "check the [smtp] settings" in result.reply


def test_the_last_retry_is_at_the_deadline_then_it_fails() -> None:
    rng = random.Random(0)
    late = NOW + timedelta(hours=23, minutes=30)
    retry = result_for(
        job(attempts=5),
        Outcome(TEMPORARY, "rcpt", 451, "x"),
        now=late,
        retry_deadline_hours=24,
        rng=rng,
    )
    assert retry.next_attempt_at == NOW + timedelta(hours=24)
    final = result_for(
        job(attempts=6),
        Outcome(TEMPORARY, "rcpt", 451, "x"),
        now=NOW + timedelta(hours=24),
        retry_deadline_hours=24,
        rng=rng,
    )
    assert final.state == "failed" and final.reply.startswith("gave up after 24 h")
    assert expired(job(), now=NOW + timedelta(hours=24), hours=24) is None
    stale = expired(job(reply="451 x"), now=NOW + timedelta(hours=25), hours=24)
    assert stale.state == "failed" and not stale.attempted and stale.reply.endswith("last: 451 x")


@pytest.mark.parametrize(
    ("kind", "status", "receives"),
    [
        ("digest", "active", True),
        ("digest", "paused", False),
        ("digest", "pending", False),
        ("digest", "bounced", False),
        ("digest", "unsubscribed", False),
        ("confirm", "pending", True),
        ("confirm", "active", True),
        ("confirm", "bounced", False),
        ("confirm", "unsubscribed", False),
    ],
)
def test_who_still_receives_what(kind: str, status: str, receives: bool) -> None:
    skipped = ineligible(job(kind=kind, status=status))
    assert (skipped is None) is receives
    if skipped:
        assert skipped.state == "skipped" and status in skipped.reply
