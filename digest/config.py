"""Load settings from TOML and the environment into a frozen `Settings` tree.

Where settings come from, later ones winning:
1. the defaults below (a working single-machine service: SQLite in `./digest-data`,
   mail written to a local maildir, web on http://127.0.0.1:8000);
2. the TOML file: `--config PATH`, else `$DIGEST_CONFIG`, else `./config.toml` if present;
3. environment variables `DIGEST_<SECTION>_<KEY>`, e.g. `DIGEST_SMTP_PASSWORD`,
   `DIGEST_SOURCES_ARXIV_CATEGORIES=cs.LG,cs.CL`; secrets also have short forms
   (`DIGEST_SECRET_KEY`, `DIGEST_SMTP_PASSWORD`) so they need not sit in the file.

Each section is a dataclass; a field's type annotation is its schema and its metadata
holds extra checks. Any problem raises `ConfigError` with one line naming the file, the
section, the key and what was wrong. `config.example.toml` documents every field; a test
keeps the two in step.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from digest.address import AddressError, check_address, check_url, shown
from digest.errors import ConfigError

DEFAULT_CONFIG_FILE = "config.toml"
ENV_CONFIG_FILE = "DIGEST_CONFIG"
ENV_PREFIX = "DIGEST_"

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


def optional_email(value: str) -> str | None:
    """Accept an empty string or an address we can send from (`digest.address`)."""
    try:
        if value:
            check_address(value)
    except AddressError as error:
        return f"{shown(value)} is not a valid address: {error.reason}"
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


def checked(default: Any, check: Check, **kwargs: Any) -> Any:
    """A dataclass field with a default and a validity check."""
    return field(default=default, metadata={"check": check}, **kwargs)


def items(*values: str) -> Any:
    """A list field with a default (lists are kept as tuples so settings stay frozen)."""
    return field(default=tuple(values))


# ---------------------------------------------------------------------------------------
# The settings tree. Keep config.example.toml in step: tests/test_config.py checks it.


@dataclass(frozen=True)
class ServiceSettings:
    """[service]: where the service keeps its files and how it is reached."""

    data_dir: Path = Path("digest-data")
    base_url: str = checked("http://127.0.0.1:8000", http_url)
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
    """[sources.arxiv]: arXiv's daily announcements for some categories."""

    enabled: bool = True
    categories: tuple[str, ...] = items("cs.LG", "cs.CL", "cs.AI", "cs.CV")
    include_cross: bool = False
    feed_url: str = checked("https://rss.arxiv.org", http_url)
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
    trusted_proxies: int = checked(0, between(0, 10))
    threads: int = checked(8, between(1, 256))


@dataclass(frozen=True)
class ScheduleSettings:
    """[schedule]: when things happen."""

    fetch_every_minutes: float = checked(60.0, at_least(0.01))
    arxiv_fetch_time: str = checked("01:30", time_of_day)
    digest_check_minutes: float = checked(5.0, at_least(0.01))
    default_send_time: str = checked("08:00", time_of_day)
    fetch_at_start: bool = True


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


# Short names for secrets, besides the regular DIGEST_<SECTION>_<KEY> ones.
SECRET_ALIASES = {
    "DIGEST_SECRET_KEY": ("web", "secret_key"),
}

# ---------------------------------------------------------------------------------------
# Loading


def load_settings(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Read the settings: defaults, then the TOML file, then environment variables.

    `path` names the file; None means `$DIGEST_CONFIG` or `./config.toml` if it exists,
    else defaults only. `overrides` is a nested mapping applied last (used by tests).
    Relative paths in the settings are resolved against the file's folder, or the
    current directory when there is no file.
    """
    environ = os.environ if environ is None else environ
    config_path = _find_config_file(path, environ)
    raw: dict[str, Any] = _read_toml(config_path) if config_path else {}
    label = config_path.name if config_path else "defaults"
    settings = _build(Settings, raw, label, [])
    settings = _apply_environment(settings, environ)
    if overrides:
        settings = _build(Settings, _merge(_as_dict(settings), overrides), "overrides", [])
    base = config_path.parent if config_path else Path.cwd()
    settings = _resolve_paths(settings, base.resolve(), config_path)
    _check_as_a_whole(settings, config_path.name if config_path else "settings")
    return settings


def _check_as_a_whole(settings: Settings, label: str) -> None:
    """Refuse at load what a command would refuse later: the mail settings that every
    message needs (senders, List-Id, base URL, a half-set [dkim], an unreadable key)."""
    from digest.sender import mail_identity  # it imports this module's types

    try:
        mail_identity(settings)
    except ConfigError as error:
        raise ConfigError(f"{label}: {error}") from None


def _find_config_file(
    path: str | os.PathLike[str] | None, environ: Mapping[str, str]
) -> Path | None:
    if path is not None:
        chosen = Path(path)
    elif environ.get(ENV_CONFIG_FILE):
        chosen = Path(environ[ENV_CONFIG_FILE])
    elif Path(DEFAULT_CONFIG_FILE).is_file():
        return Path(DEFAULT_CONFIG_FILE)
    else:
        return None
    if not chosen.is_file():
        raise ConfigError(f"{chosen}: no such config file")
    return chosen


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path.name}: not valid TOML: {error}") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config file: {error.strerror}") from None


def _section_name(trail: list[str]) -> str:
    return "[" + ".".join(trail) + "]" if trail else "top level"


def _build(cls: type, raw: Mapping[str, Any], label: str, trail: list[str]) -> Any:
    """Make a settings dataclass from a mapping, checking keys, types and values."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{label}: {_section_name(trail)} must be a table")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        known = ", ".join(fields)
        raise ConfigError(
            f'{label}: {_section_name(trail)} unknown key "{unknown[0]}" (known keys: {known})'
        )
    values = {}
    for name, spec in fields.items():
        if name not in raw:
            continue
        values[name] = _convert(hints[name], raw[name], label, trail, name, spec)
    return cls(**values)


def _convert(kind: Any, value: Any, label: str, trail: list[str], name: str, spec: Any) -> Any:
    where = f"{label}: {_section_name(trail)} {name}"
    if dataclasses.is_dataclass(kind):
        return _build(kind, value, label, [*trail, name])
    converted = _coerce(kind, value, where)
    check = spec.metadata.get("check")
    problem = check(converted) if check else None
    if problem:
        raise ConfigError(f"{where} {problem}")
    return converted


def _describe(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _coerce(kind: Any, value: Any, where: str) -> Any:
    """Check a TOML value against a field type (bool, int, float, str, Path, tuple[str])."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be true or false, got {_describe(value)}")
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be an integer, got {_describe(value)}")
    if kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where} must be a number, got {_describe(value)}")
    if kind is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where} must be a string, got {_describe(value)}")
    if kind is Path:
        if isinstance(value, str):
            return Path(value)
        raise ConfigError(f"{where} must be a path (a string), got {_describe(value)}")
    if typing.get_origin(kind) is tuple:
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return tuple(value)
        raise ConfigError(f"{where} must be a list of strings, got {_describe(value)}")
    raise TypeError(f"unsupported settings type {kind}")


def _env_value(kind: Any, text: str, where: str) -> Any:
    """Turn an environment variable's text into the TOML-like value for `kind`."""
    if kind is bool:
        lowered = text.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{where} must be true or false, got {_describe(text)}")
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{where} must be an integer, got {_describe(text)}") from None
    if kind is float:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{where} must be a number, got {_describe(text)}") from None
    if typing.get_origin(kind) is tuple:
        return [part.strip() for part in text.split(",") if part.strip()]
    return text


def _env_names(cls: type, trail: list[str]) -> list[tuple[str, list[str], Any]]:
    """Every (variable name, key path, type) the environment may set."""
    found = []
    hints = typing.get_type_hints(cls)
    for spec in dataclasses.fields(cls):
        if spec.name == "source":
            continue
        kind = hints[spec.name]
        path = [*trail, spec.name]
        if dataclasses.is_dataclass(kind):
            found.extend(_env_names(kind, path))
        else:
            found.append((ENV_PREFIX + "_".join(path).upper(), path, kind))
    return found


def _apply_environment(settings: Settings, environ: Mapping[str, str]) -> Settings:
    names = {name: (path, kind) for name, path, kind in _env_names(Settings, [])}
    for alias, path in SECRET_ALIASES.items():
        names.setdefault(alias, (list(path), str))
    updates: dict[str, Any] = {}
    for name, (path, kind) in names.items():
        if name not in environ:
            continue
        value = _env_value(kind, environ[name], f"environment {name}:")
        _set_in(updates, path, value)
    if not updates:
        return settings
    merged = _merge(_as_dict(settings), updates)
    return _build(Settings, merged, "environment", [])


def _set_in(tree: dict[str, Any], path: list[str], value: Any) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _as_dict(settings: Any) -> dict[str, Any]:
    """Settings back to a TOML-shaped mapping (tuples as lists, paths as strings)."""
    out: dict[str, Any] = {}
    for spec in dataclasses.fields(settings):
        if spec.name == "source":
            continue
        value = getattr(settings, spec.name)
        if dataclasses.is_dataclass(value):
            out[spec.name] = _as_dict(value)
        elif isinstance(value, tuple):
            out[spec.name] = list(value)
        elif isinstance(value, Path):
            out[spec.name] = str(value)
        else:
            out[spec.name] = value
    return out


def _resolve_paths(settings: Settings, base: Path, config_path: Path | None) -> Settings:
    """Make the data folder and other paths absolute, relative to the config's folder."""

    def absolute(path: Path) -> Path:
        return path if path.is_absolute() else base / path

    service = dataclasses.replace(settings.service, data_dir=absolute(settings.service.data_dir))
    delivery = settings.delivery
    if delivery.maildir:
        delivery = dataclasses.replace(delivery, maildir=str(absolute(Path(delivery.maildir))))
    smtp = settings.smtp
    if smtp.ca_file:
        smtp = dataclasses.replace(smtp, ca_file=str(absolute(Path(smtp.ca_file))))
    dkim = settings.dkim
    if dkim.key_file:
        dkim = dataclasses.replace(dkim, key_file=str(absolute(Path(dkim.key_file))))
    database = settings.database
    if database.url.startswith("sqlite:///") and not database.url.startswith("sqlite:////"):
        relative = database.url.removeprefix("sqlite:///")
        if relative and relative != ":memory:":
            database = dataclasses.replace(database, url=f"sqlite:///{absolute(Path(relative))}")
    return dataclasses.replace(
        settings,
        service=service,
        delivery=delivery,
        smtp=smtp,
        dkim=dkim,
        database=database,
        source=config_path.resolve() if config_path else None,
    )


def settings_to_dict(settings: Settings) -> dict[str, Any]:
    """The settings as a nested mapping, for display and for building test settings."""
    return _as_dict(settings)
