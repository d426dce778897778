"""The "more like this" / "less like this" links of every digest, and what the manage
page shows of them.

`/feedback/TOKEN/more/PAPER_ID` (or `less`) answers a GET with the paper's title and one
button: mail scanners and link previews fetch every link of an email, so only the POST of
that button records the verdict (source "email"), refits the reader's model in the same
transaction (`digest.learn.refresh_reader`) and says in one line what changed. TOKEN is a
reader's "feedback" token (`digest.tokens.feedback_base`): a token of another purpose,
one whose address is no longer the reader's, or an erased reader's gets the invalid-link
page, as the manage and unsubscribe links do. Any stored reader may teach it, paused or
not: a verdict changes what they will get, never whether they get it.

`taught(session, subscriber_id)` lists a reader's verdicts for the manage page, whose
Undo buttons (`digest.web.manage.undo_feedback`) call `forget` below.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from flask import Blueprint, abort, render_template, request, url_for
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from digest.learn import refresh_reader
from digest.paper import arxiv_abs_url
from digest.render.view import web_url
from digest.store.feedback import MORE, VOTES, Vote, record_vote, remove_vote, votes_of
from digest.store.papers import papers_by_id
from digest.store.subscribers import get_subscriber
from digest.subscriber import Subscriber
from digest.web import context
from digest.web.forms import ButtonForm
from digest.web.subscribe import invalid_link, subscriber_for

blueprint = Blueprint("feedback", __name__)

# A stored paper id is at most this long (PaperRow.id): anything longer names no paper,
# and is not worth a query.
MAX_PAPER_ID = 64
# What each kind of row means, as the manage page lists it.
KINDS = {"more": "more like this", "less": "less like this", "seed": "seed paper"}


@dataclass(frozen=True, slots=True)
class Taught:
    """One of a reader's verdicts as the manage page shows it."""

    id: int
    paper_id: str
    title: str  # the stored title, or the id while the paper is not stored yet
    url: str
    kind: str  # "more", "less" or "seed" (a `like:` entry of the interests)
    at: datetime

    @property
    def label(self) -> str:
        return KINDS[self.kind]

    @property
    def can_undo(self) -> bool:
        """Seeds come from the interests: removing the `like:` line is their undo."""
        return self.kind != "seed"


def may_be_paper_id(text: str) -> bool:
    """Whether `text` could be a stored paper's id: short, and no control characters
    (PostgreSQL refuses a NUL in a query's text: a 500 anyone could cause from a URL)."""
    return len(text) <= MAX_PAPER_ID and text.isprintable()


def paper_titles(session: Session, paper_ids: Collection[str]) -> dict[str, tuple[str, str]]:
    """(title, link) of each of these papers the store holds, by id."""
    papers = papers_by_id(session, filter(may_be_paper_id, paper_ids))
    return {
        paper_id: (paper.title, web_url(paper.url_abs) or arxiv_abs_url(paper_id))
        for paper_id, paper in papers.items()
    }


def paper_title(session: Session, paper_id: str) -> str | None:
    """The stored title of a paper, None if the store does not hold it."""
    found = paper_titles(session, [paper_id]).get(paper_id)
    return found[0] if found else None


def taught(session: Session, subscriber_id: int) -> list[Taught]:
    """A reader's verdicts, newest first, with the papers' titles and links."""
    votes = votes_of(session, subscriber_id)
    papers = paper_titles(session, [vote.paper_id for vote in votes])
    shown = []
    for vote in reversed(votes):  # votes_of is oldest first
        title, url = papers.get(vote.paper_id, (vote.paper_id, arxiv_abs_url(vote.paper_id)))
        kind = "seed" if vote.source == "seed" else ("more" if vote.vote == MORE else "less")
        shown.append(Taught(vote.id, vote.paper_id, title, url, kind, vote.created_at))
    return shown


def forget(session: Session, subscriber_id: int, vote_id: int, now: datetime) -> Vote | None:
    """Undo one of a reader's verdicts from a link or the manage page, and refit their
    model; None (nothing changed) if they have no such row, or it is a seed (a `like:`
    entry, which the interests keep)."""
    removed = remove_vote(session, subscriber_id, vote_id, keep={"seed"})
    if removed is not None:
        refresh_reader(session, subscriber_id, now)
    return removed


def _shown_paper(paper_id: str) -> str:
    """The paper's stored title, or the not-found page (404)."""
    with context().database.session() as session:
        title = paper_title(session, paper_id)
    if title is None:
        abort(
            Response(
                render_template(
                    "error.html",
                    title="Paper not found",
                    message="We do not know the paper this link names, so there is nothing "
                    "to learn from it. Nothing was recorded.",
                ),
                status=404,
                mimetype="text/html",
            )
        )
    return title


FEEDBACK_PATH = "/feedback/<token>/<any(more, less):vote>/<path:paper_id>"


@blueprint.route(FEEDBACK_PATH, methods=["GET", "POST"])
def feedback(token: str, vote: str, paper_id: str) -> tuple[str, int] | Response:
    """GET (HEAD, OPTIONS): the paper and one button, recording nothing. POST, that
    button: record the verdict for the reader the token names, refit their model, and
    say what changed."""
    subscriber = subscriber_for("feedback", token)
    title = _shown_paper(paper_id)
    form = ButtonForm()
    if request.method != "POST":  # a scanner's fetch, or the reader's click: no vote yet
        return _render_ask(subscriber, token, vote, paper_id, title, form)
    if not form.validate():  # CSRFProtect refuses a POST without a token before this
        return _render_ask(
            subscriber, token, vote, paper_id, title, ButtonForm(), 400,
            notice="That button had expired; press it once more.",
        )  # fmt: skip
    if not _record(subscriber.id, paper_id, VOTES[vote]):
        return invalid_link("this feedback link is not valid")
    # No link to the manage page: a feedback token (one in every card, the most copied
    # links of a digest) must not open the settings, which can change or erase it all.
    return render_template(
        "feedback_done.html",
        vote=vote,
        title=title,
        manageable=subscriber.status not in ("pending", "unsubscribed"),
    ), 200


def _record(subscriber_id: int, paper_id: str, vote: int) -> bool:
    """Record the verdict (source "email") and refit the reader's model, in one
    transaction; False if the reader was erased since the link was read."""
    ctx = context()
    for attempt in range(2):
        now = ctx.clock()
        try:
            with ctx.database.session() as session:
                if get_subscriber(session, subscriber_id) is None:
                    return False
                record_vote(session, subscriber_id, paper_id, vote, "email", now)
                refresh_reader(session, subscriber_id, now)
            return True
        except IntegrityError:
            # A double click: the other press stored this reader's row for the paper
            # first (or an erasure went through). Once more: it now updates that row.
            if attempt:
                raise
    return False  # not reached: the second attempt returns or raises


def _render_ask(
    subscriber: Subscriber,
    token: str,
    vote: str,
    paper_id: str,
    title: str,
    form: ButtonForm,
    status: int = 200,
    notice: str = "",
) -> tuple[str, int]:
    return render_template(
        "feedback.html",
        subscriber=subscriber,
        vote=vote,
        title=title,
        action=url_for("feedback.feedback", token=token, vote=vote, paper_id=paper_id),
        form=form,
        notice=notice,
    ), status
