"""The settings tree: one frozen dataclass per section, with the checks of each value.

Each section is a dataclass; a field's type annotation is its schema and its metadata
holds extra checks (`checked(default, check)`): each check returns an error phrase, or
None when the value is ok. `digest.config.load` fills the tree from the defaults here, the
TOML file and the environment. `config.example.toml` documents every field; a test keeps
the two in step.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from digest.address import AddressError, check_address, check_url, shown

# ---------------------------------------------------------------------------------------
# Checks used in field metadata: each returns an error phrase, or None when the value is ok.

Check = Callable[[Any], str | None]


def one_of(*choices: str) -> Check:
    """Accept only the given strings."""

    def check(value: Any) -> str | None:
        if value in choices:
            return None
        return "must be one of " + ", ".join(f'"{c}"' for c in choices) + f', got "{value}"'

    return check


def at_least(low: float) -> Check:
    """Accept numbers >= low."""
    return lambda value: None if value >= low else f"must be at least {low}, got {value}"


def between(low: int, high: int) -> Check:
    """Accept numbers in [low, high]."""
    return lambda v: None if low <= v <= high else f"must be between {low} and {high}, got {v}"


def http_url(value: str) -> str | None:
    """Accept an absolute http(s) URL with a host, fit for links and headers."""
    try:
        check_url(value)
    except ValueError as error:
        return str(error)
    return None if re.match(r"^https?://[^/]+", value) else f"has no host: {shown(value)}"


def optional_http_url(value: str) -> str | None:
    """Accept an empty string (the loader fills it in) or an absolute http(s) URL."""
    return http_url(value) if value else None


def optional_email(value: str) -> str | None:
    """Accept an empty string or an address we can send from (`digest.address`)."""
    return address_problem(value) if value else None


def address_problem(value: str) -> str | None:
    """Why `value` cannot be a sender address, or None when it can."""
    try:
        check_address(value)
    except AddressError as error:
        local, _, domain = value.rpartition("@")
        hint = ""
        if domain.lower() == "localhost":  # the old built-in default
            hint = f' (for mail kept on this machine: "{local}@localhost.localdomain")'
        return f"{shown(value)} is not a valid address: {error.reason}{hint}"
    return None


def time_of_day(value: str) -> str | None:
    """Accept HH:MM in 24-hour time."""
    found = re.match(r"^(\d{1,2}):(\d{2})$", value)
    if found and int(found.group(1)) < 24 and int(found.group(2)) < 60:
        return None
    return f'must be a time of day as HH:MM, got "{value}"'


def time_zone(value: str) -> str | None:
    """Accept an IANA time zone name."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return f'must be a time zone name such as "Europe/Paris" or "UTC", got "{value}"'
    return None


def rate_limit(value: str) -> str | None:
    """Accept a rate limit as Flask-Limiter reads it: "10 per hour", "5/minute;100/day"."""
    from limits import parse_many  # only when a config sets one: keeps the CLI's start quick

    try:
        parse_many(value)
    except ValueError:
        return f'must be a rate limit such as "10 per hour" or "5/minute;100/day", got "{value}"'
    return None


def limit_storage(value: str) -> str | None:
    """Accept a rate-limit storage URI of a scheme the `limits` package knows."""
    from limits.storage import SCHEMES

    scheme = value.partition("://")[0]
    if "://" in value and scheme in SCHEMES and not scheme.startswith("async+"):
        return None
    return f'must be a storage URI such as "memory://" or "redis://host:6379", got "{value}"'


# [web] metrics_listen: this value serves /metrics on the web app's own port instead of
# an address of its own.
METRICS_ON_WEB = "web"
_LISTEN = re.compile(
    r"^(?:\[(?P<ipv6>[^\]]+)\]|(?P<host>[A-Za-z0-9][A-Za-z0-9.-]*)):(?P<port>\d{1,5})$"
)


def listen_address(value: str) -> tuple[str, int]:
    """The (host, port) of "host:port" or "[IPv6]:port"; ValueError if it is neither."""
    found = _LISTEN.match(value)
    if found is None or int(found["port"]) > 65535:
        raise ValueError(value)
    if found["ipv6"] is not None:
        ipaddress.IPv6Address(found["ipv6"])  # ValueError if it is not one
        return found["ipv6"], int(found["port"])
    return found["host"], int(found["port"])


def listen_or_web(value: str) -> str | None:
    """Accept "web" or an address to listen on as "host:port" or "[IPv6]:port"."""
    if value == METRICS_ON_WEB:
        return None
    try:
        listen_address(value)
    except ValueError:
        return (
            'must be an address as host:port ("127.0.0.1:9108", "[::1]:9108"), or "web" '
            f"to serve /metrics on the web app's own port, got {shown(value)}"
        )
    return None


def checked(default: Any, check: Check, **kwargs: Any) -> Any:
    """A dataclass field with a default and a validity check."""
    return field(default=default, metadata={"check": check}, **kwargs)


def items(*values: str) -> Any:
    """A list field with a default (lists are kept as tuples so settings stay frozen)."""
    return field(default=tuple(values))


# Hosts that mean "every address of this machine": no browser can open them, so a link
# built from one names this machine by a name that always reaches it.
WILDCARD_HOSTS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "localhost", "[::]": "localhost"}


def web_url(host: str, port: int) -> str:
    """The http:// address a browser on this machine opens to reach [web] host:port."""
    host = WILDCARD_HOSTS.get(host, host)
    if ":" in host and not host.startswith("["):  # an IPv6 literal goes in brackets
        host = f"[{host}]"
    return f"http://{host}" if port == 80 else f"http://{host}:{port}"


# ---------------------------------------------------------------------------------------
# The settings tree. Keep config.example.toml in step: tests/test_config.py checks it.


@dataclass(frozen=True)
class ServiceSettings:
    """[service]: where the service keeps its files and how it is reached."""

    data_dir: Path = Path("digest-data")
    # Empty: derived from [web] host and port by the loader (`web_url`), so that changing
    # only the port cannot leave every emailed link pointing at the old one.
    base_url: str = checked("", optional_http_url)
    timezone: str = checked("UTC", time_zone)
    log_level: str = checked("INFO", one_of("DEBUG", "INFO", "WARNING", "ERROR"))


@dataclass(frozen=True)
class DatabaseSettings:
    """[database]: any SQLAlchemy URL; empty means SQLite in the data folder."""

    url: str = ""


@dataclass(frozen=True)
class HFSettings:
    """[sources.hf]: Hugging Face Daily Papers."""

    enabled: bool = True
    base_url: str = checked("https://huggingface.co", http_url)


@dataclass(frozen=True)
class ArxivSettings:
    """[sources.arxiv]: arXiv's daily announcements for some categories, and its API
    (for the seed papers readers name with `like:`)."""

    enabled: bool = True
    categories: tuple[str, ...] = items("cs.LG", "cs.CL", "cs.AI", "cs.CV")
    include_cross: bool = False
    feed_url: str = checked("https://rss.arxiv.org", http_url)
    api_url: str = checked("https://export.arxiv.org", http_url)
    min_interval: float = checked(3.0, at_least(0))


@dataclass(frozen=True)
class HttpSettings:
    """[sources.http]: how we talk to the sites."""

    timeout: float = checked(30.0, at_least(0.1))
    retries: int = checked(3, between(0, 10))
    backoff: float = checked(2.0, at_least(0))
    max_backoff: float = checked(120.0, at_least(0))
    user_agent: str = ""


@dataclass(frozen=True)
class SourcesSettings:
    """[sources]: the listings to fetch."""

    hf: HFSettings = field(default_factory=HFSettings)
    arxiv: ArxivSettings = field(default_factory=ArxivSettings)
    http: HttpSettings = field(default_factory=HttpSettings)


@dataclass(frozen=True)
class MatchSettings:
    """[match]: what goes into a digest."""

    # At most 20: 20 of the longest papers make ~97 KB of HTML, and past ~102 KB Gmail
    # clips a message, hiding its footer (unsubscribe link, postal address).
    max_papers: int = checked(20, between(1, 20))


@dataclass(frozen=True)
class MailSettings:
    """[mail]: who the mail comes from and what its footer says."""

    from_address: str = checked("digest@localhost.localdomain", optional_email)
    from_name: str = "Paper digest"
    confirm_from: str = checked("", optional_email)
    postal_address: str = ""
    list_id: str = ""
    unsubscribe_mailto: str = checked("", optional_email)
    send_empty: bool = False


@dataclass(frozen=True)
class SmtpSettings:
    """[smtp]: the outgoing mail server; empty host means write mail to the maildir."""

    host: str = ""
    port: int = checked(587, between(1, 65535))
    security: str = checked("starttls", one_of("none", "starttls", "tls"))
    username: str = ""
    password: str = field(default="", repr=False)
    timeout: float = checked(30.0, at_least(0.1))
    connections: int = checked(4, between(1, 64))
    rate: float = checked(0.0, at_least(0))
    ca_file: str = ""


@dataclass(frozen=True)
class DeliverySettings:
    """[delivery]: the outbox, retries and bounces."""

    backend: str = checked("auto", one_of("auto", "smtp", "maildir"))
    maildir: str = ""
    retry_deadline_hours: float = checked(24.0, at_least(0))
    bounce_threshold: int = checked(3, between(1, 100))


@dataclass(frozen=True)
class DkimSettings:
    """[dkim]: optional DKIM signing of outgoing mail."""

    selector: str = ""
    key_file: str = ""
    domain: str = ""


@dataclass(frozen=True)
class WebSettings:
    """[web]: the signup and manage pages."""

    host: str = "127.0.0.1"
    port: int = checked(8000, between(0, 65535))
    secret_key: str = field(default="", repr=False)
    check_dns: bool = False
    ratelimit_storage: str = checked("memory://", limit_storage)
    signup_limit: str = checked("10 per hour", rate_limit)
    address_limit: str = checked("5 per hour", rate_limit)
    sample_limit: str = checked("30 per hour", rate_limit)
    feedback_limit: str = checked("120 per hour", rate_limit)
    trusted_proxies: int = checked(0, between(0, 10))
    threads: int = checked(8, between(1, 256))
    # /metrics (digest.metrics): off unless asked, and then on an address of its own
    # (only the scheduler's process listens there), unless "web" asks for the public port.
    metrics: bool = False
    metrics_listen: str = checked("127.0.0.1:9108", listen_or_web)


@dataclass(frozen=True)
class LearnSettings:
    """[learn]: learning from readers' "more / less like this" (digest.learn)."""

    # How often the shared text model (tf-idf vocabulary) is fitted again on the newest
    # papers; every reader's model is rebuilt after it.
    refit_days: float = checked(7.0, at_least(0.01))


@dataclass(frozen=True)
class ScheduleSettings:
    """[schedule]: when things happen."""

    fetch_every_minutes: float = checked(60.0, at_least(0.01))
    arxiv_fetch_time: str = checked("01:30", time_of_day)
    digest_check_minutes: float = checked(5.0, at_least(0.01))
    default_send_time: str = checked("08:00", time_of_day)
    fetch_at_start: bool = True
    digest_workers: int = checked(1, between(1, 64))


def broker_url(value: str) -> str | None:
    """Accept an empty string (no task queue) or a Redis URL."""
    if not value or re.match(r"^rediss?://[^/\s]*(/\d+)?$", value):
        return None
    return f'must be empty or a Redis URL such as "redis://localhost:6379/0", got {shown(value)}'


@dataclass(frozen=True)
class QueueSettings:
    """[queue]: task workers (digest.tasks) instead of one process doing everything."""

    broker: str = checked("", broker_url)
    batch: int = checked(2000, between(1, 100_000))
    send_chunk: int = checked(500, between(1, 100_000))
    visibility_timeout: int = checked(3600, between(5, 7 * 86400))
    run_timeout_minutes: float = checked(30.0, at_least(0.05))


@dataclass(frozen=True)
class Settings:
    """Every setting; `source` is the file they were read from, if any."""

    service: ServiceSettings = field(default_factory=ServiceSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    sources: SourcesSettings = field(default_factory=SourcesSettings)
    match: MatchSettings = field(default_factory=MatchSettings)
    mail: MailSettings = field(default_factory=MailSettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    dkim: DkimSettings = field(default_factory=DkimSettings)
    web: WebSettings = field(default_factory=WebSettings)
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    learn: LearnSettings = field(default_factory=LearnSettings)
    queue: QueueSettings = field(default_factory=QueueSettings)
    source: Path | None = field(default=None, compare=False)

    @property
    def data_dir(self) -> Path:
        """The data folder (absolute)."""
        return self.service.data_dir

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL of the store."""
        return self.database.url or f"sqlite:///{self.data_dir / 'digest.db'}"

    @property
    def maildir(self) -> Path:
        """Where the maildir backend writes mail."""
        return Path(self.delivery.maildir) if self.delivery.maildir else self.data_dir / "maildir"

    @property
    def mail_backend(self) -> str:
        """`smtp` or `maildir`: `auto` picks SMTP when a host is configured."""
        if self.delivery.backend != "auto":
            return self.delivery.backend
        return "smtp" if self.smtp.host else "maildir"

    @property
    def mail_domain(self) -> str:
        """The sending domain: the part after @ of the digest sender."""
        return self.mail.from_address.rpartition("@")[2]

    @property
    def user_agent(self) -> str:
        """The User-Agent sent to the sites: names us and how to reach the operator."""
        if self.sources.http.user_agent:
            return self.sources.http.user_agent
        from digest import __version__

        return (
            f"digest/{__version__} (self-hosted research paper digest; "
            f"+{self.service.base_url}; mailto:{self.mail.from_address})"
        )

    @property
    def confirm_from(self) -> str:
        """The sender of confirmation emails (`confirm@` the sending domain by default)."""
        return self.mail.confirm_from or f"confirm@{self.mail_domain}"
