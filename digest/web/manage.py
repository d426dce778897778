"""The pages behind the links in every email: manage and unsubscribe.

`/manage/TOKEN` changes interests, time and time zone, pauses and resumes, brings a
bounced address back, and shows a sample digest. `/unsubscribe/TOKEN` answers a GET
with one button (a link scanner fetching the page unsubscribes nobody) and unsubscribes
on POST at once, with no login and no further step; a POST whose body is
`List-Unsubscribe=One-Click` is RFC 8058's one-click unsubscribe from the mail client,
which comes with no cookie and no CSRF token and is answered 200.
"""

from __future__ import annotations

from datetime import time

from flask import Blueprint, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from digest.match import INTEREST_EXAMPLES
from digest.store.subscribers import get_subscriber, set_status, update_preferences
from digest.subscriber import Subscriber
from digest.web import context
from digest.web.forms import ButtonForm, ManageForm
from digest.web.subscribe import _invalid_link, _subscriber_for

blueprint = Blueprint("manage", __name__)

ONE_CLICK = "One-Click"
# What each button on the manage page does to the subscriber's status.
STATUS_ACTIONS = {"pause": "paused", "resume": "active", "reactivate": "active"}
ALLOWED_FROM = {"pause": ("active",), "resume": ("paused",), "reactivate": ("bounced",)}


def _manageable(token: str) -> Subscriber:
    subscriber = _subscriber_for("manage", token)
    if subscriber.status in ("pending", "unsubscribed"):
        from flask import abort

        abort(_invalid_link("this subscription is not active: sign up again on the home page"))
    return subscriber


def _manage_form(subscriber: Subscriber) -> ManageForm:
    form = ManageForm()
    if request.method == "GET":
        form.interests.data = subscriber.interests
        form.send_time.data = time.fromisoformat(subscriber.send_time)
        form.timezone.data = subscriber.timezone
    return form


def _render_manage(
    subscriber: Subscriber, form: ManageForm, token: str, notice: str = "", status: int = 200
) -> tuple[str, int]:
    return render_template(
        "manage.html",
        subscriber=subscriber,
        form=form,
        buttons=ButtonForm(),
        token=token,
        examples=INTEREST_EXAMPLES,
        notice=notice,
        sample=request.args.get("sample") == "1",
    ), status


@blueprint.route("/manage/<token>", methods=["GET", "POST"])
def manage(token: str) -> tuple[str, int] | Response:
    """Show and save a subscriber's preferences."""
    subscriber = _manageable(token)
    form = _manage_form(subscriber)
    if request.method == "GET":
        notice = {"saved": "Saved.", "paused": "Paused.", "active": "Digests are on."}.get(
            request.args.get("done", ""), ""
        )
        return _render_manage(subscriber, form, token, notice)
    if not form.validate():
        return _render_manage(subscriber, form, token, status=400)
    ctx = context()
    with ctx.database.session() as session:
        update_preferences(
            session,
            subscriber.id,
            interests=form.interests.data.strip(),
            send_time=form.send_time.data.strftime("%H:%M"),
            timezone=form.timezone.data,
            now=ctx.clock(),
        )
    return redirect(url_for("manage.manage", token=token, done="saved"), code=303)


@blueprint.route("/manage/<token>/<action>", methods=["POST"])
def change_status(token: str, action: str) -> Response:
    """Pause, resume, or reactivate a bounced address."""
    subscriber = _manageable(token)
    if action not in STATUS_ACTIONS or not ButtonForm().validate():
        return _invalid_link("that button did not work: reload the page and try again")
    if subscriber.status in ALLOWED_FROM[action]:
        ctx = context()
        with ctx.database.session() as session:
            set_status(session, subscriber.id, STATUS_ACTIONS[action], ctx.clock())
    done = STATUS_ACTIONS[action]
    return redirect(url_for("manage.manage", token=token, done=done), code=303)


@blueprint.route("/manage/<token>/sample")
def sample(token: str) -> Response:
    """A sample digest for the saved interests, shown framed inside the manage page."""
    from digest.jobs import sample_digest_html

    subscriber = _manageable(token)
    ctx = context()
    html = sample_digest_html(
        ctx.settings, ctx.database, subscriber, now=ctx.clock(), renderer=ctx.renderer
    )
    response = Response(html, mimetype="text/html")
    # The email's own inline styles, no script at all, framed only by our page.
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        "frame-ancestors 'self'; sandbox allow-popups allow-popups-to-escape-sandbox"
    )
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


@blueprint.route("/unsubscribe/<token>", methods=["GET", "POST"])
def unsubscribe(token: str) -> tuple[str, int] | Response:
    """GET: one button. POST (from the page, or RFC 8058 one-click): unsubscribe now."""
    subscriber = _subscriber_for("unsubscribe", token)
    if request.method == "GET":
        return render_template(
            "unsubscribe.html", subscriber=subscriber, form=ButtonForm(), token=token
        ), 200
    one_click = request.form.get("List-Unsubscribe") == ONE_CLICK
    if not one_click and not ButtonForm().validate():
        return render_template(
            "unsubscribe.html",
            subscriber=subscriber,
            form=ButtonForm(),
            token=token,
            notice="That button had expired; press it once more.",
        ), 400
    ctx = context()
    if subscriber.status != "unsubscribed":
        with ctx.database.session() as session:
            set_status(session, subscriber.id, "unsubscribed", ctx.clock())
    if one_click:
        return Response("Unsubscribed.\n", status=200, mimetype="text/plain")
    return render_template(
        "unsubscribed.html", subscriber=subscriber, form=ButtonForm(), token=token
    ), 200


@blueprint.route("/resubscribe/<token>", methods=["POST"])
def resubscribe(token: str) -> tuple[str, int] | Response:
    """Undo an unsubscribe from the page that confirmed it (the address is proven)."""
    subscriber = _subscriber_for("unsubscribe", token)
    if not ButtonForm().validate():
        return _invalid_link("that button did not work: reload the page and try again")
    ctx = context()
    with ctx.database.session() as session:
        if subscriber.status == "unsubscribed":
            set_status(session, subscriber.id, "active", ctx.clock())
        current = get_subscriber(session, subscriber.id)
    return render_template("resubscribed.html", subscriber=current), 200
