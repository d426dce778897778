"""The service's clock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest.clock import clock_from_environment, system_clock
from digest.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
HF_DAY = ROOT / "tests" / "data" / "sources" / "hf_api_daily_papers_2026-06-12.json"


def test_system_clock_is_aware_utc() -> None:
    assert clock_from_environment({}) is system_clock
    assert system_clock().tzinfo is UTC


def test_file_clock_follows_the_file(tmp_path: Path) -> None:
    path = tmp_path / "now"
    path.write_text("2026-06-12T07:59:00+00:00\n")
    clock = clock_from_environment({"DIGEST_CLOCK_FILE": str(path)})
    assert clock() == datetime(2026, 6, 12, 7, 59, tzinfo=UTC)
    path.write_text("2026-06-12T10:00:00+02:00")
    assert clock() == datetime(2026, 6, 12, 8, tzinfo=UTC)


def test_file_clock_without_a_time_fails_at_start(tmp_path: Path) -> None:
    path = tmp_path / "now"
    path.write_text("tomorrow")
    with pytest.raises(ConfigError, match=r"DIGEST_CLOCK_FILE .*no ISO 8601 time"):
        clock_from_environment({"DIGEST_CLOCK_FILE": str(path)})


def test_every_command_that_reads_the_time_takes_it_from_the_clock_file(tmp_path: Path) -> None:
    # Real processes, as the end-to-end tests run the service: a day far from the real one.
    (tmp_path / "config.toml").write_text('[service]\ndata_dir = "data"\n')
    (tmp_path / "now").write_text("2026-06-12T09:00:00+00:00\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DIGEST_CLOCK_FILE": str(tmp_path / "now")}
    env.pop("DIGEST_CONFIG", None)

    def digest(*args: str) -> str:
        command = [sys.executable, "-m", "digest", *args]
        done = subprocess.run(
            command, capture_output=True, text=True, env=env, cwd=tmp_path, check=False
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    digest("fetch", "--file", str(HF_DAY))
    # Stamped first seen at the clock's time, not the system's.
    first_seen = {
        json.loads(line)["first_seen_at"] for line in digest("papers", "--json").split("\n") if line
    }
    assert first_seen == {"2026-06-12T09:00:00+00:00"}
    # "Today" for a preview is the clock's day.
    out = digest("preview", "--interests", "agents", "--out", str(tmp_path / "out"))
    assert out.startswith("Digest for the interests 'agents' ") and " on 2026-06-12:" in out
    assert "digests dated 2026-06-12:" in digest("status")
