"""One error hierarchy for digest.

Every failure a person can cause or fix (a bad config, a page we cannot parse, a dead
SMTP server, a typo in an interest list) is raised as a `DigestError` subclass whose
message is one actionable sentence. The command line prints that sentence and exits
non-zero; the web app shows it on the page. Anything else is a bug and may traceback.
"""

from __future__ import annotations


class DigestError(Exception):
    """Base class: `str(error)` is the one line shown to the person."""


class ConfigError(DigestError):
    """The configuration file or environment has a missing, unknown or invalid setting.

    The message names the file (or variable), the section and key, and what was wrong:
    `config.toml: [smtp] port must be an integer, got "abc"`.
    """


class ParseError(DigestError):
    """A fetched or saved listing could not be read.

    `source` is the source name (`hf`, `arxiv`), `where` the URL or file, and `what`
    says what was missing or malformed. Raised before anything is stored, so a failed
    parse never changes the store.
    """

    def __init__(self, source: str, where: str, what: str) -> None:
        self.source = source
        self.where = where
        self.what = what
        super().__init__(f"{source}: cannot read {where}: {what}")


class FetchError(DigestError):
    """A listing could not be downloaded (network down, HTTP error, retries exhausted)."""

    def __init__(self, source: str, url: str, what: str) -> None:
        self.source = source
        self.url = url
        self.what = what
        super().__init__(f"{source}: cannot fetch {url}: {what}")


class StoreError(DigestError):
    """The database is unreachable, or its schema cannot be brought up to date."""


class InterestSyntaxError(DigestError):
    """An interest list is malformed; `entry` is the 1-based entry at fault (0: the list)."""

    def __init__(self, message: str, entry: int = 0, text: str = "") -> None:
        self.entry = entry
        self.text = text
        self.reason = message
        where = f'entry {entry} "{text}": ' if entry else ""
        super().__init__(f"{where}{message}")


class TokenError(DigestError):
    """A link token is tampered with, expired, or meant for another purpose."""


class DeliveryError(DigestError):
    """Mail could not be handed to the configured backend (SMTP server, maildir)."""
