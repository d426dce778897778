"""The forms: every rejection is a clear message next to its field, with what the person
typed kept; interests are checked by the matcher's own parser, naming the entry at
fault; and whatever a person types is shown escaped, wherever it is shown."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from markupsafe import escape

from digest.match import parse_interests
from digest.store.subscribers import create_subscriber
from digest.subscriber import digest_day, next_send_at
from digest.web.forms import (
    MAX_EMAIL,
    ZoneField,
    address_key,
    normalise_email,
    time_zone_choices,
)
from tests.web_support import NOW, Site, link_path

ERROR = re.compile(r'<p class="error" id="(\w+)-error">([^<]*)</p>', re.S)


def _errors(page: str) -> dict[str, str]:
    """Each field's error message as the page shows it (unescaped, spaces collapsed)."""
    return {field: html.unescape(" ".join(text.split())) for field, text in ERROR.findall(page)}


def _words(page: str) -> str:
    return " ".join(page.split())


def _rejected(site: Site, **fields: Any) -> tuple[dict[str, str], str]:
    response = site.signup(**fields)
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert site.outbox() == [] and site.subscriber(fields.get("email", "ada@example.org")) is None
    return _errors(page), page


# --- addresses ----------------------------------------------------------------------


def _address(length: int) -> str:
    """A valid address of exactly `length` characters (64-character local part)."""
    local = "a" * 64
    labels, left = [], length - 65 - 4  # "@", and ".org" at the end
    while left > 0:
        size = min(63, left)
        labels.append("b" * size)
        left -= size + 1
    domain = ".".join(labels)
    domain += "c" * (length - 65 - 4 - len(domain))
    return f"{local}@{domain}.org"


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("", "Enter your email address."),
        ("ada", "An email address must have an @-sign."),
        ("ada@", "There must be something after the @-sign."),
        ("ada@example", "The part after the @-sign is not valid. It should have a period."),
        ("ada@@example.org", "The part after the @-sign contains invalid characters: '@'."),
        ("ada lovelace@example.org", "The email address contains invalid characters"),
        ("ada@example..org", "An email address cannot have two periods in a row."),
        ("ümlaut@example.org", "Internationalized characters before the @-sign are not supported"),
        ('"ada"@example.org', "Quoting the part before the @-sign is not allowed here."),
        ("ada@[192.0.2.1]", "A bracketed IP address after the @-sign is not allowed here."),
        ("ada@-example.org", "cannot have a hyphen immediately after the @-sign."),
        ("ada@example.123", "It is not within a valid top-level domain."),
        ("ada@example.org\r\nBcc: eve@example.org", "invalid characters"),
        (_address(MAX_EMAIL + 1), f"An email address has at most {MAX_EMAIL} characters."),
    ],
)
def test_bad_addresses_are_refused_next_to_the_field(site: Site, typed: str, message: str) -> None:
    errors, page = _rejected(site, email=typed)
    assert set(errors) == {"email"}
    assert message in errors["email"]
    assert 'aria-invalid="true"' in page and 'aria-describedby="email-error"' in page
    if typed and "\n" not in typed:
        assert f'value="{escape(typed)}"' in page  # kept as typed
    assert "diffusion\nlarge language model</textarea>" in page  # the rest is kept too
    assert "Please correct the field marked below." in _words(page)


def test_the_longest_address_is_accepted(site: Site) -> None:
    address = _address(MAX_EMAIL)
    assert len(address) == MAX_EMAIL
    assert site.signup(address).status_code == 303
    assert site.subscriber(address) is not None


def test_addresses_are_normalised() -> None:
    assert normalise_email("Ada@Example.ORG", check_dns=False) == "Ada@example.org"
    assert normalise_email("ada@Bücher.example", check_dns=False) == "ada@bücher.example"
    assert address_key(" ADA@example.org ") == address_key("ada@EXAMPLE.org") == ("ada@example.org")
    assert address_key("not an address") == "not an address"
    with pytest.raises(ValueError, match="@-sign"):
        normalise_email("nobody", check_dns=False)


def test_an_international_domain_is_stored_and_mailed(site: Site) -> None:
    assert site.signup("ada@bücher.example").status_code == 303
    assert site.subscriber("ada@bücher.example") is not None
    assert site.outbox() == [("confirm", "ada@xn--bcher-kva.example")]


# --- interests ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("", "Enter at least one interest, such as: diffusion"),
        ("   \n  ", "Enter at least one interest, such as: diffusion"),
        ('diffusion\n"world model\nrlhf', 'Entry 2 (“"world model”): a quote is not closed'),
        ("agents, ab*", "Entry 2 (“ab*”): a prefix needs at least 3 letters before the *"),
        ("venue:NeurIPS", 'Entry 1 (“venue:NeurIPS”): "venue:" is not a known field'),
        ("agents\n-survey AND -review", "Entry 2 (“-survey AND -review”): an exclusion"),
        ("-survey", "The list has only exclusions"),
        ("diffusion\nC:\\temp", "Entry 2 (“C:\\temp”): backslashes cannot be matched"),
        ("\n".join(f"topic{n}" for n in range(51)), "Entry 51 (“topic50”): too many interests"),
        ("x" * 2001, "That is 2,001 characters; interests can be at most 2,000."),
        (" ".join(["word"] * 13), "is too long: a phrase has at most 12 words"),
    ],
)
def test_bad_interests_name_the_entry_at_fault(site: Site, typed: str, message: str) -> None:
    errors, page = _rejected(site, interests=typed)
    assert set(errors) == {"interests"}
    assert message in errors["interests"]
    assert 'aria-describedby="interests-help interests-error"' in page
    assert 'value="ada@example.org"' in page  # the address is kept
    if typed.strip():
        assert f"{escape(typed)}</textarea>" in page


def test_the_form_accepts_exactly_what_the_matcher_accepts(site: Site) -> None:
    entries = [f"topic{n}" for n in range(50)]
    assert site.signup("fifty@example.org", interests="\n".join(entries)).status_code == 303
    stored = site.subscriber("fifty@example.org").interests
    assert len(parse_interests(stored).entries) == 50


def test_lines_are_stored_as_browsers_send_them_but_with_plain_newlines(site: Site) -> None:
    assert site.signup(interests="diffusion\r\nworld model\r\n").status_code == 303
    assert site.subscriber().interests == "diffusion\nworld model"


def test_a_long_entry_is_shortened_in_the_message(site: Site) -> None:
    entry = "title:" + "x" * 200 + " \\"
    errors, _ = _rejected(site, interests=f"agents\n{entry}")
    assert errors["interests"].startswith(f"Entry 2 (“{entry[:79]}…”): backslashes")


def test_every_mistake_is_shown_at_once(site: Site) -> None:
    errors, page = _rejected(
        site, email="ada@", interests='"open', send_time="25:61", timezone="Mars/Olympus"
    )
    assert set(errors) == {"email", "interests", "send_time", "timezone"}
    assert "Please correct the fields marked below." in _words(page)
    assert errors["send_time"] == "Not a valid time value."
    assert errors["timezone"] == "Not a valid choice."


def test_a_missing_time_is_refused(site: Site) -> None:
    errors, _ = _rejected(site, send_time="")
    assert errors == {"send_time": "Enter a time of day, such as 08:00."}


def test_times_with_seconds_are_accepted(site: Site) -> None:
    # Some browsers send the seconds of <input type="time">.
    assert site.signup(send_time="06:05:00").status_code == 303
    assert site.subscriber().send_time == "06:05"


def test_time_zone_choices() -> None:
    choices = dict(time_zone_choices())
    assert choices["UTC"] == "UTC"
    assert choices["America/Argentina/Buenos_Aires"] == "America/Argentina/Buenos Aires"
    assert "EST5EDT" not in choices and "posixrules" not in choices
    assert next(iter(dict(time_zone_choices("EST5EDT")))) == "EST5EDT"


# The time-zone <select> is written from a cache: it must be exactly what WTForms' own
# SelectField writes, for a zone in the list, a kept legacy one, none, and a forged one.
@pytest.mark.parametrize(
    ("keep", "value"),
    [
        ((), "Europe/Paris"),
        (("EST5EDT",), "EST5EDT"),
        (("UTC",), None),
        ((), "Mars/Olympus_Mons"),
        ((), '"><script>alert(1)</script>'),
    ],
)
def test_zone_select_is_written_as_wtforms_writes_it(
    keep: tuple[str, ...], value: str | None
) -> None:
    from wtforms import Form, SelectField

    class Stock(Form):
        timezone = SelectField("Time zone", choices=[], validate_choice=True)

    class Ours(Form):
        timezone = ZoneField("Time zone", validate_choice=True)

    stock, ours = Stock(), Ours()
    stock.timezone.choices = time_zone_choices(*keep)
    ours.timezone.keep_zones(keep)
    for form in (stock, ours):
        form.timezone.data = value
    attributes = {"autofocus": True, "data-detect": "1", "aria-invalid": "false"}
    assert ours.timezone(**attributes) == stock.timezone(**attributes)
    assert ours.timezone() == stock.timezone()
    for form in (stock, ours):
        form.timezone.process(None)
        form.timezone.process_formdata([value] if value is not None else [])
    assert ours.timezone.validate(ours) == stock.timezone.validate(stock)
    assert ours.timezone.errors == stock.timezone.errors


# --- escaping -----------------------------------------------------------------------

HOSTILE = "<script>alert(1)</script>"


def test_hostile_input_is_escaped_on_the_form(site: Site) -> None:
    _, page = _rejected(
        site,
        email=f'"><img src=x onerror=alert(1)>{HOSTILE}@example.org',
        interests=f'</textarea>{HOSTILE}\n" onfocus=alert(1) x=\\',
    )
    assert HOSTILE not in page and "<img src=x" not in page
    assert "&lt;/textarea&gt;&lt;script&gt;" in page
    # The parser's message quotes the entry at fault: escaped too.
    assert "Entry 2 (“&#34; onfocus=alert(1) x=\\”)" in page


def test_hostile_input_is_escaped_on_every_page_that_shows_it(site: Site) -> None:
    interests = f"{HOSTILE}\n</pre><b>bold</b>"
    assert site.signup(interests=interests).status_code == 303
    with site.database.session() as session:
        odd = create_subscriber(
            session,
            "o'neil+<b>@example.org",  # stored by other means; never shown raw either
            interests,
            send_time="08:00",
            timezone="UTC",
            now=NOW,
            status="active",
        )
    pending = site.subscriber()
    pages = [
        f"/confirm/{site.token('confirm', pending)}",
        f"/manage/{site.token('manage', odd)}",
        f"/unsubscribe/{site.token('unsubscribe', odd)}",
    ]
    for path in pages:
        page = site.get(path).get_data(as_text=True)
        assert HOSTILE not in page and "<b>" not in page, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page or "&lt;b&gt;" in page, path


# --- focus --------------------------------------------------------------------------


def test_the_first_field_with_a_mistake_gets_the_focus(site: Site) -> None:
    def focused(page: str) -> list[str]:
        tags = re.findall(r"<[^>]* autofocus[^>]*>", page)
        return [re.search(r' id="(\w+)"', tag).group(1) for tag in tags]

    assert focused(_rejected(site, interests='"open', send_time="")[1]) == ["interests"]
    assert focused(_rejected(site, email="nobody", interests='"open')[1]) == ["email"]
    assert focused(_rejected(site, timezone="Nowhere")[1]) == ["timezone"]
    assert focused(site.get("/").get_data(as_text=True)) == []


def test_the_address_key_is_the_stored_address_however_written() -> None:
    # A space after an IDNA-written domain used to give another key than the address the
    # sign-up stores, doubling that mailbox's limit.
    assert address_key("bob@xn--bcher-kva.de ") == address_key("bob@bücher.de")


# --- trending ---------------------------------------------------------------------


def test_trending_alone_is_a_whole_subscription(site: Site) -> None:
    response = site.signup(interests="", data={"trending": "y", "trending_count": "5"})
    assert response.status_code == 303
    stored = site.subscriber()
    assert stored is not None and stored.interests == "trending:5"
    parsed = parse_interests(stored.interests)
    assert parsed.trending is not None and parsed.trending.count == 5


def test_trending_and_interests_are_written_as_one_list(site: Site) -> None:
    fields = {"trending": "y", "trending_count": "10", "trending_min": "20"}
    assert site.signup(interests="diffusion\n-survey", data=fields).status_code == 303
    stored = site.subscriber()
    assert stored is not None and stored.interests == "diffusion\n-survey\ntrending upvotes>=20"


def test_an_empty_subscription_is_refused(site: Site) -> None:
    errors, _ = _rejected(site, interests="  ")
    assert errors["interests"] == (
        "Enter at least one interest, such as: diffusion; or choose the day's trending papers."
    )
    errors, _ = _rejected(site, interests="-survey")
    assert "only exclusions" in errors["interests"]
    # Exclusions with trending are a subscription: they veto trending papers.
    assert site.signup(interests="-survey", data={"trending": "y"}).status_code == 303


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"trending_count": "21"}, "trending_count", "Choose from 1 to 20 papers."),
        ({"trending_count": "0"}, "trending_count", "Choose at least 1 paper."),
        ({"trending_count": "many"}, "trending_count", "Enter a whole number, such as 5."),
        ({"trending_min": "-1"}, "trending_min", "Enter a number from 0 to 1,000,000."),
    ],
)
def test_bad_trending_numbers_are_refused_next_to_their_field(
    site: Site, fields: dict[str, str], field: str, message: str
) -> None:
    errors, page = _rejected(site, interests="", data={"trending": "y", **fields})
    assert errors == {field: message}
    assert f'id="{field}" aria-invalid="true"' in page or (
        'aria-invalid="true"' in page and f'id="{field}"' in page
    )


def test_trending_typed_and_ticked_is_refused_once_with_a_way_out(site: Site) -> None:
    errors, _ = _rejected(site, interests="diffusion\ntrending:3", data={"trending": "y"})
    assert "remove “trending” from your interests, or untick the box" in errors["interests"]


def test_trending_may_be_typed_as_an_interest_line(site: Site) -> None:
    assert site.signup(interests="trending:3 upvotes>=5, diffusion").status_code == 303
    stored = site.subscriber()
    assert stored is not None and stored.interests == "trending:3 upvotes>=5, diffusion"


def test_the_form_offers_trending_and_says_it_covers_hugging_face(site: Site) -> None:
    page = html.unescape(_words(site.get("/").get_data(as_text=True)))
    assert "The day's trending papers" in page
    assert (
        "arXiv papers have no upvotes, so trending covers the papers listed on Hugging Face" in page
    )
    assert "<code>trending</code>" in page  # in the syntax table
    assert 'max="20"' in page  # the digest's size, [match] max_papers


def test_interests_tried_on_the_search_page_come_to_the_form(site: Site) -> None:
    page = site.get("/?interests=diffusion%0A-survey").get_data(as_text=True)
    assert "diffusion\n-survey</textarea>" in page
    page = site.get("/?interests=trending:5%0Adiffusion").get_data(as_text=True)
    assert "diffusion</textarea>" in page and 'checked id="trending"' in page
    assert re.search(r'<input[^>]*id="trending_count"[^>]*value="5"', page)
    hostile = site.get("/?interests=%3C/textarea%3E%3Cscript%3Ex%3C/script%3E").get_data(
        as_text=True
    )
    assert "<script>x" not in hostile and "&lt;/textarea&gt;&lt;script&gt;x" in hostile
    too_long = site.get("/?interests=" + "a" * 2001).get_data(as_text=True)
    assert "a" * 100 not in too_long


# --- how often: daily or weekly -------------------------------------------------------


def test_the_forms_offer_every_day_or_one_day_a_week(site: Site) -> None:
    page = site.get("/").get_data(as_text=True)
    assert '<label for="cadence">How often</label>' in page
    choices = re.findall(r'<option (?:selected )?value="([^"]+)">([^<]+)</option>', page)
    offered = [value for value, _ in choices if value == "daily" or value.startswith("weekly")]
    assert offered == ["daily", *(f"weekly:{d}" for d in WEEKLY)]
    assert '<option selected value="daily">Every day</option>' in page
    assert '<option value="weekly:mon">Every week, on Monday</option>' in page


WEEKLY = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def test_a_weekly_sign_up_is_confirmed_weekly_on_its_day(site: Site) -> None:
    assert site.signup(data={"cadence": "weekly:fri"}).status_code == 303
    stored = site.subscriber()
    assert stored is not None and stored.cadence == "weekly:fri"
    message = site.mails(1)[0]
    text = " ".join(message.get_body(("plain",)).get_content().split())
    assert "asked to get a weekly email (Fridays) from" in text
    link = link_path(message, "confirm")
    assert "One email every Friday to" in " ".join(site.get(link).get_data(as_text=True).split())
    assert site.submit(link).status_code == 200
    active = site.subscriber()
    assert active is not None and (active.status, active.consent) == ("active", "link")
    assert active.next_digest_at is not None
    assert digest_day(active.next_digest_at, "Europe/Paris").weekday() == 4  # a Friday


def test_signing_up_again_weekly_applies_it_only_when_confirmed(site: Site) -> None:
    site.add_reader("ada@example.org", "agents", status="unsubscribed")
    site.signup(data={"cadence": "weekly:sun"})
    assert site.subscriber().cadence == "daily"  # changed by nobody but the mailbox owner
    site.submit(link_path(site.mails(1)[0], "confirm"))
    assert site.subscriber().cadence == "weekly:sun"


def test_an_unknown_cadence_is_refused_next_to_its_field(site: Site) -> None:
    for bad in ("weekly", "weekly:monday", "monthly", ""):
        errors, _ = _rejected(site, data={"cadence": bad})
        assert errors == {"cadence": "Not a valid choice."}, bad


def test_switching_cadence_on_the_manage_page_reschedules_the_next_digest(site: Site) -> None:
    ada = site.add_reader("ada@example.org", "agents", timezone="Europe/Paris")
    path = f"/manage/{site.token('manage', ada)}"
    page = site.get(path).get_data(as_text=True)
    assert '<option selected value="daily">' in page and "One email a day." in page
    fields = {"interests": "agents", "send_time": "08:00", "timezone": "Europe/Paris"}
    assert site.submit(path, {**fields, "cadence": "weekly:wed"}).status_code == 303
    weekly = site.subscriber()
    assert weekly is not None and weekly.cadence == "weekly:wed"
    assert weekly.next_digest_at is not None
    assert digest_day(weekly.next_digest_at, "Europe/Paris").weekday() == 2
    page = site.get(path).get_data(as_text=True)
    assert '<option selected value="weekly:wed">' in page
    assert "One email every Wednesday." in " ".join(page.split())
    # The watermark is the reader's, whatever the cadence: only the due time moved.
    assert weekly.last_digest_at == ada.last_digest_at
    assert site.submit(path, {**fields, "cadence": "daily"}).status_code == 303
    daily = site.subscriber()
    assert daily is not None and daily.next_digest_at == next_send_at("08:00", "Europe/Paris", NOW)
