"""Models from feedback rows: refreshed per click, rebuilt from the rows, refitted text."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from sqlalchemy import select

from digest.cli import cli
from digest.config import load_settings
from digest.learn.models import (
    current_text_model,
    learning_status,
    rebuild_models,
    refit_text_model,
    refresh_reader,
    text_model_due,
)
from digest.learn.taste import load_taste
from digest.store import Database, open_database
from digest.store.feedback import record_vote, remove_vote, votes_of
from digest.store.models import ReaderModelRow
from tests.learn_support import DIFFUSION, T0, add_reader, fit_text, store_papers, vote


def _models(database: Database) -> dict[int, tuple[int, int, bytes]]:
    with database.session() as session:
        rows = session.execute(select(ReaderModelRow)).scalars()
        return {r.subscriber_id: (r.text_version, r.labelled, r.data) for r in rows}


def test_no_text_model_no_models_until_papers_are_stored(
    store_database: Database, real_papers: Any
) -> None:
    reader = add_reader(store_database, "ada@example.org", "diffusion")
    assert text_model_due(store_database, T0, timedelta(days=7)) is False  # no papers yet
    assert refit_text_model(store_database, T0).text_version is None
    store_papers(store_database, real_papers)
    vote(store_database, reader, real_papers[25], 1)  # before any text model: just the row
    assert _models(store_database) == {}
    assert text_model_due(store_database, T0, timedelta(days=7)) is True
    version = fit_text(store_database)
    assert text_model_due(store_database, T0 + timedelta(days=6), timedelta(days=7)) is False
    assert text_model_due(store_database, T0 + timedelta(days=7), timedelta(days=7)) is True
    # The refit built the model of the reader who voted before it.
    [(made_over, labelled, _)] = _models(store_database).values()
    assert (made_over, labelled) == (version, 1)


def test_a_rebuilt_model_equals_the_one_the_clicks_left(
    store_database: Database, real_papers: Any
) -> None:
    store_papers(store_database, real_papers)
    fit_text(store_database)
    ada = add_reader(store_database, "ada@example.org", "diffusion")
    bob = add_reader(store_database, "bob@example.org", "language model")
    for step, index in enumerate(DIFFUSION[:6]):
        vote(store_database, ada, real_papers[index], 1, at=T0 + timedelta(minutes=step))
    vote(store_database, ada, real_papers[0], -1, at=T0 + timedelta(minutes=9))
    vote(store_database, bob, real_papers[2], 1)
    vote(store_database, bob, real_papers[2], -1)  # changed their mind: the row is replaced
    incremental = _models(store_database)
    assert load_taste(incremental[ada][2]).mode == "linear"
    assert incremental[ada][1] == 7
    report = rebuild_models(store_database, T0 + timedelta(days=1))
    assert (report.readers, report.models) == (2, 2)
    rebuilt = _models(store_database)
    assert rebuilt == incremental


def test_undoing_every_vote_drops_the_model(store_database: Database, real_papers: Any) -> None:
    store_papers(store_database, real_papers)
    fit_text(store_database)
    ada = add_reader(store_database, "ada@example.org", "diffusion")
    vote(store_database, ada, real_papers[25], 1)
    assert ada in _models(store_database)
    with store_database.session() as session:
        [row] = votes_of(session, ada)
        assert remove_vote(session, ada + 1, row.id) is None  # not theirs: nothing
        assert remove_vote(session, ada, row.id) is not None
        refresh_reader(session, ada, T0)
        session.commit()
    assert _models(store_database) == {}


def test_a_refit_rebuilds_every_model_over_the_new_vocabulary(
    store_database: Database, real_papers: Any
) -> None:
    store_papers(store_database, real_papers[:100])
    first = fit_text(store_database)
    ada = add_reader(store_database, "ada@example.org", "diffusion")
    vote(store_database, ada, real_papers[25], 1)
    store_papers(store_database, real_papers[100:], T0 + timedelta(days=1))
    second = fit_text(store_database, T0 + timedelta(days=8))
    assert second > first
    assert _models(store_database)[ada][0] == second
    with store_database.session() as session:
        text = current_text_model(session)
        assert text is not None and text.version == second
        assert f"text model {second}: fitted 2026-06-18" in learning_status(session)


def test_models_rebuild_command(tmp_path: Path, real_papers: Any) -> None:
    folder = tmp_path / "service"
    folder.mkdir()
    config = folder / "config.toml"
    config.write_text(f'[service]\ndata_dir = "{folder / "data"}"\n')
    clock = folder / "clock"
    clock.write_text(T0.isoformat())

    def digest(*arguments: str) -> Any:
        return CliRunner().invoke(
            cli, ["--config", str(config), *arguments], env={"DIGEST_CLOCK_FILE": str(clock)}
        )

    result = digest("models", "rebuild")
    assert result.exit_code == 0, result.output
    assert "no text model yet" in result.output
    database = open_database(load_settings(config))
    try:
        store_papers(database, real_papers)
        ada = add_reader(database, "ada@example.org", "diffusion")
        with database.session() as session:
            record_vote(session, ada, real_papers[25].id, 1, "email", T0)
            session.commit()
    finally:
        database.dispose()
    result = digest("models", "rebuild", "--refit")
    assert result.exit_code == 0, result.output
    assert "rebuilt 1 models of 1 readers with feedback over text model 1" in result.output
    result = digest("models", "status")
    assert result.exit_code == 0, result.output
    assert "text model 1: fitted 2026-06-10 12:00 UTC on 188 papers" in result.output
    assert "feedback: 1 rows from 1 readers" in result.output
    assert "models: 1" in result.output


def test_a_seed_counts_once_saved_or_once_its_paper_is_fetched(
    store_database: Database, real_papers: Any
) -> None:
    from digest.learn.models import refresh_readers_of
    from digest.learn.seeds import sync_reader_seeds

    store_papers(store_database, real_papers[:100])
    fit_text(store_database)
    ada = add_reader(store_database, "ada@example.org", "diffusion")
    stored, later = real_papers[25], real_papers[154]
    with store_database.session() as session:
        assert sync_reader_seeds(session, ada, f"diffusion\nlike:{stored.id}\nlike:{later.id}", T0)
    assert _models(store_database)[ada][1] == 1  # the stored seed counts at once
    store_papers(store_database, [later], T0 + timedelta(hours=1))  # as the seed fetch does
    assert refresh_readers_of(store_database, [later.id], T0 + timedelta(hours=1)) == 1
    assert _models(store_database)[ada][1] == 2
    assert refresh_readers_of(store_database, [], T0) == 0


def test_the_learn_job_catches_up_on_stale_models(
    store_database: Database, real_papers: Any
) -> None:
    from digest.store.feedback import save_text_model

    store_papers(store_database, real_papers)
    first = fit_text(store_database)
    ada = add_reader(store_database, "ada@example.org", "diffusion")
    bob = add_reader(store_database, "bob@example.org", "diffusion")
    vote(store_database, ada, real_papers[25], 1)
    vote(store_database, bob, real_papers[40], 1)
    # A refit stored a new text model but stopped before rebuilding anyone's model.
    with store_database.session() as session:
        stored = session.execute(select(ReaderModelRow)).scalars().first()
        assert stored is not None
        from digest.store.feedback import load_text_model as stored_text

        again = stored_text(session, first)
        assert again is not None
        second = save_text_model(session, T0 + timedelta(days=7), again.papers, again.data)
    report = rebuild_models(store_database, T0 + timedelta(days=7), stale_only=True)
    assert (report.readers, report.models, report.text_version) == (2, 2, second)
    assert {v for v, _, _ in _models(store_database).values()} == {second}
    # Nothing stale now: the next hour's job rebuilds nobody.
    assert rebuild_models(store_database, T0, stale_only=True).readers == 0


def test_an_unreadable_text_model_leaves_digests_without_learning(
    store_database: Database, real_papers: Any, caplog: Any
) -> None:
    from digest.store.feedback import save_text_model

    store_papers(store_database, real_papers)
    with store_database.session() as session:
        save_text_model(session, T0, 188, b"not a model")
    with store_database.session() as session, caplog.at_level("WARNING"):
        assert current_text_model(session) is None
    assert "the stored text model cannot be read" in caplog.text
    assert text_model_due(store_database, T0, timedelta(days=7)) is True  # refit at once
    assert fit_text(store_database) == 2
