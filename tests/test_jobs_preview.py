"""`digest preview` and the preview job: a digest rendered to files, nothing sent."""

from __future__ import annotations

import dataclasses
import email
import email.policy
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from render_samples import load_papers, select, subscriber

from digest.cli import cli
from digest.config import Settings, load_settings
from digest.errors import DigestError
from digest.jobs import Preview, preview_digest, save_preview, subscriber_for_interests
from digest.jobs.preview import listing_day, papers_listed_since
from digest.paper import Paper
from digest.render import DigestRenderer
from digest.store import Database, open_database
from digest.store.papers import save_papers
from digest.store.subscribers import create_subscriber

DAY = datetime(2026, 6, 12, tzinfo=UTC).date()
NOW = datetime(2026, 6, 12, 18, 0, tzinfo=UTC)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        '[service]\ndata_dir = "data"\nbase_url = "https://digest.example.org"\n'
        '[mail]\nfrom_address = "digest@example.org"\npostal_address = "1 Main St"\n'
        '[web]\nsecret_key = "preview-secret"\n'
    )
    return path


@pytest.fixture
def stocked(config_file: Path) -> Iterator[Database]:
    """The config's database with the sample papers (listed and first seen on DAY) and a
    subscriber."""
    database = open_database(load_settings(config_file, environ={}))
    papers = [dataclasses.replace(paper, listed=DAY) for paper in load_papers()]
    with database.session() as session:
        save_papers(session, papers, datetime(2026, 6, 12, 6, 0, tzinfo=UTC))
        create_subscriber(
            session,
            "reader@example.org",
            "diffusion, RLHF",
            send_time="08:00",
            timezone="UTC",
            now=NOW,
            status="active",
        )
    yield database
    database.dispose()


def run(config_file: Path, *arguments: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--config", str(config_file), "preview", *arguments])
    return result.exit_code, result.output


def test_unknown_address_is_one_clear_line(config_file: Path, stocked: Database) -> None:
    code, output = run(config_file, "--email", "nobody@example.org")
    assert code == 1
    assert output == (
        "digest: no subscriber with the address nobody@example.org; check the spelling\n"
    )


@pytest.mark.parametrize(
    "arguments", [(), ("--email", "reader@example.org", "--interests", "diffusion")]
)
def test_email_or_interests_is_required(config_file: Path, arguments: tuple[str, ...]) -> None:
    code, output = run(config_file, *arguments)
    assert code == 2
    assert "give either --email ADDRESS or --interests TEXT" in output


def test_library_refuses_neither_or_both(settings: Settings, database: Database) -> None:
    with pytest.raises(DigestError, match="either an email address or interests"):
        preview_digest(settings, database, now=NOW)


def test_synthetic_subscriber(settings: Settings) -> None:
    stand_in = subscriber_for_interests(settings, "diffusion", NOW)
    assert (stand_in.id, stand_in.interests) == (0, "diffusion")
    assert stand_in.email == "digest@localhost.localdomain"  # the sender's own address


def test_save_preview_writes_eml_html_and_text(settings: Settings, tmp_path: Path) -> None:
    papers = load_papers()
    reader = subscriber("diffusion")
    message = DigestRenderer(settings, "s").render_digest(
        reader, select(papers, ["diffusion"]), DAY, now=NOW
    )
    preview = Preview(message, reader, synthetic=False, day=DAY, papers=188, matched=20)
    paths = save_preview(preview, tmp_path / "out")
    assert [p.name for p in paths] == [
        "digest-2026-06-12-subscriber-42.eml",
        "digest-2026-06-12-subscriber-42.html",
        "digest-2026-06-12-subscriber-42.txt",
    ]
    assert paths[0].read_bytes() == message.data
    assert paths[1].read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert paths[2].read_text(encoding="utf-8").startswith("13 new papers on diffusion\n")
    assert b"\r" not in paths[1].read_bytes() + paths[2].read_bytes()  # files for people


def test_preview_a_subscriber(config_file: Path, stocked: Database, tmp_path: Path) -> None:
    out = tmp_path / "preview"
    code, output = run(
        config_file, "--email", "Reader@Example.org", "--date", "2026-06-12", "--out", str(out)
    )
    assert code == 0, output
    assert "reader@example.org (subscriber 1) on 2026-06-12" in output
    assert "of 188 papers listed that day matched" in output
    assert "Nothing was sent." in output
    eml = out / "digest-2026-06-12-subscriber-1.eml"
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert message["To"] == "reader@example.org"
    assert "diffusion" in message["Subject"]
    assert 'class="card"' in (out / "digest-2026-06-12-subscriber-1.html").read_text()
    heading = (out / "digest-2026-06-12-subscriber-1.txt").read_text().split("\n", 1)[0]
    assert heading == str(message["Subject"]).rpartition(" — ")[0]


def test_preview_ad_hoc_interests(config_file: Path, stocked: Database, tmp_path: Path) -> None:
    code, output = run(
        config_file, "--interests", "video", "--date", "2026-06-12", "--out", str(tmp_path)
    )
    assert code == 0, output
    assert "a synthetic subscriber: id 0, digest@example.org" in output
    text = (tmp_path / "digest-2026-06-12-interests.txt").read_text()
    assert "video" in text.split("\n", 1)[0]


def test_preview_of_a_day_without_papers(
    config_file: Path, stocked: Database, tmp_path: Path
) -> None:
    code, output = run(
        config_file, "--interests", "video", "--date", "2020-01-01", "--out", str(tmp_path)
    )
    assert code == 0, output
    assert "0 of 0 papers" in output
    assert "No new papers matched" in (tmp_path / "digest-2020-01-01-interests.txt").read_text()


# --- what "day D" means: the listing day, as `digest papers` shows it ------------------

SOURCES = Path(__file__).parent / "data" / "sources"


def test_a_listing_loaded_today_previews_under_its_own_day(
    config_file: Path, tmp_path: Path
) -> None:
    """Load a saved listing, preview its day: that day's papers, as `digest papers` shows
    them, though they were first seen today."""
    runner = CliRunner()
    listing = str(SOURCES / "hf_api_daily_papers_2026-06-12.json")
    loaded = runner.invoke(cli, ["--config", str(config_file), "fetch", "--file", listing])
    assert loaded.exit_code == 0, loaded.output
    shown = runner.invoke(cli, ["--config", str(config_file), "papers"])
    assert {line[:10] for line in shown.stdout.splitlines()} == {"2026-06-12"}
    code, output = run(
        config_file, "--interests", "agents", "--date", "2026-06-12", "--out", str(tmp_path)
    )
    assert code == 0, output
    assert "11 of 30 papers listed that day matched." in output
    text = (tmp_path / "digest-2026-06-12-interests.txt").read_text()
    assert text.startswith("11 new papers on agents")
    # Today, the day they were first seen, is not their day.
    code, output = run(config_file, "--interests", "agents", "--out", str(tmp_path))
    assert code == 0, output
    assert "0 of 0 papers listed that day matched." in output


def test_a_paper_without_a_listing_day_counts_by_the_day_first_seen(
    settings: Settings, store_database: Database
) -> None:
    """On SQLite and PostgreSQL: the listing day wins; without one, the UTC day the paper
    was first seen (late on the 13th UTC is the 13th, whatever the service's zone)."""
    listed = Paper(id="2606.00001", title="Listed agents", abstract="a", listed=DAY)
    unlisted = Paper(id="2606.00002", title="Unlisted agents", abstract="b")
    older = Paper(id="2606.00003", title="Older agents", abstract="c", listed=date(2026, 6, 1))
    late_on_the_13th = datetime(2026, 6, 13, 23, 30, tzinfo=UTC)
    with store_database.session() as session:
        save_papers(session, [listed, unlisted, older], late_on_the_13th)
    by_day = {
        day: preview_digest(settings, store_database, interests="agents", day=day, now=NOW)
        for day in (date(2026, 6, 1), DAY, date(2026, 6, 13), date(2026, 6, 14))
    }
    assert {day: found.papers for day, found in by_day.items()} == {
        date(2026, 6, 1): 1,
        DAY: 1,
        date(2026, 6, 13): 1,
        date(2026, 6, 14): 0,
    }
    assert "Listed agents" in by_day[DAY].message.body("plain")
    assert "Unlisted agents" in by_day[date(2026, 6, 13)].message.body("plain")
    assert [p.id for p in papers_listed_since(store_database, DAY)] == [
        "2606.00001",
        "2606.00002",
    ]
    assert [p.id for p in papers_listed_since(store_database, date(2026, 6, 14))] == []
    assert [listing_day(p) for p in papers_listed_since(store_database, date(2026, 6, 1))] == [
        DAY,
        date(2026, 6, 13),
        date(2026, 6, 1),
    ]


def test_trending_through_the_cli_on_the_saved_hugging_face_listing(
    config_file: Path, tmp_path: Path
) -> None:
    listing = Path(__file__).parent / "data" / "sources" / "hf_api_daily_papers_2026-06-12.json"
    runner = CliRunner()
    fetched = runner.invoke(cli, ["--config", str(config_file), "fetch", "--file", str(listing)])
    assert fetched.exit_code == 0, fetched.output
    checked = runner.invoke(cli, ["check-interests", "trending:4 upvotes>=10, -agents, video"])
    assert checked.exit_code == 0 and checked.output == "trending:4 upvotes>=10\n-agents\nvideo\n"
    code, output = run(
        config_file,
        "--interests",
        "trending:4 upvotes>=10\n-agents",
        "--date",
        "2026-06-12",
        "--out",
        str(tmp_path),
    )
    assert code == 0, output
    text = (tmp_path / "digest-2026-06-12-interests.txt").read_text()
    assert text.startswith("4 trending papers\n")
    # The most upvoted with at least 10, EvoArena (118, about agents) excluded.
    titles = ["MiniMax Sparse Attention", "Robust-U1", "HYDRA-X", "Demystifying Hidden-State"]
    where = [text.index(title) for title in titles]
    assert where == sorted(where) and "EvoArena" not in text
    assert [f"trending #{rank}" in text for rank in (1, 2, 3, 4)] == [True] * 4
    bad = runner.invoke(cli, ["check-interests", "trending:0"])
    assert bad.exit_code == 1
    assert 'entry 1 "trending:0": trending: takes from 1 to 100 papers (got 0)' in bad.output
