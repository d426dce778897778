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
- Adding readers as the operator (`add_reader`; a CSV file: `digest.jobs.reader_files`),
  under the consent rules below; reading what is held about a reader (`reader_fields`,
  `reader_data`, `export_readers`); pausing and resuming (`press`, the manage page's
  buttons too, `pause_reader`, `resume_reader`); erasing a reader entirely (`erase`,
  `erase_reader`).

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

"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, NamedTuple
from zoneinfo import available_timezones

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from digest import tokens
from digest.address import AddressError, check_address, shown
from digest.config import Settings
from digest.errors import DigestError, InterestSyntaxError
from digest.jobs.mail import queue_transactional
from digest.learn.seeds import sync_reader_seeds
from digest.match import Trending, parse_interests
from digest.message import Message
from digest.render import DigestRenderer
from digest.store import Database
from digest.store.feedback import votes_of
from digest.store.outbox_admin import reactivate_subscriber, subscriber_messages
from digest.store.subscribers import (
    change_status,
    create_subscriber,
    erase_subscriber,
    find_subscriber,
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
        sync_reader_seeds(session, subscriber.id, subscriber.interests, now)
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
    fields, problems, _ = check_fields(
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


def check_fields(
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
    with refused_in_one_line(fields.email, "nothing changed"), database.session() as session:
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
def refused_in_one_line(what: str, outcome: str) -> Iterator[None]:
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
        sync_reader_seeds(session, added.id, added.interests, now)
        return Added(get_subscriber(session, added.id) or added, "active", None)
    if existing.status == "unsubscribed":
        raise ReaderError(
            f"{existing.email} unsubscribed{on_day(existing.status_changed_at)}: only they can "
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
    sync_reader_seeds(session, existing.id, fields.interests, now)
    return Added(get_subscriber(session, existing.id) or existing, "active", "pending")


def on_day(instant: datetime | None) -> str:
    """ " on 2026-06-12" (UTC), or "" for no time."""
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
                f"{reader.email} unsubscribed{on_day(reader.status_changed_at)}: only they can "
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
        "suggestions": subscriber.suggestions,
        "feedback": [
            {
                "paper": vote.paper_id,
                "vote": "more" if vote.vote > 0 else "less",
                "source": vote.source,
                "at": _iso(vote.created_at),
            }
            for vote in votes_of(session, subscriber.id)
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
