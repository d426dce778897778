"""Send times: cadences, time zones and daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

import pytest

from digest.subscriber import (
    DAILY,
    cadence_weekday,
    describe_cadence,
    digest_day,
    local_send_instant,
    next_send_at,
    parse_cadence,
    previous_send_at,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("day", "send_time", "zone", "expected"),
    [
        # An ordinary winter and summer day in Paris.
        (date(2026, 1, 15), "08:00", "Europe/Paris", utc(2026, 1, 15, 7)),
        (date(2026, 7, 15), "08:00", "Europe/Paris", utc(2026, 7, 15, 6)),
        # Spring forward (02:00 -> 03:00 on 29 March): 02:30 does not exist, so 03:30.
        (date(2026, 3, 29), "02:30", "Europe/Paris", utc(2026, 3, 29, 1, 30)),
        (date(2026, 3, 29), "01:30", "Europe/Paris", utc(2026, 3, 29, 0, 30)),
        (date(2026, 3, 29), "03:00", "Europe/Paris", utc(2026, 3, 29, 1)),
        # Fall back (03:00 -> 02:00 on 25 October): 02:30 happens twice; the first one.
        (date(2026, 10, 25), "02:30", "Europe/Paris", utc(2026, 10, 25, 0, 30)),
        # New York's changes, and a zone with a half-hour offset.
        (date(2026, 3, 8), "02:15", "America/New_York", utc(2026, 3, 8, 7, 15)),
        (date(2026, 11, 1), "01:30", "America/New_York", utc(2026, 11, 1, 5, 30)),
        (date(2026, 6, 1), "09:00", "Asia/Kolkata", utc(2026, 6, 1, 3, 30)),
        (date(2026, 6, 1), "00:00", "UTC", utc(2026, 6, 1)),
    ],
)
def test_local_send_instant(day: date, send_time: str, zone: str, expected: datetime) -> None:
    assert local_send_instant(day, send_time, zone) == expected


def test_next_send_is_strictly_after() -> None:
    at_eight = utc(2026, 6, 12, 6)  # 08:00 in Paris
    assert next_send_at("08:00", "Europe/Paris", at_eight) == utc(2026, 6, 13, 6)
    assert next_send_at("08:00", "Europe/Paris", utc(2026, 6, 12, 5, 59)) == at_eight


def test_next_send_crosses_daylight_saving_at_the_same_wall_time() -> None:
    before = utc(2026, 3, 28, 7)  # Saturday 08:00 CET
    sunday = next_send_at("08:00", "Europe/Paris", before)
    assert sunday == utc(2026, 3, 29, 6)  # Sunday 08:00 CEST, 23 hours later
    assert (sunday - before).total_seconds() == 23 * 3600
    autumn = next_send_at("08:00", "Europe/Paris", utc(2026, 10, 24, 6))
    assert autumn == utc(2026, 10, 25, 7)  # 25 hours later


def test_every_day_has_exactly_one_send_across_a_year() -> None:
    for zone in ("Europe/Paris", "America/New_York", "Australia/Lord_Howe"):
        for send_time in ("02:30", "08:00", "23:59"):
            instant = utc(2026, 1, 1)
            days = []
            for _ in range(365):
                instant = next_send_at(send_time, zone, instant)
                days.append(digest_day(instant, zone))
            assert days == sorted(set(days)), (zone, send_time)
            assert (days[-1] - days[0]).days == 364, (zone, send_time)


def test_digest_day_is_the_local_date() -> None:
    # 23:30 UTC on 11 June is already 12 June in Tokyo.
    assert digest_day(utc(2026, 6, 11, 23, 30), "Asia/Tokyo") == date(2026, 6, 12)
    assert digest_day(utc(2026, 6, 11, 23, 30), "America/Los_Angeles") == date(2026, 6, 11)


@pytest.mark.parametrize(
    ("text", "cadence"),
    [
        ("daily", DAILY),
        (" Daily ", DAILY),
        ("weekly:mon", "weekly:mon"),
        ("weekly:Monday", "weekly:mon"),
        ("WEEKLY SUN", "weekly:sun"),
        ("weekly: friday", "weekly:fri"),
    ],
)
def test_parse_cadence(text: str, cadence: str) -> None:
    assert parse_cadence(text) == cadence


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "is not a cadence"),
        ("monthly", "is not a cadence"),
        ("weekly", "is not a cadence"),
        ("weekly:funday", "'funday' is not a day of the week"),
        ("weekly:mon tue", "is not a cadence"),
        ("daily:mon", "is not a cadence"),
    ],
)
def test_parse_cadence_says_what_is_wrong(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_cadence(text)


def test_a_stored_cadence_the_calendar_cannot_read_is_refused() -> None:
    assert cadence_weekday("weekly:sun") == 6
    with pytest.raises(ValueError, match="unknown cadence 'weekly:monday'"):
        cadence_weekday("weekly:monday")  # stored forms only: parse_cadence makes them


def test_describe_cadence() -> None:
    assert describe_cadence("daily", "08:00", "UTC") == "every day at 08:00 (UTC)"
    assert describe_cadence("weekly:wed", "18:30", "Asia/Tokyo") == (
        "every Wednesday at 18:30 (Asia/Tokyo)"
    )


def test_weekly_sends_on_its_day_strictly_after() -> None:
    monday_eight = utc(2026, 6, 15, 6)  # Monday 08:00 in Paris
    assert next_send_at("08:00", "Europe/Paris", utc(2026, 6, 12, 6), "weekly:mon") == monday_eight
    assert next_send_at("08:00", "Europe/Paris", monday_eight, "weekly:mon") == utc(2026, 6, 22, 6)
    assert previous_send_at("08:00", "Europe/Paris", monday_eight, "weekly:mon") == monday_eight
    assert previous_send_at(
        "08:00", "Europe/Paris", monday_eight - timedelta(seconds=1), "weekly:mon"
    ) == utc(2026, 6, 8, 6)


def test_weekly_crosses_daylight_saving_at_the_same_wall_time() -> None:
    # Sunday 08:00 each week, across 29 March (spring forward) and 25 October (fall
    # back), both of which are Sundays: the week is 167 and 169 hours long.
    before = utc(2026, 3, 22, 7)
    spring = next_send_at("08:00", "Europe/Paris", before, "weekly:sun")
    assert spring == utc(2026, 3, 29, 6)
    assert (spring - before).total_seconds() == 167 * 3600
    autumn = next_send_at("08:00", "Europe/Paris", utc(2026, 10, 18, 6), "weekly:sun")
    assert autumn == utc(2026, 10, 25, 7)
    # A time inside the gap moves forward by it, as for daily digests.
    assert next_send_at("02:30", "Europe/Paris", before, "weekly:sun") == utc(2026, 3, 29, 1, 30)


def test_every_week_has_exactly_one_send_on_its_day_across_a_year() -> None:
    for zone in ("Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Pacific/Apia"):
        for cadence in ("weekly:mon", "weekly:sun"):
            for send_time in ("02:30", "23:59"):
                instant = utc(2026, 1, 1)
                days = []
                for _ in range(52):
                    instant = next_send_at(send_time, zone, instant, cadence)
                    days.append(digest_day(instant, zone))
                assert all(day.weekday() == cadence_weekday(cadence) for day in days)
                gaps = {(later - earlier).days for earlier, later in pairwise(days)}
                assert gaps == {7}, (zone, cadence, send_time)
