"""Signing up and confirming (double opt-in), with the real mail path: the confirmation
email goes through render and send to an aiosmtpd server, and the test follows its link.
Also what stops abuse of the form: rate limits, the honeypot, and answers that never tell
whether an address is subscribed."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import email_validator.deliverability
import pytest
from email_validator import EmailUndeliverableError

from digest.schedule import Scheduler
from digest.store.subscribers import change_status, create_subscriber
from digest.tokens import make_token
from tests.web_support import NOW, SECRET, Site, csrf_token, link_path

MAIL = {"from_address": "digest@example.org", "from_name": "Paper digest"}


@pytest.fixture
def mailed(make_site: Any) -> Site:
    """The app sending its mail over SMTP to a real server on loopback."""
    return make_site(smtp=True, mail=MAIL)


def _confirm_link(site: Site, count: int = 1) -> str:
    return link_path(site.mails(count)[count - 1], "confirm")


# --- the form -----------------------------------------------------------------------


def test_the_form_has_a_label_for_every_field_and_explains_the_syntax(make_site: Any) -> None:
    site = make_site(service={"timezone": "Europe/Berlin"}, schedule={"default_send_time": "06:45"})
    page = site.get("/").get_data(as_text=True)
    for field in ("email", "interests", "send_time", "timezone"):
        assert f'<label for="{field}">' in page
        assert f'id="{field}"' in page
    assert 'type="email"' in page and 'autocomplete="email"' in page
    assert 'type="time"' in page and 'value="06:45"' in page
    assert '<option selected value="Europe/Berlin">Europe/Berlin</option>' in page
    assert 'data-detect="1"' in page  # timezone.js may put the browser's zone in its place
    assert "<code>rlhf AND reward model</code>" in page  # the syntax, by example
    assert "<code>-survey</code>" in page
    assert 'aria-describedby="interests-help"' in page


def test_a_legacy_default_time_zone_is_offered_and_kept(make_site: Any) -> None:
    site = make_site(service={"timezone": "EST5EDT"})
    page = site.get("/").get_data(as_text=True)
    assert '<option selected value="EST5EDT">EST5EDT</option>' in page
    assert site.signup(timezone="EST5EDT").status_code == 303
    assert site.subscriber().timezone == "EST5EDT"


def test_the_signup_page_kept_for_all_carries_each_visitors_own_token(site: Site) -> None:
    # GET / is written once and kept; each visitor's token is filled in. A page that
    # showed the first visitor's token to the next would let one forge the other's posts.
    first, second = site.app.test_client(), site.app.test_client()
    pages = [client.get("/").get_data(as_text=True) for client in (first, second, first)]
    tokens = [csrf_token(page) for page in pages]
    # One per session: the same secret signed again (the second it was signed differs
    # when the clock ticks between the requests, so only the signed part is compared).
    signed = [token.split(".")[0] for token in tokens]
    assert signed[0] != signed[1] and signed[0] == signed[2]
    shown = {page.replace(token, "TOKEN") for page, token in zip(pages, tokens, strict=True)}
    # The first was written afresh, the others taken from what was kept: all alike.
    assert len(shown) == 1 and "{csrf token slot}" not in shown.pop()
    posted = {"email": "ada@example.org", "interests": "diffusion", "send_time": "07:30"}
    answer = second.post("/", data={**posted, "timezone": "UTC", "csrf_token": tokens[1]})
    assert answer.status_code == 303


# --- double opt-in ------------------------------------------------------------------


def test_sign_up_confirm_by_email_and_nothing_sent_before(mailed: Site) -> None:
    response = mailed.signup("Ada.Lovelace@Example.ORG", interests="diffusion, rlhf")
    assert response.status_code == 303
    assert response.headers["Location"] == "/check-your-email"
    assert "Check your email" in mailed.get("/check-your-email").get_data(as_text=True)
    pending = mailed.subscriber("ada.lovelace@example.org")
    assert pending.email == "Ada.Lovelace@example.org"  # the domain normalised
    assert (pending.status, pending.interests) == ("pending", "diffusion, rlhf")
    assert (pending.send_time, pending.timezone) == ("07:30", "Europe/Paris")
    assert pending.next_digest_at is None  # no digest is scheduled before confirming

    (message,) = mailed.mails(1)
    assert message["To"] == "Ada.Lovelace@example.org"
    assert message["From"] == "Paper digest <confirm@example.org>"  # not the digest sender
    assert "List-Unsubscribe" not in message and "List-Id" not in message
    assert mailed.smtp.received[0].sender == "confirm@example.org"
    assert "diffusion, rlhf" in message.get_body(("plain",)).get_content()
    link = link_path(message, "confirm")

    # Following the link (or a scanner fetching it) shows one button and confirms nobody.
    page = mailed.get(link)
    body = page.get_data(as_text=True)
    assert page.status_code == 200
    assert body.count("<button") == 1 and "Confirm my subscription" in body
    assert mailed.subscriber("ada.lovelace@example.org").status == "pending"
    assert mailed.outbox() == [("confirm", "Ada.Lovelace@example.org")]

    confirmed = mailed.submit(link)
    assert confirmed.status_code == 200
    text = confirmed.get_data(as_text=True)
    assert "You are subscribed" in text
    # 10:00 UTC on Friday 12 June is 12:00 in Paris: the first digest is Saturday's.
    assert "Saturday 13 June at 07:30" in text
    active = mailed.subscriber("ada.lovelace@example.org")
    assert active.status == "active" and active.confirmed_at == NOW
    assert active.next_digest_at is not None
    # Pressing again (or the link again) just says so.
    again = mailed.get(link).get_data(as_text=True)
    assert "You are already subscribed" in again
    assert mailed.outbox() == [("confirm", "Ada.Lovelace@example.org")]


def test_the_confirmation_comes_from_the_configured_address(make_site: Any) -> None:
    site = make_site(smtp=True, mail={**MAIL, "confirm_from": "welcome@lists.example.org"})
    site.signup()
    (message,) = site.mails(1)
    assert message["From"] == "Paper digest <welcome@lists.example.org>"
    assert site.smtp.received[0].sender == "welcome@lists.example.org"


def _answer(response: Any) -> tuple[int, str | None, bytes]:
    return response.status_code, response.headers.get("Location"), response.get_data()


def test_the_answer_says_when_a_new_email_can_be_asked_for(site: Site) -> None:
    # Whatever was asked and by whom, a new email can be had 10 minutes from now at the
    # latest: the page says when, from the clock alone (so it tells nothing of the
    # address), rounded up to the minute.
    site.signup()
    page = " ".join(site.get("/check-your-email").get_data(as_text=True).split())
    assert "at most one email every 10 minutes" in page
    assert "from <strong>10:10 UTC</strong> at the latest" in page
    assert "after a few minutes" not in page
    site.clock.advance(seconds=30)
    later = site.get("/check-your-email").get_data(as_text=True)
    assert "<strong>10:11 UTC</strong>" in later


def test_the_answer_is_the_same_whoever_signs_up(mailed: Site) -> None:
    with mailed.database.session() as session:
        create_subscriber(
            session,
            "known@example.org",
            "agents",
            send_time="08:00",
            timezone="UTC",
            now=NOW,
            status="active",
        )
    new = mailed.signup("new@example.org")
    known = mailed.signup("known@example.org")
    again = mailed.signup("new@example.org")
    assert _answer(new) == _answer(known) == _answer(again)
    assert _answer(mailed.client.get("/check-your-email")) == _answer(
        mailed.app.test_client().get("/check-your-email")
    )
    # The known address gets its manage link, and its settings are untouched.
    assert mailed.outbox() == [("confirm", "new@example.org"), ("manage", "known@example.org")]
    message = next(m for m in mailed.mails(2) if m["To"] == "known@example.org")
    assert "List-Unsubscribe" not in message
    manage = mailed.get(link_path(message, "manage"))
    assert manage.status_code == 200 and "known@example.org" in manage.get_data(as_text=True)
    assert mailed.subscriber("known@example.org").interests == "agents"


def test_resends_at_most_once_per_ten_minutes(mailed: Site) -> None:
    mailed.signup()
    mailed.clock.advance(minutes=9, seconds=59)
    mailed.signup()
    assert len(mailed.outbox("confirm")) == 1
    mailed.clock.advance(seconds=1)
    mailed.signup(interests="agents")
    assert len(mailed.outbox("confirm")) == 2
    first, second = mailed.mails(2)
    # Each email offers its own sign-up's settings; none is stored before a confirmation.
    assert "agents" in second.get_body(("plain",)).get_content()
    assert mailed.subscriber().interests == "diffusion\nlarge language model"
    # Either link confirms, with the settings its email showed.
    assert mailed.submit(link_path(first, "confirm")).status_code == 200
    assert mailed.subscriber().status == "active"
    assert mailed.subscriber().interests == "diffusion\nlarge language model"
    later = mailed.get(link_path(second, "confirm")).get_data(as_text=True)
    assert "You are already subscribed" in later


def test_an_active_address_gets_its_manage_link_at_the_same_pace(site: Site) -> None:
    with site.database.session() as session:
        create_subscriber(
            session,
            "ada@example.org",
            "agents",
            send_time="08:00",
            timezone="UTC",
            now=NOW,
            status="active",
        )
    for _ in range(3):
        site.signup()
    assert site.outbox() == [("manage", "ada@example.org")]
    site.clock.advance(minutes=10)
    site.signup()
    assert site.outbox("manage") == [("manage", "ada@example.org")] * 2
    # The maildir backend delivers them too.
    assert [m["To"] for m in site.mails(2)] == ["ada@example.org"] * 2
    assert site.subscriber().status == "active"


def _stored(site: Site) -> tuple[str, str, str, str]:
    found = site.subscriber()
    assert found is not None
    return found.status, found.interests, found.send_time, found.timezone


def test_a_sign_up_for_a_known_address_changes_nothing_before_its_confirmation(
    mailed: Site,
) -> None:
    # Ada unsubscribed; a stranger signs her address up again, with interests of theirs.
    mailed.add_reader("ada@example.org", "agents", status="unsubscribed")
    mailed.clock.advance(days=30)
    mailed.signup(interests="world model", send_time="18:00", timezone="Europe/Paris")
    # Her settings stay hers: pending now, nothing sent but the confirmation.
    assert _stored(mailed) == ("pending", "agents", "08:00", "UTC")
    assert mailed.subscriber().next_digest_at is None
    (message,) = mailed.mails(1)
    assert mailed.smtp.received[0].recipients == ("ada@example.org",)
    text = message.get_body(("plain",)).get_content()
    assert "world model" in text and "agents" not in text  # what confirming applies
    link = link_path(message, "confirm")
    page = mailed.get(link).get_data(as_text=True)  # the confirm page says so too
    assert "world model" in page and "18:00 (Europe/Paris)" in page
    assert _stored(mailed) == ("pending", "agents", "08:00", "UTC")
    # Ada reads the email and confirms: now, and only now, the new settings apply.
    mailed.clock.advance(hours=1)
    done = mailed.submit(link).get_data(as_text=True)
    assert "You are subscribed" in done
    assert _stored(mailed) == ("active", "world model", "18:00", "Europe/Paris")
    # 11:00 UTC on Sunday 12 July is 13:00 in Paris: the first digest is at 18:00 today.
    assert "Sunday 12 July at 18:00" in done
    assert mailed.subscriber().next_digest_at == datetime(2026, 7, 12, 16, 0, tzinfo=UTC)


def test_a_second_sign_up_in_the_resend_pause_changes_nothing(mailed: Site) -> None:
    # Ada signs up; minutes later someone else signs her address up with other interests.
    mailed.signup(interests="diffusion")
    mailed.clock.advance(minutes=5)
    mailed.signup(interests="astrology", send_time="03:00", timezone="UTC")
    assert _stored(mailed) == ("pending", "diffusion", "07:30", "Europe/Paris")
    (message,) = mailed.mails(1)
    assert len(mailed.outbox("confirm")) == 1  # the pause: nothing more was sent
    mailed.submit(link_path(message, "confirm"))
    assert _stored(mailed) == ("active", "diffusion", "07:30", "Europe/Paris")


def test_the_longest_interest_list_travels_in_its_confirm_link(mailed: Site) -> None:
    # 50 interests, 1,999 characters: about the most the form takes, carried in the link.
    interests = "\n".join(f"interest number {n:02d} about topicxxxxxxxxx" for n in range(50))
    assert len(interests) == 1999
    mailed.signup(interests="agents")
    mailed.clock.advance(minutes=10)
    assert mailed.signup(interests=interests).status_code == 303
    link = link_path(mailed.mails(2)[1], "confirm")
    assert mailed.submit(link).status_code == 200
    assert _stored(mailed)[:2] == ("active", interests)


def test_a_confirm_link_without_settings_confirms_the_stored_ones(site: Site) -> None:
    # Links sent before confirm links carried settings (and those `send_transactional`
    # makes without any) still confirm, with the settings stored.
    with site.database.session() as session:
        ada = create_subscriber(
            session, "ada@example.org", "diffusion", send_time="08:00", timezone="UTC", now=NOW
        )
    site.submit(f"/confirm/{site.token('confirm', ada)}")
    assert _stored(site) == ("active", "diffusion", "08:00", "UTC")


def test_unconfirmed_sign_ups_are_deleted_after_seven_days(mailed: Site) -> None:
    mailed.signup("early@example.org")
    link = _confirm_link(mailed)
    mailed.clock.advance(days=1)
    mailed.signup("later@example.org")
    mailed.clock.advance(days=6, minutes=1)
    Scheduler(mailed.settings, mailed.database, mailed.clock).cleanup()
    assert mailed.subscriber("early@example.org") is None
    assert mailed.subscriber("later@example.org") is not None
    page = mailed.get(link)
    assert page.status_code == 400
    assert "This confirm link is not valid" in page.get_data(as_text=True)


# --- links that do not work -----------------------------------------------------------


@pytest.fixture
def pending(site: Site) -> Any:
    with site.database.session() as session:
        return create_subscriber(
            session, "ada@example.org", "diffusion", send_time="08:00", timezone="UTC", now=NOW
        )


def _invalid(site: Site, path: str, reason: str) -> None:
    response = site.get(path)
    body = response.get_data(as_text=True)
    assert response.status_code == 400, path
    assert "This link does not work" in body and reason in body
    assert "ada@example.org" not in body and "Traceback" not in body


def test_a_tampered_confirm_link(site: Site, pending: Any) -> None:
    token = site.token("confirm", pending)
    flipped = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    for bad in (flipped, token[:-6], token + "x", "x" * 500, "../../etc/passwd"):
        response = site.get(f"/confirm/{bad}")
        assert response.status_code in (400, 404), bad
        assert "ada@example.org" not in response.get_data(as_text=True)
    _invalid(site, f"/confirm/{flipped}", "This confirm link is not valid.")
    # Signed with another secret: not ours.
    foreign = make_token("another-secret-entirely-0123456789", "confirm", pending.id, "a")
    _invalid(site, f"/confirm/{foreign}", "This confirm link is not valid.")
    assert site.subscriber().status == "pending"


def test_a_confirm_link_for_another_address_with_the_same_id(site: Site, pending: Any) -> None:
    token = make_token(SECRET, "confirm", pending.id, "eve@example.org")
    _invalid(site, f"/confirm/{token}", "This confirm link is not valid.")
    gone = make_token(SECRET, "confirm", pending.id + 100, "ada@example.org")
    _invalid(site, f"/confirm/{gone}", "This confirm link is not valid.")


def test_a_confirm_link_expires_after_seven_days(
    site: Site, pending: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = time.time
    with monkeypatch.context() as patch:  # itsdangerous stamps tokens with time.time()
        patch.setattr(time, "time", lambda: real() - 7 * 86400 - 60)
        old = site.token("confirm", pending)
        patch.setattr(time, "time", lambda: real() - 7 * 86400 + 60)
        recent = site.token("confirm", pending)
    _invalid(site, f"/confirm/{old}", "This confirm link has expired.")
    assert site.get(f"/confirm/{recent}").status_code == 200
    # Unsubscribe links never expire.
    with monkeypatch.context() as patch:
        patch.setattr(time, "time", lambda: real() - 400 * 86400)
        unsubscribe = site.token("unsubscribe", pending)
    assert site.get(f"/unsubscribe/{unsubscribe}").status_code == 200


def test_each_link_serves_only_its_own_purpose(site: Site, pending: Any) -> None:
    confirm = site.token("confirm", pending)
    for path in (f"/unsubscribe/{confirm}", f"/manage/{confirm}", f"/manage/{confirm}/sample"):
        _invalid(site, path, "link is not valid")
    site.submit(f"/confirm/{confirm}")
    active = site.subscriber()
    for purpose in ("manage", "unsubscribe"):
        _invalid(site, f"/confirm/{site.token(purpose, active)}", "This confirm link is not valid")
    # POSTs too: a confirm token cannot unsubscribe, even one-click.
    response = site.client.post(f"/unsubscribe/{confirm}", data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 400
    assert site.subscriber().status == "active"


def test_a_confirm_link_after_unsubscribing_does_not_subscribe(site: Site, pending: Any) -> None:
    link = f"/confirm/{site.token('confirm', pending)}"
    with site.database.session() as session:
        change_status(session, pending.id, "unsubscribed", NOW)
    _invalid(site, link, "no longer valid: sign up again")


# --- bad input ------------------------------------------------------------------------


def test_an_invalid_confirm_post_does_not_confirm(site: Site, pending: Any) -> None:
    link = f"/confirm/{site.token('confirm', pending)}"
    site.get(link)
    assert site.client.post(link, data={"csrf_token": "forged"}).status_code == 400
    assert site.client.post(link).status_code == 400
    assert site.subscriber().status == "pending"


# --- abuse --------------------------------------------------------------------------


def test_a_filled_honeypot_gets_the_same_answer_and_nothing_else(site: Site) -> None:
    human = site.signup("ada@example.org")
    bot = site.signup("bot@example.org", data={"website": "http://spam.example"})
    assert _answer(bot) == _answer(human)
    assert site.subscriber("bot@example.org") is None
    assert site.outbox() == [("confirm", "ada@example.org")]


def test_the_honeypot_is_hidden_from_people(site: Site) -> None:
    page = site.get("/").get_data(as_text=True)
    trap = page[page.index('<div class="trap"') :]
    trap = trap[: trap.index("</div>")]
    assert 'aria-hidden="true"' in trap and 'tabindex="-1"' in trap and 'name="website"' in trap


def test_sign_ups_are_limited_per_client(make_site: Any) -> None:
    site = make_site(web={"signup_limit": "3 per hour", "address_limit": "10 per hour"})
    for n in range(3):
        assert site.signup(f"reader{n}@example.org").status_code == 303
    refused = site.signup("reader3@example.org", interests="agents")
    page = refused.get_data(as_text=True)
    assert refused.status_code == 429
    assert "Too many sign-ups" in page and "Nothing was sent" in page
    assert int(refused.headers["Retry-After"]) > 0
    # What was typed is kept on the form.
    assert 'value="reader3@example.org"' in page and "agents</textarea>" in page
    assert site.subscriber("reader3@example.org") is None
    # Another client is not affected.
    other = {"environ_base": {"REMOTE_ADDR": "192.0.2.7"}}
    assert site.signup("reader3@example.org", **other).status_code == 303


def test_sign_ups_are_limited_per_address_from_any_client(make_site: Any) -> None:
    site = make_site(web={"signup_limit": "10 per hour", "address_limit": "2 per hour"})
    clients = [{"environ_base": {"REMOTE_ADDR": f"192.0.2.{n}"}} for n in range(1, 5)]
    assert site.signup("ada@example.org", **clients[0]).status_code == 303
    assert site.signup("ADA@example.org", **clients[1]).status_code == 303
    assert site.signup(" ada@EXAMPLE.org ", **clients[2]).status_code == 429
    assert site.signup("bob@example.org", **clients[3]).status_code == 303


def test_rejected_forms_do_not_count_against_the_limits(make_site: Any) -> None:
    site = make_site(web={"signup_limit": "2 per hour", "address_limit": "2 per hour"})
    for _ in range(5):
        assert site.signup(interests='"unclosed').status_code == 400
    assert site.signup().status_code == 303
    assert site.signup().status_code == 303
    assert site.signup().status_code == 429


def test_the_honeypot_counts_against_the_limits(make_site: Any) -> None:
    site = make_site(web={"signup_limit": "2 per hour"})
    for n in range(2):
        site.signup(f"bot{n}@example.org", data={"website": "spam"})
    assert site.signup().status_code == 429


def test_behind_a_trusted_proxy_the_client_is_the_forwarded_address(make_site: Any) -> None:
    site = make_site(web={"signup_limit": "1 per hour", "trusted_proxies": 1})

    def via(client_ip: str) -> dict[str, Any]:
        return {"headers": {"X-Forwarded-For": client_ip}}

    assert site.signup("ada@example.org", **via("198.51.100.1")).status_code == 303
    assert site.signup("bob@example.org", **via("198.51.100.1")).status_code == 429
    assert site.signup("bob@example.org", **via("198.51.100.2")).status_code == 303


def test_without_trusted_proxies_a_forwarded_header_changes_nothing(make_site: Any) -> None:
    site = make_site(web={"signup_limit": "1 per hour"})
    assert site.signup("ada@example.org", headers={"X-Forwarded-For": "1.1.1.1"}).status_code == 303
    spoofed = site.signup("bob@example.org", headers={"X-Forwarded-For": "2.2.2.2"})
    assert spoofed.status_code == 429


def test_dns_is_checked_only_when_configured(
    make_site: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []

    def no_mail_server(domain: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        asked.append(domain)  # DNS is the internet: answered here instead
        raise EmailUndeliverableError(f"The domain name {domain} does not accept email.")

    monkeypatch.setattr(
        email_validator.deliverability, "validate_email_deliverability", no_mail_server
    )
    plain = make_site()
    assert plain.signup("ada@example.org").status_code == 303
    assert asked == []
    checking = make_site(web={"check_dns": True})
    refused = checking.signup("bob@nomail.example.org")
    assert refused.status_code == 400
    assert "does not accept email" in refused.get_data(as_text=True)
    assert asked == ["nomail.example.org"]
    assert checking.subscriber("bob@nomail.example.org") is None


def test_signing_up_again_leaves_an_address_confirmed_meanwhile_as_it_is(site: Site) -> None:
    # The sign-up read the address as pending; before it wrote, the confirm link was
    # clicked in another tab. The confirmed subscription keeps its settings.
    from sqlalchemy import update

    from digest.jobs.readers import store_sign_up
    from digest.store.models import SubscriberRow

    ada = site.add_reader("ada@example.org", "diffusion", status="pending")
    with site.database.session() as session:
        held = session.get(SubscriberRow, ada.id)  # as the sign-up read it: pending
        session.execute(
            update(SubscriberRow).where(SubscriberRow.id == ada.id).values(status="active"),
            execution_options={"synchronize_session": False},
        )
        preferences = {"interests": "agents", "send_time": "09:00", "timezone": "UTC"}
        _, kind = store_sign_up(session, "ada@example.org", preferences, NOW)
        assert held.status == "pending"  # the sign-up only ever saw it pending
    assert kind == "manage"
    assert (site.subscriber().status, site.subscriber().interests) == ("active", "diffusion")
