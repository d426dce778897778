"""The `digest` command: a thin layer of click commands over the library.

Every command parses its arguments, calls one library function (the same one the
scheduler and the web app call), and prints the result for a person. Any `DigestError`
becomes one line on stderr, `digest: <what went wrong>`, and exit code 1; usage errors
exit 2, as click does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from digest.config import Settings, load_settings
from digest.errors import DigestError
from digest.store import Database, open_database


class CommandFailed(click.ClickException):
    """A DigestError on its way to the terminal: one line, exit code 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"digest: {self.format_message()}", err=True)


class DigestGroup(click.Group):
    """A click group that turns DigestError into one clear line instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DigestError as error:
            raise CommandFailed(str(error)) from None


@dataclass
class AppContext:
    """Settings and database, loaded on first use so `--help` works with a broken config."""

    config_path: Path | None
    _settings: Settings | None = None
    _database: Database | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        """The loaded settings."""
        if self._settings is None:
            self._settings = load_settings(self.config_path)
        return self._settings

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
    help="Config file (default: $DIGEST_CONFIG, else ./config.toml, else built-in defaults).",
)
@click.version_option(package_name="digest")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None) -> None:
    """digest: daily email digests of new research papers, matched to interests."""
    ctx.obj = AppContext(config_path)


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
