"""`digest models`: the readers' models, derived from their feedback rows.

`rebuild` fits every reader's model again from the rows (after an upgrade, or to check
that the stored models are what the rows say); `--refit` first fits the shared text
model again on the store's newest papers, as the schedule does every `[learn]
refit_days`. `status` says what is stored.
"""

from __future__ import annotations

import click

from digest.cli.app import AppContext, DigestGroup, cli, pass_app


@cli.group("models", cls=DigestGroup)
def models() -> None:
    """The readers' models (learned from "more / less like this"): rebuild, status."""


@models.command("rebuild")
@click.option("--refit", is_flag=True, help="Fit the shared text model again first.")
@pass_app
def rebuild_command(app: AppContext, refit: bool) -> None:
    """Fit every reader's model again from their feedback rows."""
    from digest.learn.models import rebuild_models, refit_text_model

    database, now = app.database(), app.clock()
    if refit:
        report = refit_text_model(database, now)
        if report.text_version is None:
            click.echo("too few papers stored to fit a text model yet: nothing rebuilt")
            return
    else:
        report = rebuild_models(database, now)
    click.echo(report.summary())


@models.command("status")
@pass_app
def status_command(app: AppContext) -> None:
    """The text model in use, and how many readers have feedback and models."""
    from digest.learn.models import learning_status

    with app.database().session() as session:
        click.echo(learning_status(session))
