"""`digest subscribers`: list, show, add, import, export, pause, resume, remove.

Through click's CliRunner on a real SQLite store (and PostgreSQL for the import and
export), the time from DIGEST_CLOCK_FILE as for every command; the web app built on the
same settings checks what the commands did to the readers' links.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from digest.cli import cli
from digest.config import load_settings
from digest.store import Database, open_database
from digest.store.models import OutboxRow
from digest.store.subscribers import change_status, create_subscriber, find_subscriber
from digest.tokens import make_token
from digest.web import create_app
from tests.web_support import BASE_URL, NOW, SECRET

DATA = Path(__file__).parent / "data"


def _config(folder: Path, database_url: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.toml"
    database = f'[database]\nurl = "{database_url}"\n' if database_url else ""
    path.write_text(
        f'[service]\ndata_dir = "{folder / "data"}"\nbase_url = "{BASE_URL}"\n'
        'timezone = "Europe/Paris"\n'
        f'[web]\nsecret_key = "{SECRET}"\n'
        '[mail]\nfrom_address = "digest@example.org"\n' + database
    )
    return path


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return _config(tmp_path / "one")


def digest(config: Path, *arguments: str, now: str = NOW.isoformat(), **kw: Any) -> Result:
    clock = config.parent / "clock"
    clock.write_text(now)
    return CliRunner().invoke(
        cli,
        ["--config", str(config), *arguments],
        env={"DIGEST_CLOCK_FILE": str(clock)},
        catch_exceptions=False,
        **kw,
    )


def _database(config: Path) -> Database:
    return open_database(load_settings(config, environ={}))


def _stored(config: Path, *readers: tuple[str, str]) -> None:
    """Readers stored 20 days before NOW, (address, status) each."""
    from datetime import timedelta

    database = _database(config)
    with database.session() as session:
        for email, status in readers:
            first = "pending" if status == "pending" else "active"
            reader = create_subscriber(
                session, email, "agents", send_time="08:00", timezone="UTC",
                now=NOW - timedelta(days=20), status=first,
            )  # fmt: skip
            if status != first:
                change_status(session, reader.id, status, NOW - timedelta(days=19))
    database.dispose()


def test_a_session(config: Path) -> None:
    added = digest(config, "subscribers", "add", "ada@example.org", "--interests",
                   "diffusion, rlhf", "--time", "07:30")  # fmt: skip
    assert (added.exit_code, added.stdout) == (
        0,
        "ada@example.org: added, pending; confirmation email queued (outbox row 1): "
        "`digest send` or the running scheduler delivers it\n",
    )
    vouched = digest(config, "subscribers", "add", "Bob@Example.ORG", "--interests", "agents",
                     "--trending", "5", "--weekly", "monday", "--confirmed")  # fmt: skip
    assert vouched.stdout == (
        "Bob@example.org: added, active (consent held by the operator); every Monday at 08:00 "
        "(Europe/Paris), first digest 2026-06-15 06:00 UTC\n"
    )
    listed = digest(config, "subscribers", "list")
    assert listed.stdout.splitlines() == [
        "email                             status        cadence     time   timezone              "
        "interests",
        "ada@example.org                   pending       daily       07:30  Europe/Paris          "
        "diffusion, rlhf",
        "Bob@example.org                   active        weekly:mon  08:00  Europe/Paris          "
        "agents, trending:5",
    ]
    assert "2 readers" in listed.stderr
    shown = digest(config, "subscribers", "show", "BOB@example.org")
    assert shown.stdout.splitlines() == [
        "Bob@example.org (reader 2)",
        "  status        active since 2026-06-12 10:00 UTC (consent: operator)",
        "  interests     agents",
        "                trending:5",
        "  schedule      every Monday at 08:00 (Europe/Paris)",
        "  next digest   2026-06-15 06:00 UTC",
        "  signed up     2026-06-12 10:00 UTC",
        "  confirmed     2026-06-12 10:00 UTC",
        "  last confirm  -",
        "  papers since  2026-06-11 10:00 UTC",
        "  failures      0",
        "  messages      none in the outbox",
    ]
    ada = digest(config, "subscribers", "show", "ada@example.org").stdout.splitlines()
    assert ada[-2] == "  messages      1 in the outbox, the latest 1:"
    assert ada[-1].startswith(
        "    2026-06-12  confirm  queued    -                          <confirm."
    )
    paused = digest(config, "subscribers", "pause", "bob@example.org")
    assert paused.stdout == (
        "Bob@example.org: paused; no digests until resumed (here, or on their manage page)\n"
    )
    again = digest(config, "subscribers", "pause", "bob@example.org")
    assert again.stdout == "Bob@example.org: already paused: nothing changed\n"
    resumed = digest(config, "subscribers", "resume", "bob@example.org", now="2026-06-16T10:00Z")
    assert resumed.stdout == "Bob@example.org: active again; next digest 2026-06-22 06:00 UTC\n"
    pending = digest(config, "subscribers", "resume", "ada@example.org")
    assert (pending.exit_code, pending.stdout) == (1, "")
    assert pending.stderr.endswith(
        "digest: ada@example.org is pending: they have not confirmed; `digest subscribers add "
        "--confirmed ada@example.org` if you hold their consent\n"
    )


def test_show_json_is_the_readers_own_data_download(config: Path) -> None:
    digest(config, "subscribers", "add", "ada@example.org", "--interests", "agents")
    printed = json.loads(digest(config, "subscribers", "show", "ada@example.org", "--json").stdout)
    settings = load_settings(config, environ={})
    database = open_database(settings)
    with database.session() as session:
        ada = find_subscriber(session, "ada@example.org")
    assert ada is not None
    app = create_app(settings, database=database, clock=lambda: NOW)
    token = make_token(SECRET, "manage", ada.id, ada.email)
    downloaded = json.loads(app.test_client().get(f"/manage/{token}/data.json").data)
    assert printed == downloaded and printed["messages"][0]["kind"] == "confirm"
    database.dispose()


@pytest.mark.parametrize(
    ("arguments", "line"),
    [
        (("bad@", "--interests", '"x', "--time", "25:00", "--timezone", "Mars/Base"),
         "digest: email: There must be something after the @-sign; interests: entry 1 "
         '""x": a quote is not closed: put a " at the end of the phrase; time: "25:00" is '
         'not a time of day (HH:MM, 00:00 to 23:59); timezone: "Mars/Base" is not an IANA '
         "time zone (such as Europe/Paris)"),
        (("ada@example.org", "--weekly", "funday", "--interests", "x"),
         "digest: cadence: 'funday' is not a day of the week (monday to sunday)"),
        (("ada@example.org",), "digest: interests: the list is empty"),
        (("uma@example.org", "--interests", "x", "--confirmed"),
         "digest: uma@example.org unsubscribed on 2026-05-24: only they can come back, by "
         "signing up again and confirming; nothing changed"),
    ],
)  # fmt: skip
def test_what_add_refuses_is_one_line_and_exit_1(
    config: Path, arguments: tuple[str, ...], line: str
) -> None:
    _stored(config, ("uma@example.org", "unsubscribed"))
    result = digest(config, "subscribers", "add", *arguments)
    assert (result.exit_code, result.stdout) == (1, "")
    [*_, last] = result.stderr.splitlines()
    assert last.startswith(line), last
    database = _database(config)
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(OutboxRow)) == 0
    database.dispose()


def test_import_reports_each_refused_row_and_exits_1(config: Path) -> None:
    _stored(config, ("ada@example.org", "active"), ("uma@example.org", "unsubscribed"))
    path = str(DATA / "readers_import.csv")
    dry = digest(config, "subscribers", "import", path, "--dry-run")
    assert dry.exit_code == 1
    lines = dry.stdout.splitlines()
    assert lines[0] == "readers_import.csv: 15 rows: 6 accepted, 9 refused"
    assert lines[-1] == (
        "--dry-run: nothing stored; would store 6 new readers (pending), 6 confirmation emails"
    )
    assert "line 10: email uma@example.org: already a reader (unsubscribed since 2026-05-24)" in (
        dry.stdout
    )
    done = digest(config, "subscribers", "import", path, "--confirmed")
    assert done.exit_code == 1
    assert done.stdout.splitlines()[-1] == "stored: 6 new readers (active)"
    assert digest(config, "subscribers", "list", "--status", "active").stderr.endswith(
        "7 readers active\n"
    )


def test_an_unreadable_file_is_one_line(config: Path, tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text("mail,name\nada@example.org,Ada\n")
    result = digest(config, "subscribers", "import", str(path))
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.splitlines()[-1] == (
        'digest: people.csv: line 1: unknown columns "mail", "name"; the columns are email, '
        "interests, trending, cadence, time, timezone (and those `export` adds)"
    )


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_export_then_import_elsewhere(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    if backend == "postgresql":
        database = request.getfixturevalue("postgres_database")
        source = _config(tmp_path / "pg", database.url)
    else:
        source = _config(tmp_path / "one")
    ada = ("--interests", "-survey, agents", "--weekly", "sun", "--time", "18:00")
    digest(source, "subscribers", "add", "ada@example.org", *ada, "--timezone", "Asia/Tokyo",
           "--confirmed")  # fmt: skip
    digest(source, "subscribers", "add", "bob@example.org", "--trending", "5", "--confirmed")
    digest(source, "subscribers", "pause", "bob@example.org")
    digest(source, "subscribers", "add", "cid@example.org", "--interests", "=1+2")
    exported = digest(source, "subscribers", "export")
    assert exported.stdout.splitlines()[0] == (
        "email,interests,trending,cadence,time,timezone,status,created_at,confirmed_at,consent,"
        "last_digest_at,next_digest_at"
    )
    assert "'-survey, agents" in exported.stdout and "'=1+2" in exported.stdout
    assert exported.stderr.endswith("3 readers exported\n")
    path = tmp_path / "export.csv"
    path.write_text(exported.stdout)
    target = _config(tmp_path / "two")
    imported = digest(target, "subscribers", "import", str(path), "--confirmed")
    assert imported.stdout.splitlines()[1:] == [
        "line 4: email cid@example.org: status pending: they never confirmed, so not with "
        "--confirmed (import them without it to send them a confirmation)",
        "stored: 2 new readers (active), 1 of them paused, as the file says",
    ]
    unconfirmed = digest(target, "subscribers", "import", str(path))
    assert unconfirmed.stdout.splitlines()[-2] == (
        "stored: 1 new reader (pending), 1 confirmation email queued"
    )

    def readers(config: Path) -> list[dict[str, Any]]:
        out = digest(config, "subscribers", "export", "--json").stdout
        keep = ("email", "interests", "cadence", "time", "timezone", "status")
        return [{k: row[k] for k in keep} for row in map(json.loads, out.splitlines())]

    assert readers(target) == readers(source)


def test_json_and_csv_at_once_is_a_usage_error(config: Path) -> None:
    result = digest(config, "subscribers", "list", "--json", "--csv")
    assert result.exit_code == 2 and "give --json or --csv, not both" in result.stderr


def test_remove_asks_then_deletes_everything_and_the_links_die(config: Path) -> None:
    digest(config, "subscribers", "add", "ada@example.org", "--interests", "agents")
    digest(config, "subscribers", "add", "bob@example.org", "--interests", "agents")
    settings = load_settings(config, environ={})
    database = open_database(settings)
    with database.session() as session:
        ada = find_subscriber(session, "ada@example.org")
    assert ada is not None
    kept = digest(config, "subscribers", "remove", "ADA@example.org", input="n\n")
    assert kept.exit_code == 1
    assert kept.stdout.startswith(
        "Delete ada@example.org (pending) and 1 outbox row for good? [y/N]: "
    )
    assert "Aborted!" in kept.stderr
    removed = digest(config, "subscribers", "remove", "ada@example.org", input="y\n")
    assert removed.exit_code == 0
    assert removed.stdout.splitlines()[-1] == (
        "deleted ada@example.org: the reader, 1 outbox row and 1 message body"
    )
    with database.session() as session:
        assert find_subscriber(session, "ada@example.org") is None
        recipients = session.scalars(select(OutboxRow.recipient)).all()
    assert recipients == ["bob@example.org"]
    client = create_app(settings, database=database, clock=lambda: NOW).test_client()
    for purpose in ("manage", "unsubscribe", "confirm"):
        page = client.get(f"/{purpose}/{make_token(SECRET, purpose, ada.id, ada.email)}")
        assert page.status_code == 400, purpose
        assert "This link does not work" in page.get_data(as_text=True)
    database.dispose()
    gone = digest(config, "subscribers", "remove", "ada@example.org", "--yes")
    assert gone.exit_code == 1 and gone.stderr.endswith(
        "digest: no subscriber with the address ada@example.org; check the spelling\n"
    )


def test_the_operator_cannot_resume_a_reader_who_left(config: Path) -> None:
    _stored(config, ("uma@example.org", "unsubscribed"), ("bea@example.org", "bounced"))
    left = digest(config, "subscribers", "resume", "uma@example.org")
    assert left.exit_code == 1 and left.stderr.endswith(
        "digest: uma@example.org unsubscribed on 2026-05-24: only they can come back, by "
        "signing up again and confirming\n"
    )
    bounced = digest(config, "subscribers", "resume", "bea@example.org")
    assert (
        bounced.stdout == "bea@example.org: sending to it again; next digest 2026-06-13 08:00 UTC\n"
    )
