"""Transactional mail and samples for the web pages.

- `send_transactional` renders a confirmation email (a new sign-up) or a manage-link
  email (an address that signed up again) and queues it in the outbox, where delivery,
  retries and bounce handling are the same as for digests.
  `queue_transactional` does the same within the caller's transaction (a sign-up's).
- `Courier` delivers what is due right away, from one background thread, so a person
  waiting for a confirmation link gets it in seconds rather than at the scheduler's next
  round (which would deliver it anyway); under a stream of sign-ups, those of a
  quarter of a second go out in one run. With task workers (`[queue] broker`) it asks
  one of them for a send chunk instead of sending from the web process.
- `sample_digest_html` is the "show me a sample" digest of the manage page, at most
  `SAMPLE_RENDERS` at a time per process (`SampleBusy` beyond).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from digest import tokens
from digest.config import Settings
from digest.match import match_subscriber, parse_interests
from digest.render import DigestRenderer
from digest.send import SenderBusy, send_due
from digest.store import Database
from digest.store.outbox import queue_message
from digest.store.papers import papers_first_seen_between
from digest.store.subscribers import get_subscriber
from digest.subscriber import Subscriber, digest_day

log = logging.getLogger(__name__)

KINDS = ("confirm", "manage")
SAMPLE_WINDOW = timedelta(days=7)
# A sample matches and renders a week of papers: four at once once took a web process to
# 4.7 GB. The rate limit is per client; this bounds the process whatever the clients.
SAMPLE_RENDERS = 2
_sample_slots = threading.BoundedSemaphore(SAMPLE_RENDERS)


class SampleBusy(Exception):
    """As many samples as may render at once are rendering: ask again in a moment."""


def send_transactional(
    settings: Settings,
    database: Database,
    subscriber_id: int,
    kind: str,
    *,
    now: datetime,
    renderer: DigestRenderer | None = None,
    preferences: Mapping[str, str] | None = None,
) -> int:
    """Queue a confirm or manage-link email for a subscriber; return its outbox id.

    `preferences` (confirm only): the interests, send time and zone a sign-up asked for.
    The email shows them and its link carries them, to be applied when it is followed,
    so a sign-up for a known address changes nothing stored before its owner confirms.
    Without, the email shows the stored ones and its link confirms those.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown transactional email {kind!r}")
    secret = tokens.secret_key(settings)
    renderer = renderer or DigestRenderer(settings, secret)
    with database.session() as session:
        subscriber = get_subscriber(session, subscriber_id)
        if subscriber is None:
            raise LookupError(f"no subscriber {subscriber_id}")
        return queue_transactional(
            session, settings, secret, renderer, subscriber, kind, now=now, preferences=preferences
        )


def queue_transactional(
    session: Session,
    settings: Settings,
    secret: str,
    renderer: DigestRenderer,
    subscriber: Subscriber,
    kind: str,
    *,
    now: datetime,
    preferences: Mapping[str, str] | None = None,
) -> int:
    """`send_transactional` within the caller's transaction: a sign-up queues its email
    in the same short transaction that stores it, so both are saved or neither is."""
    if kind not in KINDS:
        raise ValueError(f"unknown transactional email {kind!r}")
    if kind == "confirm" and preferences is not None:
        subscriber = replace(subscriber, **preferences)
        token = tokens.make_confirm_token(secret, subscriber.id, subscriber.email, preferences)
        link = f"{settings.service.base_url.rstrip('/')}/confirm/{token}"
    else:
        link = tokens.link(settings, secret, kind, subscriber.id, subscriber.email)
    if kind == "confirm":
        message = renderer.render_confirmation(subscriber, link, now=now)
    else:
        message = renderer.render_manage_link(subscriber, link, now=now)
    outbox_id = queue_message(
        session,
        subscriber_id=subscriber.id,
        kind=kind,
        digest_date=None,
        message=message,
        now=now,
    )
    assert outbox_id is not None  # only digests are ever deduplicated
    return outbox_id


class Courier:
    """Delivers due mail on request, from one daemon thread, one run at a time."""

    RETRY_AFTER = 2.0  # seconds, when another sender holds the send lock
    # Under a stream of sign-ups (the last run ended less than this many seconds ago), a
    # run waits this long once asked for, so that the sign-ups arriving meanwhile go out
    # in that one run: a run per sign-up cost each ~15 % of its CPU (the outbox read, the
    # send lock) and, on SQLite, a turn at the one writer lock. A lone sign-up's email
    # goes at once, and one sign-up's email never waits behind a later one's.
    GATHER = 0.25

    def __init__(
        self, settings: Settings, database: Database, clock: Callable[[], datetime]
    ) -> None:
        self.settings = settings
        self.database = database
        self.clock = clock
        self._wanted = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def kick(self) -> None:
        """Ask for a delivery run soon (starts the thread on first use)."""
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="courier", daemon=True)
                self._thread.start()
        self._wanted.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the message in flight and stop."""
        self._stop.set()
        self._wanted.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        last_run = -self.GATHER
        while not self._stop.is_set():
            self._wanted.wait()
            if time.monotonic() - last_run < self.GATHER:
                self._stop.wait(self.GATHER)  # returns at once when stopping
            self._wanted.clear()
            if self._stop.is_set():
                return
            self._deliver()
            last_run = time.monotonic()

    def _deliver(self) -> None:
        if self.settings.queue.broker:  # task workers deliver: ask one for a send chunk
            self._ask_a_worker()
            return
        try:
            report = send_due(self.settings, self.database, now=self.clock(), stop=self._stop)
        except SenderBusy as error:  # another sender is at work: look again shortly
            log.info("courier: %s; trying again in %.0f s", error, self.RETRY_AFTER)
            self._stop.wait(self.RETRY_AFTER)
            self._wanted.set()
            return
        except Exception:  # keep the thread alive: the scheduler delivers what remains
            log.exception("courier: delivery failed")
            return
        if report.error:
            log.warning("courier: %s", report.error)
        elif report.due:
            log.info("courier: %s", report.summary())

    def _ask_a_worker(self) -> None:
        try:
            from digest.tasks.work import configure, send_chunk

            configure(self.settings)
            send_chunk.apply_async()
        except Exception as error:  # the broker is down: the scheduler's tick asks again
            log.warning("courier: cannot ask a task worker to deliver: %s", error)


def sample_digest_html(
    settings: Settings,
    database: Database,
    subscriber: Subscriber,
    *,
    now: datetime,
    renderer: DigestRenderer | None = None,
) -> str:
    """The HTML digest the saved interests would give for the papers of the last week.

    Raises SampleBusy, without waiting, when SAMPLE_RENDERS samples are being made: a
    request turned away costs nothing, one queued up would hold a web thread meanwhile.
    """
    if not _sample_slots.acquire(blocking=False):
        raise SampleBusy(f"{SAMPLE_RENDERS} samples are being made; ask again in a moment")
    try:
        with database.session() as session:
            papers = papers_first_seen_between(session, now - SAMPLE_WINDOW, now)
        selection = match_subscriber(
            parse_interests(subscriber.interests), papers, settings.match.max_papers
        )
        renderer = renderer or DigestRenderer(settings, tokens.secret_key(settings))
        message = renderer.render_digest(
            subscriber, selection, digest_day(now, subscriber.timezone), now=now
        )
        return message.body("html")
    finally:
        _sample_slots.release()
