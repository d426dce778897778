"""The web forms, with their validation (Flask-WTF: every form carries a CSRF token).

Interests are checked by the same parser the matcher uses, so what the form accepts is
exactly what the daily run understands; its error names the entry at fault. Addresses
are checked and normalised by email-validator, then by the check the emails' headers
are written with, so an address the form accepts can always be mailed.
"""

from __future__ import annotations

from functools import cache
from zoneinfo import available_timezones

from flask import request
from flask_wtf import FlaskForm
from flask_wtf.form import _Auto  # the "read the request" sentinel Flask-WTF passes
from wtforms import EmailField, SelectField, StringField, TextAreaField, TimeField
from wtforms.validators import InputRequired, Length, ValidationError

from digest.address import AddressError, check_address
from digest.errors import InterestSyntaxError
from digest.match import parse_interests
from digest.match.query import MAX_CHARS, MAX_ENTRIES

MAX_EMAIL = 254
MAX_INTERESTS = MAX_CHARS

INTERESTS_HELP = f"One per line, or separated by commas; up to {MAX_ENTRIES}. Case does not matter."


@cache
def _all_time_zones() -> tuple[tuple[str, str], ...]:
    zones = sorted(z for z in available_timezones() if "/" in z or z == "UTC")
    return tuple((zone, zone.replace("_", " ")) for zone in zones)


def time_zone_choices(*keep: str) -> list[tuple[str, str]]:
    """Every IANA region/city time zone and UTC, sorted, as (value, label) pairs.

    Zones in `keep` (the configured default, a subscriber's own) are listed too even if
    they are of the legacy kind the list leaves out ("EST5EDT"), so a form never
    silently moves someone to another zone.
    """
    choices = list(_all_time_zones())
    known = {value for value, _ in choices}
    extra = sorted({zone for zone in keep if zone and zone not in known})
    return [*((zone, zone) for zone in extra), *choices]


def normalise_email(address: str, check_dns: bool) -> str:
    """The address as email-validator normalises it; raises ValueError with its reason.

    Only addresses plain SMTP can carry, on a domain the internet routes mail to
    (`digest.address.check_address`, public): no quoted or non-ASCII local parts
    (international domain names are fine).
    """
    try:
        return check_address(address, public=True, check_dns=check_dns).normalized
    except AddressError as error:
        raise ValueError(error.reason) from None


def address_key(address: str) -> str:
    """One key per mailbox for rate limiting, however the address was written."""
    address = address.strip()  # as the sign-up reads it, so both name the same mailbox
    try:
        return normalise_email(address, check_dns=False).lower()
    except ValueError:
        return address.lower()


class InterestsField(TextAreaField):
    """A textarea checked with the interest parser."""

    def process_formdata(self, valuelist: list[str]) -> None:
        super().process_formdata(valuelist)
        if self.data:  # browsers send a textarea's lines ending in CRLF; store them with \n
            self.data = self.data.replace("\r\n", "\n").replace("\r", "\n")

    def pre_validate(self, form: FlaskForm) -> None:
        text = (self.data or "").strip()
        if not text:
            raise ValidationError("Enter at least one interest, such as: diffusion")
        if len(text) > MAX_INTERESTS:
            raise ValidationError(
                f"That is {len(text):,} characters; interests can be at most {MAX_INTERESTS:,}."
            )
        try:
            parse_interests(text)
        except InterestSyntaxError as error:
            raise ValidationError(_describe(error)) from None


def _describe(error: InterestSyntaxError) -> str:
    """The parser's reason as a sentence, naming the entry at fault (shortened if long)."""
    if error.entry:
        text = error.text if len(error.text) <= 80 else error.text[:79] + "…"
        return f"Entry {error.entry} (“{text}”): {error.reason}."
    return error.reason[:1].upper() + error.reason[1:] + "."


class FormOnly(FlaskForm):
    """A form filled only from an HTML form's fields (`request.form`).

    Flask-WTF would also take uploaded files and a JSON body as field values: a file
    object or a number where text is expected broke the validators (a 500 anyone could
    cause). Pages post plain fields, so nothing else is read.
    """

    class Meta:
        def wrap_formdata(self, form: object, formdata: object) -> object:
            if formdata is not _Auto:
                return formdata
            return request.form if request.method == "POST" else None


class PreferencesForm(FormOnly):
    """Interests and delivery time: shared by the signup and the manage forms."""

    interests = InterestsField("Your interests", description=INTERESTS_HELP)
    send_time = TimeField(
        "Send my digest at",
        format=["%H:%M", "%H:%M:%S"],
        validators=[InputRequired("Enter a time of day, such as 08:00.")],
    )
    timezone = SelectField("Time zone", choices=[], validate_choice=True)

    def __init__(self, *args: object, keep_zones: tuple[str, ...] = (), **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.timezone.choices = time_zone_choices(*keep_zones)

    def preferences(self) -> dict[str, str]:
        """The validated interests, send time and time zone, as the store keeps them."""
        return {
            "interests": (self.interests.data or "").strip(),
            "send_time": self.send_time.data.strftime("%H:%M"),
            "timezone": self.timezone.data,
        }


class SignupForm(PreferencesForm):
    """The signup form. `website` is a honeypot: hidden from people, filled by bots."""

    email = EmailField(
        "Email address",
        validators=[
            InputRequired("Enter your email address."),
            Length(max=MAX_EMAIL, message=f"An email address has at most {MAX_EMAIL} characters."),
        ],
    )
    website = StringField("Leave this empty")

    def validate_all(self, check_dns: bool) -> str | None:
        """Check every field at once; the normalised address if all is well, else None
        with each reason attached to its field."""
        valid = self.validate()
        if self.email.errors:
            return None
        try:
            address = normalise_email((self.email.data or "").strip(), check_dns)
        except ValueError as error:
            self.email.errors = [*self.email.errors, str(error)]
            return None
        return address if valid else None


class ManageForm(PreferencesForm):
    """The manage form: interests, time and time zone."""


class ButtonForm(FormOnly):
    """A form that is only a button (confirm, unsubscribe, resubscribe, pause)."""
