"""The `Subscriber` record: a person, their interests and their delivery state.

Also the calendar of their digests: a cadence ("daily", or "weekly:mon" for every
Monday) at a local time of day in an IANA time zone, worked out across daylight-saving
changes (`next_send_at`, `previous_send_at`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# pending: signed up, not yet confirmed. active: gets digests. paused: chose a break.
# unsubscribed: left. bounced: mail to them failed permanently, nothing more is sent.
STATUSES = ("pending", "active", "paused", "unsubscribed", "bounced")

DAILY = "daily"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# How a subscriber came to be active: they followed the emailed link, or an operator
# added them, holding their consent already (`digest subscribers add --confirmed`).
CONSENTS = ("link", "operator")
DEFAULT_SUGGESTIONS = 5
"""How many "Suggested for you" papers a digest holds unless the reader chooses."""
MAX_SUGGESTIONS = 20


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
    cadence: str = DAILY
    consent: str | None = None
    suggestions: int = DEFAULT_SUGGESTIONS


def weekly(weekday: int) -> str:
    """The cadence of a digest every week on `weekday` (0 is Monday): "weekly:mon"."""
    return f"weekly:{WEEKDAYS[weekday][:3]}"


def parse_cadence(text: str) -> str:
    """A cadence as the store keeps it: "daily", or "weekly:" and a day's first three
    letters. Takes "daily", "weekly:monday", "weekly mon", "Weekly:Mon" and the like;
    ValueError with the reason for anything else."""
    words = text.strip().lower().replace(":", " ").split()
    if words == [DAILY]:
        return DAILY
    if len(words) == 2 and words[0] == "weekly":
        for index, day in enumerate(WEEKDAYS):
            if words[1] in (day, day[:3]):
                return weekly(index)
        raise ValueError(f"{words[1]!r} is not a day of the week (monday to sunday)")
    raise ValueError(
        f"{text.strip()!r} is not a cadence: say daily, or weekly and a day (weekly:mon)"
    )


def cadence_weekday(cadence: str) -> int | None:
    """The day of the week (0 is Monday) of a weekly cadence; None for daily."""
    if cadence == DAILY:
        return None
    for index, day in enumerate(WEEKDAYS):
        if cadence == f"weekly:{day[:3]}":
            return index
    raise ValueError(f"unknown cadence {cadence!r}")


def describe_cadence(cadence: str, send_time: str, timezone: str) -> str:
    """The schedule in words: "every day at 08:00 (Europe/Paris)", "every Monday at ..."."""
    weekday = cadence_weekday(cadence)
    when = "every day" if weekday is None else f"every {WEEKDAYS[weekday].capitalize()}"
    return f"{when} at {send_time} ({timezone})"


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


def _send_days(local_day: date, cadence: str, step: int) -> Iterator[date]:
    """The local days a digest may be sent on, from `local_day` on (step 1) or back
    (step -1): every day, or the cadence's day of the week; enough of them to find the
    next (or last) send instant whatever a daylight-saving change does that day."""
    weekday = cadence_weekday(cadence)
    for offset in range(0, step * 15, step):
        day = local_day + timedelta(days=offset)
        if weekday is None or day.weekday() == weekday:
            yield day


def next_send_at(send_time: str, timezone: str, after: datetime, cadence: str = DAILY) -> datetime:
    """The first scheduled send instant strictly after `after` (aware UTC)."""
    local_day = after.astimezone(ZoneInfo(timezone)).date()
    for day in _send_days(local_day, cadence, 1):
        candidate = local_send_instant(day, send_time, timezone)
        if candidate > after:
            return candidate
    raise AssertionError("unreachable: a send time recurs every day or week")


def digest_day(instant: datetime, timezone: str) -> date:
    """The subscriber's local date of a scheduled send instant: the digest's date."""
    return instant.astimezone(ZoneInfo(timezone)).date()


def previous_send_at(send_time: str, timezone: str, at: datetime, cadence: str = DAILY) -> datetime:
    """The last scheduled send instant at or before `at` (aware UTC)."""
    local_day = at.astimezone(ZoneInfo(timezone)).date()
    for day in _send_days(local_day, cadence, -1):
        candidate = local_send_instant(day, send_time, timezone)
        if candidate <= at:
            return candidate
    raise AssertionError("unreachable: a send time recurs every day or week")
