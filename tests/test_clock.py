"""The service's clock."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest.clock import clock_from_environment, system_clock
from digest.errors import ConfigError


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
