"""`digest subscribers`: the readers, for the operator.

Each command is a few lines over `digest.jobs.readers`, the library the web pages use
too (the signup form's own path for `add`, the manage page's buttons for `pause` and
`resume`, its "Download my data" for `show --json`, its "Delete" for `remove`).
Emails are queued in the outbox; `digest send` or the running scheduler delivers them.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from digest.cli.app import AppContext, DigestGroup, cli, pass_app
from digest.subscriber import STATUSES, Subscriber

STATUS = click.Choice(STATUSES)
INTERESTS_WIDTH = 40


@cli.group("subscribers", cls=DigestGroup)
def subscribers() -> None:
    """The readers: list, show, add, import, export, pause, resume, remove."""


def _format(as_json: bool, as_csv: bool) -> str:
    if as_json and as_csv:
        raise click.UsageError("give --json or --csv, not both")
    return "json" if as_json else "csv" if as_csv else ""


def _write(readers: Any, form: str) -> int:
    """Write readers as CSV or JSON lines to stdout, as they are read; how many."""
    from digest.jobs.reader_files import csv_rows
    from digest.jobs.readers import reader_fields

    out = click.get_text_stream("stdout")
    count = 0
    if form == "csv":
        writer = csv.writer(out, lineterminator="\n")
        rows = csv_rows(readers)
        writer.writerow(next(rows))  # the header
        for row in rows:
            writer.writerow(row)
            count += 1
        return count
    for reader in readers:
        out.write(json.dumps(reader_fields(reader), ensure_ascii=False) + "\n")
        count += 1
    return count


def _row(reader: Subscriber) -> str:
    """A reader as one line of `list`: the interests on one line, shortened."""
    interests = ", ".join(line.strip() for line in reader.interests.splitlines() if line.strip())
    if len(interests) > INTERESTS_WIDTH:
        interests = interests[: INTERESTS_WIDTH - 1] + "…"
    return (
        f"{reader.email:<32}  {reader.status:<12}  {reader.cadence:<10}  {reader.send_time:<5}"
        f"  {reader.timezone:<20}  {interests}"
    )


@subscribers.command("list")
@click.option("--status", type=STATUS, help="Only the readers in this status.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line (as export).")
@click.option("--csv", "as_csv", is_flag=True, help="CSV, as export writes it.")
@pass_app
def list_command(app: AppContext, status: str | None, as_json: bool, as_csv: bool) -> None:
    """List the readers, oldest first: address, status, cadence, time, zone, interests."""
    from digest.jobs.readers import export_readers

    form = _format(as_json, as_csv)
    readers = export_readers(app.database(), status=status)
    if form:
        _write(readers, form)
        return
    count = 0
    for count, reader in enumerate(readers, start=1):
        if count == 1:
            click.echo(
                f"{'email':<32}  {'status':<12}  {'cadence':<10}  {'time':<5}  "
                f"{'timezone':<20}  interests"
            )
        click.echo(_row(reader))
    what = f"readers {status}" if status else "readers"
    click.echo(f"{count:,} {what}" if count else f"no {what}", err=True)


@subscribers.command("export")
@click.option("--status", type=STATUS, help="Only the readers in this status.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, not CSV.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV (the default).")
@pass_app
def export_command(app: AppContext, status: str | None, as_json: bool, as_csv: bool) -> None:
    """Write every reader to stdout as CSV (or JSON lines): the columns `import` reads,
    then status, created_at, confirmed_at, consent, last_digest_at, next_digest_at.

    `digest subscribers import` reads the CSV back. A cell a spreadsheet would take for
    a formula (starting with = + - @) is written with a ' before it; import takes it off.
    """
    from digest.jobs.readers import export_readers

    count = _write(export_readers(app.database(), status=status), _format(as_json, as_csv) or "csv")
    click.echo(f"{count:,} readers exported", err=True)


def _when(text: str | None) -> str:
    if not text:
        return "-"
    return f"{datetime.fromisoformat(text).astimezone(UTC):%Y-%m-%d %H:%M} UTC"


@subscribers.command("show")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True, help="All of it, as the reader's data download.")
@click.option("--messages", default=10, show_default=True, help="How many messages to list.")
@pass_app
def show_command(app: AppContext, email: str, as_json: bool, messages: int) -> None:
    """Everything held about one reader, and the last emails the outbox holds for them."""
    from digest.jobs.readers import show_reader

    data = show_reader(app.database(), email)
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    lines = [text for text in data["interests"].splitlines() if text.strip()] or ["-"]
    consent = f" (consent: {data['consent']})" if data["consent"] else ""
    rows = [
        ("status", f"{data['status']} since {_when(data['status_changed_at'])}{consent}"),
        ("interests", lines[0]),
        *(("", line) for line in lines[1:]),
        ("schedule", data["schedule"]),
        ("next digest", _when(data["next_digest_at"])),
        ("signed up", _when(data["created_at"])),
        ("confirmed", _when(data["confirmed_at"])),
        ("last confirm", _when(data["confirm_sent_at"])),
        ("papers since", _when(data["last_digest_at"])),
        ("failures", str(data["consecutive_failures"])),
    ]
    click.echo(f"{data['email']} (reader {data['id']})")
    for name, value in rows:
        click.echo(f"  {name:<13} {value}")
    held = data["messages"]
    if not held:
        click.echo("  messages      none in the outbox")
        return
    shown = held[:messages]
    click.echo(f"  messages      {len(held)} in the outbox, the latest {len(shown)}:")
    for message in shown:
        day = message["digest_date"] or _when(message["queued_at"])[:10]
        sent = f"sent {_when(message['sent_at'])}" if message["sent_at"] else "-"
        click.echo(
            f"    {day:<10}  {message['kind']:<8} {message['state']:<9} {sent:<26} "
            f"{message['message_id']}"
        )


@subscribers.command("add")
@click.argument("email")
@click.option("--interests", metavar="TEXT", help='Interests, e.g. "diffusion, rlhf".')
@click.option("--trending", type=int, metavar="N", help="Also the N most upvoted papers.")
@click.option("--weekly", metavar="DAY", help="One digest a week, on DAY (default: daily).")
@click.option("--time", "send_time", metavar="HH:MM", help="[schedule] default_send_time if not.")
@click.option("--timezone", metavar="ZONE", help="IANA zone; [service] timezone if not.")
@click.option(
    "--confirmed",
    is_flag=True,
    help="Active at once, recorded as consent held by the operator; only for an address "
    "whose owner asked you. Without it, they get a confirmation email, as from the form.",
)
@pass_app
def add_command(
    app: AppContext,
    email: str,
    interests: str | None,
    trending: int | None,
    weekly: str | None,
    send_time: str | None,
    timezone: str | None,
    confirmed: bool,
) -> None:
    """Add a reader: pending, with a confirmation email, as the signup form does (or
    active with --confirmed). An address that unsubscribed is never made active."""
    from digest.jobs.readers import Mailer, add_reader, check_reader

    fields = check_reader(
        app.settings,
        email=email,
        interests=interests,
        trending=trending,
        cadence=f"weekly:{weekly}" if weekly else None,
        send_time=send_time,
        timezone=timezone,
    )
    mailer = None if confirmed else Mailer.from_settings(app.settings)
    done = add_reader(app.database(), fields, now=app.clock(), confirmed=confirmed, mailer=mailer)
    click.echo(done.summary())


@subscribers.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--confirmed",
    is_flag=True,
    help="Every row active at once, as consent held by the operator (see add).",
)
@click.option("--dry-run", is_flag=True, help="Check the file and report; store nothing.")
@click.option("--strict", is_flag=True, help="Store nothing if any row is refused.")
@pass_app
@click.pass_context
def import_command(
    ctx: click.Context, app: AppContext, file: Path, confirmed: bool, dry_run: bool, strict: bool
) -> None:
    """Add the readers of a CSV file: all the accepted rows, with their confirmation
    emails, in one transaction; a report of each refused row. Exit 1 if any is refused.

    The first line names the columns: email (required), interests, trending (a
    number), cadence (daily, or weekly:DAY), time (HH:MM), timezone (IANA), and those
    `export` adds (status is read: unsubscribed, bounced, and pending with --confirmed,
    are refused; the others are ignored). UTF-8, with or without a byte-order mark.
    """
    from digest.jobs.reader_files import import_readers

    report = import_readers(
        app.settings,
        app.database(),
        file,
        now=app.clock(),
        confirmed=confirmed,
        dry_run=dry_run,
        strict=strict,
    )
    for line in report.lines():
        click.echo(line)
    if report.refused:
        ctx.exit(1)


@subscribers.command("remove")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask first.")
@pass_app
def remove_command(app: AppContext, email: str, yes: bool) -> None:
    """Delete a reader and everything held about them: their settings and every outbox
    row and message of theirs (an erasure request). Their links stop working."""
    from digest.jobs.readers import erase_reader, show_reader

    database = app.database()
    if not yes:
        data = show_reader(database, email)
        count = len(data["messages"])
        click.confirm(
            f"Delete {data['email']} ({data['status']}) and {count} outbox "
            f"row{'' if count == 1 else 's'} for good?",
            abort=True,
        )
    click.echo(erase_reader(database, email).summary())


@subscribers.command("pause")
@click.argument("email")
@pass_app
def pause_command(app: AppContext, email: str) -> None:
    """Pause an active reader's digests, as their manage page's button does."""
    from digest.jobs.readers import pause_reader

    done = pause_reader(app.database(), email, now=app.clock())
    who = done.subscriber.email
    if not done.changed:
        click.echo(f"{who}: already {done.subscriber.status}: nothing changed")
        return
    click.echo(f"{who}: paused; no digests until resumed (here, or on their manage page)")


@subscribers.command("resume")
@click.argument("email")
@pass_app
def resume_command(app: AppContext, email: str) -> None:
    """Resume a paused reader, or send to a bounced address again (its failures
    forgotten), as their manage page's buttons do. Never one who unsubscribed."""
    from digest.jobs.readers import resume_reader

    done = resume_reader(app.database(), email, now=app.clock())
    reader = done.subscriber
    if not done.changed:
        click.echo(f"{reader.email}: already {reader.status}: nothing changed")
        return
    again = "sending to it again" if done.was == "bounced" else "active again"
    next_at = reader.next_digest_at
    when = f"{next_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if next_at else "-"
    click.echo(f"{reader.email}: {again}; next digest {when}")
