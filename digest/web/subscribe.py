"""The signup form and the confirmation link (double opt-in).

Signing up stores a pending subscriber and emails a confirmation link; nothing else is
sent until the link is followed and its button pressed (a link scanner that fetches the
GET confirms nobody). Whatever the address, the answer page is the same, so the form
cannot be used to learn who is subscribed: a new or pending address gets the
confirmation (resent at most once per 10 minutes), an already subscribed one gets its
manage link instead, by email, at the same pace.

A sign-up for an address already stored (pending, unsubscribed, bounced) changes none of
its settings: anyone can type an address into the form. The interests, time and zone it
asks for travel in the confirmation link (see `digest.tokens.make_confirm_token`), are
shown in the email and on the confirm page, and are applied when the owner of the
mailbox confirms.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask_wtf.csrf import generate_csrf
from sqlalchemy.exc import IntegrityError
from werkzeug.wrappers import Response

from digest.errors import TokenError
from digest.jobs.readers import RESEND_AFTER, Mailer, sign_up
from digest.learn.seeds import sync_reader_seeds
from digest.match import INTEREST_EXAMPLES
from digest.store.subscribers import change_status, get_subscriber, update_preferences
from digest.subscriber import Subscriber
from digest.tokens import read_confirm_token, read_token, token_matches
from digest.web import ACCEPTED, context
from digest.web.forms import MAX_INTERESTS, ButtonForm, SignupForm

log = logging.getLogger(__name__)

blueprint = Blueprint("subscribe", __name__)

# Where each visitor's CSRF token goes in the signup page kept for all (not a token's shape).
TOKEN_SLOT = "{csrf token slot}"


def _offered_interests() -> str:
    """Interests tried on the search page, which come along ("Get these by email"); too
    long a list is not shown in part, the form would only refuse it."""
    offered = request.args.get("interests", "")
    return offered.replace("\r\n", "\n") if len(offered) <= MAX_INTERESTS else ""


def _new_signup_form() -> SignupForm:
    settings = context().settings
    form = SignupForm(
        keep_zones=(settings.service.timezone,), max_trending=settings.match.max_papers
    )
    if request.method != "POST":  # GET or HEAD: a fresh form, with the defaults
        form.send_time.data = time.fromisoformat(settings.schedule.default_send_time)
        form.timezone.data = settings.service.timezone
        offered = _offered_interests()
        if offered:
            form.fill_interests(offered)
    return form


def _render_form(form: SignupForm, status: int = 200, notice: str = "") -> tuple[str, int]:
    return render_template(
        "signup.html", form=form, examples=INTEREST_EXAMPLES, notice=notice
    ), status


@blueprint.route("/", methods=["GET", "POST"])
def signup() -> tuple[str, int] | Response:
    """Show the signup form; on POST, store a pending sign-up and send the confirmation."""
    if request.method != "POST":  # GET, or HEAD (GET without body): never a sign-up
        if not _offered_interests():
            return _blank_signup_page(), 200
        return _render_form(_new_signup_form())
    form = _new_signup_form()
    email = form.validate_all(context().settings.web.check_dns)
    if email is None:
        return _render_form(form, 400)
    if form.website.data:  # a filled honeypot gets the same answer and nothing else
        log.info("signup: honeypot filled, nothing stored")
    else:
        _sign_up(email, form)
    return redirect(url_for("subscribe.check_email"), code=ACCEPTED)


def _blank_signup_page() -> str:
    """The signup page as a first visit sees it, with this visitor's CSRF token.

    It is the same for everyone but for the token, and writing it took ~3 ms (WTForms
    writing each field): it is written once per app (per mount point), with a slot where
    each answer puts its visitor's own token, as the papers pages' signup box is.
    """
    pages = context().pages
    name = "signup " + request.script_root
    page = pages.get(name)
    if page is None:
        page = pages[name] = _with_token_slot(_render_form(_new_signup_form())[0])
    return page.replace(TOKEN_SLOT, generate_csrf())


def _with_token_slot(page: str) -> str:
    token = generate_csrf()  # the token the form shows: Flask-WTF keeps one per request
    if page.count(token) != 1:  # never keep a page that would show one visitor's token
        raise RuntimeError("the signup page must show its CSRF token exactly once")
    return page.replace(token, TOKEN_SLOT)


def signup_rate_limited() -> tuple[str, int]:
    """The signup form again, with what was typed, when a rate limit is hit."""
    return _render_form(
        _new_signup_form(),
        429,
        notice="Too many sign-ups from here or for this address. Nothing was sent; "
        "please wait an hour and try again.",
    )


def _sign_up(email: str, form: SignupForm) -> None:
    """Store the sign-up and queue its email in one short transaction
    (`digest.jobs.readers.sign_up`, as `digest subscribers add` does); the courier
    delivers it in the background (or a `Notifier` hook, if the app was given one)."""
    ctx = context()
    # Without a hook the email is queued in the sign-up's transaction; with one, the hook
    # sends it once the sign-up is committed.
    mailer = None if ctx.notify is not None else Mailer(ctx.settings, ctx.secret, ctx.renderer)
    try:
        with ctx.database.session() as session:
            done = sign_up(session, email, form.preferences(), now=ctx.clock(), mailer=mailer)
    except IntegrityError:
        # The same new address signed up twice at once: the other request sends the mail.
        log.info("signup: concurrent sign-up for one address, answered once")
        return
    if not done.mailed:
        return
    if ctx.notify is not None:
        offered = done.offered
        ctx.notify(replace(done.subscriber, **offered) if offered else done.subscriber, done.kind)
    elif ctx.courier is not None:
        ctx.courier.kick()


@blueprint.route("/check-your-email")
def check_email() -> str:
    """The one answer to every sign-up.

    It says when signing up again sends a new email, from the clock alone: at most
    `RESEND_AFTER` from now, whatever the address and whenever its last email went, so
    the page tells nothing about the address.
    """
    return render_template("check_email.html", again_at=_resend_time(context().clock()))


def _resend_time(now: datetime) -> str:
    """When a sign-up now may ask for a new email, rounded up to the minute: "10:10 UTC"."""
    at = now.astimezone(UTC) + RESEND_AFTER
    if at.second or at.microsecond:
        at = at.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return f"{at:%H:%M} UTC"


def subscriber_for(purpose: str, token: str) -> Subscriber:
    """The subscriber a link names, or the invalid-link page (400)."""
    ctx = context()
    try:
        subscriber_id, tag = read_token(ctx.secret, purpose, token)
    except TokenError as error:
        abort(invalid_link(str(error)))
    with ctx.database.session() as session:
        subscriber = get_subscriber(session, subscriber_id)
    if subscriber is None or not token_matches(tag, subscriber.email):
        abort(invalid_link(f"this {purpose} link is not valid"))
    return subscriber


def invalid_link(reason: str, status: int = 400) -> Response:
    """The page for a link that is tampered with, expired, or no longer of use."""
    page = render_template("invalid_link.html", reason=reason[:1].upper() + reason[1:])
    return Response(page, status=status, mimetype="text/html")


def _confirming(token: str) -> tuple[Subscriber, dict[str, str] | None]:
    """The subscriber a confirm link names and the preferences it applies, or the
    invalid-link page (400)."""
    ctx = context()
    try:
        subscriber_id, tag, preferences = read_confirm_token(ctx.secret, token)
    except TokenError as error:
        abort(invalid_link(str(error)))
    with ctx.database.session() as session:
        subscriber = get_subscriber(session, subscriber_id)
    if subscriber is None or not token_matches(tag, subscriber.email):
        abort(invalid_link("this confirm link is not valid"))
    return subscriber, preferences


@blueprint.route("/confirm/<token>", methods=["GET", "POST"])
def confirm(token: str) -> tuple[str, int] | str:
    """GET: one button to confirm. POST: confirm the subscription, with the interests,
    time and zone the link carries (those its email showed)."""
    subscriber, preferences = _confirming(token)
    form = ButtonForm()
    if subscriber.status in ("active", "paused"):
        return render_template("confirmed.html", subscriber=subscriber, already=True)
    if subscriber.status != "pending":
        abort(invalid_link("this confirm link is no longer valid: sign up again"))
    if request.method == "POST" and form.validate():
        ctx = context()
        now = ctx.clock()
        with ctx.database.session() as session:
            # Confirmed first, checked as it is written; the settings change only if it
            # did, in the same transaction (and then reschedule the new active reader).
            confirmed_now = change_status(
                session, subscriber.id, "active", now, only_from=("pending",), consent="link"
            )
            if confirmed_now and preferences:
                update_preferences(session, subscriber.id, now=now, **preferences)
                sync_reader_seeds(session, subscriber.id, preferences["interests"], now)
            confirmed = get_subscriber(session, subscriber.id)
        return render_template("confirmed.html", subscriber=confirmed, already=False)
    offered = replace(subscriber, **preferences) if preferences else subscriber
    return render_template("confirm.html", form=form, subscriber=offered)
