"""Readers' CSV files (`digest.jobs.reader_files`): importing the test file's every kind
of bad row, a 10 MB file, nothing stored when anything fails mid-way, two imports at
once, and export then import into a fresh store. On SQLite files, and on PostgreSQL
where it matters."""

from __future__ import annotations

import csv
import io
import json
import random
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest.config import Settings
from digest.jobs import reader_files
from digest.jobs.reader_files import (
    csv_rows,
    from_spreadsheet,
    import_readers,
    spreadsheet_safe,
)
from digest.jobs.readers import (
    Mailer,
    ReaderError,
    export_readers,
)
from digest.store import Database, open_database
from digest.store.models import SubscriberRow
from digest.store.subscribers import (
    count_by_status,
    find_subscriber,
)
from tests.readers_support import (
    counts,
    mail_settings,
    outbox,
    store_reader,
    stored,
)
from tests.web_support import BASE_URL, NOW, SECRET

DATA = Path(__file__).parent / "data"
TEST_FILE = DATA / "readers_import.csv"


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    """Settings that can mail: a base URL for the links, a sender, a secret."""
    return mail_settings(make_settings)


@pytest.fixture
def mailer(settings: Settings) -> Mailer:
    return Mailer.from_settings(settings)


# --- import: the test file ----------------------------------------------------------------


def _stock(database: Database) -> None:
    """The readers the test file meets in the store."""
    store_reader(database, "ada@example.org", "active")
    store_reader(database, "uma@example.org", "unsubscribed")
    store_reader(database, "bea@example.org", "bounced")
    store_reader(database, "pam@example.org", "pending")


REFUSED = [
    'line 3: email "not-an-address": email: An email address must have an @-sign',
    "line 5: email Carol@example.org: duplicate of line 2",
    'line 6: email erin@example.org: timezone: "Mars/Olympus_Mons" is not an IANA time zone '
    "(such as Europe/Paris)",
    'line 7: email frank@example.org: interests: entry 1 "title:": has an empty term: write '
    'a word or phrase after "title:"',
    "line 8: email gina@example.org: cadence: 'fortnightly' is not a cadence: say daily, or "
    "weekly and a day (weekly:mon)",
    "line 9: email ada@example.org: already a reader (active since 2026-05-23)",
    "line 10: email uma@example.org: already a reader (unsubscribed since 2026-05-24): only "
    "they can come back, by signing up again",
    "line 11: email bea@example.org: already a reader (bounced since 2026-05-24): `digest "
    "subscribers resume` sends to it again, if it works again",
    "line 12: email pam@example.org: already a reader (pending since 2026-05-23)",
    'line 14: email ivy@example.org: trending: "50" is not a number of papers from 1 to 20',
    'line 15: email "jo@localhost": email: The part after the @-sign is not valid. It should '
    "have a period",
]


def test_the_test_file_is_imported_row_by_row_with_a_reason_for_each_refusal(
    settings: Settings, database: Database
) -> None:
    _stock(database)
    report = import_readers(settings, database, TEST_FILE, now=NOW)
    lines = report.lines()
    assert lines[0] == "readers_import.csv: 15 rows: 4 accepted, 11 refused"
    assert lines[1:-2] == REFUSED
    assert lines[-2:] == [
        "stored: 4 new readers (pending), 4 confirmation emails queued",
        "`digest send` or the running scheduler delivers the emails",
    ]
    carol, dave = stored(database, "carol@example.org"), stored(database, "dave@example.org")
    assert (carol.status, carol.interests, carol.send_time, carol.timezone) == (
        "pending", "world model, -survey", "06:45", "America/New_York",
    )  # fmt: skip
    assert (dave.email, dave.interests, dave.cadence, dave.send_time, dave.timezone) == (
        "dave@example.org", "agents\ntrending:3", "weekly:fri", "07:05", "Europe/Paris",
    )  # fmt: skip
    kim = stored(database, "kim@example.org")
    assert (kim.interests, kim.cadence) == ("graph neural network\n-survey", "weekly:sun")
    assert stored(database, "hal@example.org").interests == "trending:5"
    assert sorted(recipient for _, recipient in outbox(database)) == [
        "carol@example.org", "dave@example.org", "hal@example.org", "kim@example.org",
    ]  # fmt: skip
    # Those already stored are as they were: the pending one got no second email.
    assert stored(database, "pam@example.org").interests == "astrology"
    assert stored(database, "uma@example.org").status == "unsubscribed"


def test_with_consent_held_a_pending_reader_is_confirmed_and_one_who_left_is_not(
    settings: Settings, database: Database
) -> None:
    _stock(database)
    report = import_readers(settings, database, TEST_FILE, now=NOW, confirmed=True)
    lines = report.lines()
    assert lines[0] == "readers_import.csv: 15 rows: 5 accepted, 10 refused"
    assert lines[1:-1] == [line for line in REFUSED if "pam@" not in line]
    assert lines[-1] == "stored: 4 new readers (active), 1 pending reader confirmed"
    pam = stored(database, "pam@example.org")
    assert (pam.status, pam.consent, pam.interests, pam.cadence, pam.timezone) == (
        "active", "operator", "diffusion models", "weekly:mon", "Europe/Berlin",
    )  # fmt: skip
    assert pam.next_digest_at == datetime(2026, 6, 15, 7, 0, tzinfo=UTC)  # Monday, 09:00
    assert stored(database, "carol@example.org").consent == "operator"
    assert stored(database, "uma@example.org").status == "unsubscribed"
    assert stored(database, "bea@example.org").status == "bounced"
    assert outbox(database) == []


def test_dry_run_and_strict_store_nothing(settings: Settings, database: Database) -> None:
    _stock(database)
    before = counts(database)
    dry = import_readers(settings, database, TEST_FILE, now=NOW, dry_run=True)
    assert dry.lines()[-1] == (
        "--dry-run: nothing stored; would store 4 new readers (pending), 4 confirmation emails"
    )
    assert dry.lines()[1:-1] == REFUSED
    strict = import_readers(settings, database, TEST_FILE, now=NOW, strict=True)
    assert strict.lines()[-1] == "--strict: a row was refused, so nothing was stored"
    assert counts(database) == before
    good = DATA / "readers_import.csv"
    clean = good.read_text().splitlines()[:2]  # the header and carol
    path = Path(database.engine.url.database).parent / "clean.csv"
    path.write_text("\n".join(clean) + "\n")
    assert import_readers(settings, database, path, now=NOW, strict=True).stored


def test_the_confirmation_of_an_imported_reader_confirms_through_the_web_app(
    make_site: Any,
) -> None:
    from digest.send import send_due
    from tests.web_support import link_path

    site = make_site(service={"timezone": "Europe/Paris"}, mail={"from_address": "d@example.org"})
    report = import_readers(site.settings, site.database, TEST_FILE, now=NOW)
    assert report.confirmations == 8  # a fresh store: ada, uma, bea and pam are new here
    send_due(site.settings, site.database, now=NOW)
    mails = {message["To"]: message for message in site.mails(8)}
    message = mails["kim@example.org"]
    assert "graph neural network" in message.get_body(("plain",)).get_content()
    page = site.submit(link_path(message, "confirm"))
    assert page.status_code == 200 and "You are subscribed" in page.get_data(as_text=True)
    kim = site.subscriber("kim@example.org")
    assert (kim.status, kim.consent, kim.cadence, kim.send_time) == (
        "active", "link", "weekly:sun", "18:30",
    )  # fmt: skip


# --- import: the whole file refused ---------------------------------------------------------


def _file(tmp_path: Path, content: bytes | str, name: str = "readers.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "readers.csv is empty: its first line must name the columns"),
        (b"email,name,phone\n", 'readers.csv: line 1: unknown columns "name", "phone"; the '
         "columns are email, interests, trending, cadence, time, timezone (and those "
         "`export` adds)"),
        (b"ada@example.org,agents\n", 'readers.csv: line 1: unknown columns "ada@example.org", '
         '"agents" (the first line is the header)'),
        (b"interests,time\nagents,08:00\n", "readers.csv: line 1: no email column"),
        (b"email,Email\n", "readers.csv: line 1: column email appears twice"),
        (b"email,interests\nada@example.org,caf\xe9\n",
         "readers.csv: line 2 is not UTF-8 (byte 0xe9 at column 20); save the file as UTF-8"),
        (b"email,interests\nada@example.org,agents\nbob@example.org,\"" + b"x" * 20_000 + b"\"\n",
         "readers.csv: line 3: a cell is longer than 16,384 characters (is a quote not closed?)"),
        (b"email,interests\nada@example.org,\"agents\n" + b"more\n" * 4_000,
         "readers.csv: line 2: a cell is longer than 16,384 characters"),
        (b"email,interests\nada@example.org," + b"x" * (1 << 21),
         "readers.csv: line 2 is longer than 1,048,576 bytes"),
        (b"email,interests\nada@example.org,caf\xc3",
         "readers.csv: line 2 ends inside a UTF-8 character"),
    ],
)  # fmt: skip
def test_a_file_that_cannot_be_read_whole_stores_nothing(
    settings: Settings, database: Database, tmp_path: Path, content: bytes, message: str
) -> None:
    path = _file(tmp_path, content)
    with pytest.raises(ReaderError) as refused:
        import_readers(settings, database, path, now=NOW, confirmed=True)
    assert str(refused.value).startswith(message)
    assert counts(database) == (0, 0, 0)


def test_control_characters_refuse_their_row_only(
    settings: Settings, database: Database, tmp_path: Path
) -> None:
    path = _file(tmp_path, b"email,interests\nada@example.org,ag\x00ents\nb\x00b@example.org,x\n")
    report = import_readers(settings, database, path, now=NOW, confirmed=True)
    assert report.lines() == [
        "readers.csv: 2 rows: 0 accepted, 2 refused",
        "line 2: email ada@example.org: interests: the list holds an invisible control "
        'character (U+0000) after "ag": remove it',
        'line 3: email "b\\x00b@example.org": email: The email address contains invalid '
        "characters before the @-sign: U+0000",
        "nothing stored",
    ]


def test_a_byte_order_mark_blank_lines_and_short_rows_are_fine(
    settings: Settings, database: Database, tmp_path: Path
) -> None:
    path = _file(
        tmp_path,
        "\ufeffEmail , Interests,TimeZone\r\nada@example.org,agents,Asia/Tokyo\r\n\r\n"
        "bob@example.org,diffusion\r\ncid@example.org,rlhf,UTC,extra\r\n",
    )
    report = import_readers(settings, database, path, now=NOW, confirmed=True)
    assert report.lines() == [
        "readers.csv: 3 rows: 2 accepted, 1 refused",
        'line 5: email "cid@example.org": 4 cells where the header names 3',
        "stored: 2 new readers (active)",
    ]
    assert stored(database, "ada@example.org").timezone == "Asia/Tokyo"
    assert stored(database, "bob@example.org").timezone == "Europe/Paris"


# --- import: all or nothing -----------------------------------------------------------------


def _many(path: Path, rows: int, *, seed: int = 7, header: bool = True) -> Path:
    """A CSV of `rows` plausible readers: names from tests/data/author_names.txt, words
    from real paper titles, every cadence, several zones and times."""
    rnd = random.Random(seed)
    names = (DATA / "author_names.txt").read_text(encoding="utf-8").split("\n")
    names = [name.lower().replace(".", "").split() for name in names if name.strip()]
    titles = [json.loads(line)["title"] for line in (DATA / "papers.jsonl").open()]
    words = sorted({w.lower() for t in titles for w in t.split() if w.isalpha() and len(w) > 4})
    zones = ["UTC", "Europe/Paris", "America/New_York", "Asia/Tokyo", "Australia/Sydney"]
    cadences = ["daily", "daily", "daily", "weekly:mon", "weekly:friday", "Weekly Sunday"]
    with path.open("w", encoding="utf-8", newline="") as handle:
        out = csv.writer(handle)
        if header:
            out.writerow(["email", "interests", "trending", "cadence", "time", "timezone"])
        for n in range(rows):
            first, *rest = rnd.choice(names)
            local = "".join(c for c in f"{first}.{rest[-1] if rest else 'x'}" if c.isascii())
            entries = [" ".join(rnd.sample(words, rnd.randint(1, 3))) for _ in range(3)]
            out.writerow([
                f"{local}{n}@lab{n % 97}.example.org",
                ", ".join(entries[: rnd.randint(1, 3)]) + rnd.choice(["", "", ", -survey"]),
                rnd.choice(["", "", "", "5"]),
                rnd.choice(cadences),
                f"{rnd.randint(5, 20):02d}:{rnd.choice(['00', '15', '30', '45'])}",
                rnd.choice(zones),
            ])  # fmt: skip
    return path


@pytest.mark.parametrize("confirmed", [False, True])
def test_a_failure_mid_way_stores_nothing(
    settings: Settings,
    store_database: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    confirmed: bool,
) -> None:
    store_reader(store_database, "ada@example.org", "active")
    before = counts(store_database)
    path = _many(tmp_path / "many.csv", 1_200)
    calls = {"n": 0}
    real_change, real_confirmation = reader_files.change_status, Mailer.confirmation

    def fail_later(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] > (700 if not confirmed else 2):  # past the first 500 rows
            raise RuntimeError("the disk is full")
        real = real_change if confirmed else real_confirmation
        return real(*args, **kwargs)

    if confirmed:
        monkeypatch.setattr(reader_files, "change_status", fail_later)
    else:
        monkeypatch.setattr(Mailer, "confirmation", fail_later)
    with pytest.raises(RuntimeError, match="the disk is full"):
        import_readers(settings, store_database, path, now=NOW, confirmed=confirmed)
    assert counts(store_database) == before
    monkeypatch.undo()
    done = import_readers(settings, store_database, path, now=NOW, confirmed=confirmed)
    assert done.added == 1_200 and counts(store_database)[0] == before[0] + 1_200


def test_an_address_stored_meanwhile_fails_the_import_whole(
    settings: Settings, store_database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A sign-up from the web takes no lock: it can store an address of the file after the
    # import looked (here: the look is made to miss it). The unique address stops it.
    path = _many(tmp_path / "many.csv", 800)
    with path.open() as handle:
        third = list(csv.reader(handle))[3][0]
    store_reader(store_database, third, "pending")
    monkeypatch.setattr(reader_files, "find_subscribers", lambda session, emails: {})
    with pytest.raises(ReaderError) as refused:
        import_readers(settings, store_database, path, now=NOW, confirmed=True)
    assert str(refused.value) == (
        "many.csv: an address was stored by someone else at the same moment (a sign-up); "
        "nothing was imported: run it again"
    )
    assert counts(store_database) == (1, 0, 0)


def test_two_imports_of_one_file_at_once(
    settings: Settings, store_database: Database, tmp_path: Path
) -> None:
    path = _many(tmp_path / "many.csv", 3_000)
    outcomes: list[Any] = []

    def run() -> None:
        try:
            outcomes.append(import_readers(settings, store_database, path, now=NOW, confirmed=True))
        except ReaderError as error:  # SQLite: waited longer than its busy timeout
            outcomes.append(error)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stored = [o for o in outcomes if not isinstance(o, Exception) and o.added]
    assert len(stored) == 1 and stored[0].added == 3_000
    [other] = [o for o in outcomes if o is not stored[0]]
    if store_database.engine.dialect.name == "postgresql":  # the advisory lock: it waited
        assert not isinstance(other, Exception)
    if not isinstance(other, Exception):  # it waited, then found every address stored
        assert (other.added, len(other.refused)) == (0, 3_000)
        assert "already a reader (active since 2026-06-12)" in other.refused[0][1]
    with store_database.session() as session:
        assert count_by_status(session)["active"] == 3_000


def test_a_10_mb_file(settings: Settings, database: Database, tmp_path: Path) -> None:
    # ~105,000 rows: every row checked, then all stored in one transaction.
    path = _many(tmp_path / "big.csv", 105_000)
    assert path.stat().st_size > 10_000_000
    started = time.monotonic()
    report = import_readers(settings, database, path, now=NOW, confirmed=True)
    elapsed = time.monotonic() - started
    assert (report.rows, report.refused, report.added) == (105_000, [], 105_000)
    with database.session() as session:
        assert count_by_status(session)["active"] == 105_000
    assert elapsed < 120, f"{elapsed:.0f} s"  # ~25 s here; a bound, not a measurement


# --- export, and back -----------------------------------------------------------------------

ROUND_TRIP = [
    ("ada@example.org", "diffusion\n-survey\ntrending:5 upvotes>=20", "active"),
    ("-bob+digest@example.org", "-survey, agents", "paused"),
    ("=cid@example.org", "=1+2", "active"),
    ("'dee@example.org", '@home, "world model"', "active"),
    ("eve@example.org", "trending:3\nrlhf", "pending"),
    ("fay@example.org", "agents", "unsubscribed"),
]


def _export_csv(database: Database) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(csv_rows(export_readers(database)))
    return buffer.getvalue()


def test_export_then_import_into_a_fresh_store_gives_the_same_readers(
    settings: Settings, database: Database, make_settings: Any, tmp_path: Path
) -> None:
    for email, interests, status in ROUND_TRIP:
        store_reader(database, email, status, interests)
        with database.session() as session:
            reader = find_subscriber(session, email)
            assert reader is not None
            session.get(SubscriberRow, reader.id).cadence = "weekly:wed"  # type: ignore[union-attr]
    exported = _export_csv(database)
    # No cell a spreadsheet would run: each such one starts with '.
    cells = [cell for row in csv.reader(io.StringIO(exported)) for cell in row]
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "-", "@")]
    assert "'=1+2" in cells and "'-bob+digest@example.org" in cells
    assert "'dee@example.org" in cells  # a ' not before a formula's sign is left alone
    path = _file(tmp_path, exported, "export.csv")
    fresh_settings = make_settings(
        service={"data_dir": str(tmp_path / "fresh"), "base_url": BASE_URL},
        web={"secret_key": SECRET},
    )
    fresh = open_database(fresh_settings)
    report = import_readers(fresh_settings, fresh, path, now=NOW, confirmed=True)
    assert report.lines()[1:] == [
        # Lines of the file: ada's interests take three, eve's two.
        "line 8: email eve@example.org: status pending: they never confirmed, so not with "
        "--confirmed (import them without it to send them a confirmation)",
        "line 10: email fay@example.org: status unsubscribed: they left; only they can come "
        "back, by signing up again",
        "stored: 4 new readers (active), 1 of them paused, as the file says",
    ]

    def kept(db: Database) -> list[tuple[str, ...]]:
        return sorted(
            (r.email, r.interests, r.cadence, r.send_time, r.timezone, r.status)
            for r in export_readers(db)
            if r.status in ("active", "paused")
        )

    assert kept(fresh) == kept(database) and len(kept(fresh)) == 4
    fresh.dispose()


@given(st.text(max_size=12))
def test_spreadsheet_safe_cells_read_back_as_written(value: str) -> None:
    written = spreadsheet_safe(value)
    assert written[:1] not in ("=", "+", "-", "@", "\t", "\r")
    assert from_spreadsheet(written) == value
