"""The `Subscriber` record: a person, their interests and their delivery state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# pending: signed up, not yet confirmed. active: gets digests. paused: chose a break.
# unsubscribed: left. bounced: mail to them failed permanently, nothing more is sent.
STATUSES = ("pending", "active", "paused", "unsubscribed", "bounced")


@dataclass(frozen=True, slots=True)
class Subscriber:
    """A subscriber as the store keeps it.

    `interests` is the text as the person wrote it (parsed by `digest.match`);
    `send_time` is "HH:MM" in the IANA `timezone`; `last_digest_at` is the watermark up
    to which papers were already considered for a digest.
    """

    id: int
    email: str
    interests: str
    status: str
    send_time: str
    timezone: str
    created_at: datetime
    confirmed_at: datetime | None = None
    status_changed_at: datetime | None = None
    confirm_sent_at: datetime | None = None
    last_digest_at: datetime | None = None
    consecutive_failures: int = 0
