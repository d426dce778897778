"""Who the mail comes from: the mail settings checked as a whole, and the DKIM signer.

`mail_identity(settings)` turns [mail], [dkim] and [service] base_url into the values
every message needs (sender addresses in their ASCII form, the sending domain, the
List-Id, the signer), or raises ConfigError naming the setting at fault. The settings
loader calls it, so a service that would refuse to build a message stops at start with
one line instead of at its first digest or sign-up; the renderer calls it for the values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from digest.address import (
    check_address,
    check_domain,
    check_url,
    header_text,
    shown,
)
from digest.config.settings import address_problem
from digest.errors import ConfigError

if TYPE_CHECKING:
    from digest.config.settings import Settings


@dataclass(frozen=True, slots=True)
class MailIdentity:
    """The checked values behind every message's From, List-Id and links.

    Addresses and domains are in their ASCII form; names are one line of header text.
    """

    from_name: str
    from_address: str
    confirm_address: str
    domain: str
    base_url: str
    site: str
    unsubscribe_mailto: str
    list_name: str
    list_address: str
    postal_address: str
    dkim: DkimSigner | None


def mail_identity(settings: Settings) -> MailIdentity:
    """The mail settings, checked together; ConfigError naming the first one at fault."""
    mail = settings.mail
    from_name = header_text(mail.from_name)
    from_address = _configured_address(mail.from_address, "from_address")
    domain = from_address.rpartition("@")[2]
    try:
        base_url = check_url(settings.service.base_url.rstrip("/"))
    except ValueError as error:
        raise ConfigError(f"[service] base_url {error}") from None
    list_name, list_address = _list_id(mail.list_id, from_name, domain)
    return MailIdentity(
        from_name=from_name,
        from_address=from_address,
        confirm_address=_configured_address(settings.confirm_from, "confirm_from"),
        domain=domain,
        base_url=base_url,
        site=urlsplit(base_url).netloc,
        unsubscribe_mailto=(
            _configured_address(mail.unsubscribe_mailto, "unsubscribe_mailto")
            if mail.unsubscribe_mailto
            else ""
        ),
        list_name=list_name,
        list_address=list_address,
        postal_address=header_text(mail.postal_address),
        dkim=_dkim_signer(settings),
    )


def _configured_address(address: str, key: str) -> str:
    problem = address_problem(address)
    if problem:
        raise ConfigError(f"[mail] {key} {problem}")
    return check_address(address).ascii


def _list_id(configured: str, from_name: str, domain: str) -> tuple[str, str]:
    """The List-Id's name and its `label.domain` (RFC 2919)."""
    configured = header_text(configured)
    if not configured:
        return from_name, f"digest.{domain}"
    name, _, rest = configured.rpartition("<")
    list_address = rest.removesuffix(">") if rest.endswith(">") else configured
    name = name.strip() if rest.endswith(">") else ""
    try:
        check_domain(list_address)
    except ValueError:
        raise ConfigError(
            f'[mail] list_id {shown(configured)} must look like "Name <label.example.org>"'
        ) from None
    return name, list_address


def _dkim_signer(settings: Settings) -> DkimSigner | None:
    """The DKIM signer when [dkim] is set up; ConfigError if it is only half set up."""
    dkim = settings.dkim
    given = {"selector": dkim.selector, "key_file": str(dkim.key_file), "domain": dkim.domain}
    missing = [name for name, value in given.items() if not value]
    if len(missing) == len(given):
        return None
    if missing:
        raise ConfigError(f"[dkim] {', '.join(missing)} must be set too to sign mail")
    key_file = Path(dkim.key_file)  # a folder is refused by reading it, with the reason
    return DkimSigner.from_files(dkim.selector, dkim.domain, key_file)


# Headers a DKIM signature covers when the message has them: who, what, when, which
# message, and the one-click unsubscribe (RFC 8058 requires it to be signed).
DKIM_HEADERS = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"list-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"mime-version",
    b"content-type",
)


class DkimSigner:
    """Signs messages with one RSA key (dkimpy, relaxed/relaxed canonicalization)."""

    def __init__(self, selector: str, domain: str, key: bytes) -> None:
        # Imported here: most installations leave signing to their mail server.
        import dkim
        from dkim.crypto import UnparsableKeyError, parse_pem_private_key

        try:
            parse_pem_private_key(key)
        except (UnparsableKeyError, ValueError, IndexError) as error:
            raise ConfigError(f"[dkim] key_file is not a PEM RSA private key: {error}") from None
        if not re.fullmatch(r"[A-Za-z0-9._-]+", selector):
            raise ConfigError(f"[dkim] selector {shown(selector)} is not a DNS label")
        try:
            self.domain = check_domain(domain)
        except ValueError as error:
            raise ConfigError(f"[dkim] domain: {error}") from None
        self.selector = selector
        self._key = key
        self._sign = dkim.sign

    @classmethod
    def from_files(cls, selector: str, domain: str, key_file: Path) -> DkimSigner:
        """A signer with the key read from `key_file`; ConfigError if it cannot be read."""
        try:
            key = key_file.read_bytes()
        except OSError as error:
            raise ConfigError(
                f"[dkim] key_file {key_file} cannot be read: {error.strerror or error}"
            ) from None
        return cls(selector, domain, key)

    def sign(self, data: bytes) -> bytes:
        """`data` with a DKIM-Signature header in front."""
        names = {line.split(b":", 1)[0].strip().lower() for line in _header_lines(data)}
        signature = self._sign(
            data,
            self.selector.encode("ascii"),
            self.domain.encode("ascii"),
            self._key,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=[name for name in DKIM_HEADERS if name in names],
        )
        return signature + data


def _header_lines(data: bytes) -> list[bytes]:
    head = data.split(b"\r\n\r\n", 1)[0]
    return [line for line in head.split(b"\r\n") if line and line[:1] not in (b" ", b"\t")]
