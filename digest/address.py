"""Email addresses, domains, links and header text, checked one way everywhere.

Every address the service takes or sends to passes `check_address`: the signup form,
the configured senders, and each recipient when a message is made. It is
email-validator's syntax check, with what plain SMTP and our headers can carry: an
ASCII dot-atom local part (no quoted or international local parts, no display name, no
domain literal), and a domain name (international ones also in their IDNA form).

Sign-ups use `public=True`: the domain must be one the internet can route mail to (it
has a dot, a real top-level domain), and optionally must exist in DNS. Addresses an
operator configures or adds may name a host of their own network (`digest@labserver`).
Names reserved for no mail at all (`localhost`, `.local`, `.invalid`, `.test`, ...) are
refused everywhere.

`check_domain` and `check_url` do the same for a domain name (List-Id, DKIM) and a link
(base URL, paper links): nothing that could end a header line or an attribute; and
`header_text` makes any other text one line fit for a header (names, subjects).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from digest.errors import DigestError

# Header text: no control characters at all (CR and LF are the ones that matter).
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")
_SPACES = re.compile(r"\s+")
# A DNS label: letters, digits and inner hyphens, 1 to 63 characters.
_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


class AddressError(DigestError, ValueError):
    """An address that cannot be mailed; the message says why, in email-validator's words."""

    def __init__(self, address: str, reason: str) -> None:
        self.address = address
        self.reason = reason
        super().__init__(f"cannot mail {shown(address)}: {reason}")


class MailAddress(NamedTuple):
    """A checked address: `normalized` as people read it (international domains in
    Unicode), `ascii` as it goes into headers and the SMTP envelope (IDNA)."""

    normalized: str
    ascii: str


def check_address(address: str, *, public: bool = False, check_dns: bool = False) -> MailAddress:
    """The address, checked and normalised (domain lower-cased); AddressError if invalid.

    `public` asks for a domain routable on the internet, `check_dns` also that it
    exists (a DNS query: only for sign-ups, and only when the operator enables it).
    """
    # Imported here: the store and the senders import this module and rarely need it.
    from email_validator import EmailNotValidError, validate_email

    try:
        valid = validate_email(
            address,
            strict=True,  # the RFC's limits too: at most 64 characters before the @
            allow_smtputf8=False,
            allow_quoted_local=False,
            allow_domain_literal=False,
            allow_display_name=False,
            globally_deliverable=public,
            check_deliverability=check_dns,
        )
    except EmailNotValidError as error:
        raise AddressError(address, str(error)) from None
    assert valid.ascii_email is not None  # allow_smtputf8=False: always set
    return MailAddress(valid.normalized, valid.ascii_email)


def check_domain(domain: str) -> str:
    """The domain in its ASCII form (IDNA for international names); ValueError if invalid."""
    try:
        ascii_domain = domain.encode("idna").decode("ascii") if not domain.isascii() else domain
    except UnicodeError:
        raise ValueError(f"{shown(domain)} is not a valid domain name") from None
    labels = ascii_domain.rstrip(".").split(".")
    if len(ascii_domain) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"{shown(domain)} is not a valid domain name")
    return ascii_domain.rstrip(".").lower()


def check_url(url: str) -> str:
    """An absolute http(s) URL fit for a header and an href; ValueError if it is not.

    Printable ASCII only (no spaces, no line breaks) and none of the characters that end
    a header's `<...>` or an attribute value.
    """
    if not re.fullmatch(r"https?://[\x21-\x7e]+", url) or any(c in url for c in '<>"\\'):
        raise ValueError(f"must be an http:// or https:// URL, got {shown(url)}")
    return url


def shown(value: str) -> str:
    """A value quoted for an error message, control characters made visible."""
    return '"' + value.encode("unicode_escape").decode("ascii")[:200] + '"'


def header_text(value: str) -> str:
    """`value` on one line: control characters (CR, LF, ...) and runs of spaces become one
    space. Everything that goes into a header passes through here first."""
    return _SPACES.sub(" ", _CONTROL.sub(" ", value)).strip()
