"""The `digest` command group and what every command shares.

`cli` is the top-level click group; `AppContext` loads the settings (checked as a whole,
`digest.config`) and opens the store on first use, so `--help` works with a broken
config. Any `DigestError` becomes one line on stderr, `digest: <what went wrong>`, and
exit code 1; usage errors exit 2, as click does.

Logging is set up once per invocation, by the top-level group (`_command_logging`), so
that a failure is that one line and nothing else: the library's warnings (one per send
worker, say, each repeating the error) are held until the command ends, then shown
after a success and dropped after a failure. The service commands (run, web, scheduler)
log every event as it happens instead, at [service] log_level (`log_as_a_service`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from digest.clock import Clock, clock_from_environment
from digest.config import Settings, load_settings
from digest.errors import DigestError
from digest.store import Database, open_database


class CommandFailed(click.ClickException):
    """A DigestError on its way to the terminal: one line, exit code 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"digest: {self.format_message()}", err=True)


class _HeldWarnings(logging.Handler):
    """Keeps WARNING and worse, from any logger, until the command ends."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []
        self.setFormatter(logging.Formatter("digest: warning: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)  # Handler.handle holds the lock: threads are safe

    def lines(self) -> list[str]:
        """Each distinct warning once, in the order first logged."""
        # rstrip: a captured Python warning ends with a newline (and its source line).
        return list(dict.fromkeys(self.format(record).rstrip() for record in self.records))


# Failures that end in one line (`digest: ...`, a usage error, "Aborted!"): the held
# warnings would only add lines beside it, most of them saying the same thing again.
_REPORTED = (DigestError, click.ClickException, click.Abort, KeyboardInterrupt)


@contextmanager
def _command_logging() -> Iterator[None]:
    """Hold the warnings of one command; show them after a success, drop them after a failure.

    Python warnings (`warnings.warn`) are routed through logging too, so a library's
    DeprecationWarning cannot add lines beside the error either. A bug (any other
    exception) shows the held warnings before its traceback: they may explain it.
    """
    held = _HeldWarnings()
    root = logging.getLogger()
    root.addHandler(held)
    logging.captureWarnings(True)
    show = True
    try:
        yield
    except _REPORTED:
        show = False
        raise
    except click.exceptions.Exit as stop:  # ctx.exit(1): the command printed its errors
        show = stop.exit_code == 0
        raise
    finally:
        logging.captureWarnings(False)
        root.removeHandler(held)
        if show:
            for line in held.lines():
                click.echo(line, err=True)


def log_as_a_service(settings: Settings) -> None:
    """Run, web, scheduler: every event logged as it happens, to stderr, at [service] log_level."""
    from digest.service import configure_logging

    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _HeldWarnings)]:
        root.removeHandler(handler)  # else basicConfig sees a handler and adds none
    configure_logging(settings)


CONFIG_HELP = "Config file (default: $DIGEST_CONFIG, else ./config.toml, else built-in defaults)."


def _take_config(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    """A subcommand's `--config FILE`: the file the group's AppContext loads (it loads
    lazily, so this is in time). Given twice, the later one wins."""
    if value is not None:
        ctx.ensure_object(AppContext).config_path = value


def config_option() -> click.Option:
    """`--config FILE` for a subcommand, as the top-level group takes it."""
    return click.Option(
        ["--config", "config_path"],
        type=click.Path(dir_okay=False, path_type=Path),
        expose_value=False,  # the commands read the settings from AppContext
        callback=_take_config,
        help=CONFIG_HELP,
    )


class DigestGroup(click.Group):
    """A click group that turns DigestError into one clear line instead of a traceback.

    Every command added to it takes `--config FILE` after its name too
    (`digest status --config x.toml` as well as `digest --config x.toml status`): the
    option is added here, so a new command cannot forget it.
    """

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        if not any(param.name == "config_path" for param in cmd.params):
            cmd.params.append(config_option())
        super().add_command(cmd, name)

    def invoke(self, ctx: click.Context) -> Any:
        if ctx.parent is not None:  # a subgroup (`db`): the top-level group set things up
            return self._invoke(ctx)
        with _command_logging():
            return self._invoke(ctx)

    def _invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DigestError as error:
            raise CommandFailed(str(error)) from None


@dataclass
class AppContext:
    """Settings, database and clock, made on first use so `--help` works with a broken
    config."""

    config_path: Path | None = None
    _settings: Settings | None = None
    _database: Database | None = field(default=None, repr=False)
    _clock: Clock | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        """The loaded settings."""
        if self._settings is None:
            self._settings = load_settings(self.config_path)
        return self._settings

    @property
    def clock(self) -> Clock:
        """The one clock every command reads the time from: the system's, or the file
        named by DIGEST_CLOCK_FILE (`digest.clock`), for every command alike."""
        if self._clock is None:
            self._clock = clock_from_environment()
        return self._clock

    def database(self, migrate: bool = True) -> Database:
        """The store, its schema brought up to date unless `migrate` is False."""
        if self._database is None:
            self._database = open_database(self.settings, migrate=migrate)
        return self._database


pass_app = click.make_pass_decorator(AppContext)


@click.group(cls=DigestGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help=CONFIG_HELP,
)
@click.version_option(package_name="digest")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None) -> None:
    """digest: daily email digests of new research papers, matched to interests."""
    ctx.ensure_object(AppContext).config_path = config_path


@cli.group(cls=DigestGroup)
def db() -> None:
    """Manage the database schema."""


@db.command("upgrade")
@pass_app
def db_upgrade(app: AppContext) -> None:
    """Apply pending schema migrations (also done automatically on first run)."""
    database = app.database(migrate=False)
    before, after = database.upgrade()
    if before == after:
        click.echo(f"database {database!r} is up to date (revision {after})")
    else:
        click.echo(f"database {database!r} upgraded from {before or 'empty'} to {after}")


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="digest")
