"""`digest send-digests`: a reader's digest (or everyone due) made and delivered now.

Through click's CliRunner, on a real SQLite store holding a real saved listing, with
mail going to a real aiosmtpd server on loopback; the time comes from DIGEST_CLOCK_FILE,
as for every command.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from digest.cli import cli
from digest.config import load_settings
from digest.paper import Paper
from digest.sources import hf
from digest.store import open_database
from digest.store.papers import save_papers
from digest.store.subscribers import change_status, create_subscriber

DATA = Path(__file__).parent / "data" / "sources"
SEEN = datetime(2026, 6, 12, 6, 0, tzinfo=UTC)  # the listing of 12 June, fetched that morning
SIGNUP = datetime(2026, 6, 12, 7, 0, tzinfo=UTC)  # after it: next digests are today
NOW = "2026-06-12T15:00:00+00:00"  # 15:00 UTC: the readers' 18:00 is still to come


@pytest.fixture
def config(tmp_path: Path, smtp_server: Any) -> Path:
    """A config sending through the test's SMTP server, its store stocked with the HF
    listing of 12 June 2026 and readers in every state that matters here."""
    smtp = smtp_server.smtp_settings()
    path = tmp_path / "config.toml"
    path.write_text(
        f'[service]\ndata_dir = "{tmp_path / "data"}"\n'
        '[mail]\nfrom_address = "digest@example.org"\n'
        f'[smtp]\nhost = "{smtp["host"]}"\nport = {smtp["port"]}\nsecurity = "none"\n'
    )
    listing = hf.parse_api((DATA / "hf_api_daily_papers_2026-06-12.json").read_bytes(), "api")
    database = open_database(load_settings(path, environ={}))
    with database.session() as session:
        save_papers(session, listing.papers, SEEN)
        for name, send_time in (("ada", "18:00"), ("bob", "18:00"), ("eve", "14:00")):
            create_subscriber(
                session,
                f"{name}@example.org",
                "agents",
                send_time=send_time,
                timezone="UTC",
                now=SIGNUP,
                status="active",
            )
        for name, status in (("pat", "paused"), ("uma", "unsubscribed")):
            reader = create_subscriber(
                session,
                f"{name}@example.org",
                "agents",
                send_time="18:00",
                timezone="UTC",
                now=SIGNUP,
                status="active",
            )
            change_status(session, reader.id, status, SIGNUP)
    database.dispose()
    return path


def digest(config: Path, *arguments: str, now: str = NOW) -> Result:
    clock = config.parent / "clock"
    clock.write_text(now)
    return CliRunner().invoke(
        cli,
        ["--config", str(config), *arguments],
        env={"DIGEST_CLOCK_FILE": str(clock)},
        catch_exceptions=False,
    )


def test_a_readers_digest_arrives_once(config: Path, smtp_server: Any) -> None:
    first = digest(config, "send-digests", "--email", "ada@example.org")
    assert first.exit_code == 0, first.output
    assert first.stdout.splitlines() == [
        "ada@example.org: digest for 2026-06-12 queued (outbox row 1), matched among 30 papers "
        "first seen 2026-06-11 07:00 to 2026-06-12 14:55 UTC",
        "1 sent, 0 retrying, 0 failed, 0 addresses suppressed",
    ]
    [message] = smtp_server.received
    assert message.recipients == ("ada@example.org",)
    assert b"agent" in message.data.lower()
    # The same day, later: nothing more, and the daily job at 18:00 sends
    # ada none either (bob's and eve's are due).
    second = digest(config, "send-digests", "--email", "ada@example.org", now="2026-06-12T17:00Z")
    assert second.exit_code == 0, second.output
    assert second.stdout.splitlines() == [
        "ada@example.org: already sent for 2026-06-12 (outbox row 1): one digest a day",
        "0 sent, 0 retrying, 0 failed, 0 addresses suppressed",
    ]
    due = digest(config, "send-digests", "--due", now="2026-06-12T18:00:00Z")
    assert due.stdout.splitlines()[0] == (
        "digests due 3, queued 2, nothing new 0, already queued 1, bad interests 0, "
        "papers considered 30"
    )
    assert sorted(m.recipients for m in smtp_server.received) == [
        ("ada@example.org",),
        ("bob@example.org",),
        ("eve@example.org",),
    ]


def test_due_runs_the_scheduler_job_once(config: Path, smtp_server: Any) -> None:
    result = digest(config, "send-digests", "--due")  # 15:00: only eve's 14:00 has passed
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "digests due 1, queued 1, nothing new 0, already queued 0, bad interests 0, "
        "papers considered 30",
        "1 sent, 0 retrying, 0 failed, 0 addresses suppressed",
    ]
    assert [m.recipients for m in smtp_server.received] == [("eve@example.org",)]
    again = digest(config, "send-digests", "--due")
    assert again.stdout.splitlines()[0].startswith("digests due 0, queued 0,")
    assert len(smtp_server.received) == 1


def test_no_deliver_only_queues(config: Path, smtp_server: Any) -> None:
    queued = digest(config, "send-digests", "--email", "bob@example.org", "--no-deliver")
    assert queued.exit_code == 0, queued.output
    assert queued.stdout.splitlines()[1:] == [
        "not delivered (--no-deliver): `digest send` or the scheduler delivers it"
    ]
    assert smtp_server.received == []
    again = digest(config, "send-digests", "--email", "bob@example.org")  # delivers that one
    assert again.stdout.splitlines() == [
        "bob@example.org: already queued for 2026-06-12 (outbox row 1, queued): one digest a day",
        "1 sent, 0 retrying, 0 failed, 0 addresses suppressed",
    ]
    assert [m.recipients for m in smtp_server.received] == [("bob@example.org",)]


@pytest.mark.parametrize(
    ("address", "line"),
    [
        ("nobody@example.org", "no subscriber with the address nobody@example.org; check the "
         "spelling"),
        ("pat@example.org", "pat@example.org is paused: no digest until they resume (on their "
         "manage page)"),
        ("uma@example.org", "uma@example.org unsubscribed: no digest goes to them"),
    ],
)  # fmt: skip
def test_a_reader_who_gets_no_digest_is_one_line_and_exit_1(
    config: Path, smtp_server: Any, address: str, line: str
) -> None:
    result = digest(config, "send-digests", "--email", address)
    assert (result.exit_code, result.stdout, result.stderr) == (1, "", f"digest: {line}\n")
    assert smtp_server.received == []
    outbox = digest(config, "outbox")
    assert outbox.stdout == "the outbox is empty\n"


@pytest.mark.parametrize("arguments", [(), ("--due", "--email", "ada@example.org")])
def test_email_or_due_is_required(config: Path, arguments: tuple[str, ...]) -> None:
    result = digest(config, "send-digests", *arguments)
    assert result.exit_code == 2
    assert "give either --email ADDRESS or --due" in result.stderr


def test_papers_fetched_a_moment_ago_say_when_to_run_again(config: Path, smtp_server: Any) -> None:
    # An operator loads a listing and asks for a digest straight away: the new paper is
    # newer than the window's end (a fetch may still be saving), so the line says when.
    database = open_database(load_settings(config, environ={}))
    with database.session() as session:
        create_subscriber(
            session, "zed@example.org", "title:zebrafish", send_time="18:00",
            timezone="UTC", now=SIGNUP, status="active",
        )  # fmt: skip
        fresh = Paper(id="2606.99999", title="Zebrafish fins regrow", abstract="Fins.")
        save_papers(session, [fresh], datetime(2026, 6, 12, 14, 58, 30, tzinfo=UTC))
    database.dispose()
    early = digest(config, "send-digests", "--email", "zed@example.org")
    assert early.exit_code == 0, early.output
    assert early.output.splitlines()[0] == (
        "zed@example.org: no digest for 2026-06-12: none of 30 papers first seen "
        "2026-06-11 07:00 to 2026-06-12 14:55 UTC matched; 1 newer paper goes in the next "
        "digest, or run this again after 15:04 UTC"
    )
    later = digest(
        config, "send-digests", "--email", "zed@example.org", now="2026-06-12T15:04:00+00:00"
    )
    assert later.output.splitlines()[0].startswith("zed@example.org: digest for 2026-06-12 queued")
    assert [m.recipients for m in smtp_server.received] == [("zed@example.org",)]
