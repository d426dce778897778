"""The outbox for a person: what `digest outbox` shows, and settling rows by hand.

`outbox_overview` returns the messages counted by date, kind and state (a table whose
columns are the states that occur) and the recent problems with the server's reply;
`mark_sent` and `send_again` settle a row the operator has looked into. The CLI only
formats what these return.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from digest.errors import DeliveryError
from digest.store import Database
from digest.store.outbox import STATES
from digest.store.outbox_admin import (
    OutboxEntry,
    queue_again,
    recent_problems,
    resolve_unknown,
    state_counts,
)


@dataclass(frozen=True)
class OutboxGroup:
    """One row of the table: the messages of one date and kind, counted by state."""

    day: date | None
    kind: str
    counts: dict[str, int]


@dataclass(frozen=True)
class OutboxOverview:
    """What the outbox holds: `groups` newest date first, `states` the columns in use."""

    states: tuple[str, ...]
    groups: list[OutboxGroup]
    problems: list[OutboxEntry]

    @property
    def empty(self) -> bool:
        """True when the outbox holds no message at all."""
        return not self.groups


def outbox_overview(database: Database, *, failures: int = 20) -> OutboxOverview:
    """Counts by date, kind and state, and the `failures` latest failed/unknown/retrying rows."""
    with database.session() as session:
        counts = state_counts(session)
        problems = recent_problems(session, failures)
    groups: dict[tuple[date | None, str], dict[str, int]] = {}
    for day, kind, state, count in counts:  # newest date first, as the store orders them
        groups.setdefault((day, kind), {})[state] = count
    # Only the states that occur, in their lifecycle order, so the table stays narrow.
    used = tuple(s for s in STATES if any(s in row for row in groups.values()))
    return OutboxOverview(
        states=used,
        groups=[OutboxGroup(day, kind, row) for (day, kind), row in groups.items()],
        problems=problems,
    )


def mark_sent(database: Database, outbox_id: int, *, now: datetime) -> None:
    """Settle an "unknown" row as delivered (the operator found it in the server's log)."""
    with database.session() as session:
        try:
            resolve_unknown(session, outbox_id, delivered=True, now=now)
        except (LookupError, ValueError) as error:
            raise DeliveryError(f"{error}; see `digest outbox`") from None


def send_again(database: Database, outbox_id: int, *, now: datetime) -> None:
    """Queue an "unknown" or "failed" row again, with a fresh retry deadline."""
    with database.session() as session:
        try:
            queue_again(session, outbox_id, now=now)
        except (LookupError, ValueError) as error:
            raise DeliveryError(f"{error}; see `digest outbox`") from None
