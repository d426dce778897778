"""Readers as CSV files: the operator's import, and the cells of the export.

An import is all or nothing: every row is checked first (in memory, the file streamed:
`digest.jobs.readers.check_reader`'s checks, duplicates in the file, addresses already
stored and the status the file gives), then the accepted rows, and their confirmation
emails, are stored in one transaction that also holds other importers off (see
`lock_subscribers`): a failure anywhere stores nothing, and of two imports of the same
file at once the second refuses every row. The consent rules are `digest.jobs.readers`'.

The export writes the columns the import reads (`csv_rows`), every cell safe to open in
a spreadsheet (`spreadsheet_safe`), and the import reads them back unchanged.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy.orm import Session

from digest.address import shown
from digest.config import Settings
from digest.jobs.readers import (
    EXPORT_COLUMNS,
    IMPORT_COLUMNS,
    Mailer,
    ReaderError,
    ReaderFields,
    check_fields,
    on_day,
    reader_fields,
    refused_in_one_line,
)
from digest.learn.seeds import may_have_seeds, sync_reader_seeds
from digest.store import Database
from digest.store.outbox import Outgoing, queue_messages
from digest.store.subscribers import (
    NewReader,
    change_status,
    create_subscribers,
    find_subscribers,
    lock_subscribers,
    update_preferences,
)
from digest.subscriber import Subscriber

# A cell a spreadsheet would run as a formula (CSV injection: anyone can sign up with
# interests of their choosing): = + - @, tab, CR. Export writes such a cell with a '
# before it, which makes it text to a spreadsheet (shown with the '); import takes exactly
# one ' off a cell that starts with one or more ' and then one of these, so every value
# goes through export and import unchanged (those starting with ' too).
_FORMULA = re.compile(r"'*[=+\-@\t\r]")


def spreadsheet_safe(value: str) -> str:
    """A CSV cell no spreadsheet runs as a formula (see `_FORMULA`)."""
    return "'" + value if _FORMULA.match(value) else value


def from_spreadsheet(value: str) -> str:
    """The value `spreadsheet_safe` wrote."""
    return value[1:] if value.startswith("'") and _FORMULA.match(value) else value


def csv_rows(readers: Iterable[Subscriber]) -> Iterator[list[str]]:
    """The CSV export: a header, then a row per reader, cells made spreadsheet-safe."""
    yield list(EXPORT_COLUMNS)
    for reader in readers:
        yield [spreadsheet_safe(value or "") for value in reader_fields(reader).values()]


# --- Import -------------------------------------------------------------------------------

# The longest cell a reader's row can need (interests: 2,000 characters): far beyond it,
# the file is not a list of readers (or a quote is not closed), and is refused whole.
MAX_FIELD = 16_384
MAX_LINE = 1 << 20


class _Row(NamedTuple):
    """A row checked and accepted so far: its line, its fields, the status the file
    gives it ("" when none), and whether it is to end paused."""

    line: int
    fields: ReaderFields
    paused: bool


@dataclass
class ImportReport:
    """What an import did, or would do (`dry_run`): rows read, refused lines (in file
    order), and what was stored."""

    name: str
    confirmed: bool
    dry_run: bool = False
    strict: bool = False
    rows: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)
    added: int = 0  # new readers
    activated: int = 0  # pending readers confirmed by the operator
    paused: int = 0  # of those, paused as the file says
    confirmations: int = 0
    stored: bool = False

    @property
    def accepted(self) -> int:
        """Rows accepted (stored, or to be stored)."""
        return self.rows - len(self.refused)

    def lines(self) -> list[str]:
        """The report: a count, every refused line, then what was stored."""
        out = [
            f"{self.name}: {self.rows:,} row{'' if self.rows == 1 else 's'}: "
            f"{self.accepted:,} accepted, {len(self.refused):,} refused"
        ]
        out += [text for _, text in sorted(self.refused)]
        if self.strict and self.refused:
            out.append("--strict: a row was refused, so nothing was stored")
            return out
        what = self._what(queued=not self.dry_run)
        if self.dry_run:
            out.append(f"--dry-run: nothing stored; would store {what or 'nothing'}")
        elif what:
            out.append(f"stored: {what}")
            if self.confirmations:
                out.append("`digest send` or the running scheduler delivers the emails")
        else:
            out.append("nothing stored")
        return out

    def _what(self, *, queued: bool) -> str:
        parts = []
        if self.added:
            state = "active" if self.confirmed else "pending"
            parts.append(f"{self.added:,} new reader{'' if self.added == 1 else 's'} ({state})")
        if self.activated:
            parts.append(
                f"{self.activated:,} pending reader{'' if self.activated == 1 else 's'} confirmed"
            )
        if self.paused:
            parts.append(f"{self.paused:,} of them paused, as the file says")
        if self.confirmations:
            emails = "email" if self.confirmations == 1 else "emails"
            parts.append(
                f"{self.confirmations:,} confirmation {emails}" + (" queued" if queued else "")
            )
        return ", ".join(parts)


def import_readers(
    settings: Settings,
    database: Database,
    path: Path,
    *,
    now: datetime,
    confirmed: bool = False,
    dry_run: bool = False,
    strict: bool = False,
    mailer: Mailer | None = None,
) -> ImportReport:
    """Import readers from a CSV file (see `IMPORT_COLUMNS`, and the consent rules in
    the module docstring): check every row, then store the accepted ones and queue their
    confirmations in one transaction. ReaderError for a file that cannot be read as a
    whole (not UTF-8, no header, unknown columns, a cell too long): nothing is stored.

    `dry_run` stores nothing; `strict` stores nothing if any row is refused.
    """
    report = ImportReport(path.name, confirmed, dry_run, strict)
    if not confirmed and not dry_run:
        mailer = mailer or Mailer.from_settings(settings)
        mailer.check(now)  # a setting every email needs: said before reading 10 MB
    accepted = _check_rows(settings, _read_rows(path), confirmed, report)
    with refused_in_one_line(path.name, "nothing was imported"):
        _store(database, accepted, report, now=now, mailer=mailer)
    return report


def _read_rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, {column: value}) of each data row, the file streamed; ReaderError naming
    the line for what makes the whole file unreadable."""
    name = path.name
    try:
        handle = path.open("rb")
    except OSError as error:
        raise ReaderError(f"cannot read {path}: {error.strerror or error}") from None
    previous = csv.field_size_limit(MAX_FIELD)
    try:
        with handle:
            reader = csv.reader(_decoded_lines(handle, name), strict=True)
            header = _header(reader, name)
            while True:
                start = reader.line_num + 1
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except csv.Error as error:
                    raise ReaderError(f"{name}: line {start}: {_csv_problem(error)}") from None
                if not any(cell.strip() for cell in row):
                    continue  # a blank line
                yield start, _cells(header, row)
    finally:
        csv.field_size_limit(previous)


def _decoded_lines(handle: Any, name: str) -> Iterator[str]:
    """The file's lines as text: UTF-8, a byte-order mark at the start allowed, each at
    most `MAX_LINE` bytes (a file of one endless line is not read into memory whole)."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")("strict")
    number = 0
    while raw := handle.readline(MAX_LINE + 1):
        number += 1
        if len(raw) > MAX_LINE:
            raise ReaderError(f"{name}: line {number} is longer than {MAX_LINE:,} bytes")
        try:
            yield decoder.decode(raw)
        except UnicodeDecodeError as error:
            byte = raw[error.start : error.start + 1].hex()
            raise ReaderError(
                f"{name}: line {number} is not UTF-8 (byte 0x{byte} at column "
                f"{error.start + 1}); save the file as UTF-8"
            ) from None
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise ReaderError(f"{name}: line {number} ends inside a UTF-8 character") from None


def _csv_problem(error: csv.Error) -> str:
    text = str(error)
    if "field larger than field limit" in text:
        return f"a cell is longer than {MAX_FIELD:,} characters (is a quote not closed?)"
    return text


def _header(reader: Any, name: str) -> list[str]:
    try:
        header = next(reader)
    except StopIteration:
        raise ReaderError(f"{name} is empty: its first line must name the columns") from None
    except csv.Error as error:
        raise ReaderError(f"{name}: line 1: {_csv_problem(error)}") from None
    columns = [cell.strip().lower() for cell in header]
    known = set(EXPORT_COLUMNS)
    unknown = [cell for cell in columns if cell not in known]
    expected = ", ".join(IMPORT_COLUMNS)
    if unknown:
        hint = " (the first line is the header)" if any("@" in cell for cell in unknown) else ""
        listed = ", ".join(shown(cell) for cell in unknown)
        raise ReaderError(
            f"{name}: line 1: unknown column{'s' if len(unknown) > 1 else ''} {listed}"
            f"{hint}; the columns are {expected} (and those `export` adds)"
        )
    if "email" not in columns:
        raise ReaderError(f"{name}: line 1: no email column; the columns are {expected}")
    twice = sorted({cell for cell in columns if columns.count(cell) > 1})
    if twice:
        raise ReaderError(f"{name}: line 1: column {twice[0]} appears twice")
    return columns


def _cells(header: list[str], row: list[str]) -> dict[str, str]:
    """A row's cells by column (missing ones absent); more cells than the header names
    is said under the key "" (the row is refused)."""
    values = dict(zip(header, (from_spreadsheet(cell) for cell in row), strict=False))
    extra = row[len(header) :]
    if any(cell.strip() for cell in extra):
        values[""] = f"{len(row)} cells where the header names {len(header)}"
    return values


def _check_rows(
    settings: Settings,
    rows: Iterable[tuple[int, dict[str, str]]],
    confirmed: bool,
    report: ImportReport,
) -> list[_Row]:
    """Check each row's fields, and its address against the rows before it; accepted
    rows in file order, the others said in `report.refused`."""
    first_line: dict[str, int] = {}
    accepted: list[_Row] = []
    for line, values in rows:
        report.rows += 1
        raw = values.get("email", "")
        if "" in values:  # more cells than the header names
            report.refused.append((line, _refusal(line, raw, values[""])))
            continue
        fields, problems, address = check_fields(
            settings,
            email=raw,
            interests=values.get("interests"),
            trending=values.get("trending"),
            cadence=values.get("cadence"),
            send_time=values.get("time"),
            timezone=values.get("timezone"),
        )
        if fields is None:
            report.refused.append((line, _refusal(line, raw, "; ".join(problems), address)))
            continue
        key = fields.email.lower()
        if key in first_line:
            reason = f"duplicate of line {first_line[key]}"
            report.refused.append((line, _refusal(line, raw, reason, fields.email)))
            continue
        first_line[key] = line
        status = values.get("status", "").strip().lower()
        problem = _file_status(status, confirmed)
        if problem:
            report.refused.append((line, _refusal(line, raw, problem, fields.email)))
            continue
        accepted.append(_Row(line, fields, confirmed and status == "paused"))
    return accepted


def _refusal(line: int, raw: str, reason: str, address: str = "") -> str:
    """`line N: email ADDRESS: reason`; an address that is not one is quoted as typed
    (shortened, control characters shown as escapes: the report stays one line)."""
    if not address:
        text = raw.strip()
        text = text if len(text) <= 80 else text[:79] + "…"
        address = '"' + _CONTROL.sub(lambda c: repr(c.group())[1:-1], text) + '"'
    return f"line {line}: email {address}: {reason}"


_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")


def _file_status(status: str, confirmed: bool) -> str:
    """Why a row whose `status` column says `status` is refused ("" if it is not).

    Empty, active or paused: imported (paused stays paused with --confirmed; without, it
    is a sign-up like any other). Pending never confirmed, so never by --confirmed;
    unsubscribed and bounced are never imported: the first left, the second bounced.
    """
    if status in ("", "active", "paused"):
        return ""
    if status == "pending":
        if not confirmed:
            return ""
        return (
            "status pending: they never confirmed, so not with --confirmed (import them "
            "without it to send them a confirmation)"
        )
    if status == "unsubscribed":
        return "status unsubscribed: they left; only they can come back, by signing up again"
    if status == "bounced":
        return "status bounced: mail to them failed; not imported"
    return f"status {shown(status)} is not one of active, paused, pending"


_CHUNK = 500


def _store(
    database: Database,
    rows: list[_Row],
    report: ImportReport,
    *,
    now: datetime,
    mailer: Mailer | None,
) -> None:
    """The import's one transaction: hold other importers off, refuse the rows whose
    address is stored already, then store the rest with their emails (unless dry run or
    strict with a row refused)."""
    with database.session() as session:
        if not report.dry_run:
            lock_subscribers(session)
        stored = find_subscribers(session, (row.fields.email for row in rows))
        fresh: list[_Row] = []
        confirm: list[tuple[_Row, Subscriber]] = []
        for row in rows:
            existing = stored.get(row.fields.email.lower())
            if existing is None:
                fresh.append(row)
            elif report.confirmed and existing.status == "pending":
                confirm.append((row, existing))
            else:
                report.refused.append((row.line, _already(row, existing)))
        if report.dry_run or (report.strict and report.refused):
            report.added, report.activated = len(fresh), len(confirm)
            report.paused = sum(row.paused for row in fresh) + sum(r.paused for r, _ in confirm)
            report.confirmations = 0 if report.confirmed else len(fresh)
            return
        for start in range(0, len(fresh), _CHUNK):
            _add_chunk(session, fresh[start : start + _CHUNK], report, now=now, mailer=mailer)
        for row, existing in confirm:
            if not change_status(
                session, existing.id, "active", now, only_from=("pending",), consent="operator"
            ):  # its owner confirmed it meanwhile (PostgreSQL: the web takes no lock)
                report.refused.append((row.line, _already(row, replace(existing, status="active"))))
                continue
            update_preferences(session, existing.id, now=now, **row.fields.preferences())
            sync_reader_seeds(session, existing.id, row.fields.interests, now)
            report.activated += 1
            if row.paused:
                change_status(session, existing.id, "paused", now, only_from=("active",))
                report.paused += 1
    report.stored = True


def _already(row: _Row, existing: Subscriber) -> str:
    since = on_day(existing.status_changed_at).replace(" on ", " since ")
    why = {
        "unsubscribed": ": only they can come back, by signing up again",
        "bounced": ": `digest subscribers resume` sends to it again, if it works again",
    }.get(existing.status, "")
    return (
        f"line {row.line}: email {row.fields.email}: already a reader "
        f"({existing.status}{since}){why}"
    )


def _add_chunk(
    session: Session,
    rows: Sequence[_Row],
    report: ImportReport,
    *,
    now: datetime,
    mailer: Mailer | None,
) -> None:
    """Store up to 500 new readers: active (confirmed, some then paused), or pending
    with their confirmation emails queued."""
    readers = [NewReader(**row.fields.preferences(), email=row.fields.email) for row in rows]
    ids = create_subscribers(session, readers, now=now, confirm_sent=not report.confirmed)
    report.added += len(ids)
    for reader_id, row in zip(ids, rows, strict=True):
        # New readers have no rows yet: only a list naming seeds has any to add.
        if may_have_seeds(row.fields.interests):
            sync_reader_seeds(session, reader_id, row.fields.interests, now)
    if report.confirmed:
        change_status(session, ids, "active", now, consent="operator")
        paused = [reader_id for reader_id, row in zip(ids, rows, strict=True) if row.paused]
        change_status(session, paused, "paused", now)
        report.paused += len(paused)
        return
    assert mailer is not None
    outgoing = []
    for reader_id, row in zip(ids, rows, strict=True):
        fields = row.fields
        reader = Subscriber(
            id=reader_id,
            email=fields.email,
            interests=fields.interests,
            status="pending",
            send_time=fields.send_time,
            timezone=fields.timezone,
            created_at=now,
            status_changed_at=now,
            confirm_sent_at=now,
            cadence=fields.cadence,
        )
        message = mailer.confirmation(reader, fields.preferences(), now=now)
        outgoing.append(Outgoing(reader_id, "confirm", None, message))
    report.confirmations += queue_messages(session, outgoing, now=now)
