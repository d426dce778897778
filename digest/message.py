"""The `Message` record: one complete email, as the renderer makes it and every later
stage (the outbox, the delivery backends) keeps and hands it on.

It lives here, beside `Paper` and `Subscriber`, so that the store and the senders can
carry messages without loading the renderer (Jinja, css-inline) or the matcher (NumPy).
"""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Message:
    """A complete email, ready for any delivery backend.

    `sender` and `recipient` are the bare envelope addresses (MAIL FROM / RCPT TO);
    `message_id` is the Message-ID header's value including the angle brackets, stable
    for the same subscriber and digest date; `data` is the whole message as it goes
    over the wire after DATA: headers and body, CRLF line endings, no dot-stuffing.
    """

    sender: str
    recipient: str
    message_id: str
    data: bytes

    def body(self, kind: str) -> str:
        """The decoded text of the `plain` or `html` part (for previews and samples)."""
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        part = parsed.get_body((kind,))
        if part is None:
            raise ValueError(f"this message has no {kind} part")
        return part.get_content().replace("\r\n", "\n")
