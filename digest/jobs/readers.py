"""Readers' lifecycle: one library for the web pages and `digest subscribers` alike.

- Signing up (`sign_up`): the signup form, and `digest subscribers add` without
  `--confirmed`. A new address is stored pending and sent a confirmation link; an address
  already stored pending, unsubscribed or bounced goes back to pending, keeps its own
  settings and gets a link that carries the new ones (applied when it is followed); one
  already subscribed gets its manage link (the form only: the operator is told instead).
  At most one such email per address every `RESEND_AFTER`.
- Checking one reader's fields (`check_reader`), as `add` and each row of `import` do:
  the address (`digest.address.check_address`, public, normalised as the form does), the
  interests (the matcher's own parser), trending, time, IANA time zone and cadence; each
  problem is one line naming the field.
- Adding readers as the operator (`add_reader`, `import_readers`), under the consent
  rules below; reading what is held about a reader (`reader_fields`, `reader_data`,
  `export_readers`); pausing and resuming (`press`, the manage page's buttons too,
  `pause_reader`, `resume_reader`); erasing a reader entirely (`erase`, `erase_reader`).

Consent. Digests go only to an address whose owner agreed: by following the emailed link
(consent "link"), or because the operator holds their consent and says so with
`--confirmed` (consent "operator"). Leaving is theirs alone to undo:

| stored       | add             | add --confirmed    | import         | import --confirmed |
|--------------|-----------------|--------------------|----------------|--------------------|
| (new)        | pending + email | active             | pending + email| active             |
| pending      | email again     | active, given settings | refused    | active, given settings |
| active/paused| nothing changes | nothing changes    | refused        | refused            |
| unsubscribed | pending + email | refused            | refused        | refused            |
| bounced      | pending + email | refused (`resume`) | refused        | refused            |

`add` of one address does what the signup form does (anyone may type an address into
it; the owner still has to confirm). An import refuses every address already stored but
a pending one it confirms: a file re-asking everyone who left, or mailing every pending
sign-up again on a second run of the same file, is what makes a list spam. A bounced
address keeps its consent: `digest subscribers resume` sends to it again, as the
reader's own "Send to this address again" button does.

An import is all or nothing: every row is checked first (in memory, the file streamed),
then the accepted rows, and their confirmation emails, are stored in one transaction
that also holds other importers off (see `lock_subscribers`): a failure anywhere stores
nothing, and of two imports of the same file at once the second refuses every row.
"""

from __future__ import annotations

import codecs
import csv
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import available_timezones

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from digest import tokens
from digest.address import AddressError, check_address, shown
from digest.config import Settings
from digest.errors import DigestError, InterestSyntaxError
from digest.jobs.mail import queue_transactional
from digest.match import Trending, parse_interests
from digest.message import Message
from digest.render import DigestRenderer
from digest.store import Database
from digest.store.outbox import Outgoing, queue_messages
from digest.store.outbox_admin import reactivate_subscriber, subscriber_messages
from digest.store.subscribers import (
    NewReader,
    change_status,
    create_subscriber,
    create_subscribers,
    erase_subscriber,
    find_subscriber,
    find_subscribers,
    get_subscriber,
    iter_subscribers,
    lock_subscribers,
    record_confirm_sent,
    stored_status,
    update_preferences,
)
from digest.subscriber import STATUSES, Subscriber, describe_cadence, parse_cadence

RESEND_AFTER = timedelta(minutes=10)
# Addresses in these states sign up afresh (and must confirm again).
REJOINING = ("pending", "unsubscribed", "bounced")
# The manage page's buttons, and `pause`/`resume`: the status each one leaves, from the
# status it needs. `REACTIVATE` is the bounced reader's "Send to this address again".
ACTIONS = {"pause": ("active", "paused"), "resume": ("paused", "active")}
REACTIVATE = "reactivate"


class ReaderError(DigestError):
    """A reader cannot be added, changed or found as asked; one line says why."""


# --- Sending the confirmation (and manage-link) emails ---------------------------------


@dataclass(frozen=True)
class Mailer:
    """What queueing a sign-up's email takes: the settings, the signing secret and a
    renderer (templates prepared once)."""

    settings: Settings
    secret: str
    renderer: DigestRenderer

    @classmethod
    def from_settings(cls, settings: Settings) -> Mailer:
        """A mailer on these settings, with the service's secret (as the web app's)."""
        secret = tokens.secret_key(settings)
        return cls(settings, secret, DigestRenderer(settings, secret))

    def queue(
        self,
        session: Session,
        subscriber: Subscriber,
        kind: str,
        *,
        now: datetime,
        preferences: Mapping[str, str] | None = None,
    ) -> int:
        """Queue a "confirm" or "manage" email in the caller's transaction; its outbox id."""
        return queue_transactional(
            session,
            self.settings,
            self.secret,
            self.renderer,
            subscriber,
            kind,
            now=now,
            preferences=preferences,
        )

    def confirmation(
        self, subscriber: Subscriber, preferences: Mapping[str, str], *, now: datetime
    ) -> Message:
        """The confirmation `queue(..., "confirm", preferences=...)` queues, made but not
        queued, so that an import queues thousands in a few statements
        (`digest.store.outbox.queue_messages`). The same link and rendering: a test
        follows an imported reader's link through the web app."""
        token = tokens.make_confirm_token(self.secret, subscriber.id, subscriber.email, preferences)
        link = f"{self.settings.service.base_url.rstrip('/')}/confirm/{token}"
        return self.renderer.render_confirmation(replace(subscriber, **preferences), link, now=now)

    def check(self, now: datetime) -> None:
        """Make one confirmation for an example reader: what would fail every one of them
        (a link or sender the settings make unusable) fails here, before a file is read
        or anything stored."""
        example = Subscriber(0, "reader@example.org", "diffusion", "pending", "08:00", "UTC", now)
        self.confirmation(example, _preferences(example), now=now)


def _preferences(subscriber: Subscriber) -> dict[str, str]:
    return {
        "interests": subscriber.interests,
        "send_time": subscriber.send_time,
        "timezone": subscriber.timezone,
        "cadence": subscriber.cadence,
    }


# --- Signing up (the form, and `add` without --confirmed) -------------------------------


@dataclass(frozen=True)
class SignUp:
    """What a sign-up did: the subscriber (as read before it), which email is theirs
    ("confirm" or "manage"), the preferences a confirmation offers, and whether the
    email is to go now (False: one went less than `RESEND_AFTER` ago)."""

    subscriber: Subscriber
    kind: str
    offered: dict[str, str] | None
    mailed: bool
    outbox_id: int | None = None


def store_sign_up(
    session: Session, email: str, preferences: Mapping[str, str], now: datetime
) -> tuple[Subscriber, str]:
    """Save a sign-up; the subscriber and which email they get ("confirm" or "manage").

    A new address is stored with the sign-up's preferences; a known one keeps its own
    (the confirmation link carries the new ones, applied only when it is followed).
    """
    existing = find_subscriber(session, email)
    if existing is None:
        subscriber = create_subscriber(session, email, now=now, **preferences)
        return subscriber, "confirm"
    if existing.status in REJOINING:
        # Checked as it is written, then read back: one that became active meanwhile
        # stays active and keeps its settings (they change only through its manage link).
        change_status(session, existing.id, "pending", now, only_from=REJOINING)
        if stored_status(session, existing.id) == "pending":
            return existing, "confirm"
    # Already subscribed: their settings change only through their manage link.
    return existing, "manage"


def may_resend(subscriber: Subscriber, now: datetime) -> bool:
    """Whether a sign-up's email may go to this address now (one per `RESEND_AFTER`)."""
    sent = subscriber.confirm_sent_at
    return sent is None or now - sent >= RESEND_AFTER


def sign_up(
    session: Session,
    email: str,
    preferences: Mapping[str, str],
    *,
    now: datetime,
    mailer: Mailer | None,
) -> SignUp:
    """Store a sign-up and, in the same transaction, queue its email through `mailer`
    (None: the caller sends it, as the web app's `Notifier` hook does), unless one went
    to the address less than `RESEND_AFTER` ago."""
    subscriber, kind = store_sign_up(session, email, preferences, now)
    # A confirmation offers what this sign-up asked for (see `digest.web.Notifier`).
    offered = dict(preferences) if kind == "confirm" else None
    if not may_resend(subscriber, now):
        return SignUp(subscriber, kind, offered, mailed=False)
    record_confirm_sent(session, subscriber.id, now)
    outbox_id = None
    if mailer is not None:
        outbox_id = mailer.queue(session, subscriber, kind, now=now, preferences=offered)
    return SignUp(subscriber, kind, offered, mailed=True, outbox_id=outbox_id)


# --- One reader's fields ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReaderFields:
    """A reader's address and preferences, checked and as the store keeps them."""

    email: str
    interests: str
    send_time: str
    timezone: str
    cadence: str

    def preferences(self) -> dict[str, str]:
        """The preferences, as a sign-up and a confirm link carry them."""
        return {
            "interests": self.interests,
            "send_time": self.send_time,
            "timezone": self.timezone,
            "cadence": self.cadence,
        }


_TIME = re.compile(r"(\d{1,2}):(\d{2})")


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def check_reader(
    settings: Settings,
    *,
    email: str,
    interests: str | None = None,
    trending: int | str | None = None,
    cadence: str | None = None,
    send_time: str | None = None,
    timezone: str | None = None,
) -> ReaderFields:
    """A reader's fields checked as the signup form checks them; ReaderError naming
    every field at fault ("timezone: ...; time: ..."), one line.

    `trending` N adds the rule `trending:N` to the interests. Left out (None or blank):
    the time is `[schedule] default_send_time`, the zone `[service] timezone`, daily.
    """
    fields, problems, _ = _check_fields(
        settings,
        email=email,
        interests=interests,
        trending=trending,
        cadence=cadence,
        send_time=send_time,
        timezone=timezone,
    )
    if fields is None:
        raise ReaderError("; ".join(problems))
    return fields


def _check_fields(
    settings: Settings,
    *,
    email: str,
    interests: str | None,
    trending: int | str | None,
    cadence: str | None,
    send_time: str | None,
    timezone: str | None,
) -> tuple[ReaderFields | None, list[str], str]:
    """(the fields, [], address) or (None, a line per field at fault, the address if it
    is one, else "")."""
    problems: list[str] = []
    address = ""
    try:
        if not email.strip():
            raise AddressError(email, "no address given")
        address = check_address(email.strip(), public=True).normalized
    except AddressError as error:
        problems.append(f"email: {error.reason.rstrip('.')}")
    text = _interests_text(settings, interests, trending, problems)
    when = _send_time(send_time or settings.schedule.default_send_time, problems)
    zone = (timezone or "").strip() or settings.service.timezone
    if zone not in _zones():
        problems.append(f"timezone: {shown(zone)} is not an IANA time zone (such as Europe/Paris)")
    try:
        often = parse_cadence(cadence) if cadence and cadence.strip() else "daily"
    except ValueError as error:
        problems.append(f"cadence: {error}")
        often = ""
    if problems:
        return None, problems, address
    # A 100,000-row import holds every accepted row until it stores them: the few
    # distinct zones, times and cadences are kept once, not once a row.
    when, zone, often = sys.intern(when), sys.intern(zone), sys.intern(often)
    return ReaderFields(address, text, when, zone, often), [], address


def _interests_text(
    settings: Settings, interests: str | None, trending: int | str | None, problems: list[str]
) -> str:
    """The interest list to store: the text (line ends as the form stores them) and the
    trending rule of `trending`, checked by the matcher's parser."""
    text = (interests or "").replace("\r\n", "\n").replace("\r", "\n").strip()
    limit = settings.match.max_papers
    if trending is not None and str(trending).strip():
        count = str(trending).strip()
        if not count.isdigit() or not 1 <= int(count) <= limit:
            problems.append(f"trending: {shown(count)} is not a number of papers from 1 to {limit}")
            return text
        if text and _has_trending(text):
            problems.append("trending: the interests ask for trending already; keep one")
            return text
        rule = Trending(int(count)).label
        text = f"{text}\n{rule}" if text else rule
    try:
        parse_interests(text, max_trending=limit)
    except InterestSyntaxError as error:
        problems.append(f"interests: {error}")
    return text


def _has_trending(text: str) -> bool:
    try:
        return parse_interests(text).trending is not None
    except InterestSyntaxError:
        return False  # said by the check of the whole list


def _send_time(text: str, problems: list[str]) -> str:
    found = _TIME.fullmatch(text.strip())
    if found and int(found.group(1)) < 24 and int(found.group(2)) < 60:
        return f"{int(found.group(1)):02d}:{found.group(2)}"
    problems.append(f"time: {shown(text.strip())} is not a time of day (HH:MM, 00:00 to 23:59)")
    return ""


# --- Adding one reader as the operator ----------------------------------------------------


@dataclass(frozen=True)
class Added:
    """What `add_reader` did. `outcome`: "pending" (a confirmation is queued), "waiting"
    (pending; a confirmation went less than `RESEND_AFTER` ago, none now), "active"
    (confirmed by the operator), or "unchanged"; `was` the status before (None: new)."""

    subscriber: Subscriber
    outcome: str
    was: str | None
    outbox_id: int | None = None

    def summary(self) -> str:
        """One line for the operator."""
        who = self.subscriber.email
        before = "added," if self.was is None else f"was {self.was}, now"
        if self.outcome == "pending":
            return (
                f"{who}: {before} pending; confirmation email queued (outbox row "
                f"{self.outbox_id}): `digest send` or the running scheduler delivers it"
            )
        if self.outcome == "waiting":
            sent = self.subscriber.confirm_sent_at
            again = _utc(sent + RESEND_AFTER) if sent else "later"
            return (
                f"{who}: pending; a confirmation went at {_utc(sent)}, the next may go from "
                f"{again}: nothing sent"
            )
        if self.outcome == "active":
            reader = self.subscriber
            schedule = describe_cadence(reader.cadence, reader.send_time, reader.timezone)
            return (
                f"{who}: {before} active (consent held by the operator); {schedule}, "
                f"first digest {_utc(reader.next_digest_at)}"
            )
        return f"{who}: already {self.subscriber.status}: nothing changed"


def _utc(instant: datetime | None) -> str:
    return "-" if instant is None else f"{instant.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def add_reader(
    database: Database,
    fields: ReaderFields,
    *,
    now: datetime,
    confirmed: bool = False,
    mailer: Mailer | None = None,
) -> Added:
    """Add one reader as the operator (see the consent rules in the module docstring).

    Without `confirmed`, the signup form's own path (`sign_up`), with `mailer` queueing
    the confirmation; with it, an active reader whose consent the operator holds.
    ReaderError for an address that unsubscribed or bounced, when confirmed.
    """
    if not confirmed:
        if mailer is None:
            raise ValueError("adding a reader to confirm needs a mailer for the confirmation")
        mailer.check(now)
    with _said(fields.email, "nothing changed"), database.session() as session:
        lock_subscribers(session)
        existing = find_subscriber(session, fields.email)
        if existing is not None and existing.status in ("active", "paused"):
            return Added(existing, "unchanged", existing.status)
        if confirmed:
            return _add_confirmed(session, fields, existing, now)
        done = sign_up(session, fields.email, fields.preferences(), now=now, mailer=mailer)
        was = None if existing is None else existing.status
        current = get_subscriber(session, done.subscriber.id) or done.subscriber
        if done.kind != "confirm":  # became active meanwhile (its owner confirmed)
            return Added(current, "unchanged", was)
        return Added(current, "pending" if done.mailed else "waiting", was, done.outbox_id)


@contextmanager
def _said(what: str, outcome: str) -> Iterator[None]:
    """What the store refuses to an operator's write, as one line: a sign-up from the
    web of the same address at that moment (PostgreSQL: the web takes no lock), or a
    SQLite store that stayed locked beyond its busy timeout (another import, a long
    job). The transaction is rolled back: `outcome` says so."""
    try:
        yield
    except IntegrityError:
        raise ReaderError(
            f"{what}: an address was stored by someone else at the same moment (a sign-up); "
            f"{outcome}: run it again"
        ) from None
    except OperationalError as error:
        if "locked" not in str(error.orig):
            raise
        raise ReaderError(
            f"{what}: the database stayed busy (another import, or the scheduler's work); "
            f"{outcome}: run it again"
        ) from None


def _add_confirmed(
    session: Session, fields: ReaderFields, existing: Subscriber | None, now: datetime
) -> Added:
    if existing is None:
        added = create_subscriber(
            session,
            fields.email,
            now=now,
            status="active",
            consent="operator",
            **fields.preferences(),
        )
        return Added(get_subscriber(session, added.id) or added, "active", None)
    if existing.status == "unsubscribed":
        raise ReaderError(
            f"{existing.email} unsubscribed{_on(existing.status_changed_at)}: only they can "
            "come back, by signing up again and confirming; nothing changed"
        )
    if existing.status == "bounced":
        raise ReaderError(
            f"{existing.email} bounced (mail to it failed): if it works again, "
            f"`digest subscribers resume {existing.email}` sends to it again with its own "
            "settings; nothing changed"
        )
    # Pending: the operator's consent confirms it, with the settings given now (a pending
    # sign-up's stored ones may be anyone's). Checked as it is written.
    if not change_status(
        session, existing.id, "active", now, only_from=("pending",), consent="operator"
    ):
        current = get_subscriber(session, existing.id) or existing
        return Added(current, "unchanged", existing.status)
    update_preferences(session, existing.id, now=now, **fields.preferences())
    return Added(get_subscriber(session, existing.id) or existing, "active", "pending")


def _on(instant: datetime | None) -> str:
    return "" if instant is None else f" on {instant.astimezone(UTC):%Y-%m-%d}"


# --- Pause, resume, reactivate (the manage page's buttons, and the CLI) -----------------


def press(session: Session, subscriber_id: int, action: str, now: datetime) -> bool:
    """Press one of the manage page's buttons: "pause", "resume" or "reactivate" (a
    bounced address, its failures forgotten); whether the status changed. Only from the
    status the button needs, checked as it is written: pressed twice, or in two tabs,
    the second press changes nothing."""
    if action == REACTIVATE:
        return reactivate_subscriber(session, subscriber_id, now)
    needs, leaves = ACTIONS[action]
    return bool(change_status(session, subscriber_id, leaves, now, only_from=(needs,)))


def _find(session: Session, email: str) -> Subscriber:
    found = find_subscriber(session, email)
    if found is None:
        raise ReaderError(f"no subscriber with the address {email.strip()}; check the spelling")
    return found


class Pressed(NamedTuple):
    """What `pause_reader` or `resume_reader` did: the reader as they are now, the
    status they had, and whether it changed."""

    subscriber: Subscriber
    was: str
    changed: bool


def pause_reader(database: Database, email: str, *, now: datetime) -> Pressed:
    """Pause an active reader's digests, as their "Pause" button does. ReaderError for
    a reader neither active nor paused."""
    with database.session() as session:
        reader = _find(session, email)
        if reader.status not in ("active", "paused"):
            raise ReaderError(
                f"{reader.email} is {reader.status}: only an active reader can be paused"
            )
        changed = press(session, reader.id, "pause", now)
        return Pressed(get_subscriber(session, reader.id) or reader, reader.status, changed)


def resume_reader(database: Database, email: str, *, now: datetime) -> Pressed:
    """Resume a paused reader, or send to a bounced address again, as their own buttons
    do. Never a reader who left or never confirmed: ReaderError."""
    with database.session() as session:
        reader = _find(session, email)
        if reader.status == "unsubscribed":
            raise ReaderError(
                f"{reader.email} unsubscribed{_on(reader.status_changed_at)}: only they can "
                "come back, by signing up again and confirming"
            )
        if reader.status == "pending":
            raise ReaderError(
                f"{reader.email} is pending: they have not confirmed; "
                f"`digest subscribers add --confirmed {reader.email}` if you hold their consent"
            )
        action = REACTIVATE if reader.status == "bounced" else "resume"
        changed = press(session, reader.id, action, now)
        return Pressed(get_subscriber(session, reader.id) or reader, reader.status, changed)


# --- What is held about a reader ----------------------------------------------------------

IMPORT_COLUMNS = ("email", "interests", "trending", "cadence", "time", "timezone")
# What `export` adds. On import, `status` is read (see `_file_status`); the others are
# the old store's record and are ignored: the import makes its own.
EXPORT_ONLY = (
    "status",
    "created_at",
    "confirmed_at",
    "consent",
    "last_digest_at",
    "next_digest_at",
)
EXPORT_COLUMNS = (*IMPORT_COLUMNS, *EXPORT_ONLY)


def _iso(instant: datetime | None) -> str | None:
    return None if instant is None else instant.astimezone(UTC).isoformat(timespec="seconds")


def reader_fields(subscriber: Subscriber) -> dict[str, str | None]:
    """A reader as `export` writes them, `EXPORT_COLUMNS` in order (None: no value).

    `interests` is the stored list as it is, any trending rule in it where the reader
    put it; `trending` (the import's shorthand for adding one) is therefore empty, so
    that exporting and importing gives back the same list.
    """
    return {
        "email": subscriber.email,
        "interests": subscriber.interests,
        "trending": None,
        "cadence": subscriber.cadence,
        "time": subscriber.send_time,
        "timezone": subscriber.timezone,
        "status": subscriber.status,
        "created_at": _iso(subscriber.created_at),
        "confirmed_at": _iso(subscriber.confirmed_at),
        "consent": subscriber.consent,
        "last_digest_at": _iso(subscriber.last_digest_at),
        "next_digest_at": _iso(subscriber.next_digest_at),
    }


def reader_data(session: Session, subscriber: Subscriber) -> dict[str, Any]:
    """Everything the store holds about a reader, for them (the manage page's "Download
    my data") and for `digest subscribers show`: every stored field, the schedule in
    words, and the messages the outbox keeps a record of (never their bodies)."""
    return {
        "id": subscriber.id,
        "email": subscriber.email,
        "status": subscriber.status,
        "interests": subscriber.interests,
        "cadence": subscriber.cadence,
        "send_time": subscriber.send_time,
        "timezone": subscriber.timezone,
        "schedule": describe_cadence(subscriber.cadence, subscriber.send_time, subscriber.timezone),
        "consent": subscriber.consent,
        "created_at": _iso(subscriber.created_at),
        "confirmed_at": _iso(subscriber.confirmed_at),
        "status_changed_at": _iso(subscriber.status_changed_at),
        "confirm_sent_at": _iso(subscriber.confirm_sent_at),
        "last_digest_at": _iso(subscriber.last_digest_at),
        "next_digest_at": _iso(subscriber.next_digest_at),
        "consecutive_failures": subscriber.consecutive_failures,
        "messages": [
            {
                "kind": entry.kind,
                "digest_date": entry.digest_date.isoformat() if entry.digest_date else None,
                "state": entry.state,
                "queued_at": _iso(entry.queued_at),
                "sent_at": _iso(entry.sent_at),
                "message_id": entry.message_id,
            }
            for entry in subscriber_messages(session, subscriber.id)
        ],
    }


def show_reader(database: Database, email: str) -> dict[str, Any]:
    """`reader_data` of the reader with this address (any case); ReaderError if none."""
    with database.session() as session:
        return reader_data(session, _find(session, email))


def export_readers(database: Database, *, status: str | None = None) -> Iterator[Subscriber]:
    """Every reader (or those in `status`), by id, streamed a thousand at a time."""
    if status is not None and status not in STATUSES:
        raise ReaderError(f"unknown status {status!r}: one of {', '.join(STATUSES)}")
    with database.session() as session:
        yield from iter_subscribers(session, status=status)


# A cell a spreadsheet would run as a formula (CSV injection: anyone can sign up with
# interests of their choosing): = + - @, tab, CR. Export writes such a cell with a '
# before it, which makes it text to a spreadsheet (shown with the '); import takes exactly
# one ' off a cell that starts with one or more ' and then one of these, so every value
# goes through export and import unchanged (those starting with ' too).
_FORMULA = re.compile(r"'*[=+\-@\t\r]")


def spreadsheet_safe(value: str) -> str:
    """A CSV cell no spreadsheet runs as a formula (see `_FORMULA`)."""
    return "'" + value if _FORMULA.match(value) else value


def from_spreadsheet(value: str) -> str:
    """The value `spreadsheet_safe` wrote."""
    return value[1:] if value.startswith("'") and _FORMULA.match(value) else value


def csv_rows(readers: Iterable[Subscriber]) -> Iterator[list[str]]:
    """The CSV export: a header, then a row per reader, cells made spreadsheet-safe."""
    yield list(EXPORT_COLUMNS)
    for reader in readers:
        yield [spreadsheet_safe(value or "") for value in reader_fields(reader).values()]


# --- Erasure ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Erasure:
    """What `erase` deleted: the reader, their outbox rows, the message bodies kept."""

    email: str
    outbox_rows: int
    messages: int

    def summary(self) -> str:
        """One line for the operator."""
        rows = "1 outbox row" if self.outbox_rows == 1 else f"{self.outbox_rows} outbox rows"
        bodies = "1 message body" if self.messages == 1 else f"{self.messages} message bodies"
        return f"deleted {self.email}: the reader, {rows} and {bodies}"


def erase(session: Session, subscriber: Subscriber) -> Erasure | None:
    """Delete a reader and every outbox row and message of theirs, in the caller's
    transaction; None if they were gone already."""
    erased = erase_subscriber(session, subscriber.id)
    if erased is None:
        return None
    return Erasure(subscriber.email, erased.outbox_rows, erased.messages)


def erase_reader(database: Database, email: str) -> Erasure:
    """Delete the reader with this address and everything held about them (an erasure
    request), in one transaction; ReaderError if there is none."""
    with database.session() as session:
        reader = _find(session, email)
        erased = erase(session, reader)
        if erased is None:  # erased by someone else between the two statements
            raise ReaderError(f"no subscriber with the address {email.strip()}; check the spelling")
        return erased


# --- Import -------------------------------------------------------------------------------

# The longest cell a reader's row can need (interests: 2,000 characters): far beyond it,
# the file is not a list of readers (or a quote is not closed), and is refused whole.
MAX_FIELD = 16_384
MAX_LINE = 1 << 20


class _Row(NamedTuple):
    """A row checked and accepted so far: its line, its fields, the status the file
    gives it ("" when none), and whether it is to end paused."""

    line: int
    fields: ReaderFields
    paused: bool


@dataclass
class ImportReport:
    """What an import did, or would do (`dry_run`): rows read, refused lines (in file
    order), and what was stored."""

    name: str
    confirmed: bool
    dry_run: bool = False
    strict: bool = False
    rows: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)
    added: int = 0  # new readers
    activated: int = 0  # pending readers confirmed by the operator
    paused: int = 0  # of those, paused as the file says
    confirmations: int = 0
    stored: bool = False

    @property
    def accepted(self) -> int:
        """Rows accepted (stored, or to be stored)."""
        return self.rows - len(self.refused)

    def lines(self) -> list[str]:
        """The report: a count, every refused line, then what was stored."""
        out = [
            f"{self.name}: {self.rows:,} row{'' if self.rows == 1 else 's'}: "
            f"{self.accepted:,} accepted, {len(self.refused):,} refused"
        ]
        out += [text for _, text in sorted(self.refused)]
        if self.strict and self.refused:
            out.append("--strict: a row was refused, so nothing was stored")
            return out
        what = self._what(queued=not self.dry_run)
        if self.dry_run:
            out.append(f"--dry-run: nothing stored; would store {what or 'nothing'}")
        elif what:
            out.append(f"stored: {what}")
            if self.confirmations:
                out.append("`digest send` or the running scheduler delivers the emails")
        else:
            out.append("nothing stored")
        return out

    def _what(self, *, queued: bool) -> str:
        parts = []
        if self.added:
            state = "active" if self.confirmed else "pending"
            parts.append(f"{self.added:,} new reader{'' if self.added == 1 else 's'} ({state})")
        if self.activated:
            parts.append(
                f"{self.activated:,} pending reader{'' if self.activated == 1 else 's'} confirmed"
            )
        if self.paused:
            parts.append(f"{self.paused:,} of them paused, as the file says")
        if self.confirmations:
            emails = "email" if self.confirmations == 1 else "emails"
            parts.append(
                f"{self.confirmations:,} confirmation {emails}" + (" queued" if queued else "")
            )
        return ", ".join(parts)


def import_readers(
    settings: Settings,
    database: Database,
    path: Path,
    *,
    now: datetime,
    confirmed: bool = False,
    dry_run: bool = False,
    strict: bool = False,
    mailer: Mailer | None = None,
) -> ImportReport:
    """Import readers from a CSV file (see `IMPORT_COLUMNS`, and the consent rules in
    the module docstring): check every row, then store the accepted ones and queue their
    confirmations in one transaction. ReaderError for a file that cannot be read as a
    whole (not UTF-8, no header, unknown columns, a cell too long): nothing is stored.

    `dry_run` stores nothing; `strict` stores nothing if any row is refused.
    """
    report = ImportReport(path.name, confirmed, dry_run, strict)
    if not confirmed and not dry_run:
        mailer = mailer or Mailer.from_settings(settings)
        mailer.check(now)  # a setting every email needs: said before reading 10 MB
    accepted = _check_rows(settings, _read_rows(path), confirmed, report)
    with _said(path.name, "nothing was imported"):
        _store(database, accepted, report, now=now, mailer=mailer)
    return report


def _read_rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, {column: value}) of each data row, the file streamed; ReaderError naming
    the line for what makes the whole file unreadable."""
    name = path.name
    try:
        handle = path.open("rb")
    except OSError as error:
        raise ReaderError(f"cannot read {path}: {error.strerror or error}") from None
    previous = csv.field_size_limit(MAX_FIELD)
    try:
        with handle:
            reader = csv.reader(_decoded_lines(handle, name), strict=True)
            header = _header(reader, name)
            while True:
                start = reader.line_num + 1
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except csv.Error as error:
                    raise ReaderError(f"{name}: line {start}: {_csv_problem(error)}") from None
                if not any(cell.strip() for cell in row):
                    continue  # a blank line
                yield start, _cells(header, row)
    finally:
        csv.field_size_limit(previous)


def _decoded_lines(handle: Any, name: str) -> Iterator[str]:
    """The file's lines as text: UTF-8, a byte-order mark at the start allowed, each at
    most `MAX_LINE` bytes (a file of one endless line is not read into memory whole)."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")("strict")
    number = 0
    while raw := handle.readline(MAX_LINE + 1):
        number += 1
        if len(raw) > MAX_LINE:
            raise ReaderError(f"{name}: line {number} is longer than {MAX_LINE:,} bytes")
        try:
            yield decoder.decode(raw)
        except UnicodeDecodeError as error:
            byte = raw[error.start : error.start + 1].hex()
            raise ReaderError(
                f"{name}: line {number} is not UTF-8 (byte 0x{byte} at column "
                f"{error.start + 1}); save the file as UTF-8"
            ) from None
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise ReaderError(f"{name}: line {number} ends inside a UTF-8 character") from None


def _csv_problem(error: csv.Error) -> str:
    text = str(error)
    if "field larger than field limit" in text:
        return f"a cell is longer than {MAX_FIELD:,} characters (is a quote not closed?)"
    return text


def _header(reader: Any, name: str) -> list[str]:
    try:
        header = next(reader)
    except StopIteration:
        raise ReaderError(f"{name} is empty: its first line must name the columns") from None
    except csv.Error as error:
        raise ReaderError(f"{name}: line 1: {_csv_problem(error)}") from None
    columns = [cell.strip().lower() for cell in header]
    known = set(EXPORT_COLUMNS)
    unknown = [cell for cell in columns if cell not in known]
    expected = ", ".join(IMPORT_COLUMNS)
    if unknown:
        hint = " (the first line is the header)" if any("@" in cell for cell in unknown) else ""
        listed = ", ".join(shown(cell) for cell in unknown)
        raise ReaderError(
            f"{name}: line 1: unknown column{'s' if len(unknown) > 1 else ''} {listed}"
            f"{hint}; the columns are {expected} (and those `export` adds)"
        )
    if "email" not in columns:
        raise ReaderError(f"{name}: line 1: no email column; the columns are {expected}")
    twice = sorted({cell for cell in columns if columns.count(cell) > 1})
    if twice:
        raise ReaderError(f"{name}: line 1: column {twice[0]} appears twice")
    return columns


def _cells(header: list[str], row: list[str]) -> dict[str, str]:
    """A row's cells by column (missing ones absent); more cells than the header names
    is said under the key "" (the row is refused)."""
    values = dict(zip(header, (from_spreadsheet(cell) for cell in row), strict=False))
    extra = row[len(header) :]
    if any(cell.strip() for cell in extra):
        values[""] = f"{len(row)} cells where the header names {len(header)}"
    return values


def _check_rows(
    settings: Settings,
    rows: Iterable[tuple[int, dict[str, str]]],
    confirmed: bool,
    report: ImportReport,
) -> list[_Row]:
    """Check each row's fields, and its address against the rows before it; accepted
    rows in file order, the others said in `report.refused`."""
    first_line: dict[str, int] = {}
    accepted: list[_Row] = []
    for line, values in rows:
        report.rows += 1
        raw = values.get("email", "")
        if "" in values:  # more cells than the header names
            report.refused.append((line, _refusal(line, raw, values[""])))
            continue
        fields, problems, address = _check_fields(
            settings,
            email=raw,
            interests=values.get("interests"),
            trending=values.get("trending"),
            cadence=values.get("cadence"),
            send_time=values.get("time"),
            timezone=values.get("timezone"),
        )
        if fields is None:
            report.refused.append((line, _refusal(line, raw, "; ".join(problems), address)))
            continue
        key = fields.email.lower()
        if key in first_line:
            reason = f"duplicate of line {first_line[key]}"
            report.refused.append((line, _refusal(line, raw, reason, fields.email)))
            continue
        first_line[key] = line
        status = values.get("status", "").strip().lower()
        problem = _file_status(status, confirmed)
        if problem:
            report.refused.append((line, _refusal(line, raw, problem, fields.email)))
            continue
        accepted.append(_Row(line, fields, confirmed and status == "paused"))
    return accepted


def _refusal(line: int, raw: str, reason: str, address: str = "") -> str:
    """`line N: email ADDRESS: reason`; an address that is not one is quoted as typed
    (shortened, control characters shown as escapes: the report stays one line)."""
    if not address:
        text = raw.strip()
        text = text if len(text) <= 80 else text[:79] + "…"
        address = '"' + _CONTROL.sub(lambda c: repr(c.group())[1:-1], text) + '"'
    return f"line {line}: email {address}: {reason}"


_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")


def _file_status(status: str, confirmed: bool) -> str:
    """Why a row whose `status` column says `status` is refused ("" if it is not).

    Empty, active or paused: imported (paused stays paused with --confirmed; without, it
    is a sign-up like any other). Pending never confirmed, so never by --confirmed;
    unsubscribed and bounced are never imported: the first left, the second bounced.
    """
    if status in ("", "active", "paused"):
        return ""
    if status == "pending":
        if not confirmed:
            return ""
        return (
            "status pending: they never confirmed, so not with --confirmed (import them "
            "without it to send them a confirmation)"
        )
    if status == "unsubscribed":
        return "status unsubscribed: they left; only they can come back, by signing up again"
    if status == "bounced":
        return "status bounced: mail to them failed; not imported"
    return f"status {shown(status)} is not one of active, paused, pending"


_CHUNK = 500


def _store(
    database: Database,
    rows: list[_Row],
    report: ImportReport,
    *,
    now: datetime,
    mailer: Mailer | None,
) -> None:
    """The import's one transaction: hold other importers off, refuse the rows whose
    address is stored already, then store the rest with their emails (unless dry run or
    strict with a row refused)."""
    with database.session() as session:
        if not report.dry_run:
            lock_subscribers(session)
        stored = find_subscribers(session, (row.fields.email for row in rows))
        fresh: list[_Row] = []
        confirm: list[tuple[_Row, Subscriber]] = []
        for row in rows:
            existing = stored.get(row.fields.email.lower())
            if existing is None:
                fresh.append(row)
            elif report.confirmed and existing.status == "pending":
                confirm.append((row, existing))
            else:
                report.refused.append((row.line, _already(row, existing)))
        if report.dry_run or (report.strict and report.refused):
            report.added, report.activated = len(fresh), len(confirm)
            report.paused = sum(row.paused for row in fresh) + sum(r.paused for r, _ in confirm)
            report.confirmations = 0 if report.confirmed else len(fresh)
            return
        for start in range(0, len(fresh), _CHUNK):
            _add_chunk(session, fresh[start : start + _CHUNK], report, now=now, mailer=mailer)
        for row, existing in confirm:
            if not change_status(
                session, existing.id, "active", now, only_from=("pending",), consent="operator"
            ):  # its owner confirmed it meanwhile (PostgreSQL: the web takes no lock)
                report.refused.append((row.line, _already(row, replace(existing, status="active"))))
                continue
            update_preferences(session, existing.id, now=now, **row.fields.preferences())
            report.activated += 1
            if row.paused:
                change_status(session, existing.id, "paused", now, only_from=("active",))
                report.paused += 1
    report.stored = True


def _already(row: _Row, existing: Subscriber) -> str:
    since = _on(existing.status_changed_at).replace(" on ", " since ")
    why = {
        "unsubscribed": ": only they can come back, by signing up again",
        "bounced": ": `digest subscribers resume` sends to it again, if it works again",
    }.get(existing.status, "")
    return (
        f"line {row.line}: email {row.fields.email}: already a reader "
        f"({existing.status}{since}){why}"
    )


def _add_chunk(
    session: Session,
    rows: Sequence[_Row],
    report: ImportReport,
    *,
    now: datetime,
    mailer: Mailer | None,
) -> None:
    """Store up to 500 new readers: active (confirmed, some then paused), or pending
    with their confirmation emails queued."""
    readers = [NewReader(**row.fields.preferences(), email=row.fields.email) for row in rows]
    ids = create_subscribers(session, readers, now=now, confirm_sent=not report.confirmed)
    report.added += len(ids)
    if report.confirmed:
        change_status(session, ids, "active", now, consent="operator")
        paused = [reader_id for reader_id, row in zip(ids, rows, strict=True) if row.paused]
        change_status(session, paused, "paused", now)
        report.paused += len(paused)
        return
    assert mailer is not None
    outgoing = []
    for reader_id, row in zip(ids, rows, strict=True):
        fields = row.fields
        reader = Subscriber(
            id=reader_id,
            email=fields.email,
            interests=fields.interests,
            status="pending",
            send_time=fields.send_time,
            timezone=fields.timezone,
            created_at=now,
            status_changed_at=now,
            confirm_sent_at=now,
            cadence=fields.cadence,
        )
        message = mailer.confirmation(reader, fields.preferences(), now=now)
        outgoing.append(Outgoing(reader_id, "confirm", None, message))
    report.confirmations += queue_messages(session, outgoing, now=now)
