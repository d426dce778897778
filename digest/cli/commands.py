"""The commands: each parses its arguments, calls one library function (the same one the
scheduler and the web app call) and prints the result for a person."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from digest.cli.app import AppContext, cli, log_as_a_service, pass_app
from digest.clock import system_clock
from digest.errors import DeliveryError

if TYPE_CHECKING:
    from digest.jobs.digests import ReaderDigest
    from digest.jobs.outbox import OutboxOverview

# --- sources: fetch listings into the store, list what is stored ----------------------


@cli.command()
@click.option(
    "--source",
    type=click.Choice(["hf", "arxiv", "all"]),
    default="all",
    show_default=True,
    help="Which source to fetch (all: every enabled one).",
)
@click.option(
    "--date",
    "day",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Hugging Face day to fetch, YYYY-MM-DD (default: today, UTC). "
    "arXiv's feed always has its latest announcements.",
)
@click.option(
    "--file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read a saved listing (HF JSON or HTML, arXiv RSS/Atom/API XML) instead of fetching.",
)
@pass_app
@click.pass_context
def fetch(ctx: click.Context, app: AppContext, source: str, day: Any, file: Path | None) -> None:
    """Fetch new papers from the sources (or a saved file) into the store."""
    from digest.jobs import fetch_sources

    if day is not None and file is not None:
        raise click.UsageError("--date and --file cannot be used together: a file has its own day")
    reports = fetch_sources(
        app.settings,
        app.database(),
        source=source,
        day=day.date() if day is not None else None,
        file=file,
        # The system clock: None, so each listing is stamped as it is saved (see
        # fetch_sources). An injected clock (DIGEST_CLOCK_FILE) decides "today" and the
        # stamp, as it does for every other command.
        now=None if app.clock is system_clock else app.clock(),
    )
    if not reports:
        click.echo("nothing to fetch: every source is disabled in the settings")
    for report in reports:
        if report.ok:
            click.echo(report.summary())
        else:
            click.echo(f"digest: {report.error}", err=True)
    if any(not report.ok for report in reports):
        ctx.exit(1)


@cli.command()
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Only papers listed on or after this day (YYYY-MM-DD; a paper without a listing "
    "day: first seen on or after it, UTC), the day preview --date means.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, for scripts.")
@pass_app
def papers(app: AppContext, since: Any, as_json: bool) -> None:
    """List the stored papers, newest first: day, id, upvotes, title."""
    import json

    from digest.jobs import paper_to_dict, stored_papers
    from digest.jobs.preview import listing_day, papers_listed_since

    # A day means the same here as in `preview --date` (the listing day): see jobs.preview.
    if since is None:
        found = stored_papers(app.database())
    else:
        found = papers_listed_since(app.database(), since.date())
    for paper in found:
        if as_json:
            click.echo(json.dumps(paper_to_dict(paper), ensure_ascii=False))
            continue
        day = listing_day(paper)
        shown_day = day.isoformat() if day else "-"
        upvotes = "-" if paper.upvotes is None else str(paper.upvotes)
        click.echo(f"{shown_day:<10}  {paper.id:<12}  {upvotes:>5}  {paper.title}")
    if not found and not as_json:
        click.echo("no papers stored" + (" since then" if since is not None else ""), err=True)


# --- render: preview ---------------------------------------------------------------------


@cli.command()
@click.option("--email", "address", metavar="ADDRESS", help="Preview this subscriber's digest.")
@click.option("--interests", help='Preview ad-hoc interests instead, e.g. "diffusion, RLHF".')
@click.option(
    "--date",
    "day",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Use the papers listed on this day, as `digest papers` shows them (a paper "
    "without a listing day: first seen that day, UTC); default: today.",
)
@click.option(
    "--out",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Folder for the .eml, .html and .txt files.",
)
@pass_app
def preview(
    app: AppContext, address: str | None, interests: str | None, day: Any, folder: Path
) -> None:
    """Render a digest without sending it, to look at before anything goes out."""
    from digest.jobs import preview_digest, save_preview

    if (address is None) == (interests is None):
        raise click.UsageError("give either --email ADDRESS or --interests TEXT")
    result = preview_digest(
        app.settings,
        app.database(),
        email=address,
        interests=interests,
        day=day.date() if day else None,
        now=app.clock(),
    )
    paths = save_preview(result, folder)
    if result.synthetic:
        address = result.subscriber.email
        who = f"the interests {interests!r} (a synthetic subscriber: id 0, {address})"
    else:
        who = f"{result.subscriber.email} (subscriber {result.subscriber.id})"
    click.echo(f"Digest for {who} on {result.day.isoformat()}:")
    click.echo(f"{result.matched} of {result.papers} papers listed that day matched.")
    for path in paths:
        click.echo(f"  {path}")
    click.echo("Nothing was sent.")


# --- match -------------------------------------------------------------------------------


@cli.command("check-interests")
@click.argument("text")
def check_interests(text: str) -> None:
    """Check an interest list (as on the signup form) and print it one entry per line.

    TEXT is the list, one entry per line or comma-separated. A mistake is reported
    with the entry at fault.
    """
    from digest.match import parse_interests  # here: NumPy loads only when needed

    click.echo(parse_interests(text).text)


# --- send ------------------------------------------------------------------------------


@cli.command("send")
@click.option(
    "--date",
    "day",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Only digests for this date (YYYY-MM-DD); default: everything due.",
)
@click.option("--dry-run", is_flag=True, help="Count what is due without sending anything.")
@pass_app
def send_command(app: AppContext, day: Any, dry_run: bool) -> None:
    """Deliver the messages that are due in the outbox, then print a summary."""
    import signal
    import sys
    import threading

    from digest.send import send_due

    stop = threading.Event()
    # Ctrl-C or SIGTERM: finish the message being sent, record it, stop.
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    bar = _ProgressBar(enabled=sys.stderr.isatty() and not dry_run)
    try:
        report = send_due(
            app.settings,
            app.database(),
            now=app.clock(),
            day=day.date() if day else None,
            dry_run=dry_run,
            progress=bar.advance,
            stop=stop,
        )
    finally:
        bar.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo(report.summary())
    if report.error:
        raise DeliveryError(report.error)


@cli.command("send-digests")
@click.option(
    "--email",
    "address",
    metavar="ADDRESS",
    help="This reader's digest, now, whatever their time of day.",
)
@click.option("--due", is_flag=True, help="Every digest due now: the scheduler's digest job, once.")
@click.option(
    "--no-deliver",
    is_flag=True,
    help="Only queue; `digest send` or the scheduler delivers.",
)
@pass_app
@click.pass_context
def send_digests_command(
    ctx: click.Context, app: AppContext, address: str | None, due: bool, no_deliver: bool
) -> None:
    """Make digests now and deliver them, without waiting for the scheduler.

    With --email, one reader's digest: the papers first seen since their previous
    digest, dated today in their time zone, queued and delivered unless the outbox holds
    their digest of today already (one a day). With --due, what the scheduler does at
    each check: queue the digests whose time has come, then deliver.
    """
    from digest.jobs.digests import queue_digest_now, queue_due_digests
    from digest.send import SenderBusy

    if (address is None) == (not due):
        raise click.UsageError("give either --email ADDRESS or --due")
    if address is not None:
        done = queue_digest_now(app.settings, app.database(), address, now=app.clock())
        click.echo(_reader_digest_line(done))
    else:
        click.echo(queue_due_digests(app.settings, app.database(), now=app.clock()).summary())
    if no_deliver:
        click.echo("not delivered (--no-deliver): `digest send` or the scheduler delivers it")
        return
    try:  # `digest send` itself: its summary line, its Ctrl-C handling, its errors
        ctx.invoke(send_command, day=None, dry_run=False)
    except SenderBusy as error:  # queued all the same: that sender or the next one delivers
        click.echo(f"not delivered now: {error}")


def _reader_digest_line(done: ReaderDigest) -> str:
    """One line saying what `send-digests --email` did for the reader."""
    from datetime import UTC, timedelta

    from digest.jobs.digests import SETTLE

    who, day = done.subscriber.email, done.day.isoformat()
    # The window, to the minute: papers seen after its end (the last few minutes, while
    # a fetch may still be saving) go in the reader's next digest.
    window = (
        f"{done.papers} paper{'' if done.papers == 1 else 's'} first seen "
        f"{done.since.astimezone(UTC):%Y-%m-%d %H:%M} "
        f"to {done.until.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    )
    if done.outcome == "queued":
        return (
            f"{who}: digest for {day} queued (outbox row {done.outbox_id}), matched among {window}"
        )
    if done.outcome == "empty":
        line = f"{who}: no digest for {day}: none of {window} matched"
        if done.last_waiting:  # just fetched: a fetch may still be saving, so they wait
            ready = (done.last_waiting + SETTLE + timedelta(minutes=1)).replace(second=0)
            newer = "1 newer paper goes" if done.waiting == 1 else f"{done.waiting} newer papers go"
            return (
                f"{line}; {newer} in the next digest, or run this again after "
                f"{ready.astimezone(UTC):%H:%M} UTC"
            )
        return f"{line} ([mail] send_empty = true sends an empty one)"
    state = done.state or "gone"
    if state == "sent":
        return f"{who}: already sent for {day} (outbox row {done.outbox_id}): one digest a day"
    if state in ("queued", "sending", "retrying"):
        return (
            f"{who}: already queued for {day} (outbox row {done.outbox_id}, {state}): "
            "one digest a day"
        )
    return (
        f"{who}: already in the outbox for {day} (outbox row {done.outbox_id}, {state}; "
        "see `digest outbox`): one digest a day"
    )


class _ProgressBar:
    """A click progress bar on stderr, created once the number due is known."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None

    def advance(self, finished: int, due: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            self.bar = click.progressbar(
                length=due, label="sending", file=click.get_text_stream("stderr")
            )
            self.bar.__enter__()
        self.bar.update(finished)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


@cli.command("outbox")
@click.option("--failures", default=20, show_default=True, help="How many recent problems to list.")
@click.option(
    "--mark-sent",
    "mark_sent",
    type=int,
    metavar="ID",
    help="Settle an unknown row: it was delivered.",
)
@click.option(
    "--resend",
    type=int,
    metavar="ID",
    help="Send an unknown or failed row again (a fresh deadline).",
)
@pass_app
def outbox_command(
    app: AppContext, failures: int, mark_sent: int | None, resend: int | None
) -> None:
    """Show the outbox: messages by date and state, and recent failures with the server's reply."""
    from digest.jobs import outbox

    if mark_sent is not None:
        outbox.mark_sent(app.database(), mark_sent, now=app.clock())
        click.echo(f"outbox row {mark_sent} marked sent")
        return
    if resend is not None:
        outbox.send_again(app.database(), resend, now=app.clock())
        click.echo(f"outbox row {resend} queued again")
        return
    overview = outbox.outbox_overview(app.database(), failures=failures)
    click.echo(_format_counts(overview))
    if overview.problems:
        click.echo("\nrecent problems:")
        for entry in overview.problems:
            when = (
                entry.last_attempt_at.strftime("%Y-%m-%d %H:%M") if entry.last_attempt_at else "-"
            )
            code = f"{entry.reply_code} " if entry.reply_code else ""
            click.echo(
                f"  #{entry.id} {entry.state:<8} {when} {entry.recipient} {entry.message_id}\n"
                f"      {code}{entry.reply or ''}"
            )


def _format_counts(overview: OutboxOverview) -> str:
    if overview.empty:
        return "the outbox is empty"
    used = overview.states
    lines = [f"{'date':<10}  {'kind':<8}" + "".join(f"{s:>9}" for s in used)]
    for group in overview.groups:
        day = group.day.isoformat() if group.day else "-"
        lines.append(
            f"{day:<10}  {group.kind:<8}" + "".join(f"{group.counts.get(s, 0):>9}" for s in used)
        )
    return "\n".join(lines)


# --- service: run, web, scheduler, status ------------------------------------------------


def _serve(app: AppContext, *, web: bool, scheduler: bool) -> None:
    from digest.service import run

    settings = app.settings
    log_as_a_service(settings)
    run(settings, web=web, scheduler=scheduler, clock=app.clock)


@cli.command("run")
@pass_app
def run_command(app: AppContext) -> None:
    """Run the whole service: web app and scheduler in one process (small installs)."""
    _serve(app, web=True, scheduler=True)


@cli.command("web")
@pass_app
def web_command(app: AppContext) -> None:
    """Run only the web app (signup, confirm, manage, unsubscribe pages)."""
    _serve(app, web=True, scheduler=False)


@cli.command("scheduler")
@pass_app
def scheduler_command(app: AppContext) -> None:
    """Run only the scheduler (fetches, digests, cleanup); one per database."""
    _serve(app, web=False, scheduler=True)


@cli.command("worker")
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(1, 256),
    default=None,
    help="Processes running tasks at once (default: the number of CPUs).",
)
@click.option(
    "--queues",
    "-Q",
    default="digests,send",
    show_default=True,
    help="Queues to take tasks from: digests (match, render, queue), send (deliver).",
)
@pass_app
def worker_command(app: AppContext, concurrency: int | None, queues: str) -> None:
    """Run a task worker: digest batches and send chunks from [queue] broker.

    Needs the celery extra (pip install 'digest[celery]') and [queue] broker. Run any
    number of them, on any hosts sharing the database; SIGTERM lets the tasks at work
    finish first.
    """
    import os

    from digest.errors import ConfigError

    settings = app.settings
    if not settings.queue.broker:
        raise ConfigError("digest worker needs [queue] broker (a redis:// URL) in the config")
    try:
        from digest.tasks import QUEUES
        from digest.tasks.work import run_worker
    except ImportError as error:
        raise ConfigError(
            f"digest worker needs the celery extra: pip install 'digest[celery]' ({error})"
        ) from None
    chosen = tuple(name.strip() for name in queues.split(",") if name.strip())
    unknown = [name for name in chosen if name not in QUEUES]
    if unknown or not chosen:
        raise click.BadParameter(
            f"unknown queue {', '.join(unknown) or '(none)'}; choose from {', '.join(QUEUES)}",
            param_hint="--queues",
        )
    app.database()  # the schema brought up to date (and the store reachable) before work
    log_as_a_service(settings)
    run_worker(
        settings,
        concurrency=concurrency or os.cpu_count() or 1,
        queues=chosen,
        loglevel=settings.service.log_level,
    )


@cli.command("status")
@pass_app
def status_command(app: AppContext) -> None:
    """Subscribers, papers, last fetches, today's digests and what runs next."""
    from digest.jobs.status import service_status

    status = service_status(app.settings, app.database(), now=app.clock())
    for line in status.lines():
        click.echo(line)
