"""The signup form and the confirmation link (double opt-in).

Signing up stores a pending subscriber and emails a confirmation link; nothing else is
sent until the link is followed and its button pressed (a link scanner that fetches the
GET confirms nobody). Whatever the address, the answer page is the same, so the form
cannot be used to learn who is subscribed: a new or pending address gets the
confirmation (resent at most once per 10 minutes), an already subscribed one gets its
manage link instead, by email, at the same pace.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from flask import Blueprint, abort, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from digest.errors import TokenError
from digest.match import INTEREST_EXAMPLES
from digest.store.subscribers import (
    create_subscriber,
    find_subscriber,
    get_subscriber,
    record_confirm_sent,
    set_status,
    update_preferences,
)
from digest.subscriber import Subscriber
from digest.tokens import read_token, token_matches
from digest.web import context
from digest.web.forms import ButtonForm, SignupForm

blueprint = Blueprint("subscribe", __name__)

RESEND_AFTER = timedelta(minutes=10)
# Addresses in these states sign up afresh (and must confirm again).
REJOINING = ("pending", "unsubscribed", "bounced")


def _new_signup_form() -> SignupForm:
    settings = context().settings
    form = SignupForm()
    if request.method == "GET":
        form.send_time.data = time.fromisoformat(settings.schedule.default_send_time)
        form.timezone.data = settings.service.timezone
    return form


def _render_form(form: SignupForm, status: int = 200, notice: str = "") -> tuple[str, int]:
    return render_template(
        "signup.html", form=form, examples=INTEREST_EXAMPLES, notice=notice
    ), status


@blueprint.route("/", methods=["GET", "POST"])
def signup() -> tuple[str, int] | Response:
    """Show the signup form; on POST, store a pending sign-up and send the confirmation."""
    form = _new_signup_form()
    if request.method == "GET":
        return _render_form(form)
    if not form.validate():
        return _render_form(form, 400)
    email = form.validate_email_with(context().settings.web.check_dns)
    if email is None:
        return _render_form(form, 400)
    if not form.website.data:  # a filled honeypot gets the same answer and nothing else
        _sign_up(email, form)
    return redirect(url_for("subscribe.check_email"), code=303)


def signup_rate_limited() -> tuple[str, int]:
    """The signup form again, with what was typed, when a rate limit is hit."""
    form = SignupForm()
    form.validate()
    form.email.errors = []
    return _render_form(
        form,
        429,
        notice="Too many sign-ups from here or for this address. Please wait a while "
        "and try again.",
    )


def _sign_up(email: str, form: SignupForm) -> None:
    ctx = context()
    now = ctx.clock()
    preferences = {
        "interests": form.interests.data.strip(),
        "send_time": form.send_time.data.strftime("%H:%M"),
        "timezone": form.timezone.data,
    }
    with ctx.database.session() as session:
        existing = find_subscriber(session, email)
        if existing is None:
            subscriber = create_subscriber(session, email, now=now, **preferences)
            kind = "confirm"
        elif existing.status in REJOINING:
            update_preferences(session, existing.id, now=now, **preferences)
            set_status(session, existing.id, "pending", now)
            subscriber, kind = existing, "confirm"
        else:
            # Already subscribed: their settings change only through their manage link.
            subscriber, kind = existing, "manage"
        if not _may_resend(subscriber, now):
            return
        record_confirm_sent(session, subscriber.id, now)
    ctx.notify(subscriber, kind)


def _may_resend(subscriber: Subscriber, now: datetime) -> bool:
    sent = subscriber.confirm_sent_at
    return sent is None or now - sent >= RESEND_AFTER


@blueprint.route("/check-your-email")
def check_email() -> str:
    """The one answer to every sign-up."""
    return render_template("check_email.html")


def _subscriber_for(purpose: str, token: str) -> Subscriber:
    """The subscriber a link names, or the invalid-link page (400)."""
    ctx = context()
    try:
        subscriber_id, tag = read_token(ctx.secret, purpose, token)
    except TokenError as error:
        abort(_invalid_link(str(error)))
    with ctx.database.session() as session:
        subscriber = get_subscriber(session, subscriber_id)
    if subscriber is None or not token_matches(tag, subscriber.email):
        abort(_invalid_link(f"this {purpose} link is not valid"))
    return subscriber


def _invalid_link(reason: str) -> Response:
    page = render_template("invalid_link.html", reason=reason[:1].upper() + reason[1:])
    return Response(page, status=400, mimetype="text/html")


@blueprint.route("/confirm/<token>", methods=["GET", "POST"])
def confirm(token: str) -> tuple[str, int] | str:
    """GET: one button to confirm. POST: confirm the subscription."""
    subscriber = _subscriber_for("confirm", token)
    form = ButtonForm()
    if subscriber.status in ("active", "paused"):
        return render_template("confirmed.html", subscriber=subscriber, already=True)
    if subscriber.status != "pending":
        abort(_invalid_link("you unsubscribed after this link was sent: sign up again"))
    if request.method == "POST" and form.validate():
        ctx = context()
        with ctx.database.session() as session:
            set_status(session, subscriber.id, "active", ctx.clock())
        return render_template("confirmed.html", subscriber=subscriber, already=False)
    return render_template("confirm.html", form=form, subscriber=subscriber)
