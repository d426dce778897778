"""What each delivery outcome does to the outbox row and the subscriber.

- Sent: the row is sent; the subscriber's count of consecutive failures goes back to 0.
- Temporary (refused or lost connection, timeout, 4xx such as 421/450/451/452): retried
  after 1 min, 5 min, 30 min, then every 2 h (each with up to 20 % random jitter, so a
  crowd of retries spreads out), until `[delivery] retry_deadline_hours` after it was
  queued; then it fails.
- Permanent (5xx): the row fails at once and keeps the server's reply. 550/551/553 on
  RCPT with no enhanced code, with a 5.1.x one, or saying so in words ("recipient
  address rejected") means the address does not exist: the subscriber is bounced at
  once. Any other permanent failure counts, and `[delivery] bounce_threshold` of them
  in a row bounce the subscriber.
- Refused by our own mail server (a 5xx whose enhanced status is 5.7.x, security or
  policy, or 5.1.7/5.1.8, our sender address; or whose text says relaying,
  authentication or our sender address was refused): the fault is the sender's set-up
  (missing AUTH, a relay that does not know us, a wrong from address, SPF), not the
  reader's address, so it never bounces anyone. It is retried like a temporary
  failure, which leaves the operator until the retry deadline to fix the settings.
- Unknown (connection lost after the final "."): neither retried nor failed; see
  `digest.send.delivery` for what the operator does.
"""

from __future__ import annotations

import random
import re
from datetime import datetime, timedelta

from digest.send.backends import PERMANENT, SENT, TEMPORARY, UNKNOWN, Outcome
from digest.store.outbox import OutboxJob, Result

RETRY_DELAYS = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
)
JITTER = 0.2
NO_SUCH_USER = frozenset({550, 551, 553})  # on RCPT: the mailbox does not exist
# An RFC 3463 enhanced status code at the start of the reply text, e.g. "5.1.1".
_ENHANCED = re.compile(r"\s*([245])\.(\d{1,3})\.(\d{1,3})\b")
# Our own sender address refused (Postfix reports it at RCPT, with 5.1.x codes too).
_SENDER_REJECTED = re.compile(
    r"sender\s+address\s+rejected|sender\s+verify\s+failed|sender\s+rejected", re.IGNORECASE
)
# How relays word a refusal to take our mail at all, with or without a 5.7.x code.
_REFUSED_SENDER = re.compile(
    r"relay(ing)?\s+(access\s+)?(denied|not\s+permitted|prohibited|not\s+allowed)"
    r"|unable\s+to\s+relay|allowed\s+rcpthosts"
    r"|authenticat(ion|e)\s+(is\s+)?required|not\s+authenticated|must\s+authenticate",
    re.IGNORECASE,
)
# A recipient that does not exist, in the words of servers that use other codes for it
# (Microsoft 365: "550 5.4.1 Recipient address rejected: Access denied").
_NO_SUCH_MAILBOX = re.compile(
    r"recipient\s+address\s+rejected|user\s+unknown|unknown\s+(user|recipient|mailbox)"
    r"|no\s+such\s+(user|mailbox|recipient)|does\s+not\s+exist",
    re.IGNORECASE,
)
_SENDER_DETAILS = {7, 8}  # X.1.7 bad sender mailbox syntax, X.1.8 bad sender's system


def _enhanced(reply: str) -> tuple[int, int, int] | None:
    found = _ENHANCED.match(reply)
    return (int(found[1]), int(found[2]), int(found[3])) if found else None


def refused_sender(outcome: Outcome) -> bool:
    """Whether a permanent refusal blames our side (relay, AUTH, policy, our sender
    address), not the reader's address."""
    reply = outcome.reply
    if _SENDER_REJECTED.search(reply):
        return True
    enhanced = _enhanced(reply)
    if enhanced is not None:
        _, subject, detail = enhanced
        if subject == 7 or (subject == 1 and detail in _SENDER_DETAILS):
            return True
        if subject == 1:  # the reader's address, whatever else the text quotes
            return False
    return bool(_REFUSED_SENDER.search(reply))


def no_such_user(outcome: Outcome) -> bool:
    """Whether a permanent refusal says the reader's mailbox does not exist."""
    if outcome.stage != "rcpt" or outcome.code not in NO_SUCH_USER:
        return False
    enhanced = _enhanced(outcome.reply)
    # Without an enhanced code, trust the basic one; with one, 5.1.x is addressing, and
    # other codes count when the text says so.
    if enhanced is None or enhanced[1] == 1:
        return True
    return bool(_NO_SUCH_MAILBOX.search(outcome.reply))


def retry_delay(failures: int, rng: random.Random) -> timedelta:
    """How long to wait after the `failures`-th temporary failure (1-based), with jitter."""
    base = RETRY_DELAYS[min(max(failures, 1), len(RETRY_DELAYS)) - 1]
    return base * (1 + JITTER * rng.random())


def deadline(job: OutboxJob, retry_deadline_hours: float) -> datetime:
    """When a row stops being worth retrying."""
    return job.queued_at + timedelta(hours=retry_deadline_hours)


def result_for(
    job: OutboxJob,
    outcome: Outcome,
    *,
    now: datetime,
    retry_deadline_hours: float,
    rng: random.Random,
) -> Result:
    """The row update (and effect on the subscriber) for one delivery outcome."""
    code, reply = outcome.code, str(outcome) or None
    if outcome.status == SENT:
        return Result(
            job.id,
            job.subscriber_id,
            "sent",
            reply_code=code,
            reply=reply,
            reset_failures=job.subscriber_failures > 0,
        )
    if outcome.status == UNKNOWN:
        return Result(job.id, job.subscriber_id, "unknown", reply_code=code, reply=reply)
    if outcome.status == PERMANENT and refused_sender(outcome):
        reply = f"{reply} (refused by the mail server: check the [smtp] settings)"
        return temporary_failure(job, code, reply, now=now, hours=retry_deadline_hours, rng=rng)
    if outcome.status == PERMANENT:
        bounce = "suppress" if no_such_user(outcome) else "count"
        return Result(
            job.id, job.subscriber_id, "failed", reply_code=code, reply=reply, bounce=bounce
        )
    assert outcome.status == TEMPORARY, outcome
    return temporary_failure(job, code, reply, now=now, hours=retry_deadline_hours, rng=rng)


def temporary_failure(
    job: OutboxJob,
    code: int | None,
    reply: str | None,
    *,
    now: datetime,
    hours: float,
    rng: random.Random,
) -> Result:
    """Retry later with backoff, or fail if the retry deadline has come."""
    give_up_at = deadline(job, hours)
    if now >= give_up_at:
        return Result(
            job.id,
            job.subscriber_id,
            "failed",
            reply_code=code,
            reply=f"gave up after {hours:g} h of temporary failures; last: {reply}",
        )
    next_at = min(now + retry_delay(job.attempts + 1, rng), give_up_at)
    return Result(
        job.id, job.subscriber_id, "retrying", reply_code=code, reply=reply, next_attempt_at=next_at
    )


def expired(job: OutboxJob, *, now: datetime, hours: float) -> Result | None:
    """A failed result for a row whose deadline passed before it could be tried again."""
    if now <= deadline(job, hours):  # a retry set for the deadline itself still goes
        return None
    last = f"; last: {job.reply}" if job.reply else ""
    return Result(
        job.id,
        job.subscriber_id,
        "failed",
        attempted=False,
        reply=f"gave up: not delivered within {hours:g} h of being queued{last}",
    )


def ineligible(job: OutboxJob) -> Result | None:
    """A skipped result if the subscriber should no longer get this kind of message.

    Digests go to active subscribers only; other messages (a confirmation to a pending
    subscriber) to anyone who has not bounced or unsubscribed.
    """
    status = job.subscriber_status
    if job.kind == "digest":
        receives = status == "active"
    else:
        receives = status not in ("bounced", "unsubscribed")
    if receives:
        return None
    return Result(
        job.id,
        job.subscriber_id,
        "skipped",
        attempted=False,
        reply=f"not sent: the subscriber is {status}",
    )
