"""The web forms, with their validation (Flask-WTF: every form carries a CSRF token).

Interests are checked by the same parser the matcher uses, so what the form accepts is
exactly what the daily run understands; its error names the entry at fault.
"""

from __future__ import annotations

from functools import cache
from zoneinfo import available_timezones

from email_validator import EmailNotValidError, validate_email
from flask_wtf import FlaskForm
from wtforms import EmailField, SelectField, StringField, TextAreaField, TimeField
from wtforms.validators import DataRequired, Length, ValidationError

from digest.errors import InterestSyntaxError
from digest.match import parse_interests

MAX_EMAIL = 254
MAX_INTERESTS = 2000


@cache
def time_zone_choices() -> list[tuple[str, str]]:
    """Every IANA time zone, sorted, as (value, label) pairs."""
    zones = sorted(z for z in available_timezones() if "/" in z or z == "UTC")
    return [(zone, zone.replace("_", " ")) for zone in zones]


def normalise_email(address: str, check_dns: bool) -> str:
    """The address as email-validator normalises it; raises ValueError with its reason."""
    try:
        return validate_email(address, check_deliverability=check_dns).normalized
    except EmailNotValidError as error:
        raise ValueError(str(error)) from None


class InterestsField(TextAreaField):
    """A textarea checked with the interest parser."""

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
    if error.entry:
        return f'Entry {error.entry} ("{error.text}"): {error.reason}'
    return str(error.reason)


class PreferencesForm(FlaskForm):
    """Interests and delivery time: shared by the signup and the manage forms."""

    interests = InterestsField("Your interests")
    send_time = TimeField("Send my digest at", format="%H:%M", validators=[DataRequired()])
    timezone = SelectField("Time zone", choices=[], validate_choice=True)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.timezone.choices = time_zone_choices()


class SignupForm(PreferencesForm):
    """The signup form. `website` is a honeypot: hidden from people, filled by bots."""

    email = EmailField(
        "Email address",
        validators=[
            DataRequired("Enter your email address."),
            Length(max=MAX_EMAIL, message=f"An email address has at most {MAX_EMAIL} characters."),
        ],
    )
    website = StringField("Leave this empty")

    def validate_email_with(self, check_dns: bool) -> str | None:
        """The normalised address, or None with the reason attached to the field."""
        try:
            return normalise_email(self.email.data or "", check_dns)
        except ValueError as error:
            self.email.errors = [*self.email.errors, f"That address does not work: {error}"]
            return None


class ManageForm(PreferencesForm):
    """The manage form: preferences, plus which button was pressed."""


class ButtonForm(FlaskForm):
    """A form that is only a button (confirm, unsubscribe, resubscribe, pause)."""
