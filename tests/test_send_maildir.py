"""The maildir backend: the default without a mail server; atomic, and idempotent."""

from __future__ import annotations

import mailbox
from datetime import UTC, datetime
from typing import Any

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
