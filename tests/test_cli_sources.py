"""`digest fetch` and `digest papers`, through click's CliRunner on real databases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from pytest_httpserver import HTTPServer

from digest.cli import cli

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data" / "sources"
FIRST_RUN = {
    "hf_api_daily_papers_2026-06-12.json": "hf 2026-06-12: 30 papers, 30 new, 0 updated, 0 skipped",
    "hf_papers_page_2024-08-01.html": "hf 2024-08-01: 13 papers, 13 new, 0 updated, 0 skipped",
    "hf_paper_detail_2509.24002_prettified.html": (
        "hf 2025-10-01: 1 paper, 1 new, 0 updated, 0 skipped"
    ),
    "arxiv_rss_2026-09-24_excerpt.xml": (
        "arxiv 2026-09-24: 2 papers, 2 new, 0 updated, 0 skipped (left out 1 cross, 1 replace)"
    ),
    "arxiv_atom_2026-09-25_excerpt.xml": (
        "arxiv 2026-09-25: 1 paper, 1 new, 0 updated, 0 skipped (left out 1 cross, 1 replace)"
    ),
    "arxiv_api_query_2026-06-14.xml": "arxiv 2026-06-14: 5 papers, 5 new, 0 updated, 0 skipped",
}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A config file keeping the store in tmp_path."""
    path = tmp_path / "config.toml"
    path.write_text('[service]\ndata_dir = "data"\n')
    return path


def run(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)


def test_help() -> None:
    for command in (["fetch"], ["papers"]):
        result = CliRunner().invoke(cli, [*command, "--help"])
        assert result.exit_code == 0
        assert "Usage: " in result.output
    assert "--source [hf|arxiv|all]" in CliRunner().invoke(cli, ["fetch", "--help"]).output
    assert "--json" in CliRunner().invoke(cli, ["papers", "--help"]).output


@pytest.mark.parametrize("name", sorted(FIRST_RUN))
def test_fetch_file_twice(config: Path, name: str) -> None:
    first = run(config, "fetch", "--file", str(DATA / name))
    assert first.exit_code == 0
    assert first.stdout == FIRST_RUN[name] + "\n"
    assert first.stderr == ""
    second = run(config, "fetch", "--file", str(DATA / name))
    assert second.exit_code == 0
    count = FIRST_RUN[name].split(": ")[1].split(" ")[0]
    assert second.stdout == FIRST_RUN[name].replace(f", {count} new,", ", 0 new,") + "\n"


def test_fetch_bad_file_is_one_line_and_exit_1(config: Path, tmp_path: Path) -> None:
    run(config, "fetch", "--file", str(DATA / "arxiv_api_query_2026-06-14.xml"))
    bad = tmp_path / "cut.json"
    bad.write_bytes((DATA / "hf_api_daily_papers_2026-06-12.json").read_bytes()[:1000])
    result = run(config, "fetch", "--file", str(bad))
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"digest: hf: cannot read {bad}: the response is not valid JSON")
    listed = run(config, "papers")
    assert len(listed.stdout.splitlines()) == 5  # the arXiv papers are still all there


def test_fetch_usage_errors(config: Path) -> None:
    both = run(config, "fetch", "--date", "2026-06-12", "--file", str(DATA / "x.json"))
    assert both.exit_code == 2
    missing = run(config, "fetch", "--file", "/nonexistent/listing.json")
    assert missing.exit_code == 2
    assert "does not exist" in missing.stderr
    assert run(config, "fetch", "--source", "rss").exit_code == 2
    assert run(config, "fetch", "--date", "12/06/2026").exit_code == 2


def test_papers_lists_what_is_stored(config: Path) -> None:
    empty = run(config, "papers")
    assert (empty.exit_code, empty.stdout, empty.stderr) == (0, "", "no papers stored\n")
    run(config, "fetch", "--file", str(DATA / "hf_papers_page_2024-08-01.html"))
    result = run(config, "papers")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert len(lines) == 13
    assert (
        "2024-08-01  2407.21770       19  MoMa: Efficient Early-Fusion Pre-training with "
        "Mixture of Modality-Aware Experts"
    ) in lines


def test_papers_json(config: Path) -> None:
    run(config, "fetch", "--file", str(DATA / "arxiv_rss_2026-09-24_excerpt.xml"))
    result = run(config, "papers", "--json")
    assert result.exit_code == 0
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [record["id"] for record in records] == ["2609.26811", "2609.26820"]
    second = records[1]
    assert second["authors"] == ["Naser Mansour", "Sidahmed Benabderrahmane", "Ameer Rahwan"]
    assert second["categories"] == ["cs.LG", "cs.AI"]
    assert second["listed"] == "2026-09-24"
    assert second["sources"] == ["arxiv"]
    assert second["first_seen_at"].endswith("+00:00")


def test_papers_since(config: Path) -> None:
    run(config, "fetch", "--file", str(DATA / "arxiv_rss_2026-09-24_excerpt.xml"))
    assert len(run(config, "papers", "--since", "2000-01-01").stdout.splitlines()) == 2
    future = run(config, "papers", "--since", "2999-01-01")
    assert (future.stdout, future.stderr) == ("", "no papers stored since then\n")


def test_papers_since_goes_by_the_listing_day(config: Path) -> None:
    """A listing of 12 June loaded today counts under 12 June, as `preview --date` does."""
    run(config, "fetch", "--file", str(DATA / "hf_api_daily_papers_2026-06-12.json"))
    run(config, "fetch", "--file", str(DATA / "arxiv_rss_2026-09-24_excerpt.xml"))
    since_june = run(config, "papers", "--since", "2026-06-12").stdout.splitlines()
    assert len(since_june) == 32
    since_13th = run(config, "papers", "--since", "2026-06-13").stdout.splitlines()
    assert [line[:10] for line in since_13th] == ["2026-09-24", "2026-09-24"]
    after = run(config, "papers", "--since", "2026-09-25")
    assert (after.stdout, after.stderr) == ("", "no papers stored since then\n")


def _server_config(tmp_path: Path, server: HTTPServer) -> Path:
    root = server.url_for("/").rstrip("/")
    path = tmp_path / "config.toml"
    path.write_text(
        '[service]\ndata_dir = "data"\n'
        f'[sources.hf]\nbase_url = "{root}"\n'
        f'[sources.arxiv]\nfeed_url = "{root}"\ncategories = ["cs.LG"]\nmin_interval = 0.0\n'
        "[sources.http]\nretries = 0\n"
    )
    return path


def test_fetch_from_server(tmp_path: Path, httpserver: HTTPServer) -> None:
    httpserver.expect_request(
        "/api/daily_papers", query_string="date=2026-06-12"
    ).respond_with_data((DATA / "hf_api_daily_papers_2026-06-12.json").read_bytes())
    config = _server_config(tmp_path, httpserver)
    result = run(config, "fetch", "--source", "hf", "--date", "2026-06-12")
    assert (result.exit_code, result.stdout) == (
        0,
        "hf 2026-06-12: 30 papers, 30 new, 0 updated, 0 skipped\n",
    )


def test_fetch_empty_hf_day(tmp_path: Path, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/daily_papers").respond_with_data("", status=404)
    httpserver.expect_request("/papers/date/2026-06-13").respond_with_data(
        "", status=302, headers={"Location": "/papers"}
    )
    httpserver.expect_request("/papers").respond_with_data(
        (DATA / "hf_papers_page_2024-08-01.html").read_bytes()
    )
    config = _server_config(tmp_path, httpserver)
    result = run(config, "fetch", "--source", "hf", "--date", "2026-06-13")
    assert result.exit_code == 0
    assert result.stdout == "hf 2026-06-13: no listing for that day (redirected to /papers)\n"


def test_fetch_all_with_one_failure_exits_1(tmp_path: Path, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/daily_papers").respond_with_data("", status=500)
    httpserver.expect_request("/papers/date/2026-06-12").respond_with_data("", status=500)
    httpserver.expect_request("/rss/cs.LG").respond_with_data(
        (DATA / "arxiv_rss_2026-09-24_excerpt.xml").read_bytes()
    )
    config = _server_config(tmp_path, httpserver)
    result = run(config, "fetch", "--date", "2026-06-12")
    assert result.exit_code == 1
    assert result.stdout == (
        "arxiv 2026-09-24: 2 papers, 2 new, 0 updated, 0 skipped (left out 1 cross, 1 replace)\n"
    )
    (line,) = result.stderr.splitlines()
    assert line.startswith("digest: hf: cannot fetch http://127.0.0.1:")
    assert "HTTP 500 Internal Server Error" in line


def test_broken_config_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[sources.arxiv]\nmin_interval = "slow"\n')
    result = CliRunner().invoke(cli, ["--config", str(path), "fetch"])
    assert result.exit_code == 1
    assert result.stderr == (
        'digest: config.toml: [sources.arxiv] min_interval must be a number, got "slow"\n'
    )


def test_fetch_file_in_a_subprocess(config: Path) -> None:
    env: dict[str, Any] = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "digest", "--config", str(config), "fetch", "--file"]
    name = "hf_api_daily_papers_2026-06-12.json"
    done = subprocess.run(
        [*command, str(DATA / name)], capture_output=True, text=True, env=env, check=False
    )
    assert (done.returncode, done.stdout) == (0, FIRST_RUN[name] + "\n")
