"""The web forms, with their validation (Flask-WTF: every form carries a CSRF token).

Interests are checked by the same parser the matcher uses, so what the form accepts is
exactly what the daily run understands; its error names the entry at fault. Addresses
are checked and normalised by email-validator, then by the check the emails' headers
are written with, so an address the form accepts can always be mailed.
"""

from __future__ import annotations

from functools import cache, lru_cache
from typing import Any
from zoneinfo import available_timezones

from flask import request
from flask_wtf import FlaskForm
from flask_wtf.form import _Auto  # the "read the request" sentinel Flask-WTF passes
from markupsafe import Markup
from wtforms import (
    BooleanField,
    EmailField,
    HiddenField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
    TimeField,
)
from wtforms.meta import DefaultMeta
from wtforms.validators import (
    InputRequired,
    Length,
    NumberRange,
    Optional,
    StopValidation,
    ValidationError,
)
from wtforms.widgets import Select, html_params

from digest.address import AddressError, check_address
from digest.errors import InterestSyntaxError
from digest.match import Trending, parse_interests
from digest.match.query import (
    DEFAULT_TRENDING,
    MAX_CHARS,
    MAX_ENTRIES,
    MAX_TRENDING,
    MAX_UPVOTES,
    parse_trending,
    split_entries,
)
from digest.subscriber import DAILY, MAX_SUGGESTIONS, WEEKDAYS, weekly

MAX_EMAIL = 254
# One digest a day, or one a week on a chosen day (digest.subscriber.parse_cadence).
CADENCE_CHOICES = [
    (DAILY, "Every day"),
    *((weekly(index), f"Every week, on {day.capitalize()}") for index, day in enumerate(WEEKDAYS)),
]
MAX_INTERESTS = MAX_CHARS

INTERESTS_HELP = f"One per line, or separated by commas; up to {MAX_ENTRIES}. Case does not matter."
SUGGESTIONS_HELP = (
    "Up to this many papers per digest, like those you marked “more like this”, in a "
    f"section of their own: from 0 to {MAX_SUGGESTIONS}; 0 turns them off."
)
SUGGESTIONS_RANGE = f"Choose from 0 to {MAX_SUGGESTIONS} papers (0 turns them off)."
TRENDING_HELP = (
    "The most upvoted papers on Hugging Face Daily Papers since your last digest, in a "
    "section of their own. arXiv papers have no upvotes, so trending covers the papers "
    "listed on Hugging Face. Your exclusions (-survey) apply to them too."
)


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
    return list(_zone_choices(keep))


@lru_cache(maxsize=64)
def _zone_choices(keep: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    # One tuple per set of kept zones (the configured one, each subscriber's own): the
    # forms share it, and it keys the caches of the rendered options and the values.
    choices = _all_time_zones()
    known = _zone_values(choices)
    extra = sorted({zone for zone in keep if zone and zone not in known})
    return (*((zone, zone) for zone in extra), *choices)


@lru_cache(maxsize=64)
def _zone_values(choices: tuple[tuple[str, str], ...]) -> frozenset[str]:
    return frozenset(value for value, _ in choices)


@lru_cache(maxsize=256)
def _zone_options(choices: tuple[tuple[str, str], ...], selected: str | None) -> Markup:
    """The <option> elements of `choices`, `selected` marked, exactly as WTForms writes
    them. Writing 554 of them took 87 % of the signup page's time; there are at most a
    few hundred distinct lists (one per zone selected), so each is written once."""
    field = SelectField(_form=None, _meta=DefaultMeta(), name="timezone")
    field.choices, field.data = list(choices), selected
    render = Select.render_option
    return Markup("".join(render(choice) for choice in field._iter_choices_normalized()))


class ZoneSelect(Select):
    """WTForms' <select>, with its options from `_zone_options` (the same markup)."""

    def __call__(self, field: ZoneField, **kwargs: Any) -> Markup:  # type: ignore[override]
        kwargs.setdefault("id", field.id)
        flags = getattr(field, "flags", {})
        for key in dir(flags):
            if key in self.validation_attrs and key not in kwargs:
                kwargs[key] = getattr(flags, key)
        options = _zone_options(field.zone_choices, field.selected_zone())
        return Markup(f"<select {html_params(name=field.name, **kwargs)}>{options}</select>")


class ZoneField(SelectField):
    """The time-zone <select>: WTForms' SelectField, checked against a frozenset and
    written from a cache (see `_zone_options`) rather than choice by choice."""

    widget = ZoneSelect()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.zone_choices: tuple[tuple[str, str], ...] = _zone_choices(())
        self.choices = list(self.zone_choices)

    def keep_zones(self, keep: tuple[str, ...]) -> None:
        """Offer every zone and those of `keep` (see `time_zone_choices`)."""
        self.zone_choices = _zone_choices(keep)
        self.choices = list(self.zone_choices)

    def selected_zone(self) -> str | None:
        """The zone shown selected: the field's value if it is one of the choices."""
        value = self.data
        return value if value in _zone_values(self.zone_choices) else None

    def pre_validate(self, form: object) -> None:
        """The same check and message as SelectField's, by set membership."""
        if self.process_errors:
            return
        if self.data not in _zone_values(self.zone_choices):
            raise ValidationError(self.gettext("Not a valid choice."))


def normalise_email(address: str, check_dns: bool) -> str:
    """The address as email-validator normalises it; raises ValueError with its reason.

    Only addresses plain SMTP can carry, on a domain the internet routes mail to
    (`digest.address.check_address`, public): no quoted or non-ASCII local parts
    (international domain names are fine).
    """
    if check_dns or len(address) > MAX_EMAIL:  # a DNS answer may change; long ones are rare
        normalised, reason = _check(address, check_dns)
    else:
        normalised, reason = _check_offline(address)
    if normalised is None:
        raise ValueError(reason)
    return normalised


def _check(address: str, check_dns: bool) -> tuple[str | None, str]:
    """(the normalised address, "") or (None, why not)."""
    try:
        return check_address(address, public=True, check_dns=check_dns).normalized, ""
    except AddressError as error:
        return None, error.reason


@lru_cache(maxsize=4096)
def _check_offline(address: str) -> tuple[str | None, str]:
    # Without DNS the verdict depends on the text alone, and a sign-up asks for it three
    # times (the per-address rate limit's key, checked and then counted, and the form):
    # 0.3 ms each.
    return _check(address, check_dns=False)


def address_key(address: str) -> str:
    """One key per mailbox for rate limiting, however the address was written."""
    address = address.strip()  # as the sign-up reads it, so both name the same mailbox
    try:
        return normalise_email(address, check_dns=False).lower()
    except ValueError:
        return address.lower()


class InterestsField(TextAreaField):
    """A textarea of interests; checked as a whole with the trending fields by the form
    (`PreferencesForm.validate_interests`)."""

    def process_formdata(self, valuelist: list[str]) -> None:
        super().process_formdata(valuelist)
        if self.data:  # browsers send a textarea's lines ending in CRLF; store them with \n
            self.data = self.data.replace("\r\n", "\n").replace("\r", "\n")


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


class WholeNumberField(IntegerField):
    """An optional whole number: one sentence when it is not one, then nothing more."""

    def process_formdata(self, valuelist: list[str]) -> None:
        if not valuelist or not valuelist[0].strip():  # a browser sends "" for an empty box
            self.data = None
            return
        try:
            super().process_formdata([valuelist[0].strip()])
        except ValueError:
            raise ValueError("Enter a whole number, such as 5.") from None

    def pre_validate(self, form: FlaskForm) -> None:
        if self.process_errors:
            raise StopValidation()  # the range would only say it again


class PreferencesForm(FormOnly):
    """Interests, trending and delivery time: shared by the signup and the manage forms.

    The trending fields are the form's way of writing the `trending` rule: the list the
    store keeps is the textarea's entries with the rule's line added (first when
    `trending_first`, which keeps where a reader put it), and the one parser checks the
    whole of it. `max_trending` is the digest's size ([match] max_papers).
    """

    interests = InterestsField("Your interests", description=INTERESTS_HELP)
    trending = BooleanField("The day's trending papers", description=TRENDING_HELP)
    trending_count = WholeNumberField(
        "How many",
        default=DEFAULT_TRENDING,
        validators=[Optional(), NumberRange(min=1, message="Choose at least 1 paper.")],
    )
    trending_min = WholeNumberField(
        "Minimum upvotes (optional)",
        validators=[
            Optional(),
            NumberRange(min=0, max=MAX_UPVOTES, message="Enter a number from 0 to 1,000,000."),
        ],
    )
    trending_first = HiddenField()
    send_time = TimeField(
        "Send my digest at",
        format=["%H:%M", "%H:%M:%S"],
        validators=[InputRequired("Enter a time of day, such as 08:00.")],
    )
    timezone = ZoneField("Time zone", validate_choice=True)
    cadence = SelectField("How often", choices=CADENCE_CHOICES, default=DAILY)

    def __init__(
        self,
        *args: object,
        keep_zones: tuple[str, ...] = (),
        max_trending: int = MAX_TRENDING,
        **kwargs: object,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.timezone.keep_zones(keep_zones)
        self.max_trending = max_trending
        self.trending_count.render_kw = {"min": 1, "max": max_trending}

    def fill_interests(self, text: str) -> None:
        """Show a stored list: its trending rule in the trending fields, the rest as text."""
        try:
            parsed = parse_interests(text)
        except InterestSyntaxError:
            parsed = None
        if parsed is None or parsed.trending is None:
            self.interests.data = text
            return
        self.interests.data = "\n".join(
            entry for entry in split_entries(text) if not _is_trending(entry)
        )
        self.trending.data = True
        self.trending_count.data = parsed.trending.count
        self.trending_min.data = parsed.trending.min_upvotes or None
        self.trending_first.data = "1" if parsed.trending_first and parsed.wanted else ""

    def interests_text(self) -> str:
        """The list the form asks for: the textarea's entries, and the trending rule."""
        text = (self.interests.data or "").strip()
        if not self.trending.data:
            return text
        rule = Trending(
            self.trending_count.data or DEFAULT_TRENDING, self.trending_min.data or 0
        ).label
        if not text:
            return rule
        return f"{rule}\n{text}" if self.trending_first.data else f"{text}\n{rule}"

    def validate_trending_count(self, field: IntegerField) -> None:
        """At most the papers a digest holds (WTForms calls this)."""
        if field.data is not None and field.data > self.max_trending:
            raise ValidationError(f"Choose from 1 to {self.max_trending} papers.")

    def validate_interests(self, field: InterestsField) -> None:
        """The whole list, checked by the parser the matcher uses (WTForms calls this)."""
        if self.trending.data and not self._trending_numbers_valid():
            return  # said next to the number
        typed = split_entries(field.data or "")
        if self.trending.data and any(_is_trending(entry) for entry in typed):
            raise ValidationError(
                "You chose the trending papers with the box below; remove “trending” "
                "from your interests, or untick the box."
            )
        text = self.interests_text()
        if not text:
            raise ValidationError(
                "Enter at least one interest, such as: diffusion; or choose the day's "
                "trending papers."
            )
        if len(text) > MAX_INTERESTS:
            raise ValidationError(
                f"That is {len(text):,} characters; interests can be at most {MAX_INTERESTS:,}."
            )
        try:
            parse_interests(text, max_trending=self.max_trending)
        except InterestSyntaxError as error:
            if error.entry and self.trending.data and self.trending_first.data:
                # Number the entries as the reader sees them: the rule's line is not shown.
                error = InterestSyntaxError(error.reason, entry=error.entry - 1, text=error.text)
            raise ValidationError(_describe(error)) from None

    def _trending_numbers_valid(self) -> bool:
        count, least = self.trending_count, self.trending_min
        if count.process_errors or least.process_errors:
            return False
        return (count.data is None or 1 <= count.data <= self.max_trending) and (
            least.data is None or 0 <= least.data <= MAX_UPVOTES
        )

    def preferences(self) -> dict[str, str]:
        """The validated interests, send time, time zone and cadence, as the store
        keeps them."""
        return {
            "interests": self.interests_text(),
            "send_time": self.send_time.data.strftime("%H:%M"),
            "timezone": self.timezone.data,
            "cadence": self.cadence.data,
        }


def _is_trending(entry: str) -> bool:
    try:
        return parse_trending(entry) is not None
    except Exception:  # a malformed rule is shown in the text, where it can be fixed
        return False


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
    """The manage form: interests, time and time zone, and how many suggestions."""

    suggestions = WholeNumberField(
        "Suggested for you: papers per digest",
        description=SUGGESTIONS_HELP,
        render_kw={"min": 0, "max": MAX_SUGGESTIONS},
    )

    def validate_suggestions(self, field: WholeNumberField) -> None:
        """0 to MAX_SUGGESTIONS; left out of the form (an older page), it stays as saved,
        but a box emptied on purpose is a mistake to point at (WTForms calls this)."""
        if field.data is None:
            if field.raw_data:  # sent, and blank
                raise ValidationError(SUGGESTIONS_RANGE)
            return
        if not 0 <= field.data <= MAX_SUGGESTIONS:
            raise ValidationError(SUGGESTIONS_RANGE)


class ButtonForm(FormOnly):
    """A form that is only a button (confirm, unsubscribe, resubscribe, pause)."""
