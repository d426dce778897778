"""`digest preview` and the preview job: a digest rendered to files, nothing sent."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from render_samples import load_papers, select, subscriber

from digest.cli import cli
from digest.config import Settings, load_settings
from digest.errors import DigestError
from digest.jobs import Preview, preview_digest, save_preview, subscriber_for_interests
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
    """The config's database with the sample papers (first seen on DAY) and a subscriber."""
    database = open_database(load_settings(config_file, environ={}))
    with database.session() as session:
        save_papers(session, load_papers(), datetime(2026, 6, 12, 6, 0, tzinfo=UTC))
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
    assert "of 188 papers first seen that day matched" in output
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
