"""`digest send` and `digest outbox`, driven through click's CliRunner."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from digest.cli import cli
from digest.config import load_settings
from digest.store import open_database
from tests.messages import queue_digests
from tests.smtp_server import free_port


def _config(tmp_path: Path, **smtp: Any) -> Path:
    lines = [f'[service]\ndata_dir = "{tmp_path / "data"}"']
    if smtp:
        lines.append("[smtp]")
        lines += [f"{k} = {v!r}".replace("'", '"') for k, v in smtp.items()]
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _queue(config: Path, count: int) -> list[Any]:
    database = open_database(load_settings(config, environ={}))
    messages = queue_digests(database, count, now=datetime.now(UTC))
    database.dispose()
    return messages


def test_send_then_outbox(tmp_path: Path, smtp_server: Any) -> None:
    config = _config(tmp_path, host="127.0.0.1", port=smtp_server.port, security="none")
    _queue(config, 3)
    smtp_server.faults.rcpt_550.add("reader1@example.net")
    runner = CliRunner()
    dry = runner.invoke(cli, ["--config", str(config), "send", "--dry-run"])
    assert dry.exit_code == 0 and dry.output == "3 messages due (dry run: nothing sent)\n"
    sent = runner.invoke(cli, ["--config", str(config), "send", "--date", "2026-11-23"])
    assert sent.exit_code == 0, sent.output
    assert sent.output == "2 sent, 0 retrying, 1 failed, 1 addresses suppressed\n"
    shown = runner.invoke(cli, ["--config", str(config), "outbox"])
    assert shown.exit_code == 0
    lines = shown.output.splitlines()
    assert lines[0].split() == ["date", "kind", "sent", "failed"]
    assert lines[1].split() == ["2026-11-23", "digest", "2", "1"]
    assert "recent problems:" in shown.output
    assert "550 5.1.1 <reader1@example.net>: Recipient address rejected" in shown.output


def test_an_unreachable_server_is_one_line_and_exit_1(tmp_path: Path) -> None:
    port = free_port()
    config = _config(tmp_path, host="127.0.0.1", port=port, security="none")
    _queue(config, 2)
    # A real process: under the test runner, its log capture would hide repeated lines.
    result = subprocess.run(
        [sys.executable, "-m", "digest", "--config", str(config), "send"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr == (  # all of stderr: the one line, nothing before it
        f"digest: cannot connect to SMTP server 127.0.0.1:{port}: Connection refused; "
        "check [smtp] host and port\n"
    )


def test_settling_an_unknown_row(tmp_path: Path, smtp_server: Any) -> None:
    config = _config(tmp_path, host="127.0.0.1", port=smtp_server.port, security="none")
    messages = _queue(config, 1)
    smtp_server.faults.cut_after_dot["reader0@example.net"] = 1
    runner = CliRunner()
    sent = runner.invoke(cli, ["--config", str(config), "send"])
    assert "1 unknown (see `digest outbox`)" in sent.output
    shown = runner.invoke(cli, ["--config", str(config), "outbox"])
    assert "#1 unknown" in shown.output and messages[0].message_id in shown.output
    resend = runner.invoke(cli, ["--config", str(config), "outbox", "--resend", "1"])
    assert resend.output == "outbox row 1 queued again\n"
    again = runner.invoke(cli, ["--config", str(config), "outbox", "--mark-sent", "1"])
    assert again.exit_code == 1
    assert again.output == "digest: outbox row 1 is retrying, not unknown; see `digest outbox`\n"
    assert runner.invoke(cli, ["--config", str(config), "send"]).output.startswith("1 sent")
    assert len(smtp_server.received) == 1


def test_an_empty_outbox(tmp_path: Path) -> None:
    config = _config(tmp_path)
    result = CliRunner().invoke(cli, ["--config", str(config), "outbox"])
    assert result.output == "the outbox is empty\n"
    sent = CliRunner().invoke(cli, ["--config", str(config), "send"])
    assert sent.output == "0 sent, 0 retrying, 0 failed, 0 addresses suppressed\n"
