"""The `Subscriber` record: a person, their interests and their delivery state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# pending: signed up, not yet confirmed. active: gets digests. paused: chose a break.
# unsubscribed: left. bounced: mail to them failed permanently, nothing more is sent.
STATUSES = ("pending", "active", "paused", "unsubscribed", "bounced")


@dataclass(frozen=True, slots=True)
class Subscriber:
    """A subscriber as the store keeps it.

    `interests` is the text as the person wrote it (parsed by `digest.match`);
    `send_time` is "HH:MM" in the IANA `timezone`; `last_digest_at` is the watermark up
    to which papers were already considered for a digest.
    """

    id: int
    email: str
    interests: str
    status: str
    send_time: str
    timezone: str
    created_at: datetime
    confirmed_at: datetime | None = None
    status_changed_at: datetime | None = None
    confirm_sent_at: datetime | None = None
    last_digest_at: datetime | None = None
    consecutive_failures: int = 0
    next_digest_at: datetime | None = None


def local_send_instant(day: date, send_time: str, timezone: str) -> datetime:
    """The UTC instant of `send_time` on local `day` in `timezone`.

    Across daylight-saving changes: a time that does not exist that day (skipped by a
    spring-forward gap) moves forward by the gap, like a wall clock; a time that occurs
    twice (autumn fall-back) means its first occurrence.
    """
    wall = datetime.combine(day, time.fromisoformat(send_time), tzinfo=ZoneInfo(timezone))
    # fold=0 picks the first of two occurrences; for a time inside a gap zoneinfo applies
    # the offset from before the gap, which lands just as far after it.
    return wall.replace(fold=0).astimezone(UTC)


def next_send_at(send_time: str, timezone: str, after: datetime) -> datetime:
    """The first scheduled send instant strictly after `after` (aware UTC)."""
    zone = ZoneInfo(timezone)
    local_day = after.astimezone(zone).date()
    for offset in range(3):  # today, tomorrow, or (across a gap) the day after
        candidate = local_send_instant(local_day + timedelta(days=offset), send_time, timezone)
        if candidate > after:
            return candidate
    raise AssertionError("unreachable: a send time recurs every day")


def digest_day(instant: datetime, timezone: str) -> date:
    """The subscriber's local date of a scheduled send instant: the digest's date."""
    return instant.astimezone(ZoneInfo(timezone)).date()


def previous_send_at(send_time: str, timezone: str, at: datetime) -> datetime:
    """The last scheduled send instant at or before `at` (aware UTC)."""
    local_day = at.astimezone(ZoneInfo(timezone)).date()
    for offset in range(0, -3, -1):
        candidate = local_send_instant(local_day + timedelta(days=offset), send_time, timezone)
        if candidate <= at:
            return candidate
    raise AssertionError("unreachable: a send time recurs every day")
