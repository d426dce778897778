"""Signed link tokens."""

from __future__ import annotations

import os
import stat
import time

import pytest

from digest import tokens
from digest.config import Settings
from digest.errors import TokenError

SECRET = "a-test-secret-that-is-long-enough"


def test_round_trip_binds_subscriber_and_address() -> None:
    token = tokens.make_token(SECRET, "unsubscribe", 42, "Ada@Example.org")
    subscriber_id, tag = tokens.read_token(SECRET, "unsubscribe", token)
    assert subscriber_id == 42
    assert tokens.token_matches(tag, "ada@example.org")
    assert not tokens.token_matches(tag, "bob@example.org")


@pytest.mark.parametrize(
    ("made_for", "used_for"),
    [("confirm", "unsubscribe"), ("unsubscribe", "manage"), ("manage", "confirm")],
)
def test_a_token_serves_one_purpose(made_for: str, used_for: str) -> None:
    token = tokens.make_token(SECRET, made_for, 1, "a@example.org")
    with pytest.raises(TokenError, match=f"this {used_for} link is not valid"):
        tokens.read_token(SECRET, used_for, token)


def test_tampered_and_foreign_tokens() -> None:
    token = tokens.make_token(SECRET, "manage", 1, "a@example.org")
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    for bad in (flipped, "", "garbage", token + "x"):
        with pytest.raises(TokenError, match="not valid"):
            tokens.read_token(SECRET, "manage", bad)
    with pytest.raises(TokenError, match="not valid"):
        tokens.read_token("another-secret", "manage", token)


def test_confirm_tokens_expire_after_seven_days(monkeypatch: pytest.MonkeyPatch) -> None:
    token = tokens.make_token(SECRET, "confirm", 1, "a@example.org")
    unsubscribe = tokens.make_token(SECRET, "unsubscribe", 1, "a@example.org")
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 7 * 86400 + 60)
    with pytest.raises(TokenError, match="expired"):
        tokens.read_token(SECRET, "confirm", token)
    assert tokens.read_token(SECRET, "unsubscribe", unsubscribe)[0] == 1


def test_generated_secret_is_kept_private_and_reused(settings: Settings, umask: int) -> None:
    # The first thing to run may be the secret (a PostgreSQL store makes no data folder).
    assert not settings.data_dir.exists()
    first = tokens.secret_key(settings)
    path = settings.data_dir / tokens.SECRET_FILE
    assert settings.data_dir.stat().st_mode & 0o777 == 0o700
    assert len(first) >= 40
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert tokens.secret_key(settings) == first


def test_configured_secret_wins(make_settings) -> None:
    settings = make_settings(web={"secret_key": "from-config"})
    assert tokens.secret_key(settings) == "from-config"
    assert not (settings.data_dir / tokens.SECRET_FILE).exists()


def test_link_uses_the_public_base_url(make_settings) -> None:
    settings = make_settings(service={"base_url": "https://digest.example.org/"})
    url = tokens.link(settings, SECRET, "unsubscribe", 3, "a@example.org")
    assert url.startswith("https://digest.example.org/unsubscribe/")
    token = url.rsplit("/", 1)[1]
    assert tokens.read_token(SECRET, "unsubscribe", token)[0] == 3


@pytest.mark.parametrize("subscriber_id", [2**70, 2**40, tokens.MAX_ID + 1, 0, -1, -(2**70)])
def test_a_signed_id_out_of_range_is_not_valid(subscriber_id: int) -> None:
    # Correctly signed (a leaked secret, or a link made by a bug): still names nobody, and
    # must never reach the database, where it overflows the id column.
    token = tokens.make_token(SECRET, "manage", subscriber_id, "a@example.org")
    with pytest.raises(TokenError, match="this manage link is not valid"):
        tokens.read_token(SECRET, "manage", token)


def test_a_signed_boolean_is_no_id() -> None:
    token = tokens._serializer(SECRET, "manage").dumps([True, "tag"])
    with pytest.raises(TokenError, match="not valid"):
        tokens.read_token(SECRET, "manage", token)


def test_the_largest_id_is_read() -> None:
    token = tokens.make_token(SECRET, "manage", tokens.MAX_ID, "a@example.org")
    assert tokens.read_token(SECRET, "manage", token)[0] == tokens.MAX_ID


PREFERENCES = {
    "interests": "diffusion\ntrending:5",
    "send_time": "07:30",
    "timezone": "Asia/Tokyo",
    "cadence": "weekly:fri",
}


def test_a_confirm_token_carries_the_sign_ups_preferences() -> None:
    token = tokens.make_confirm_token(SECRET, 7, "ada@example.org", PREFERENCES)
    subscriber_id, tag, preferences = tokens.read_confirm_token(SECRET, token)
    assert (subscriber_id, preferences) == (7, PREFERENCES)
    assert tokens.token_matches(tag, "ada@example.org")


def test_a_confirm_link_sent_before_cadences_confirms_a_daily_digest() -> None:
    # The payload links carried before readers chose a cadence: three preferences.
    earlier = [7, tokens._address_tag("ada@example.org"), "diffusion", "07:30", "UTC"]
    token = tokens._serializer(SECRET, "confirm").dumps(earlier)
    _, _, preferences = tokens.read_confirm_token(SECRET, token)
    assert preferences == {
        "interests": "diffusion",
        "send_time": "07:30",
        "timezone": "UTC",
        "cadence": "daily",
    }


@pytest.mark.parametrize(
    "payload",
    [
        [7, "tag", "diffusion", "07:30", "UTC", 5],  # not a string
        [7, "tag", "diffusion", "07:30"],  # too few
        [7, "tag", "diffusion", "07:30", "UTC", "daily", "more"],  # too many
    ],
)
def test_a_confirm_token_with_a_wrong_payload_is_not_valid(payload: list[object]) -> None:
    token = tokens._serializer(SECRET, "confirm").dumps(payload)
    with pytest.raises(TokenError, match="this confirm link is not valid"):
        tokens.read_confirm_token(SECRET, token)
