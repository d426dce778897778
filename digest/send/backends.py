"""The one interface every delivery backend (SMTP, maildir) offers to the outbox.

A `Backend` opens `Connection`s (up to `backend.connections` used in parallel); a
connection delivers one `Message` at a time and says what happened as an `Outcome`.
Failures of the backend itself, rather than of one message, are raised:
`BackendUnavailable` (temporary: the server is down, refuses or times out; the message
is retried later) and `BackendMisconfigured` (the settings are wrong: bad login, TLS
mismatch, sender refused; nothing is sent until they are fixed). Both carry one
actionable sentence, as every `DeliveryError` does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from digest.errors import DeliveryError
from digest.message import Message, WireMessage

# Outcome statuses.
SENT = "sent"
TEMPORARY = "temporary"  # try again later: 4xx, connection lost before the end of data
PERMANENT = "permanent"  # 5xx: this message will never be accepted as it is
UNKNOWN = "unknown"  # the whole message went out, then the connection died unanswered


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one message: `status`, the `stage` it reached, the server's reply.

    `stage` is where the transaction stopped: "connect", "mail", "rcpt", "data" (the
    DATA command and the message text) or "end" (after the final ".", waiting for the
    server's verdict), or "write" for the maildir.
    """

    status: str
    stage: str
    code: int | None = None
    reply: str = ""

    def __str__(self) -> str:
        code = f"{self.code} " if self.code else ""
        return f"{code}{self.reply}".strip()


class BackendUnavailable(DeliveryError):
    """The backend cannot take mail right now; the message is retried later."""


class BackendMisconfigured(DeliveryError):
    """The backend's settings are wrong; nothing can be delivered until they are fixed."""


class Connection(Protocol):
    """One open channel to the backend, used by one thread at a time."""

    def deliver(
        self, message: Message | WireMessage, before_end: Callable[[], None] | None = None
    ) -> Outcome:
        """Hand one message over (as it is, or in its wire form) and say what became of it.

        `before_end` is called at the last moment before the backend can accept the
        message (before the final "." of SMTP DATA): the outbox waits there until the
        outcome of this connection's previous message is committed, so at most one
        message per connection is ever accepted but not yet recorded.
        """
        ...

    def close(self) -> None:
        """Release the channel (politely: QUIT for SMTP)."""
        ...


class Backend(Protocol):
    """A way of delivering mail: SMTP or a local maildir."""

    name: str
    connections: int

    def open(self) -> Connection:
        """A new connection; it connects lazily or at once, and may raise the errors above."""
        ...
