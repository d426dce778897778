"""The maildir backend: each message a file in a local maildir, no mail server needed.

The default when no SMTP server is configured, so a new user runs the service and opens
the digests with any maildir-reading mail program (mutt -f, Thunderbird, Evolution,
Dovecot). A message is written to `tmp/`, flushed to disk, then linked into `new/`, so a
reader never sees half a message. The file name comes from the Message-ID, which makes
delivery idempotent: a message delivered again (after a crash between writing it and
recording it) finds its file already there and is not written twice.

Messages carry live confirm, manage and unsubscribe links: the maildir and its folders
are private to the service's user (0700, tightened at open if an older run or a person
left them open) and each message is written 0600, whatever the umask.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from digest.message import Message, WireMessage
from digest.paths import PRIVATE_FILE, private_folder, tighten
from digest.send.backends import SENT, BackendUnavailable, Outcome


def maildir_name(message_id: str) -> str:
    """The file name a message gets in the maildir: stable for its Message-ID."""
    return "digest." + hashlib.sha256(message_id.encode("utf-8")).hexdigest()[:32]


class MaildirBackend:
    """Write messages into the maildir at `path` (created when missing)."""

    name = "maildir"
    connections = 1  # writing a file is fast; one writer keeps the order

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def open(self) -> MaildirConnection:
        """Create the maildir if needed and note the messages already in it."""
        try:
            private_folder(self.path)
            tighten(self.path, "maildir")
            for sub in ("tmp", "new", "cur"):
                if not private_folder(self.path / sub):
                    tighten(self.path / sub, "maildir folder")
            # A reader moves messages to cur/ and appends flags after ":".
            seen = {name.partition(":")[0] for name in os.listdir(self.path / "cur")}
        except OSError as error:
            raise BackendUnavailable(
                f"cannot use maildir {self.path}: {error.strerror}; check [delivery] maildir"
            ) from None
        return MaildirConnection(self.path, seen)


class MaildirConnection:
    """Writes one message at a time into a maildir."""

    def __init__(self, path: Path, seen_in_cur: set[str]) -> None:
        self.path = path
        self.seen_in_cur = seen_in_cur

    def deliver(
        self, message: Message | WireMessage, before_end: Callable[[], None] | None = None
    ) -> Outcome:
        """Write the message to new/ atomically, unless it is already in the maildir."""
        if isinstance(message, WireMessage):
            message = message.message()  # a mail file holds the message, not its wire form
        name = maildir_name(message.message_id)
        if name in self.seen_in_cur:
            return Outcome(SENT, "write", reply=f"already in {self.path} as cur/{name}")
        target = self.path / "new" / name
        temporary = self.path / "tmp" / f"{name}.{os.getpid()}"
        # Mail files on disk use the local line ending; the wire form uses CRLF.
        data = message.data.replace(b"\r\n", b"\n")
        try:
            # Private from the first byte: the mode is set on the descriptor, so neither
            # the umask nor a stale file of the same name (a crash) can leave it open.
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
            with os.fdopen(descriptor, "wb") as handle:
                os.fchmod(descriptor, PRIVATE_FILE)
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            if before_end is not None:
                before_end()
            try:
                os.link(temporary, target)
            except FileExistsError:
                return Outcome(SENT, "write", reply=f"already in {self.path} as new/{name}")
            finally:
                temporary.unlink(missing_ok=True)
        except OSError as error:
            raise BackendUnavailable(
                f"cannot write to maildir {self.path}: {error.strerror}; "
                "check [delivery] maildir and the free disk space"
            ) from None
        return Outcome(SENT, "write", reply=f"written to {target}")

    def close(self) -> None:
        """Nothing to release."""
