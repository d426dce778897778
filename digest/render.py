"""Render a subscriber's matches into a complete email message.

(The `Message` type is fixed here first so `send` can be built against it; the
templates and rendering are added by the render issue.)
"""

from __future__ import annotations

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
