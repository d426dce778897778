"""The pages behind the links in every email: manage (settings, pause and resume,
reactivating a bounced address, a sample digest) and unsubscribe (its page, RFC 8058
one-click from the List-Unsubscribe header of a real digest, and undoing it right after,
which an old unsubscribe link can never do)."""

from __future__ import annotations

import email
import email.policy
import html
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from render_samples import load_papers, select
from sqlalchemy import func
from sqlalchemy import select as select_rows

from digest.match import parse_interests
from digest.message import Message
from digest.paper import Paper
from digest.render import DigestRenderer
from digest.store import Database
from digest.store.feedback import LESS, MORE, Vote, record_vote, sync_seeds, votes_of
from digest.store.models import OutboxMessageRow, OutboxRow, SubscriberRow
from digest.store.outbox import queue_message
from digest.store.papers import save_papers
from digest.store.subscribers import change_status, create_subscriber, get_subscriber
from digest.subscriber import Subscriber
from digest.tokens import make_token, read_token
from digest.web import create_app
from tests.messages import build_digest
from tests.web_support import BASE_URL, NOW, SECRET, Clock, Site, csrf_token

ONE_CLICK = {"List-Unsubscribe": "One-Click"}
OTHER_SECRET = "another-secret-entirely-0123456789-abcdefgh"


def _add(site: Site, status: str = "active", **fields: Any) -> Subscriber:
    values = {"interests": "diffusion", "send_time": "08:00", "timezone": "UTC", **fields}
    with site.database.session() as session:
        ada = create_subscriber(
            session,
            values.pop("email", "ada@example.org"),
            now=NOW,
            status="pending" if status == "pending" else "active",
            **values,
        )
        if status not in ("active", "pending"):
            change_status(session, ada.id, status, NOW)
    return _reload(site, ada)


def _reload(site: Site, subscriber: Subscriber) -> Subscriber:
    with site.database.session() as session:
        found = get_subscriber(session, subscriber.id)
    assert found is not None
    return found


@pytest.fixture
def ada(site: Site) -> Subscriber:
    return _add(site)


def _manage(site: Site, who: Subscriber) -> str:
    return f"/manage/{site.token('manage', who)}"


# --- the manage page ----------------------------------------------------------------


def test_the_manage_page_shows_the_saved_settings(site: Site) -> None:
    ada = _add(site, interests="diffusion\nauthor:Colin Raffel", send_time="06:15",
               timezone="America/New_York")  # fmt: skip
    page = site.get(_manage(site, ada)).get_data(as_text=True)
    assert "ada@example.org" in page and '<span class="badge on">On</span>' in page
    assert "diffusion\nauthor:Colin Raffel</textarea>" in page
    assert 'value="06:15"' in page
    assert '<option selected value="America/New_York">America/New York</option>' in page
    assert 'data-detect="0"' in page  # the saved zone stays; the browser's is not guessed
    # 10:00 UTC is 06:00 in New York: the next digest is today's.
    words = " ".join(page.split())
    assert "Next digest: Friday 12 June at 06:15 (America/New York)." in words
    assert "Pause my digests" in page


def test_changes_are_saved_and_the_next_digest_rescheduled(site: Site, ada: Subscriber) -> None:
    assert ada.next_digest_at == datetime(2026, 6, 13, 8, 0, tzinfo=UTC)
    site.clock.advance(hours=1)
    data = {"interests": "world model, -survey", "send_time": "18:00", "timezone": "Europe/Paris"}
    link = _manage(site, ada)
    saved = site.submit(link, data)
    assert saved.status_code == 303
    assert saved.headers["Location"] == link + "?done=saved"  # the link it was sent to
    now = _reload(site, ada)
    assert (now.interests, now.send_time, now.timezone) == (
        "world model, -survey",
        "18:00",
        "Europe/Paris",
    )
    # 18:00 in Paris is 16:00 UTC, still to come today.
    assert now.next_digest_at == datetime(2026, 6, 12, 16, 0, tzinfo=UTC)
    page = site.get(saved.headers["Location"]).get_data(as_text=True)
    assert "Your changes are saved." in page and "world model, -survey</textarea>" in page


def test_a_mistake_on_the_manage_form_saves_nothing(site: Site, ada: Subscriber) -> None:
    data = {"interests": "agents\ntitle:", "send_time": "09:00", "timezone": "UTC"}
    response = site.submit(_manage(site, ada), data)
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Nothing was saved" in page
    assert "Entry 2 (“title:”)" in page
    assert "agents\ntitle:</textarea>" in page  # what was typed is kept
    assert _reload(site, ada).interests == "diffusion"
    assert _reload(site, ada).send_time == "08:00"


def test_pause_and_resume(site: Site, ada: Subscriber) -> None:
    manage = _manage(site, ada)
    paused = site.submit(f"{manage}/pause", page=manage)
    assert paused.status_code == 303 and paused.headers["Location"] == f"{manage}?done=paused"
    now = _reload(site, ada)
    assert now.status == "paused" and now.next_digest_at is None
    page = site.get(paused.headers["Location"]).get_data(as_text=True)
    assert "Done: your digests are paused." in page and "Resume my digests" in page
    assert '<span class="badge off">Paused</span>' in page
    # Pausing again (a second tab) changes nothing and says nothing.
    again = site.submit(f"{manage}/pause", page=manage)
    assert again.headers["Location"] == manage
    site.clock.advance(days=3)
    resumed = site.submit(f"{manage}/resume", page=manage)
    assert resumed.headers["Location"] == f"{manage}?done=resumed"
    now = _reload(site, ada)
    assert now.status == "active"
    assert now.next_digest_at == datetime(2026, 6, 16, 8, 0, tzinfo=UTC)
    assert "Your digests are on again." in site.get(resumed.headers["Location"]).get_data(
        as_text=True
    )


def test_a_bounced_address_can_be_reactivated(site: Site) -> None:
    ada = _add(site, status="bounced")
    with site.database.session() as session:
        session.get(SubscriberRow, ada.id).consecutive_failures = 5
    manage = _manage(site, ada)
    page = site.get(manage).get_data(as_text=True)
    assert "Mail to this address was refused" in page and "Send to this address again" in page
    site.clock.advance(days=2)
    done = site.submit(f"{manage}/reactivate", page=manage)
    assert done.headers["Location"] == f"{manage}?done=reactivated"
    now = _reload(site, ada)
    assert (now.status, now.consecutive_failures) == ("active", 0)
    assert now.next_digest_at == datetime(2026, 6, 15, 8, 0, tzinfo=UTC)
    # Only a bounced address is reactivated: pressing it again changes nothing.
    assert site.submit(f"{manage}/reactivate", page=manage).headers["Location"] == manage


def test_status_buttons_need_their_csrf_token(site: Site, ada: Subscriber) -> None:
    manage = _manage(site, ada)
    site.get(manage)
    for data in ({}, {"csrf_token": "forged"}):
        response = site.client.post(f"{manage}/pause", data=data)
        assert response.status_code == 400
        assert "This form has expired" in response.get_data(as_text=True)
    assert _reload(site, ada).status == "active"


def test_an_unknown_action_does_nothing(site: Site, ada: Subscriber) -> None:
    manage = _manage(site, ada)
    response = site.submit(f"{manage}/unsubscribe-everyone", page=manage)
    assert response.status_code == 400
    assert "that button did not work" in response.get_data(as_text=True).lower()
    assert site.get(f"{manage}/pause").status_code == 405  # a GET never changes anything
    assert _reload(site, ada).status == "active"


@pytest.mark.parametrize("status", ["pending", "unsubscribed"])
def test_the_manage_page_is_for_subscriptions_only(site: Site, status: str) -> None:
    who = _add(site, status=status)
    response = site.get(_manage(site, who))
    body = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "This subscription is not active" in body and "ada@example.org" not in body


# --- the sample ---------------------------------------------------------------------


def _store_papers(site: Site) -> None:
    with site.database.session() as session:
        save_papers(session, load_papers(), NOW - timedelta(hours=2))


def test_the_sample_digest_is_shown_in_the_page(site: Site) -> None:
    _store_papers(site)
    ada = _add(site, interests='title:"subspace clustering"')
    manage = _manage(site, ada)
    page = site.get(manage).get_data(as_text=True)
    assert "Show me a sample now" in page and "<iframe" not in page
    page = site.get(f"{manage}?sample=1").get_data(as_text=True)
    assert f'<iframe title="Sample digest" src="{manage}/sample">' in page
    sample = site.get(f"{manage}/sample")
    html = sample.get_data(as_text=True)
    assert sample.status_code == 200 and sample.mimetype == "text/html"
    assert "Diffusion Models Learn Low-Dimensional Distributions via" in html
    assert "Do LLM Agents Have Regret?" not in html  # only what the interests match
    assert '<head><base target="_blank">' in html  # its links open outside the frame
    policy = sample.headers["Content-Security-Policy"]
    assert "sandbox" in policy and "frame-ancestors 'self'" in policy
    assert "script-src" not in policy and "default-src 'none'" in policy
    assert sample.headers["X-Frame-Options"] == "SAMEORIGIN"


def test_a_sample_with_nothing_matched_says_so(site: Site) -> None:
    _store_papers(site)
    ada = _add(site, interests="zebrafish husbandry")
    html = site.get(f"{_manage(site, ada)}/sample").get_data(as_text=True)
    assert "Nothing new matched" in html


def test_samples_are_rate_limited_per_client(make_site: Any) -> None:
    site = make_site(web={"sample_limit": "2 per hour"})
    ada = _add(site, interests="diffusion")
    sample = f"{_manage(site, ada)}/sample"
    assert [site.get(sample).status_code for _ in range(2)] == [200, 200]
    refused = site.get(sample)
    assert refused.status_code == 429
    assert "Too many samples" in refused.get_data(as_text=True)
    # It is shown in the manage page's frame, where the sample would have been.
    assert refused.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert "frame-ancestors 'self'" in refused.headers["Content-Security-Policy"]
    assert site.get(_manage(site, ada)).status_code == 200  # the page itself is not limited


# --- unsubscribe --------------------------------------------------------------------


def _unsubscribe(site: Site, who: Subscriber) -> str:
    return f"/unsubscribe/{site.token('unsubscribe', who)}"


def test_the_unsubscribe_page_unsubscribes_only_when_its_button_is_pressed(
    site: Site, ada: Subscriber
) -> None:
    link = _unsubscribe(site, ada)
    page = site.get(link)
    body = page.get_data(as_text=True)
    assert page.status_code == 200
    assert body.count("<button") == 1 and ">Unsubscribe</button>" in body
    assert _reload(site, ada).status == "active"  # a link scanner unsubscribes nobody
    site.clock.advance(minutes=5)
    done = site.submit(link)
    body = done.get_data(as_text=True)
    assert done.status_code == 200
    assert "You are unsubscribed" in body and "Resubscribe" in body
    now = _reload(site, ada)
    assert (now.status, now.status_changed_at, now.next_digest_at) == (
        "unsubscribed",
        NOW + timedelta(minutes=5),
        None,
    )
    # The link keeps working: it says so, and offers to subscribe again.
    assert "already unsubscribed" in site.get(link).get_data(as_text=True)


UNDO = re.compile(r'action="(/resubscribe/[^"]+)"')


def _unsubscribed_page(site: Site, who: Subscriber) -> str:
    """Unsubscribe from the unsubscribe page, as a person does; the page that answers."""
    done = site.submit(_unsubscribe(site, who))
    assert done.status_code == 200
    page = done.get_data(as_text=True)
    assert "You are unsubscribed" in page
    return page


def _undo(client: FlaskClient, page: str) -> Any:
    """Press the Resubscribe button of an unsubscribed page, from `client`'s browser."""
    found = UNDO.search(page)
    assert found, "no Resubscribe button on the page"
    return client.post(found.group(1), data={"csrf_token": csrf_token(page)})


def _refused_undo(response: Any) -> None:
    body = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "only for 15 minutes, in the browser that unsubscribed" in body
    assert "sign up again" in body.lower()


def test_the_undo_button_resubscribes_within_fifteen_minutes(site: Site, ada: Subscriber) -> None:
    page = _unsubscribed_page(site, ada)
    assert "Resubscribe" in page and "for the next 15 minutes" in page
    assert 'href="/">sign up again</a>' in page  # and the way back after that
    site.clock.advance(minutes=14, seconds=59)
    back = _undo(site.client, page)
    body = back.get_data(as_text=True)
    assert back.status_code == 200 and "You are subscribed again" in body
    assert "Saturday 13 June at 08:00" in body
    # Its manage link is ada's (compared by what it names: tokens carry the second
    # they were made, so the same link made a second later is spelt differently).
    manage = re.search(r'href="/manage/([^"]+)"', body).group(1)
    assert read_token(SECRET, "manage", manage)[0] == ada.id
    assert _reload(site, ada).status == "active"
    # Pressed again (a second tab, a reload): that unsubscribe is undone already.
    _refused_undo(_undo(site.client, page))
    assert _reload(site, ada).status == "active"


def test_the_undo_button_expires_after_fifteen_minutes(site: Site, ada: Subscriber) -> None:
    page = _unsubscribed_page(site, ada)
    site.clock.advance(minutes=15, seconds=1)
    _refused_undo(_undo(site.client, page))
    assert _reload(site, ada).status == "unsubscribed"


def test_the_undo_button_works_only_in_the_browser_that_unsubscribed(
    site: Site, ada: Subscriber
) -> None:
    page = _unsubscribed_page(site, ada)
    # Someone else who got hold of the page (or its button's URL from a log): their own
    # session and CSRF token, the same undo token.
    other = site.app.test_client()
    signup = other.get("/").get_data(as_text=True)
    found = UNDO.search(page)
    assert found is not None
    response = other.post(found.group(1), data={"csrf_token": csrf_token(signup)})
    _refused_undo(response)
    assert _reload(site, ada).status == "unsubscribed"
    # The person's own browser still can.
    assert _undo(site.client, page).status_code == 200
    assert _reload(site, ada).status == "active"


def test_undo_returns_a_paused_reader_to_paused(site: Site) -> None:
    ada = _add(site, status="paused")
    page = _unsubscribed_page(site, ada)
    back = _undo(site.client, page)
    assert back.status_code == 200 and "Your digests are paused" in back.get_data(as_text=True)
    now = _reload(site, ada)
    assert (now.status, now.next_digest_at) == ("paused", None)


def test_an_old_unsubscribe_link_subscribes_nobody_again(site: Site) -> None:
    # An address unsubscribed long ago; its unsubscribe link sits in every old digest (a
    # forward, an archive, a List-Unsubscribe header a mail provider stored).
    ada = _add(site, status="unsubscribed")
    site.clock.advance(days=30)
    link = _unsubscribe(site, ada)
    # The link's token at the resubscribe address, with a valid CSRF token: refused.
    form = {"csrf_token": csrf_token(site.get("/").get_data(as_text=True))}
    response = site.client.post(f"/resubscribe/{site.token('unsubscribe', ada)}", data=form)
    assert _reload(site, ada).status == "unsubscribed"
    _refused_undo(response)
    # Its page says how to come back (signing up, confirmed by email), with no button.
    page = site.get(link).get_data(as_text=True)
    assert "already unsubscribed" in page
    assert "/resubscribe/" not in page and "<button" not in page
    assert 'href="/">sign up again</a>' in page
    # Pressing unsubscribe again (the page, or one-click) offers no undo either: that
    # request unsubscribed nobody.
    again = site.client.post(link, data=form)
    assert again.status_code == 200 and "/resubscribe/" not in again.get_data(as_text=True)
    provider = site.app.test_client(use_cookies=False)
    assert provider.post(link, data=ONE_CLICK).get_data(as_text=True) == "Unsubscribed.\n"
    now = _reload(site, ada)
    assert (now.status, now.next_digest_at, now.status_changed_at) == ("unsubscribed", None, NOW)


def test_an_unsubscribe_link_cannot_confirm_a_pending_sign_up(site: Site) -> None:
    # Ada left; a stranger signed her address up again (pending, unconfirmed).
    ada = _add(site, status="unsubscribed")
    with site.database.session() as session:
        change_status(session, ada.id, "pending", NOW)
    site.clock.advance(minutes=1)
    # Her old unsubscribe link does not confirm that sign-up...
    form = {"csrf_token": csrf_token(site.get("/").get_data(as_text=True))}
    response = site.client.post(f"/resubscribe/{site.token('unsubscribe', ada)}", data=form)
    assert _reload(site, ada).status == "pending"
    _refused_undo(response)
    # ...it unsubscribes it, with no undo button: there was no subscription to go back to.
    page = _unsubscribed_page(site, _reload(site, ada))
    assert "/resubscribe/" not in page and "Resubscribe" not in page
    assert _reload(site, ada).status == "unsubscribed"


def test_an_undo_undoes_only_its_own_unsubscribe(site: Site, ada: Subscriber) -> None:
    page = _unsubscribed_page(site, ada)
    # Within the minutes, the address is signed up again (pending, perhaps a stranger).
    site.clock.advance(minutes=2)
    with site.database.session() as session:
        change_status(session, ada.id, "pending", site.clock())
    _refused_undo(_undo(site.client, page))
    assert _reload(site, ada).status == "pending"
    # ...and unsubscribed again with the old link: still not that unsubscribe.
    site.clock.advance(minutes=1)
    site.app.test_client(use_cookies=False).post(_unsubscribe(site, ada), data=ONE_CLICK)
    _refused_undo(_undo(site.client, page))
    assert _reload(site, ada).status == "unsubscribed"


def test_a_tampered_undo_button(site: Site, ada: Subscriber) -> None:
    page = _unsubscribed_page(site, ada)
    action = UNDO.search(page).group(1)
    for bad in (action[:-4], action + "x", action.replace(".", "x", 1)):
        response = site.client.post(bad, data={"csrf_token": csrf_token(page)})
        assert response.status_code == 400, bad
    assert _reload(site, ada).status == "unsubscribed"


@pytest.fixture
def any_site(store_database: Database, make_settings: Any) -> Iterator[Site]:
    """The app on each backend (SQLite, PostgreSQL), on a clock with microseconds."""
    settings = make_settings(web={"secret_key": SECRET}, service={"base_url": BASE_URL})
    clock = Clock(NOW + timedelta(microseconds=123456))
    app = create_app(settings, database=store_database, clock=clock)
    site = Site(app, settings, store_database, clock)
    yield site
    courier = app.extensions["digest"].courier
    if courier is not None:
        courier.stop()


def test_undo_on_each_backend(any_site: Site) -> None:
    # The undo names its unsubscribe by the instant it was written, microseconds and all.
    ada = _add(any_site)
    page = _unsubscribed_page(any_site, ada)
    any_site.clock.advance(minutes=5)
    assert _undo(any_site.client, page).status_code == 200
    now = _reload(any_site, ada)
    assert (now.status, now.status_changed_at) == ("active", any_site.clock())


def test_a_page_unsubscribe_needs_its_csrf_token(site: Site, ada: Subscriber) -> None:
    link = _unsubscribe(site, ada)
    site.get(link)
    response = site.client.post(link, data={"csrf_token": "forged"})
    assert response.status_code == 400
    assert "press it once more" in response.get_data(as_text=True)
    assert _reload(site, ada).status == "active"
    # The page it answers has a fresh button that works.
    assert site.submit(link).status_code == 200
    assert _reload(site, ada).status == "unsubscribed"


def _digest_for(site: Site, who: Subscriber) -> email.message.EmailMessage:
    renderer = DigestRenderer(site.settings, SECRET)
    papers = load_papers()[:40]
    message = renderer.render_digest(who, select(papers, ["diffusion"]), NOW.date(), now=NOW)
    return email.message_from_bytes(message.data, policy=email.policy.default)  # type: ignore[return-value]


def test_one_click_unsubscribe_from_the_list_unsubscribe_header(
    site: Site, ada: Subscriber
) -> None:
    digest = _digest_for(site, ada)
    assert digest["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = re.fullmatch(r"<([^>]+)>", digest["List-Unsubscribe"]).group(1)
    assert url.startswith(BASE_URL + "/unsubscribe/")
    # The mail provider posts from its own servers: no cookie, no CSRF token, no page.
    provider = site.app.test_client(use_cookies=False)
    response = provider.post(url.removeprefix(BASE_URL), data=ONE_CLICK)
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "Unsubscribed.\n"
    assert "Set-Cookie" not in response.headers
    assert _reload(site, ada).status == "unsubscribed"
    # Posting it again (providers retry) is just as fine.
    assert provider.post(url.removeprefix(BASE_URL), data=ONE_CLICK).status_code == 200


def test_one_click_also_comes_as_multipart(site: Site, ada: Subscriber) -> None:
    provider = site.app.test_client(use_cookies=False)
    response = provider.post(
        _unsubscribe(site, ada), data=ONE_CLICK, content_type="multipart/form-data"
    )
    assert response.status_code == 200
    assert _reload(site, ada).status == "unsubscribed"


def test_a_bare_post_is_not_a_one_click_unsubscribe(site: Site, ada: Subscriber) -> None:
    provider = site.app.test_client(use_cookies=False)
    for data in ({}, {"List-Unsubscribe": "yes"}):
        assert provider.post(_unsubscribe(site, ada), data=data).status_code == 400
    assert _reload(site, ada).status == "active"


def test_the_digest_links_lead_to_the_pages(site: Site, ada: Subscriber) -> None:
    text = _digest_for(site, ada).get_body(("plain",)).get_content()
    for purpose, heading in (("manage", "Your subscription"), ("unsubscribe", "Unsubscribe")):
        path = re.search(re.escape(BASE_URL) + rf"(/{purpose}/\S+)", text).group(1)
        page = site.get(path)
        assert page.status_code == 200 and f"<h1>{heading}</h1>" in page.get_data(as_text=True)


def test_tampered_and_wrong_purpose_links(site: Site, ada: Subscriber) -> None:
    manage = site.token("manage", ada)
    unsubscribe = site.token("unsubscribe", ada)
    for path in (
        f"/manage/{unsubscribe}",
        f"/unsubscribe/{manage}",
        f"/manage/{manage[:-4]}",
        f"/unsubscribe/{unsubscribe}AAAA",
        f"/manage/{manage[:-4]}/sample",
    ):
        response = site.get(path)
        body = response.get_data(as_text=True)
        assert response.status_code == 400, path
        assert "This link does not work" in body and "ada@example.org" not in body
    provider = site.app.test_client(use_cookies=False)
    assert provider.post(f"/unsubscribe/{manage}", data=ONE_CLICK).status_code == 400
    assert _reload(site, ada).status == "active"


# --- trending on the manage form -----------------------------------------------------


def _form_fields(page: str) -> dict[str, str]:
    """What the manage form would post as it is shown (inputs, textarea, selections)."""
    fields = {}
    for tag in re.findall(r"<input[^>]*>", page):
        name = re.search(r'name="([^"]+)"', tag)
        if name is None or name.group(1) in ("csrf_token", "website"):
            continue
        if 'type="checkbox"' in tag:
            if " checked" in tag:
                fields[name.group(1)] = "y"
            continue
        value = re.search(r'value="([^"]*)"', tag)
        fields[name.group(1)] = html.unescape(value.group(1)) if value else ""
    textarea = re.search(
        r'<textarea[^>]*name="interests"[^>]*>(?:\r?\n)?(.*?)</textarea>', page, re.S
    )
    assert textarea is not None
    fields["interests"] = html.unescape(textarea.group(1))
    for name, options in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', page, re.S):
        chosen = re.search(r'<option selected value="([^"]+)"', options)
        assert chosen is not None, name
        fields[name] = chosen.group(1)
    return fields


@pytest.mark.parametrize(
    "interests",
    ["diffusion\n-survey\ntrending:5 upvotes>=20", "trending:3\ndiffusion", "trending"],
)
def test_the_manage_form_shows_trending_as_its_box_and_saves_it_unchanged(
    site: Site, interests: str
) -> None:
    ada = _add(site, interests=interests)
    page = site.get(_manage(site, ada)).get_data(as_text=True)
    fields = _form_fields(page)
    assert fields["trending"] == "y"
    assert "trending" not in fields["interests"]  # the rule is the box, not a line
    saved = site.submit(_manage(site, ada), fields)
    errors = re.findall(r'class="error"[^<]*<', saved.get_data(as_text=True))
    assert saved.status_code == 303, errors
    # The same list, the rule where it was: its section stays where the reader put it.
    assert parse_interests(_reload(site, ada).interests) == parse_interests(interests)


def test_unticking_trending_on_the_manage_form_removes_it(site: Site) -> None:
    ada = _add(site, interests="diffusion\ntrending")
    fields = _form_fields(site.get(_manage(site, ada)).get_data(as_text=True))
    del fields["trending"]
    assert site.submit(_manage(site, ada), fields).status_code == 303
    assert _reload(site, ada).interests == "diffusion"


# --- the reader's data: download it, delete it ---------------------------------------


def _data(site: Site, who: Subscriber) -> str:
    return f"{_manage(site, who)}/data.json"


def _delete(site: Site, who: Subscriber) -> str:
    return f"{_manage(site, who)}/delete"


def test_the_manage_page_offers_the_data_and_its_deletion(site: Site, ada: Subscriber) -> None:
    manage = _manage(site, ada)  # one token: a second boundary between two would change it
    page = site.get(manage).get_data(as_text=True)
    assert f'<a href="{manage}/data.json" download>Download my data</a>' in page
    assert f'<a href="{manage}/delete">Delete my subscription entirely</a>' in page


def test_the_data_download_holds_everything_stored_but_no_message_body(
    site: Site, ada: Subscriber
) -> None:
    digest = _digest_for(site, ada)
    with site.database.session() as session:
        queue_message(
            session, subscriber_id=ada.id, kind="digest", digest_date=NOW.date(),
            message=Message("digest@example.org", ada.email, digest["Message-ID"],
                            digest.as_bytes()),
            now=NOW,
        )  # fmt: skip
    response = site.get(_data(site, ada))
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="digest-data-2026-06-12.json"'
    )
    assert response.headers["Cache-Control"] == "no-store"
    held = json.loads(response.get_data(as_text=True))
    assert held["email"] == "ada@example.org" and held["status"] == "active"
    assert held["schedule"] == "every day at 08:00 (UTC)"
    assert held["next_digest_at"] == "2026-06-13T08:00:00+00:00"
    assert set(held) >= {"interests", "consent", "created_at", "confirmed_at", "last_digest_at"}
    [message] = held["messages"]
    assert (message["kind"], message["digest_date"], message["state"]) == (
        "digest",
        "2026-06-12",
        "queued",
    )
    assert message["message_id"] == digest["Message-ID"]
    assert "Your paper digest" not in response.get_data(as_text=True)  # no body


def test_the_data_and_deletion_work_for_a_reader_who_unsubscribed(site: Site) -> None:
    uma = _add(site, status="unsubscribed")
    assert site.get(_manage(site, uma)).status_code == 400  # the settings: not any more
    assert json.loads(site.get(_data(site, uma)).get_data(as_text=True))["status"] == (
        "unsubscribed"
    )
    assert site.get(_delete(site, uma)).status_code == 200


def test_the_data_of_another_reader_or_a_forged_link_is_refused(
    site: Site, ada: Subscriber
) -> None:
    bob = _add(site, email="bob@example.org")
    token = site.token("manage", ada)
    for path in (
        f"/manage/{token[:-3]}AAA/data.json",
        f"/manage/{site.token('unsubscribe', ada)}/data.json",
        f"/manage/{make_token(SECRET, 'manage', bob.id, ada.email)}/data.json",
        f"/manage/{make_token(OTHER_SECRET, 'manage', ada.id, ada.email)}/data.json",
    ):
        response = site.get(path)
        body = response.get_data(as_text=True)
        assert response.status_code == 400, path
        assert "This link does not work" in body and "@example.org" not in body
    assert site.client.post(_data(site, ada)).status_code == 400  # no such button
    assert site.client.put(_data(site, ada)).status_code == 405


def test_deleting_takes_a_button_press_and_then_every_link_is_dead(
    site: Site, ada: Subscriber
) -> None:
    with site.database.session() as session:
        queue_message(
            session, subscriber_id=ada.id, kind="digest", digest_date=NOW.date(),
            message=build_digest(ada.id, ada.email, NOW.date(), papers=2), now=NOW,
        )  # fmt: skip
    links = {
        "manage": _manage(site, ada),
        "unsubscribe": _unsubscribe(site, ada),
        "confirm": f"/confirm/{site.token('confirm', ada)}",
        "data": _data(site, ada),
        "sample": f"{_manage(site, ada)}/sample",
    }
    page = site.get(_delete(site, ada))
    body = page.get_data(as_text=True)
    assert page.status_code == 200  # a link scanner fetching the page deletes nothing
    assert body.count("<button") == 1 and ">Delete everything</button>" in body
    assert "ada@example.org" in body and "cannot be undone" in body
    assert site.client.head(_delete(site, ada)).status_code == 200
    for method in (site.client.put, site.client.delete, site.client.patch):
        assert method(_delete(site, ada)).status_code == 405
    # Without its CSRF token the button does nothing.
    assert site.client.post(_delete(site, ada), data={"csrf_token": "forged"}).status_code == 400
    assert _reload(site, ada).status == "active"
    done = site.submit(_delete(site, ada))
    assert done.status_code == 200
    assert "Everything is deleted" in done.get_data(as_text=True)
    with site.database.session() as session:
        assert get_subscriber(session, ada.id) is None
        assert session.scalar(select_rows(func.count()).select_from(OutboxRow)) == 0
        assert session.scalar(select_rows(func.count()).select_from(OutboxMessageRow)) == 0
    for name, path in links.items():
        response = site.get(path)
        assert response.status_code == 400, name
        assert "This link does not work" in response.get_data(as_text=True), name
    # Pressed again (a second tab): the invalid-link page, not an error.
    assert site.client.post(_delete(site, ada), data={"csrf_token": "x"}).status_code == 400
    # A mail client's one-click unsubscribe still hears that the address is unsubscribed
    # (RFC 8058 clients retry on errors); the page's own button gets the invalid-link page.
    provider = site.app.test_client(use_cookies=False)
    answer = provider.post(links["unsubscribe"], data=ONE_CLICK)
    assert (answer.status_code, answer.get_data(as_text=True)) == (200, "Unsubscribed.\n")
    form = {"csrf_token": csrf_token(site.get("/").get_data(as_text=True))}
    assert site.client.post(links["unsubscribe"], data=form).status_code == 400


def test_an_old_one_click_link_never_unsubscribes_the_next_owner_of_its_id(site: Site) -> None:
    # SQLite may give an erased reader's id to the next sign-up: the address in the link
    # tells them apart.
    ada = _add(site)
    link = _unsubscribe(site, ada)
    site.submit(_delete(site, ada))
    bob = _add(site, email="bob@example.org")
    provider = site.app.test_client(use_cookies=False)
    assert provider.post(link, data=ONE_CLICK).status_code == 200
    assert _reload(site, bob).status == "active"


def test_the_unsubscribed_page_links_to_deleting_everything(site: Site, ada: Subscriber) -> None:
    page = _unsubscribed_page(site, ada)
    found = re.search(
        r'<a href="(/manage/[^"]+/delete)">delete everything we hold about you</a>', page
    )
    assert found, page
    site.submit(found.group(1))
    with site.database.session() as session:
        assert get_subscriber(session, ada.id) is None


def test_in_a_browser_the_data_downloads_and_the_delete_button_deletes(tmp_path: Any) -> None:
    """Headless Chromium on the app served by waitress: the manage page's links, the
    download, the delete page's one button, at phone width; no CSP violation."""
    import threading
    from pathlib import Path

    from waitress import create_server

    from digest.config import load_settings
    from digest.store import open_database
    from tests.browser import headless_chromium

    holder: dict[str, Any] = {}
    server = create_server(
        lambda environ, start: holder["app"](environ, start), host="127.0.0.1", port=0
    )
    url = f"http://127.0.0.1:{server.effective_port}"  # type: ignore[union-attr]
    settings = load_settings(
        environ={},
        overrides={
            "service": {"data_dir": str(tmp_path / "data"), "base_url": url},
            "web": {"secret_key": SECRET},
        },
    )
    database = open_database(settings)
    holder["app"] = app = create_app(settings, database=database, clock=Clock())
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    site = Site(app, settings, database, Clock())
    try:
        ada = _add(site)
        with headless_chromium() as chromium:
            context = chromium.new_context(viewport={"width": 375, "height": 740})
            context.add_init_script(
                "window.__violations = []; document.addEventListener("
                "'securitypolicyviolation', e => window.__violations.push(e.violatedDirective));"
            )
            page = context.new_page()
            page.goto(url + _manage(site, ada))
            with page.expect_download() as download:
                page.click("text=Download my data")
            saved = Path(download.value.path())
            assert json.loads(saved.read_text())["email"] == "ada@example.org"
            assert download.value.suggested_filename.startswith("digest-data-")
            page.click("text=Delete my subscription entirely")
            assert page.locator("h1").inner_text() == "Delete your subscription"
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 375
            page.click("button[type=submit]")
            assert page.locator("h1").inner_text() == "Everything is deleted"
            assert page.evaluate("window.__violations") == []
            page.goto(url + _manage(site, ada))
            assert page.locator("h1").inner_text() == "This link does not work"
            context.close()
        with database.session() as session:
            assert get_subscriber(session, ada.id) is None
    finally:
        server.close()
        server.task_dispatcher.shutdown()  # type: ignore[union-attr]
        thread.join(timeout=5)
        site.stop()


# --- what the reader taught it, and how many suggestions -------------------------------

TAUGHT_PAPERS = [
    Paper(id="2606.00467", title="Diffusion & “friends”", abstract="About diffusion.",
          url_abs="https://arxiv.org/abs/2606.00467"),
    Paper(id="2606.00468", title="Agents that plan", abstract="About agents."),
]  # fmt: skip


def _taught(site: Site, ada: Subscriber) -> dict[str, Vote]:
    """Ada's papers voted on the way a digest's links and her interests do, by paper id:
    more (oldest), less, and a seed not stored yet (newest)."""
    with site.database.session() as session:
        save_papers(session, TAUGHT_PAPERS, NOW)
        record_vote(session, ada.id, "2606.00467", MORE, "email", NOW - timedelta(days=2))
        record_vote(session, ada.id, "2606.00468", LESS, "email", NOW - timedelta(days=1))
        sync_seeds(session, ada.id, ["2509.24002"], NOW)
        return {vote.paper_id: vote for vote in votes_of(session, ada.id)}


def _section(page: str) -> str:
    start = page.index('id="taught-heading"')
    return page[start : page.index("</section>", start)]


def test_the_manage_page_lists_what_the_reader_taught_newest_first(
    site: Site, ada: Subscriber
) -> None:
    votes = _taught(site, ada)
    token = site.token("manage", ada)  # once: two made across a second boundary differ
    section = _section(site.get(f"/manage/{token}").get_data(as_text=True))
    words = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", section)).split())
    assert words.index("2509.24002") < words.index("Agents that plan")
    assert words.index("Agents that plan") < words.index("Diffusion & “friends”")
    assert "Diffusion & “friends” more like this · Wednesday 10 June at 10:00" in words
    assert "Agents that plan less like this · Thursday 11 June at 10:00" in words
    assert "2509.24002 seed paper · Friday 12 June at 10:00" in words
    # Each title links to the paper: its stored page, or arXiv's for a paper not stored.
    assert '<a href="https://arxiv.org/abs/2606.00467">Diffusion &amp; “friends”</a>' in section
    assert '<a href="https://arxiv.org/abs/2509.24002">2509.24002</a>' in section
    # Undo for the links' votes; a seed is undone by removing its like: line.
    for paper_id in ("2606.00467", "2606.00468"):
        assert f'action="/manage/{token}/feedback/{votes[paper_id].id}/undo"' in section
    assert f"/feedback/{votes['2509.24002'].id}/undo" not in section
    assert "like:2509.24002" in words and "remove that line" in words


def test_the_manage_page_says_when_nothing_was_taught(site: Site, ada: Subscriber) -> None:
    section = _section(site.get(_manage(site, ada)).get_data(as_text=True))
    assert "Nothing yet" in section and "/undo" not in section


def test_undo_removes_the_vote_and_says_so(site: Site, ada: Subscriber) -> None:
    votes = _taught(site, ada)
    manage = _manage(site, ada)
    undone = site.submit(f"{manage}/feedback/{votes['2606.00467'].id}/undo", page=manage)
    assert undone.status_code == 303
    assert undone.headers["Location"] == f"{manage}?done=removed&vote=more&paper=2606.00467"
    page = site.get(undone.headers["Location"]).get_data(as_text=True)
    assert "Removed: more like “Diffusion &amp; “friends””." in page
    assert "Diffusion &amp; “friends”</a>" not in _section(page)
    with site.database.session() as session:
        assert {vote.paper_id for vote in votes_of(session, ada.id)} == {
            "2606.00468",
            "2509.24002",
        }
    # Pressed again (another tab): nothing left to remove, no notice.
    again = site.submit(f"{manage}/feedback/{votes['2606.00467'].id}/undo", page=manage)
    assert again.status_code == 303 and again.headers["Location"] == manage


def test_undo_of_a_less_vote(site: Site, ada: Subscriber) -> None:
    votes = _taught(site, ada)
    manage = _manage(site, ada)
    undone = site.submit(f"{manage}/feedback/{votes['2606.00468'].id}/undo", page=manage)
    page = site.get(undone.headers["Location"]).get_data(as_text=True)
    assert "Removed: less like “Agents that plan”." in page


def test_undo_cannot_touch_another_readers_vote_or_a_seed(site: Site, ada: Subscriber) -> None:
    votes = _taught(site, ada)
    bob = _add(site, email="bob@example.org")
    bobs = _manage(site, bob)
    for vote in votes.values():  # Bob's link, Ada's vote ids: nothing happens
        answer = site.submit(f"{bobs}/feedback/{vote.id}/undo", page=bobs)
        assert answer.status_code == 303 and answer.headers["Location"] == bobs
    manage = _manage(site, ada)
    seed = site.submit(f"{manage}/feedback/{votes['2509.24002'].id}/undo", page=manage)
    assert seed.headers["Location"] == manage
    huge = site.submit(f"{manage}/feedback/{2**70}/undo", page=manage)
    assert huge.status_code == 303
    with site.database.session() as session:
        assert len(votes_of(session, ada.id)) == 3


def test_undo_needs_its_csrf_token_and_a_post(site: Site, ada: Subscriber) -> None:
    votes = _taught(site, ada)
    path = f"{_manage(site, ada)}/feedback/{votes['2606.00467'].id}/undo"
    site.get(_manage(site, ada))
    assert site.client.post(path, data={}).status_code == 400
    assert site.get(path).status_code == 405
    forged = f"/manage/{site.token('feedback', ada)}/feedback/{votes['2606.00467'].id}/undo"
    assert site.submit(forged, page=_manage(site, ada)).status_code == 400
    with site.database.session() as session:
        assert len(votes_of(session, ada.id)) == 3


def _save_suggestions(site: Site, ada: Subscriber, value: str) -> Any:
    fields = _form_fields(site.get(_manage(site, ada)).get_data(as_text=True))
    return site.submit(_manage(site, ada), {**fields, "suggestions": value})


def test_the_manage_form_shows_and_saves_the_suggestions(site: Site, ada: Subscriber) -> None:
    page = site.get(_manage(site, ada)).get_data(as_text=True)
    assert _form_fields(page)["suggestions"] == "5"
    assert "Suggested for you" in page and "0 turns them off" in page
    for value, saved in (("0", 0), ("20", 20), (" 7 ", 7)):
        answer = _save_suggestions(site, ada, value)
        assert answer.status_code == 303, value
        assert _reload(site, ada).suggestions == saved
    page = site.get(_manage(site, ada)).get_data(as_text=True)
    assert _form_fields(page)["suggestions"] == "7"


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("21", "Choose from 0 to 20 papers (0 turns them off)."),
        ("-1", "Choose from 0 to 20 papers (0 turns them off)."),
        ("", "Choose from 0 to 20 papers (0 turns them off)."),
        ("abc", "Enter a whole number, such as 5."),
        ("2.5", "Enter a whole number, such as 5."),
    ],
)
def test_a_wrong_number_of_suggestions_saves_nothing(
    site: Site, ada: Subscriber, value: str, error: str
) -> None:
    answer = _save_suggestions(site, ada, value)
    page = answer.get_data(as_text=True)
    assert answer.status_code == 400
    assert f'<p class="error" id="suggestions-error">{error}</p>' in page
    assert 'aria-invalid="true"' in page and "autofocus" in page
    assert _reload(site, ada).suggestions == 5


def test_a_form_without_the_suggestions_field_keeps_them(site: Site, ada: Subscriber) -> None:
    data = {"interests": "agents", "send_time": "09:00", "timezone": "UTC"}
    assert site.submit(_manage(site, ada), data).status_code == 303
    assert _reload(site, ada).suggestions == 5


def test_saving_like_entries_makes_them_seed_papers(site: Site, ada: Subscriber) -> None:
    fields = _form_fields(site.get(_manage(site, ada)).get_data(as_text=True))
    saved = site.submit(_manage(site, ada), {**fields, "interests": "diffusion\nlike:2509.24002"})
    assert saved.status_code == 303
    with site.database.session() as session:
        assert [(v.paper_id, v.source) for v in votes_of(session, ada.id)] == [
            ("2509.24002", "seed")
        ]
    saved = site.submit(_manage(site, ada), {**fields, "interests": "diffusion"})
    with site.database.session() as session:
        assert votes_of(session, ada.id) == []


def test_the_interests_help_explains_like(site: Site, ada: Subscriber) -> None:
    for path in (_manage(site, ada), "/"):
        page = site.get(path).get_data(as_text=True)
        assert "<code>like:2509.24002</code> — papers like this one." in page, path


@pytest.mark.parametrize(
    "query",
    ["vote=more&paper=%00", "vote=sideways&paper=2606.00467", f"vote=less&paper={'9' * 65}"],
)
def test_a_hand_made_removed_notice_says_nothing(site: Site, ada: Subscriber, query: str) -> None:
    page = site.get(f"{_manage(site, ada)}?done=removed&{query}")
    assert page.status_code == 200 and "Removed:" not in page.get_data(as_text=True)


def test_the_removed_notice_names_a_paper_not_stored_by_its_id(site: Site, ada: Subscriber) -> None:
    page = site.get(f"{_manage(site, ada)}?done=removed&vote=less&paper=2509.24002")
    assert "Removed: less like “2509.24002”." in page.get_data(as_text=True)
