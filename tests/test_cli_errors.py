"""Every failing command says one line on stderr, `digest: ...`, and nothing else.

The rule is checked on ALL of stderr, not its last line: a library warning printed
beside the error (one per send worker, say) breaks it as surely as a traceback. Most
cases run through click's CliRunner; the ones where logging matters also run as a real
process, where no pytest handler sits on the root logger and Python's last-resort
handler would print any warning nobody configured.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from digest.cli import cli
from digest.config import load_settings
from digest.errors import StoreError
from digest.store import open_database
from tests.messages import queue_digests
from tests.smtp_server import free_port

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data" / "sources"
COMMANDS = [["status"], ["send"], ["fetch"], ["outbox"]]


def run(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)


def run_process(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m digest`: main(), the real streams and the real logging setup."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DIGEST_CONFIG", None)
    env.pop("DIGEST_CLOCK_FILE", None)
    command = [sys.executable, "-m", "digest", "--config", str(config), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, check=False)


def assert_one_line(stderr: str, expected: str | None = None) -> str:
    """All of stderr is one `digest: ...` line (exactly `expected`, when given)."""
    assert stderr.endswith("\n") and stderr.count("\n") == 1, repr(stderr)
    line = stderr.removesuffix("\n")
    assert line.startswith("digest: "), line
    assert "Traceback" not in line
    if expected is not None:
        assert line == expected
    return line


def write_config(tmp_path: Path, *sections: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text("\n".join([f'[service]\ndata_dir = "{tmp_path / "data"}"', *sections]) + "\n")
    return path


# --- a dead SMTP server --------------------------------------------------------------


@pytest.fixture
def dead_smtp(tmp_path: Path) -> tuple[Path, int]:
    """A config whose SMTP server is a closed loopback port, with 3 digests due."""
    port = free_port()
    config = write_config(
        tmp_path,
        f'[smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\nconnections = 3',
        '[delivery]\nbackend = "smtp"',
    )
    database = open_database(load_settings(config, environ={}))
    queue_digests(database, 3, now=datetime.now(UTC))
    database.dispose()
    return config, port


def _refused(port: int) -> str:
    return (
        f"digest: cannot connect to SMTP server 127.0.0.1:{port}: Connection refused; "
        "check [smtp] host and port"
    )


def test_send_to_a_dead_smtp_server_is_one_line(dead_smtp: tuple[Path, int]) -> None:
    config, port = dead_smtp
    result = run(config, "send")
    assert result.exit_code == 1
    assert result.stdout == "0 sent, 3 retrying, 0 failed, 0 addresses suppressed\n"
    assert_one_line(result.stderr, _refused(port))


def test_send_to_a_dead_smtp_server_is_one_line_in_a_real_process(
    dead_smtp: tuple[Path, int],
) -> None:
    # Each of the 3 workers logs the refusal as a warning: none may reach stderr.
    config, port = dead_smtp
    done = run_process(config, "send")
    assert done.returncode == 1
    assert done.stdout == "0 sent, 3 retrying, 0 failed, 0 addresses suppressed\n"
    assert_one_line(done.stderr, _refused(port))


# --- an unreachable database -------------------------------------------------------


def _postgres_down(tmp_path: Path) -> tuple[Path, str]:
    port = free_port()
    url = f"postgresql+psycopg://nobody:s3cret@127.0.0.1:{port}/x"
    expected = (
        f"digest: cannot reach the database at [database] url "
        f"postgresql+psycopg://nobody:***@127.0.0.1:{port}/x: connection refused; "
        "check that the server runs and the url is right"
    )
    return write_config(tmp_path, f'[database]\nurl = "{url}"'), expected


def _sqlite_folder_not_creatable(tmp_path: Path) -> tuple[Path, str]:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    path = blocker / "store" / "digest.db"
    expected = (
        f"digest: cannot create data folder {path.parent} for the database at "
        f"[database] url sqlite:///{path}: Not a directory; check the path and that digest "
        "may write there"
    )
    return write_config(tmp_path, f'[database]\nurl = "sqlite:///{path}"'), expected


def _sqlite_file_not_writable(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "digest.db"
    path.mkdir()  # a folder where the file should be: SQLite cannot open it, even as root
    expected = (
        f"digest: cannot open the database at [database] url sqlite:///{path}: unable to "
        "open database file; check that its folder exists and that digest may write to it"
    )
    return write_config(tmp_path, f'[database]\nurl = "sqlite:///{path}"'), expected


UNREACHABLE = {
    "postgresql-closed-port": _postgres_down,
    "sqlite-folder-not-creatable": _sqlite_folder_not_creatable,
    "sqlite-file-not-writable": _sqlite_file_not_writable,
}


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
@pytest.mark.parametrize("case", sorted(UNREACHABLE))
def test_an_unreachable_database_is_one_line(tmp_path: Path, case: str, command: list[str]) -> None:
    config, expected = UNREACHABLE[case](tmp_path)
    result = run(config, *command)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert_one_line(result.stderr, expected)
    assert "s3cret" not in result.output


@pytest.mark.parametrize(
    ("case", "command"),
    [("postgresql-closed-port", "status"), ("sqlite-file-not-writable", "send")],
)
def test_an_unreachable_database_is_one_line_in_a_real_process(
    tmp_path: Path, case: str, command: str
) -> None:
    config, expected = UNREACHABLE[case](tmp_path)
    done = run_process(config, command)
    assert (done.returncode, done.stdout) == (1, "")
    assert_one_line(done.stderr, expected)


def test_the_default_sqlite_file_names_the_data_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    config = tmp_path / "config.toml"
    config.write_text(f'[service]\ndata_dir = "{blocker / "data"}"\n')
    line = assert_one_line(run(config, "status").stderr)
    assert line.startswith(f"digest: cannot create data folder {blocker / 'data'} ")
    assert "[service] data_dir" in line


def test_a_missing_database_on_a_running_server_is_one_line(tmp_path: Path) -> None:
    from sqlalchemy.engine import make_url

    url = os.environ.get("DIGEST_TEST_POSTGRES_URL", "")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("CI must test PostgreSQL: set DIGEST_TEST_POSTGRES_URL")
        pytest.skip("no PostgreSQL server: set DIGEST_TEST_POSTGRES_URL")

    missing = make_url(url).set(database="digest_no_such_database")
    config = write_config(
        tmp_path, f'[database]\nurl = "{missing.render_as_string(hide_password=False)}"'
    )
    line = assert_one_line(run(config, "status").stderr)
    assert line.startswith("digest: cannot reach the database at [database] url postgresql")
    assert 'database "digest_no_such_database" does not exist; check that the server' in line


# --- other failures, each command ---------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["send"],
        ["fetch"],
        ["outbox"],
        ["papers"],
        ["preview", "--interests", "agents"],
        ["db", "upgrade"],
        ["run"],
        ["web"],
        ["scheduler"],
    ],
    ids=" ".join,
)
@pytest.mark.parametrize("where", ["before", "after"])
def test_a_broken_config_is_one_line_for_every_command(
    tmp_path: Path, command: list[str], where: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[smtp]\nport = "abc"\n')
    if where == "before":  # digest --config FILE status
        result = run(path, *command)
    else:  # digest status --config FILE, as the README shows it
        arguments = [*command, "--config", str(path)]
        result = CliRunner().invoke(cli, arguments, catch_exceptions=False)
    assert result.exit_code == 1, result.output
    assert_one_line(result.stderr)
    assert "[smtp] port" in result.stderr


def _commands(group: Any, trail: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for name, command in group.commands.items():
        yield (*trail, name), command
        if hasattr(command, "commands"):
            yield from _commands(command, (*trail, name))


def test_every_command_takes_config_after_its_name() -> None:
    # Walked, not listed: a command added later gets the option too (DigestGroup adds it).
    found = dict(_commands(cli))
    assert {("status",), ("db", "upgrade"), ("check-interests",)} <= set(found)
    for name in found:
        result = CliRunner().invoke(cli, [*name, "--help"])
        assert result.exit_code == 0, name
        assert "--config FILE" in result.output, name


@pytest.mark.parametrize("where", ["before", "after"])
def test_config_before_or_after_the_command_in_a_real_process(tmp_path: Path, where: str) -> None:
    config = write_config(tmp_path, "[schedule]\nfetch_every_minutes = 7")
    if where == "before":
        result = run_process(config, "status")
    else:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("DIGEST_CONFIG", None)
        env.pop("DIGEST_CLOCK_FILE", None)
        command = [sys.executable, "-m", "digest", "status", "--config", str(config)]
        # cwd: a folder with no config.toml, so only --config can name the file.
        result = subprocess.run(
            command, capture_output=True, text=True, env=env, cwd=tmp_path, check=False
        )
    assert result.returncode == 0, result.stderr
    assert "next: fetch every 7 min" in result.stdout
    assert (tmp_path / "data" / "digest.db").is_file()  # the file's data_dir, nowhere else


def test_an_empty_field_term_reads_well_on_the_command_line_and_the_form(
    tmp_path: Path,
) -> None:
    from digest.errors import InterestSyntaxError
    from digest.match import parse_interests
    from digest.web.forms import _describe

    result = run(write_config(tmp_path), "check-interests", "diffusion, title:")
    # The README quotes this line.
    assert_one_line(
        result.stderr,
        'digest: entry 2 "title:": has an empty term: write a word or phrase after "title:"',
    )
    with pytest.raises(InterestSyntaxError) as caught:
        parse_interests("diffusion, title:")
    sentence = _describe(caught.value)  # the form adds a full stop
    assert sentence.endswith('after "title:".') and ":." not in sentence


UNUSABLE_MAIL = {
    "half-set dkim": (
        '[dkim]\nselector = "mail"\ndomain = "example.org"',
        "digest: config.toml: [dkim] key_file must be set too to sign mail",
    ),
    "unreadable key": (
        '[dkim]\nselector = "mail"\ndomain = "example.org"\nkey_file = "/nonexistent/k.pem"',
        "digest: config.toml: [dkim] key_file /nonexistent/k.pem cannot be read: "
        "No such file or directory",
    ),
    "bad sender": (
        '[mail]\nfrom_address = "ab@x..y"',
        'digest: config.toml: [mail] from_address "ab@x..y" is not a valid address: '
        "An email address cannot have two periods in a row.",
    ),
    "bad confirm sender": (
        '[mail]\nconfirm_from = "confirm@localhost"',
        'digest: config.toml: [mail] confirm_from "confirm@localhost" is not a valid address: '
        "The part after the @-sign is a special-use or reserved name that cannot be used "
        'with email. (for mail kept on this machine: "confirm@localhost.localdomain")',
    ),
}


@pytest.mark.parametrize("command", [["run"], ["status"]], ids=" ".join)
@pytest.mark.parametrize("case", UNUSABLE_MAIL)
def test_mail_settings_that_would_fail_later_stop_the_command_at_start(
    tmp_path: Path, case: str, command: list[str]
) -> None:
    # A real process: `digest run` must stop before it serves, schedules or fetches
    # anything (it used to start, then fail at the first sign-up or digest).
    section, expected = UNUSABLE_MAIL[case]
    config = write_config(tmp_path, section, "[web]\nport = 1")  # port 1: never bound
    result = run_process(config, *command)
    assert result.returncode == 1
    assert_one_line(result.stderr, expected)
    assert result.stdout == ""
    assert not (tmp_path / "data").exists()  # no store made, nothing fetched


def test_library_failures_are_one_line(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    cut = tmp_path / "cut.json"
    cut.write_bytes((DATA / "hf_api_daily_papers_2026-06-12.json").read_bytes()[:1000])
    cases = [
        (["fetch", "--file", str(cut)], f"digest: hf: cannot read {cut}: "),
        (["outbox", "--mark-sent", "7"], "digest: no outbox row 7; see `digest outbox`"),
        (["outbox", "--resend", "7"], "digest: no outbox row 7; see `digest outbox`"),
        (["check-interests", "a AND"], 'digest: entry 1 "a AND": has an empty term'),
        (
            ["preview", "--email", "nobody@example.org"],
            "digest: no subscriber with the address nobody@example.org; check the spelling",
        ),
    ]
    for command, start in cases:
        result = run(config, *command)
        assert result.exit_code == 1, (command, result.output)
        assert assert_one_line(result.stderr).startswith(start), command


# --- warnings: held until the command ends ----------------------------------------


def _status_that(monkeypatch: pytest.MonkeyPatch, fail: bool) -> None:
    """Make `digest status` log warnings (twice the same, as workers do), then end."""
    import digest.jobs.status

    def service_status(*_: Any, **__: Any) -> Any:
        log = logging.getLogger("digest.jobs.status")
        log.warning("the store is slow")
        log.warning("the store is slow")
        warnings.warn("a library is old", UserWarning, stacklevel=1)
        if fail:
            raise StoreError("the store went away; check it")
        return type("Status", (), {"lines": lambda self: ["all well"]})()

    monkeypatch.setattr(digest.jobs.status, "service_status", service_status)


def test_warnings_are_dropped_when_the_command_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _status_that(monkeypatch, fail=True)
    result = run(write_config(tmp_path), "status")
    assert result.exit_code == 1
    assert_one_line(result.stderr, "digest: the store went away; check it")


def test_warnings_are_shown_once_after_a_success(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _status_that(monkeypatch, fail=False)
    result = run(write_config(tmp_path), "status")
    assert result.exit_code == 0
    assert result.stdout == "all well\n"
    slow, old = result.stderr.split("\n", 1)
    assert slow == "digest: warning: the store is slow"  # once, not twice
    assert old.startswith("digest: warning: ") and "UserWarning: a library is old" in old
    # And the logging setup is undone: the next command starts clean.
    root = logging.getLogger()
    assert not [h for h in root.handlers if type(h).__name__ == "_HeldWarnings"]
