"""Readers' lifecycle for the operator (`digest.jobs.readers`): one reader's fields
checked, adding under the consent rules, pausing and resuming, the data held about a
reader, and erasure. On SQLite files, and on PostgreSQL where it matters. Their CSV
files are tests/test_jobs_reader_files.py's."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from digest.config import Settings
from digest.jobs import readers
from digest.jobs.readers import (
    Mailer,
    ReaderError,
    add_reader,
    check_reader,
    erase_reader,
    pause_reader,
    resume_reader,
    show_reader,
)
from digest.store import Database
from digest.store.models import OutboxRow
from tests.readers_support import (
    counts,
    mail_settings,
    outbox,
    refused_with,
    store_reader,
    stored,
)
from tests.web_support import NOW

DATA = Path(__file__).parent / "data"
TEST_FILE = DATA / "readers_import.csv"


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    """Settings that can mail: a base URL for the links, a sender, a secret."""
    return mail_settings(make_settings)


@pytest.fixture
def mailer(settings: Settings) -> Mailer:
    return Mailer.from_settings(settings)


# --- one reader's fields --------------------------------------------------------------


def test_the_fields_left_out_are_the_configured_defaults(settings: Settings) -> None:
    fields = check_reader(settings, email=" Ada.Lovelace@EXAMPLE.org ", interests="diffusion")
    assert fields.email == "Ada.Lovelace@example.org"  # the domain normalised, as the form
    assert (fields.interests, fields.send_time, fields.timezone, fields.cadence) == (
        "diffusion",
        "07:00",
        "Europe/Paris",
        "daily",
    )
    more = check_reader(
        settings, email="ada@example.org", interests="agents\r\n-survey", trending=5,
        cadence="weekly Monday", send_time="7:05", timezone="Asia/Tokyo",
    )  # fmt: skip
    assert more.interests == "agents\n-survey\ntrending:5"
    assert (more.send_time, more.timezone, more.cadence) == ("07:05", "Asia/Tokyo", "weekly:mon")
    assert check_reader(settings, email="ada@example.org", trending=10).interests == "trending"


@pytest.mark.parametrize(
    ("given", "line"),
    [
        ({"email": "ada@"}, "email: There must be something after the @-sign"),
        ({"email": ""}, "email: no address given"),
        ({"email": "ada@localhost"}, "email: The part after the @-sign is not valid. It "
         "should have a period"),
        ({"interests": "title:"}, 'interests: entry 1 "title:": has an empty term: write a '
         'word or phrase after "title:"'),
        ({"interests": ""}, "interests: the list is empty"),
        ({"trending": 21}, 'trending: "21" is not a number of papers from 1 to 20'),
        ({"trending": "many"}, 'trending: "many" is not a number of papers from 1 to 20'),
        ({"interests": "agents, trending", "trending": 3},
         "trending: the interests ask for trending already; keep one"),
        ({"send_time": "24:00"}, 'time: "24:00" is not a time of day (HH:MM, 00:00 to 23:59)'),
        ({"send_time": "noon"}, 'time: "noon" is not a time of day'),
        ({"timezone": "Mars/Olympus"}, 'timezone: "Mars/Olympus" is not an IANA time zone'),
        ({"cadence": "weekly:funday"}, "cadence: 'funday' is not a day of the week"),
        ({"cadence": "hourly"}, "cadence: 'hourly' is not a cadence"),
    ],
)  # fmt: skip
def test_each_field_at_fault_is_named_in_one_line(
    settings: Settings, given: dict[str, Any], line: str
) -> None:
    values = {"email": "ada@example.org", "interests": "agents", **given}
    with pytest.raises(ReaderError) as refused:
        check_reader(settings, **values)
    assert str(refused.value).startswith(line)
    assert "\n" not in str(refused.value)


def test_every_field_at_fault_is_said_at_once(settings: Settings) -> None:
    with pytest.raises(ReaderError) as refused:
        check_reader(settings, email="x", interests='"x', send_time="9", timezone="Nowhere")
    reasons = [part.split(":")[0] for part in str(refused.value).split("; ")]
    assert reasons == ["email", "interests", "time", "timezone"]


# --- adding one reader ------------------------------------------------------------------


def _add(settings: Settings, database: Database, mailer: Mailer, confirmed: bool, **given: Any):
    values = {"email": "ada@example.org", "interests": "world model", "send_time": "18:00",
              "timezone": "UTC", **given}  # fmt: skip
    fields = check_reader(settings, **values)
    return add_reader(database, fields, now=NOW, confirmed=confirmed, mailer=mailer)


def test_adding_a_new_address_is_a_sign_up(
    settings: Settings, database: Database, mailer: Mailer
) -> None:
    done = _add(settings, database, mailer, confirmed=False)
    assert done.summary() == (
        "ada@example.org: added, pending; confirmation email queued (outbox row 1): "
        "`digest send` or the running scheduler delivers it"
    )
    ada = stored(database, "ada@example.org")
    assert (ada.status, ada.consent, ada.interests, ada.confirm_sent_at) == (
        "pending", None, "world model", NOW,
    )  # fmt: skip
    assert outbox(database) == [("confirm", "ada@example.org")]
    # Again within ten minutes: nothing sent (the form's pace), and said so.
    again = _add(settings, database, mailer, confirmed=False)
    assert again.summary() == (
        "ada@example.org: pending; a confirmation went at 2026-06-12 10:00 UTC, the next may "
        "go from 2026-06-12 10:10 UTC: nothing sent"
    )
    assert len(outbox(database)) == 1


def test_adding_with_consent_held_makes_an_active_reader(
    settings: Settings, database: Database, mailer: Mailer
) -> None:
    done = _add(settings, database, None, confirmed=True, cadence="weekly:mon")  # type: ignore[arg-type]
    assert done.summary() == (
        "ada@example.org: added, active (consent held by the operator); every Monday at "
        "18:00 (UTC), first digest 2026-06-15 18:00 UTC"
    )
    ada = stored(database, "ada@example.org")
    assert (ada.status, ada.consent, ada.confirmed_at) == ("active", "operator", NOW)
    assert outbox(database) == []  # no confirmation: the operator vouched


@pytest.mark.parametrize(
    ("status", "confirmed", "outcome"),
    [
        ("pending", False, "pending"),
        ("unsubscribed", False, "pending"),
        ("bounced", False, "pending"),
        ("active", False, "unchanged"),
        ("paused", False, "unchanged"),
        ("pending", True, "active"),
        ("active", True, "unchanged"),
        ("paused", True, "unchanged"),
    ],
)
def test_an_address_already_stored_follows_the_consent_rules(
    settings: Settings,
    database: Database,
    mailer: Mailer,
    status: str,
    confirmed: bool,
    outcome: str,
) -> None:
    store_reader(database, "ada@example.org", status)
    done = _add(settings, database, mailer, confirmed=confirmed)
    assert (done.outcome, done.was) == (outcome, status)
    ada = stored(database, "ada@example.org")
    if outcome == "pending":  # as the form: pending, their own settings kept meanwhile
        assert (ada.status, ada.interests) == ("pending", "astrology")
        assert outbox(database) == [("confirm", "ada@example.org")]
        assert done.summary().startswith(f"ada@example.org: was {status}, now pending;")
    elif outcome == "active":  # the operator's consent, with the settings given now
        assert (ada.status, ada.consent, ada.interests, ada.send_time) == (
            "active", "operator", "world model", "18:00",
        )  # fmt: skip
        assert ada.next_digest_at == datetime(2026, 6, 12, 18, 0, tzinfo=UTC)
    else:
        assert (ada.status, ada.interests) == (status, "astrology")
        assert done.summary() == f"ada@example.org: already {status}: nothing changed"
        assert outbox(database) == []


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("unsubscribed", "ada@example.org unsubscribed on 2026-05-24: only they can come back, "
         "by signing up again and confirming; nothing changed"),
        ("bounced", "ada@example.org bounced (mail to it failed): if it works again, `digest "
         "subscribers resume ada@example.org` sends to it again with its own settings; "
         "nothing changed"),
    ],
)  # fmt: skip
def test_consent_held_never_overrides_a_reader_who_left_or_bounced(
    settings: Settings, database: Database, status: str, reason: str
) -> None:
    store_reader(database, "Ada@Example.org", status)
    with pytest.raises(ReaderError) as refused:
        _add(settings, database, None, confirmed=True, email="ADA@example.org")  # type: ignore[arg-type]
    assert str(refused.value) == reason.replace("ada@example.org", "Ada@Example.org")
    assert stored(database, "ada@example.org").status == status


@pytest.mark.parametrize("confirmed", [False, True])
def test_a_sign_up_of_the_same_address_at_that_moment_is_one_line(
    settings: Settings,
    database: Database,
    mailer: Mailer,
    monkeypatch: pytest.MonkeyPatch,
    confirmed: bool,
) -> None:
    # The web stored the address just after `add` looked (here: the look misses it).
    store_reader(database, "ada@example.org", "pending")
    monkeypatch.setattr(readers, "find_subscriber", lambda session, email: None)
    refused_with(
        lambda: _add(settings, database, mailer, confirmed=confirmed),
        "ada@example.org: an address was stored by someone else at the same moment (a "
        "sign-up); nothing changed: run it again",
    )
    assert counts(database) == (1, 0, 0)


# --- pause, resume ------------------------------------------------------------------------


def test_pause_and_resume_as_the_buttons_do(database: Database) -> None:
    store_reader(database, "ada@example.org", "active")
    paused = pause_reader(database, "ADA@example.org", now=NOW)
    assert (paused.changed, paused.was, paused.subscriber.status) == (True, "active", "paused")
    assert paused.subscriber.next_digest_at is None
    assert pause_reader(database, "ada@example.org", now=NOW).changed is False
    resumed = resume_reader(database, "ada@example.org", now=NOW)
    assert (resumed.changed, resumed.subscriber.status) == (True, "active")
    assert resumed.subscriber.next_digest_at == datetime(2026, 6, 13, 8, 0, tzinfo=UTC)
    assert resume_reader(database, "ada@example.org", now=NOW).changed is False


def test_resume_sends_to_a_bounced_address_again_but_never_to_one_who_left(
    database: Database,
) -> None:
    store_reader(database, "bea@example.org", "bounced")
    back = resume_reader(database, "bea@example.org", now=NOW)
    assert (back.was, back.subscriber.status, back.subscriber.consecutive_failures) == (
        "bounced", "active", 0,
    )  # fmt: skip
    store_reader(database, "uma@example.org", "unsubscribed")
    store_reader(database, "pam@example.org", "pending")
    refused_with(
        lambda: resume_reader(database, "uma@example.org", now=NOW),
        "uma@example.org unsubscribed on 2026-05-24: only",
    )
    refused_with(
        lambda: resume_reader(database, "pam@example.org", now=NOW),
        "pam@example.org is pending: they have not confirmed",
    )
    refused_with(
        lambda: pause_reader(database, "uma@example.org", now=NOW),
        "uma@example.org is unsubscribed: only an active",
    )
    refused_with(
        lambda: pause_reader(database, "nobody@example.org", now=NOW),
        "no subscriber with the address nobody@example.org",
    )
    assert stored(database, "uma@example.org").status == "unsubscribed"


# --- what is held, and erasure --------------------------------------------------------------


def test_the_data_held_and_its_erasure(
    settings: Settings, database: Database, mailer: Mailer
) -> None:
    _add(settings, database, mailer, confirmed=False)
    store_reader(database, "bob@example.org", "active")
    data = show_reader(database, "ADA@example.org")
    assert data["email"] == "ada@example.org" and data["status"] == "pending"
    assert data["schedule"] == "every day at 18:00 (UTC)"
    assert data["created_at"] == "2026-06-12T10:00:00+00:00"
    [message] = data["messages"]
    assert (message["kind"], message["state"], message["sent_at"]) == ("confirm", "queued", None)
    assert message["message_id"].startswith("<confirm.")
    assert "body" not in json.dumps(data) and "data" not in message
    erased = erase_reader(database, "Ada@Example.org")
    assert erased.summary() == (
        "deleted ada@example.org: the reader, 1 outbox row and 1 message body"
    )
    assert counts(database) == (1, 0, 0)  # bob only
    refused_with(
        lambda: erase_reader(database, "ada@example.org"),
        "no subscriber with the address ada@example.org",
    )


def test_erasing_a_reader_while_a_sender_holds_their_message(database: Database) -> None:
    # The sender claimed ada's digest and is talking to the server when she is erased:
    # its renewal finds the claim gone (so it sends nothing more of hers), and recording
    # the outcome of what it had sent writes nothing and fails nothing.
    from digest.store.outbox import Result, claim_due, queue_message, record_results, renew_claims
    from tests.messages import build_digest

    store_reader(database, "ada@example.org", "active")
    store_reader(database, "bob@example.org", "active")
    ada, bob = stored(database, "ada@example.org"), stored(database, "bob@example.org")
    with database.session() as session:
        for who in (ada, bob):
            queue_message(
                session, subscriber_id=who.id, kind="digest", digest_date=NOW.date(),
                message=build_digest(who.id, who.email, NOW.date(), papers=2), now=NOW,
            )  # fmt: skip
    with database.session() as session:
        jobs = claim_due(session, now=NOW, limit=10, claimer="sender-1")
    assert sorted(job.subscriber_id for job in jobs) == sorted([ada.id, bob.id])
    erase_reader(database, "ada@example.org")
    with database.session() as session:
        assert renew_claims(session, "sender-1", [job.id for job in jobs], now=NOW) == 1
        results = [Result(job.id, job.subscriber_id, "sent") for job in jobs]
        assert record_results(session, results, now=NOW, bounce_threshold=3) == []
    assert counts(database) == (1, 1, 1)
    with database.session() as session:
        assert session.scalar(select(OutboxRow.state)) == "sent"  # bob's
