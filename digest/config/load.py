"""Load settings from TOML and the environment into a frozen `Settings` tree.

Where settings come from, later ones winning:
1. the defaults (`digest.config.settings`: a working single-machine service: SQLite in
   `./digest-data`, mail written to a local maildir, web on http://127.0.0.1:8000, and
   emailed links on that same address: an empty [service] base_url follows [web] host
   and port, filled in last);
2. the TOML file: `--config PATH`, else `$DIGEST_CONFIG`, else `./config.toml` if present;
3. environment variables `DIGEST_<SECTION>_<KEY>`, e.g. `DIGEST_SMTP_PASSWORD`,
   `DIGEST_SOURCES_ARXIV_CATEGORIES=cs.LG,cs.CL`; secrets also have short forms
   (`DIGEST_SECRET_KEY`, `DIGEST_SMTP_PASSWORD`) so they need not sit in the file.

Each value is checked as it is read, then the settings as a whole (`digest.config.mail`:
what every message needs). Any problem raises `ConfigError` with one line naming the
file, the section, the key and what was wrong.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from digest.config.mail import mail_identity
from digest.config.settings import METRICS_ON_WEB, Settings, listen_address, web_url
from digest.errors import ConfigError

DEFAULT_CONFIG_FILE = "config.toml"
ENV_CONFIG_FILE = "DIGEST_CONFIG"
ENV_PREFIX = "DIGEST_"

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
    where = config_path.name if config_path else "settings"
    # Last, after the file, the environment and the overrides: a port set anywhere counts.
    settings = _resolve_base_url(settings, where)
    _check_as_a_whole(settings, where)
    _check_metrics_address(settings, where)
    return settings


def _resolve_base_url(settings: Settings, label: str) -> Settings:
    """Fill an empty [service] base_url from [web] host and port (`web_url`), so that
    `settings.service.base_url` is always the address every emailed link is built on."""
    if settings.service.base_url:
        return settings
    if settings.web.port == 0:  # any free port: no link written now can name it
        raise ConfigError(
            f"{label}: [service] base_url must be set when [web] port is 0 (any free port): "
            "the links in emails need the address people reach"
        )
    url = web_url(settings.web.host, settings.web.port)
    return dataclasses.replace(
        settings, service=dataclasses.replace(settings.service, base_url=url)
    )


def _check_as_a_whole(settings: Settings, label: str) -> None:
    """Refuse at load what a command would refuse later: the mail settings that every
    message needs (senders, List-Id, base URL, a half-set [dkim], an unreadable key)."""
    try:
        mail_identity(settings)
    except ConfigError as error:
        raise ConfigError(f"{label}: {error}") from None


def _check_metrics_address(settings: Settings, label: str) -> None:
    """Refuse a [web] metrics_listen that is the web app's own address: the two servers
    would fight over it; "web" is the way to serve /metrics there."""
    web = settings.web
    if not web.metrics or web.metrics_listen == METRICS_ON_WEB or web.port == 0:
        return
    if listen_address(web.metrics_listen) == (web.host.strip("[]"), web.port):
        raise ConfigError(
            f'{label}: [web] metrics_listen "{web.metrics_listen}" is the web app\'s own '
            'address ([web] host and port): set another port, or "web" to serve /metrics '
            "on the web app's port"
        )


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
