"""The "more / less like this" links of digests: a page with one button (a mail scanner
fetching the link records nothing), the button's POST recording the verdict for the
reader the signed link names, and every kind of bad link refused with nothing recorded.
On a real SQLite store, through the app's test client as a browser drives it."""

from __future__ import annotations

import html
from typing import Any

import pytest
from render_samples import load_papers
from sqlalchemy import update

from digest.jobs.readers import erase
from digest.learn.models import refit_text_model
from digest.paper import Paper
from digest.store.feedback import LESS, MORE, Vote, record_vote, votes_of
from digest.store.models import FeedbackRow, ReaderModelRow, SubscriberRow
from digest.store.papers import save_papers
from digest.store.subscribers import update_preferences
from digest.subscriber import Subscriber
from digest.tokens import feedback_base, feedback_url, make_token
from tests.web_support import BASE_URL, NOW, SECRET, Site, csrf_token

PAPERS = [
    Paper(id="2606.00467", title="Diffusion <Models> & “Friends”", abstract="About diffusion."),
    Paper(id="hep-th/9901001", title="Strings, the old way", abstract="An old arXiv id."),
]


@pytest.fixture
def papers(site: Site) -> list[Paper]:
    with site.database.session() as session:
        save_papers(session, PAPERS, NOW)
    return PAPERS


@pytest.fixture
def ada(site: Site, papers: list[Paper]) -> Subscriber:
    return site.add_reader("ada@example.org", "diffusion")


def _link(site: Site, reader: Subscriber, vote: str, paper_id: str, **token: Any) -> str:
    """The path of a reader's feedback link, as a digest writes it."""
    base = feedback_base(site.settings, SECRET, reader.id, reader.email)
    url = feedback_url(base, vote, paper_id)
    assert url.startswith(BASE_URL)
    return url[len(BASE_URL) :]


def _votes(site: Site, reader: Subscriber) -> list[Vote]:
    with site.database.session() as session:
        return votes_of(session, reader.id)


def _press(site: Site, path: str) -> Any:
    """Open the link, then press its button (with the page's CSRF token)."""
    return site.submit(path)


def _text(response: Any) -> str:
    return " ".join(html.unescape(response.get_data(as_text=True)).split())


# --- the page, and the button -------------------------------------------------------


def test_opening_the_link_records_nothing(site: Site, ada: Subscriber) -> None:
    path = _link(site, ada, "more", "2606.00467")
    for method in ("GET", "HEAD", "OPTIONS"):
        response = site.client.open(path, method=method)
        assert response.status_code == 200, method
    page = _text(site.get(path))
    assert "More like this?" in page and "Diffusion <Models> & “Friends”" in page
    assert "<Models>" not in site.get(path).get_data(as_text=True)  # escaped
    assert page.count('type="submit"') == 1
    assert _votes(site, ada) == []


def test_pressing_the_button_records_more(site: Site, ada: Subscriber) -> None:
    path = _link(site, ada, "more", "2606.00467")
    response = _press(site, path)
    assert response.status_code == 200
    page = _text(response)
    assert "You will see more papers like “Diffusion <Models> & “Friends””." in page
    # Where to undo it, but no link there: a feedback token never opens the settings.
    assert "follow “Change your interests” at the foot of any digest" in page
    assert "/manage/" not in response.get_data(as_text=True)
    assert ada.email not in response.get_data(as_text=True)
    [vote] = _votes(site, ada)
    assert (vote.paper_id, vote.vote, vote.source, vote.created_at) == (
        "2606.00467",
        MORE,
        "email",
        NOW,
    )


def test_less_after_more_replaces_it(site: Site, ada: Subscriber) -> None:
    _press(site, _link(site, ada, "more", "2606.00467"))
    site.clock.advance(minutes=5)
    response = _press(site, _link(site, ada, "less", "2606.00467"))
    page = _text(response)
    assert "Less like this?" not in page
    assert "You will see fewer papers like “Diffusion <Models> & “Friends””." in page
    [vote] = _votes(site, ada)
    assert (vote.vote, vote.created_at) == (LESS, site.clock.now)


def test_an_old_arxiv_id_with_a_slash(site: Site, ada: Subscriber) -> None:
    path = _link(site, ada, "less", "hep-th/9901001")
    assert path.endswith("/less/hep-th/9901001")
    page = site.get(path).get_data(as_text=True)
    assert f'action="{path}"' in page
    assert "Strings, the old way" in _text(_press(site, path))
    assert [(v.paper_id, v.vote) for v in _votes(site, ada)] == [("hep-th/9901001", LESS)]


def test_a_paused_reader_may_still_teach_it(site: Site, papers: list[Paper]) -> None:
    paused = site.add_reader("pat@example.org", "diffusion", status="paused")
    response = _press(site, _link(site, paused, "more", "2606.00467"))
    assert response.status_code == 200
    assert len(_votes(site, paused)) == 1


def test_a_post_without_the_csrf_token_is_refused(site: Site, ada: Subscriber) -> None:
    path = _link(site, ada, "more", "2606.00467")
    site.get(path)  # a session, but no token sent
    response = site.client.post(path, data={})
    assert response.status_code == 400
    forged = site.client.post(path, data={"csrf_token": "forged"})
    assert forged.status_code == 400
    assert _votes(site, ada) == []


def test_the_pages_carry_the_security_headers(site: Site, ada: Subscriber) -> None:
    path = _link(site, ada, "more", "2606.00467")
    for response in (site.get(path), _press(site, path)):
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert response.headers["Referrer-Policy"] == "same-origin"
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Frame-Options"] == "DENY"


# --- bad links ----------------------------------------------------------------------


def _refused(site: Site, path: str, status: int = 400) -> str:
    """GET and POST of `path` both refused with `status`; the GET page's text."""
    page = site.get(path)
    assert page.status_code == status, page.status_code
    # A real CSRF token from a good page: the refusal must come from the link itself.
    token = csrf_token(site.get("/").get_data(as_text=True))
    pressed = site.client.post(path, data={"csrf_token": token})
    assert pressed.status_code == status, pressed.status_code
    return _text(page)


def test_a_forged_token_is_an_invalid_link(site: Site, ada: Subscriber) -> None:
    good = _link(site, ada, "more", "2606.00467")
    token = good.split("/")[2]
    forged = good.replace(token, token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
    assert "This link does not work" in _refused(site, forged)
    other = make_token("another-secret-entirely-0123456789-abcdefgh", "feedback", ada.id,
                       ada.email)  # fmt: skip
    assert "This link does not work" in _refused(site, good.replace(token, other))
    assert _votes(site, ada) == []


@pytest.mark.parametrize("purpose", ["manage", "unsubscribe", "confirm"])
def test_a_token_of_another_purpose_is_refused(site: Site, ada: Subscriber, purpose: str) -> None:
    path = f"/feedback/{site.token(purpose, ada)}/more/2606.00467"
    assert "This link does not work" in _refused(site, path)
    assert _votes(site, ada) == []


def test_another_readers_link_records_for_that_reader_only(site: Site, ada: Subscriber) -> None:
    bob = site.add_reader("bob@example.org", "agents")
    _press(site, _link(site, bob, "less", "2606.00467"))
    assert _votes(site, ada) == []
    assert [(v.paper_id, v.vote) for v in _votes(site, bob)] == [("2606.00467", LESS)]


def test_a_link_for_an_address_no_longer_the_readers_is_refused(
    site: Site, ada: Subscriber
) -> None:
    path = _link(site, ada, "more", "2606.00467")
    with site.database.session() as session:
        session.execute(
            update(SubscriberRow).where(SubscriberRow.id == ada.id).values(email="new@example.org")
        )
    assert "This link does not work" in _refused(site, path)
    assert _votes(site, ada) == []


def test_an_erased_readers_link_is_refused(site: Site, ada: Subscriber) -> None:
    path = _link(site, ada, "more", "2606.00467")
    with site.database.session() as session:
        erase(session, ada)
    assert "This link does not work" in _refused(site, path)
    with site.database.session() as session:
        assert votes_of(session, ada.id) == []


def test_a_reader_erased_between_page_and_button_records_nothing(
    site: Site, ada: Subscriber
) -> None:
    path = _link(site, ada, "more", "2606.00467")
    token = csrf_token(site.get(path).get_data(as_text=True))
    with site.database.session() as session:
        erase(session, ada)
    assert site.client.post(path, data={"csrf_token": token}).status_code == 400
    with site.database.session() as session:
        assert votes_of(session, ada.id) == []


def test_an_unknown_paper_is_not_found(site: Site, ada: Subscriber) -> None:
    page = _refused(site, _link(site, ada, "more", "2699.99999"), status=404)
    assert "Paper not found" in page and "Nothing was recorded" in page
    assert _votes(site, ada) == []


@pytest.mark.parametrize("vote", ["maybe", "MORE", "", "more-ish"])
def test_a_vote_other_than_more_or_less_is_not_found(
    site: Site, ada: Subscriber, vote: str
) -> None:
    path = _link(site, ada, "more", "2606.00467").replace("/more/", f"/{vote}/")
    assert site.get(path).status_code == 404
    assert site.client.post(path).status_code in (400, 404)  # CSRF may answer first
    assert _votes(site, ada) == []


def test_a_huge_paper_id_is_not_found(site: Site, ada: Subscriber) -> None:
    path = _link(site, ada, "more", "2606." + "9" * 5000)
    _refused(site, path, status=404)
    assert site.get(_link(site, ada, "more", "x/" * 500)).status_code == 404
    assert _votes(site, ada) == []


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "TRACE"])
def test_other_methods_are_not_allowed(site: Site, ada: Subscriber, method: str) -> None:
    response = site.client.open(_link(site, ada, "more", "2606.00467"), method=method)
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "POST"}
    assert _votes(site, ada) == []


def test_a_vote_on_a_paper_recorded_for_a_reader_leaves_their_settings(
    site: Site, ada: Subscriber
) -> None:
    with site.database.session() as session:
        update_preferences(session, ada.id, suggestions=0)
        record_vote(session, ada.id, "hep-th/9901001", MORE, "manage", NOW)
    _press(site, _link(site, ada, "less", "2606.00467"))
    assert site.subscriber().suggestions == 0  # type: ignore[union-attr]
    assert {(v.paper_id, v.source) for v in _votes(site, ada)} == {
        ("hep-th/9901001", "manage"),
        ("2606.00467", "email"),
    }


# --- the reader's model follows their verdicts ----------------------------------------


def test_the_readers_model_is_refitted_as_they_vote_and_undo(site: Site, ada: Subscriber) -> None:
    with site.database.session() as session:
        save_papers(session, load_papers(), NOW)
    refit_text_model(site.database, NOW)  # a text model to fit readers' models over
    paper = load_papers()[0]

    def model() -> ReaderModelRow | None:
        with site.database.session() as session:
            row = session.get(ReaderModelRow, ada.id)
            if row is not None:
                session.expunge(row)
            return row

    assert model() is None
    _press(site, _link(site, ada, "more", paper.id))
    fitted = model()
    assert fitted is not None and fitted.labelled == 1 and fitted.updated_at == NOW
    [vote] = _votes(site, ada)
    manage = f"/manage/{site.token('manage', ada)}"
    site.clock.advance(minutes=1)
    assert site.submit(f"{manage}/feedback/{vote.id}/undo", page=manage).status_code == 303
    assert _votes(site, ada) == [] and model() is None  # no verdicts left: no model


@pytest.mark.parametrize("paper_id", ["2606.00467%00", "%00", "2606.%0A00467", "%7F"])
def test_control_characters_in_a_paper_id_are_not_found(
    site: Site, ada: Subscriber, paper_id: str
) -> None:
    # Never sent to the store: PostgreSQL refuses a NUL in a query (a 500 otherwise).
    token = _link(site, ada, "more", "x").split("/")[2]
    _refused(site, f"/feedback/{token}/more/{paper_id}", status=404)
    assert _votes(site, ada) == []


def test_a_double_click_that_races_itself_records_once(
    site: Site, ada: Subscriber, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The two presses both find no row and both insert: the loser of the race meets
    the store's unique constraint, and records again over the winner's row."""
    import digest.web.feedback as feedback

    calls: list[int] = []

    def racing(session: Any, subscriber_id: int, paper_id: str, vote: int, *rest: Any) -> Vote:
        calls.append(vote)
        if len(calls) == 1:  # the other press commits first, then this one inserts too
            with site.database.session() as other:
                record_vote(other, subscriber_id, paper_id, MORE, "email", NOW)
            session.add(FeedbackRow(subscriber_id=subscriber_id, paper_id=paper_id, vote=vote,
                                    source="email", created_at=NOW))  # fmt: skip
            session.flush()
        return record_vote(session, subscriber_id, paper_id, vote, *rest)

    monkeypatch.setattr(feedback, "record_vote", racing)
    response = _press(site, _link(site, ada, "less", "2606.00467"))
    assert response.status_code == 200 and len(calls) == 2
    assert [(v.paper_id, v.vote) for v in _votes(site, ada)] == [("2606.00467", LESS)]


def test_votes_are_rate_limited_per_client(make_site: Any) -> None:
    site = make_site(web={"feedback_limit": "2 per hour"})
    with site.database.session() as session:
        save_papers(session, PAPERS, NOW)
    reader = site.add_reader("ada@example.org", "diffusion")
    path = _link(site, reader, "more", PAPERS[0].id)
    assert _press(site, path).status_code == 200
    assert _press(site, path).status_code == 200
    assert _press(site, path).status_code == 429
    assert site.get(path).status_code == 200  # opening a link is not limited
    assert len(_votes(site, reader)) == 1
