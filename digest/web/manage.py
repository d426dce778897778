"""The pages behind the links in every email: manage and unsubscribe.

`/manage/TOKEN` changes interests, time and time zone and how many suggestions a digest
holds, pauses and resumes, brings a bounced address back, shows a sample digest, and
lists what the reader taught it ("more / less like this", `like:` seed papers), each
verdict with a button that undoes it (`/manage/TOKEN/feedback/ID/undo`).
`/manage/TOKEN/data.json` downloads everything the store holds about the reader, and
`/manage/TOKEN/delete` deletes it all (a page with one button; the POST deletes): both
for any status the token names, so a reader who unsubscribed can still have their data,
or have it erased (the page that confirms an unsubscribe links to it).
`/unsubscribe/TOKEN` answers a GET with one button (a link scanner fetching the page
unsubscribes nobody) and unsubscribes on POST at once, with no login and no further
step; a POST whose body is `List-Unsubscribe=One-Click` is RFC 8058's one-click
unsubscribe from the mail client, which comes with no cookie and no CSRF token and is
answered 200, also for a reader erased since (the address is not subscribed: mail
clients retry until they hear so).

Coming back needs the mailbox owner's consent. The page that confirms an unsubscribe
holds a "Resubscribe" button that undoes it for `UNDO_MAX_AGE` (15 minutes), in that
browser only, back to the status it left (active or paused); its token names that one
unsubscribe. The unsubscribe link itself, which never expires and which forwarded
digests, archives and mail providers keep, subscribes nobody again: after the undo
window, coming back is signing up again, which sends a confirmation email.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, time

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask import session as browser_session
from werkzeug.wrappers import Response

from digest.errors import TokenError
from digest.jobs import sample_digest_html
from digest.jobs.mail import SampleBusy
from digest.jobs.readers import ACTIONS, REACTIVATE, erase, press, reader_data
from digest.learn.seeds import sync_reader_seeds
from digest.match import INTEREST_EXAMPLES
from digest.store.subscribers import (
    get_subscriber,
    undo_unsubscribe,
    unsubscribe_reader,
    update_preferences,
)
from digest.subscriber import Subscriber
from digest.tokens import (
    UNDO_MAX_AGE,
    UNDO_STATUSES,
    browser_tag,
    make_token,
    make_undo_token,
    read_token,
    read_undo_token,
    token_matches,
)
from digest.web import ACCEPTED, FRAMED_PAGE_HEADERS, context
from digest.web.feedback import forget, may_be_paper_id, paper_title, taught
from digest.web.forms import ButtonForm, ManageForm
from digest.web.subscribe import invalid_link, subscriber_for

blueprint = Blueprint("manage", __name__)

ONE_CLICK = "One-Click"
# The buttons of the manage page (ACTIONS: the status each one leaves, from the status
# it needs; REACTIVATE) are `digest.jobs.readers.press`, as `digest subscribers` presses them.
NOTICES = {
    "saved": "Your changes are saved.",
    "paused": "Done: your digests are paused.",
    "resumed": "Your digests are on again.",
    "reactivated": "We will send to this address again, starting with your next digest.",
}
# An undone verdict: `done=removed`, with the vote and the paper in the query (the row is
# gone by the time the page shows, so its title is looked up again).
REMOVED = "removed"
# The sample runs in a sandboxed frame: the email's own inline styles, no script, and its
# links open in a new tab (the <base> below) rather than inside the frame.
SAMPLE_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "frame-ancestors 'self'; sandbox allow-popups allow-popups-to-escape-sandbox"
)
SAMPLE_BASE = '<base target="_blank">'
# The session key of a random secret per browser, which undo tokens are bound to: a token
# copied out of the page (or a log) undoes nothing in another browser.
BROWSER_KEY = "browser"
UNDO_MINUTES = int(UNDO_MAX_AGE.total_seconds() // 60)
UNDO_GONE = (
    f"this button undoes an unsubscribe only for {UNDO_MINUTES} minutes, in the browser "
    "that unsubscribed. To get digests again, sign up again on the home page: we will "
    "email you a link to confirm"
)


def _manageable(token: str) -> Subscriber:
    subscriber = subscriber_for("manage", token)
    if subscriber.status in ("pending", "unsubscribed"):
        abort(invalid_link("this subscription is not active: sign up again on the home page"))
    return subscriber


def _manage_form(subscriber: Subscriber) -> ManageForm:
    form = ManageForm(
        keep_zones=(subscriber.timezone,), max_trending=context().settings.match.max_papers
    )
    if request.method != "POST":  # GET or HEAD: the form shows what is saved
        form.fill_interests(subscriber.interests)
        form.send_time.data = time.fromisoformat(subscriber.send_time)
        form.timezone.data = subscriber.timezone
        form.cadence.data = subscriber.cadence
        form.suggestions.data = subscriber.suggestions
    return form


def _render_manage(
    subscriber: Subscriber, form: ManageForm, token: str, notice: str = "", status: int = 200
) -> tuple[str, int]:
    with context().database.session() as session:
        verdicts = taught(session, subscriber.id)
    return render_template(
        "manage.html",
        subscriber=subscriber,
        form=form,
        buttons=ButtonForm(),
        token=token,
        examples=INTEREST_EXAMPLES,
        notice=notice,
        sample=request.args.get("sample") == "1",
        taught=verdicts,
    ), status


def _back_to_manage(token: str, done: str = "", **query: str) -> Response:
    target = url_for("manage.manage", token=token, done=done or None, **query)
    return redirect(target, code=ACCEPTED)


def _notice() -> str:
    """What the last button did, from the query of the redirect that followed it."""
    done = request.args.get("done", "")
    if done != REMOVED:
        return NOTICES.get(done, "")
    vote, paper_id = request.args.get("vote", ""), request.args.get("paper", "")
    # A hand-made query names no paper we removed: say nothing rather than echo it.
    if vote not in ("more", "less") or not paper_id or not may_be_paper_id(paper_id):
        return ""
    with context().database.session() as session:
        title = paper_title(session, paper_id) or paper_id
    return f"Removed: {vote} like “{title}”."


def _save(subscriber: Subscriber, form: ManageForm) -> None:
    """Store the form, and make the reader's seed papers those its `like:` entries name."""
    ctx = context()
    now = ctx.clock()
    interests = form.preferences()
    with ctx.database.session() as session:
        update_preferences(
            session, subscriber.id, now=now, suggestions=form.suggestions.data, **interests
        )
        sync_reader_seeds(session, subscriber.id, interests["interests"], now)  # and refits


@blueprint.route("/manage/<token>", methods=["GET", "POST"])
def manage(token: str) -> tuple[str, int] | Response:
    """Show and save a subscriber's preferences."""
    subscriber = _manageable(token)
    form = _manage_form(subscriber)
    if request.method != "POST":  # GET, or HEAD (GET without body): change nothing
        return _render_manage(subscriber, form, token, _notice())
    if not form.validate():
        return _render_manage(subscriber, form, token, status=400)
    _save(subscriber, form)
    return _back_to_manage(token, "saved")


@blueprint.route("/manage/<token>/feedback/<int:vote_id>/undo", methods=["POST"])
def undo_feedback(token: str, vote_id: int) -> Response:
    """Undo one verdict the reader gave (a digest's link or this page), and refit their
    model. Another reader's row, a seed (its `like:` line is its undo) or one already
    gone changes nothing: back to the page, with no notice."""
    subscriber = _manageable(token)
    if not ButtonForm().validate():
        return invalid_link("that button did not work: reload the page and try again")
    ctx = context()
    with ctx.database.session() as session:
        removed = forget(session, subscriber.id, vote_id, ctx.clock())
    if removed is None:
        return _back_to_manage(token)
    vote = "more" if removed.vote > 0 else "less"
    return _back_to_manage(token, REMOVED, vote=vote, paper=removed.paper_id)


@blueprint.route("/manage/<token>/<action>", methods=["POST"])
def change_status(token: str, action: str) -> Response:
    """Pause, resume, or reactivate a bounced address."""
    subscriber = _manageable(token)
    if (action not in ACTIONS and action != REACTIVATE) or not ButtonForm().validate():
        return invalid_link("that button did not work: reload the page and try again")
    ctx = context()
    with ctx.database.session() as session:
        # Only from the status the button needs, checked as it is written: pressed twice,
        # or in two tabs, the second press changes nothing. Reactivating also forgets the
        # failures that bounced the address.
        changed = press(session, subscriber.id, action, ctx.clock())
    done = {"pause": "paused", "resume": "resumed", REACTIVATE: "reactivated"}[action]
    return _back_to_manage(token, done if changed else "")


@blueprint.route("/manage/<token>/sample")
def sample(token: str) -> Response:
    """A sample digest for the saved interests, shown framed inside the manage page."""
    subscriber = _manageable(token)
    ctx = context()
    try:
        html = sample_digest_html(
            ctx.settings, ctx.database, subscriber, now=ctx.clock(), renderer=ctx.renderer
        )
    except SampleBusy:
        return _sample_busy()
    head = html.find("<head>")
    if head >= 0:
        html = html[: head + 6] + SAMPLE_BASE + html[head + 6 :]
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = SAMPLE_POLICY
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


def _sample_busy() -> Response:
    """503 with a page for the manage page's frame: samples are at their limit just now."""
    page = render_template(
        "error.html",
        title="Busy making samples",
        message="Several samples are being made just now. Please try again in a few seconds.",
    )
    # Shown where the sample would be, in the manage page's frame: allow that. No
    # Retry-After of ours: the rate limiter sets that header on every sample response.
    return Response(page, status=503, mimetype="text/html", headers=FRAMED_PAGE_HEADERS)


@blueprint.route("/manage/<token>/data.json")
def data(token: str) -> Response:
    """Everything the store holds about the reader the link names (whatever their
    status), as a JSON file to download: `digest.jobs.readers.reader_data`, which
    `digest subscribers show --json` prints too."""
    subscriber = subscriber_for("manage", token)
    ctx = context()
    with ctx.database.session() as session:
        current = get_subscriber(session, subscriber.id)
        if current is None:  # erased since the link was read
            return invalid_link("this manage link is not valid")
        held = reader_data(session, current)
    day = ctx.clock().astimezone(UTC).date().isoformat()
    response = Response(
        json.dumps(held, ensure_ascii=False, indent=2) + "\n", mimetype="application/json"
    )
    response.headers["Content-Disposition"] = f'attachment; filename="digest-data-{day}.json"'
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.route("/manage/<token>/delete", methods=["GET", "POST"])
def delete(token: str) -> tuple[str, int]:
    """GET: what deleting removes, and one button (a link scanner fetching the page
    deletes nothing). POST, that button: delete the reader, whatever their status, and
    every record of the emails sent to them, in one transaction; then say it is done.
    Every link of theirs shows the invalid-link page from then on."""
    subscriber = subscriber_for("manage", token)
    form = ButtonForm()
    if request.method != "POST":  # GET, or HEAD: never a deletion
        return render_template("delete.html", subscriber=subscriber, form=form, token=token), 200
    if not form.validate():
        return render_template(
            "delete.html",
            subscriber=subscriber,
            form=ButtonForm(),
            token=token,
            notice="That button had expired; press it once more.",
        ), 400
    with context().database.session() as session:
        erase(session, subscriber)
    return render_template("deleted.html", email=subscriber.email), 200


@blueprint.route("/unsubscribe/<token>", methods=["GET", "POST"])
def unsubscribe(token: str) -> tuple[str, int] | Response:
    """GET: one button. POST (from the page, or RFC 8058 one-click): unsubscribe now."""
    if request.method == "POST" and request.form.get("List-Unsubscribe") == ONE_CLICK:
        return _one_click(token)
    subscriber = subscriber_for("unsubscribe", token)
    if request.method != "POST":  # GET, or HEAD (even with a one-click body): one button
        return render_template(
            "unsubscribe.html", subscriber=subscriber, form=ButtonForm(), token=token
        ), 200
    if not ButtonForm().validate():
        return render_template(
            "unsubscribe.html",
            subscriber=subscriber,
            form=ButtonForm(),
            token=token,
            notice="That button had expired; press it once more.",
        ), 400
    ctx = context()
    now = ctx.clock()
    with ctx.database.session() as session:
        left = unsubscribe_reader(session, subscriber.id, now)
    undo = None
    # Only this request's own unsubscribe of a real subscription can be undone: a press
    # on an address already unsubscribed (an old link) or still pending (perhaps a
    # stranger's sign-up) gets no button, so no link ever subscribes anyone again.
    if left in UNDO_STATUSES:
        undo = make_undo_token(
            ctx.secret,
            subscriber.id,
            subscriber.email,
            unsubscribed_at=now,
            back_to=left,
            browser=_browser(create=True) or "",
        )
    # Leaving is not forgetting: the page also offers to delete everything held.
    manage_token = make_token(ctx.secret, "manage", subscriber.id, subscriber.email)
    return render_template(
        "unsubscribed.html",
        subscriber=subscriber,
        form=ButtonForm(),
        undo=undo,
        undo_minutes=UNDO_MINUTES,
        delete_url=url_for("manage.delete", token=manage_token),
    ), 200


def _one_click(token: str) -> Response:
    """RFC 8058 one-click: unsubscribe the reader the link names, and answer 200.

    Also 200 when no stored reader has that link's address any more (erased, or an
    unconfirmed sign-up deleted after a week): that address gets nothing, which is what
    the mail client asks to hear, and an error would only have it try again. A link that
    is not ours, or not an unsubscribe link, is refused (400) as before.
    """
    ctx = context()
    try:
        subscriber_id, tag = read_token(ctx.secret, "unsubscribe", token)
    except TokenError as error:
        return invalid_link(str(error))
    with ctx.database.session() as session:
        subscriber = get_subscriber(session, subscriber_id)
        # The tag too: an id freed by an erasure may be a newer reader's now.
        if subscriber is not None and token_matches(tag, subscriber.email):
            unsubscribe_reader(session, subscriber.id, ctx.clock())
    return Response("Unsubscribed.\n", status=200, mimetype="text/plain")


def _browser(*, create: bool = False) -> str | None:
    """This browser's tag for undo tokens (from its session cookie); None if it has none."""
    secret = browser_session.get(BROWSER_KEY)
    if not isinstance(secret, str):
        if not create:
            return None
        secret = secrets.token_urlsafe(24)
        browser_session[BROWSER_KEY] = secret
    return browser_tag(secret)


@blueprint.route("/resubscribe/<token>", methods=["POST"])
def resubscribe(token: str) -> tuple[str, int] | Response:
    """Undo an unsubscribe: the button of the page that confirmed it, `token` an undo
    token (never the unsubscribe link's), within its minutes and from its browser."""
    ctx = context()
    now = ctx.clock()
    try:
        undo = read_undo_token(ctx.secret, token, now)
    except TokenError:
        return invalid_link(UNDO_GONE)
    browser = _browser()
    if browser is None or not secrets.compare_digest(browser.encode(), undo.browser.encode()):
        return invalid_link(UNDO_GONE)
    if not ButtonForm().validate():
        return invalid_link("that button did not work: reload the page and try again")
    with ctx.database.session() as session:
        subscriber = get_subscriber(session, undo.subscriber_id)
        undone = (
            subscriber is not None
            and token_matches(undo.tag, subscriber.email)
            and undo_unsubscribe(session, subscriber.id, undo.unsubscribed_at, undo.back_to, now)
        )
        current = get_subscriber(session, undo.subscriber_id) if undone else None
    if subscriber is None or current is None:
        return invalid_link(UNDO_GONE)
    manage_token = make_token(ctx.secret, "manage", subscriber.id, subscriber.email)
    return render_template(
        "resubscribed.html",
        subscriber=current,
        manage_url=url_for("manage.manage", token=manage_token),
    ), 200
