"""One outbox row, read as the tests check it: its entry (the columns `digest outbox`
shows) and the exact message it holds. Core selects, so a row the session already
holds is read as stored, not as remembered."""

from __future__ import annotations

from dataclasses import fields

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.message import Message
from digest.store.models import OutboxMessageRow, OutboxRow
from digest.store.outbox import unpack
from digest.store.outbox_admin import OutboxEntry

_outbox = OutboxRow.__table__
_messages = OutboxMessageRow.__table__


def get_entry(session: Session, outbox_id: int) -> OutboxEntry | None:
    """One row of the outbox, if it exists."""
    columns = [_outbox.c[field.name] for field in fields(OutboxEntry)]
    row = session.execute(select(*columns).where(_outbox.c.id == outbox_id)).first()
    return OutboxEntry(*row) if row else None


def get_message(session: Session, outbox_id: int) -> Message | None:
    """The exact message a row holds (None once its bytes are dropped)."""
    row = session.execute(
        select(_outbox.c.sender, _outbox.c.recipient, _outbox.c.message_id, _messages.c.data)
        .join(_messages, _messages.c.outbox_id == _outbox.c.id)
        .where(_outbox.c.id == outbox_id)
    ).first()
    if row is None or row.data is None:
        return None
    return Message(row.sender, row.recipient, row.message_id, unpack(row.data))
