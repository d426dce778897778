"""The maildir backend: the default without a mail server; atomic, and idempotent."""

from __future__ import annotations

import logging
import mailbox
import os
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from digest.message import WireMessage
from digest.send import send_due
from digest.send.backends import SENT
from digest.send.maildir import MaildirBackend, maildir_name
from digest.store import open_database
from tests.messages import build_digest, queue_digests

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def test_without_a_mail_server_digests_land_in_the_data_folder_maildir(
    make_settings: Any,
) -> None:
    settings = make_settings()
    assert settings.mail_backend == "maildir"
    database = open_database(settings)
    messages = queue_digests(database, 5, now=NOW)
    report = send_due(settings, database, now=NOW)
    assert (report.sent, report.error) == (5, None)
    box = mailbox.Maildir(settings.data_dir / "maildir", create=False)
    found = {message["Message-ID"]: message for message in box}
    assert set(found) == {m.message_id for m in messages}
    first = messages[0]
    assert found[first.message_id].as_bytes().replace(b"\n", b"\r\n").startswith(first.data[:200])
    assert found[first.message_id].get_payload()[0].get_content_type() == "text/plain"
    assert list((settings.data_dir / "maildir" / "tmp").iterdir()) == []
    assert send_due(settings, database, now=NOW).sent == 0
    database.dispose()


def test_delivering_the_same_message_twice_writes_it_once(tmp_path: Any) -> None:
    backend = MaildirBackend(tmp_path / "box")
    message = build_digest(1, "a@example.net")
    connection = backend.open()
    assert connection.deliver(message).status == SENT
    again = connection.deliver(message)
    assert again.status == SENT and "already in" in again.reply
    assert len(list((tmp_path / "box" / "new").iterdir())) == 1
    # A mail reader moved it to cur/ and flagged it as seen: still not written again.
    name = maildir_name(message.message_id)
    (tmp_path / "box" / "new" / name).rename(tmp_path / "box" / "cur" / f"{name}:2,S")
    assert backend.open().deliver(message).status == SENT
    assert list((tmp_path / "box" / "new").iterdir()) == []
    assert (tmp_path / "box" / "new" / name).exists() is False


def test_the_maildir_file_uses_local_line_endings(tmp_path: Any) -> None:
    message = build_digest(1, "a@example.net")
    MaildirBackend(tmp_path / "box").open().deliver(message)
    (written,) = (tmp_path / "box" / "new").iterdir()
    assert written.read_bytes() == message.data.replace(b"\r\n", b"\n")


def test_an_unwritable_maildir_is_a_clear_error(make_settings: Any, tmp_path: Any) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    settings = make_settings(delivery={"maildir": str(blocker / "box")})
    database = open_database(settings)
    queue_digests(database, 1, now=NOW)
    report = send_due(settings, database, now=NOW)
    assert report.sent == 0 and report.retrying == 1
    assert report.error == (
        f"cannot use maildir {blocker / 'box'}: Not a directory; check [delivery] maildir"
    )
    database.dispose()


# --- privacy: messages carry live confirm, manage and unsubscribe links -----------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_maildir_and_its_messages_are_private(tmp_path: Path, umask: int) -> None:
    box = tmp_path / "data" / "box"
    connection = MaildirBackend(box).open()
    connection.deliver(build_digest(1, "a@example.net"))
    assert {path.name: _mode(path) for path in (box, *box.iterdir())} == {
        "box": 0o700,
        "tmp": 0o700,
        "new": 0o700,
        "cur": 0o700,
    }
    (written,) = (box / "new").iterdir()
    assert _mode(written) == 0o600


def test_a_stale_temporary_file_does_not_leave_a_message_open(tmp_path: Path, umask: int) -> None:
    # A crash can leave tmp/NAME.PID behind, open to all; writing over it makes it private.
    message = build_digest(1, "a@example.net")
    connection = MaildirBackend(tmp_path / "box").open()
    stale = tmp_path / "box" / "tmp" / f"{maildir_name(message.message_id)}.{os.getpid()}"
    stale.write_bytes(b"half a message")
    os.chmod(stale, 0o666)
    connection.deliver(message)
    (written,) = (tmp_path / "box" / "new").iterdir()
    assert _mode(written) == 0o600 and written.read_bytes().startswith(b"From")


def test_a_maildir_left_open_is_made_private(
    tmp_path: Path, umask: int, caplog: pytest.LogCaptureFixture
) -> None:
    box = tmp_path / "box"
    for sub in ("tmp", "new", "cur"):
        (box / sub).mkdir(parents=True)
        os.chmod(box / sub, 0o755)
    os.chmod(box, 0o755)
    with caplog.at_level(logging.WARNING, logger="digest.paths"):
        MaildirBackend(box).open()
    assert all(_mode(path) == 0o700 for path in (box, box / "tmp", box / "new", box / "cur"))
    assert f"maildir {box} was open to other users: made it private" in caplog.text


def test_a_message_in_its_wire_form_makes_the_same_file(tmp_path: Path) -> None:
    message = build_digest(1, "a@example.net")
    dotted = type(message)(
        message.sender,
        message.recipient,
        message.message_id,
        message.data.replace(b"\r\n\r\n", b"\r\n\r\n.hidden\r\n..two\r\n.\r\n", 1),
    )
    name = maildir_name(dotted.message_id)
    MaildirBackend(tmp_path / "plain").open().deliver(dotted)
    MaildirBackend(tmp_path / "wire").open().deliver(WireMessage.of(dotted))
    written = (tmp_path / "wire" / "new" / name).read_bytes()
    assert written == (tmp_path / "plain" / "new" / name).read_bytes()
    assert b"\n.hidden\n..two\n.\n" in written  # unstuffed, local line ends
