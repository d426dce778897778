"""Settings: defaults, the TOML file, the environment, and one-line errors."""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from pathlib import Path

import pytest

from digest.config import Settings, load_settings, settings_to_dict
from digest.config.mail import mail_identity
from digest.errors import ConfigError

EXAMPLE = Path(__file__).parents[1] / "config.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_defaults_need_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={})
    assert settings.source is None
    assert settings.data_dir == tmp_path / "digest-data"
    assert settings.database_url == f"sqlite:///{tmp_path / 'digest-data' / 'digest.db'}"
    assert settings.mail_backend == "maildir"
    assert settings.maildir == tmp_path / "digest-data" / "maildir"
    assert settings.match.max_papers == 20
    assert settings.confirm_from == "confirm@localhost.localdomain"


def test_reads_config_toml_in_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "[match]\nmax_papers = 7\n")
    monkeypatch.chdir(tmp_path)
    assert load_settings(environ={}).match.max_papers == 7


def test_environment_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere.toml"
    path.write_text('[smtp]\nhost = "mail.example.org"\n')
    settings = load_settings(environ={"DIGEST_CONFIG": str(path)})
    assert settings.smtp.host == "mail.example.org"
    assert settings.mail_backend == "smtp"
    assert settings.source == path.resolve()


def test_explicit_path_wins_over_environment(tmp_path: Path) -> None:
    chosen = write(tmp_path, "[match]\nmax_papers = 3\n")
    other = tmp_path / "other.toml"
    other.write_text("[match]\nmax_papers = 9\n")
    settings = load_settings(chosen, environ={"DIGEST_CONFIG": str(other)})
    assert settings.match.max_papers == 3


def test_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    path = folder / "digest.toml"
    path.write_text(
        '[service]\ndata_dir = "state"\n[delivery]\nmaildir = "mail"\n'
        '[database]\nurl = "sqlite:///db/digest.db"\n'
    )
    settings = load_settings(path, environ={})
    assert settings.data_dir == folder.resolve() / "state"
    assert settings.maildir == folder.resolve() / "mail"
    assert settings.database_url == f"sqlite:///{folder.resolve() / 'db' / 'digest.db'}"


def test_other_database_urls_are_kept(tmp_path: Path) -> None:
    url = "postgresql+psycopg://digest@localhost/digest"
    path = write(tmp_path, f'[database]\nurl = "{url}"\n')
    assert load_settings(path, environ={}).database_url == url


def test_secrets_come_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, '[smtp]\nhost = "mail.example.org"\npassword = "in-file"\n')
    settings = load_settings(
        path, environ={"DIGEST_SMTP_PASSWORD": "s3cret", "DIGEST_SECRET_KEY": "k" * 40}
    )
    assert settings.smtp.password == "s3cret"
    assert settings.web.secret_key == "k" * 40
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(
    ("web", "expected"),
    [
        ("", "http://127.0.0.1:8000"),
        ("port = 8123", "http://127.0.0.1:8123"),
        ('host = "digest.lab.example.org"\nport = 80', "http://digest.lab.example.org"),
        # Every address: no browser opens 0.0.0.0 or ::, this machine's name always works.
        ('host = "0.0.0.0"\nport = 8123', "http://127.0.0.1:8123"),
        ('host = "::"\nport = 8123', "http://localhost:8123"),
        ('host = "::1"\nport = 8123', "http://[::1]:8123"),
    ],
)
def test_base_url_follows_web_host_and_port_unless_set(
    tmp_path: Path, web: str, expected: str
) -> None:
    settings = load_settings(write(tmp_path, f"[web]\n{web}\n"), environ={})
    assert settings.service.base_url == expected
    assert mail_identity(settings).base_url == expected  # what every emailed link starts with


def test_base_url_follows_the_port_from_the_environment_and_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "[web]\nport = 8123\n")
    environ = {"DIGEST_WEB_PORT": "8124"}
    assert load_settings(path, environ=environ).service.base_url == "http://127.0.0.1:8124"
    overrides = {"web": {"port": 8125}}
    settings = load_settings(path, environ=environ, overrides=overrides)
    assert settings.service.base_url == "http://127.0.0.1:8125"
    # An empty value from the environment means the same as leaving it out.
    environ["DIGEST_SERVICE_BASE_URL"] = ""
    assert load_settings(path, environ=environ).service.base_url == "http://127.0.0.1:8124"


def test_a_base_url_that_is_set_is_kept(tmp_path: Path) -> None:
    path = write(tmp_path, '[service]\nbase_url = "https://digest.example.org"\n[web]\nport = 0\n')
    assert load_settings(path, environ={}).service.base_url == "https://digest.example.org"


def test_any_free_port_needs_a_base_url(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, "[web]\nport = 0\n"), environ={})
    assert str(caught.value) == (
        "config.toml: [service] base_url must be set when [web] port is 0 (any free port): "
        "the links in emails need the address people reach"
    )


def test_rate_limits_and_their_storage_are_read_as_flask_limiter_reads_them() -> None:
    settings = load_settings(
        environ={
            "DIGEST_WEB_SIGNUP_LIMIT": "5/minute;100/day",
            "DIGEST_WEB_ADDRESS_LIMIT": "3 per 2 hours",
            "DIGEST_WEB_RATELIMIT_STORAGE": "redis://cache.internal:6379/2",
        }
    )
    assert settings.web.signup_limit == "5/minute;100/day"
    assert settings.web.address_limit == "3 per 2 hours"
    assert settings.web.ratelimit_storage == "redis://cache.internal:6379/2"


def test_environment_converts_types() -> None:
    settings = load_settings(
        environ={
            "DIGEST_SMTP_PORT": "2525",
            "DIGEST_SOURCES_ARXIV_CATEGORIES": "cs.LG, cs.CL",
            "DIGEST_SOURCES_ARXIV_INCLUDE_CROSS": "yes",
            "DIGEST_SMTP_RATE": "12.5",
        }
    )
    assert settings.smtp.port == 2525
    assert settings.sources.arxiv.categories == ("cs.LG", "cs.CL")
    assert settings.sources.arxiv.include_cross is True
    assert settings.smtp.rate == 12.5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[smtp]\nport = "abc"\n', 'config.toml: [smtp] port must be an integer, got "abc"'),
        (
            "[smtp]\nport = 70000\n",
            "config.toml: [smtp] port must be between 1 and 65535, got 70000",
        ),
        (
            '[smtp]\nsecurity = "ssl"\n',
            'config.toml: [smtp] security must be one of "none", "starttls", "tls", got "ssl"',
        ),
        ("[smtp]\nprot = 25\n", 'config.toml: [smtp] unknown key "prot"'),
        ("[smpt]\nport = 25\n", 'config.toml: top level unknown key "smpt"'),
        (
            "[match]\nmax_papers = 21\n",
            "config.toml: [match] max_papers must be between 1 and 20, got 21",
        ),
        (
            "[schedule]\ndigest_workers = 0\n",
            "config.toml: [schedule] digest_workers must be between 1 and 64, got 0",
        ),
        (
            '[match]\nmax_papers = "20"\n',
            'config.toml: [match] max_papers must be an integer, got "20"',
        ),
        ("[mail]\nsend_empty = 1\n", "config.toml: [mail] send_empty must be true or false, got 1"),
        (
            '[sources.arxiv]\ncategories = "cs.LG"\n',
            'config.toml: [sources.arxiv] categories must be a list of strings, got "cs.LG"',
        ),
        (
            '[service]\ntimezone = "Mars/Olympus"\n',
            'config.toml: [service] timezone must be a time zone name such as "Europe/Paris" or '
            '"UTC", got "Mars/Olympus"',
        ),
        (
            '[schedule]\ndefault_send_time = "25:00"\n',
            'config.toml: [schedule] default_send_time must be a time of day as HH:MM, got "25:00"',
        ),
        (
            '[service]\nbase_url = "example.org"\n',
            'config.toml: [service] base_url must be an http:// or https:// URL, got "example.org"',
        ),
        (
            '[mail]\nfrom_address = "not an address"\n',
            'config.toml: [mail] from_address "not an address" is not a valid address: An '
            "email address must have an @-sign.",
        ),
        (
            '[mail]\nfrom_address = "ab@x..y"\n',
            'config.toml: [mail] from_address "ab@x..y" is not a valid address: An email '
            "address cannot have two periods in a row.",
        ),
        (
            '[mail]\nconfirm_from = "confirm@localhost"\n',
            'config.toml: [mail] confirm_from "confirm@localhost" is not a valid address: The '
            "part after the @-sign is a special-use or reserved name",
        ),
        (
            '[mail]\nlist_id = "Papers <not a domain>"\n',
            'config.toml: [mail] list_id "Papers <not a domain>" must look like "Name '
            '<label.example.org>"',
        ),
        (
            '[dkim]\nselector = "mail"\ndomain = "example.org"\n',
            "config.toml: [dkim] key_file must be set too to sign mail",
        ),
        (
            '[dkim]\nselector = "mail"\ndomain = "example.org"\nkey_file = "missing.pem"\n',
            "config.toml: [dkim] key_file ",  # ...missing.pem cannot be read: No such file...
        ),
        ("smtp = 3\n", "config.toml: [smtp] must be a table"),
        (
            '[web]\nsignup_limit = "ten an hour"\n',
            'config.toml: [web] signup_limit must be a rate limit such as "10 per hour" or '
            '"5/minute;100/day", got "ten an hour"',
        ),
        (
            '[web]\naddress_limit = "5 per fortnight"\n',
            'config.toml: [web] address_limit must be a rate limit such as "10 per hour" or '
            '"5/minute;100/day", got "5 per fortnight"',
        ),
        (
            '[web]\nratelimit_storage = "localhost:6379"\n',
            'config.toml: [web] ratelimit_storage must be a storage URI such as "memory://" or '
            '"redis://host:6379", got "localhost:6379"',
        ),
    ],
)
def test_bad_values_name_file_section_key_and_problem(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_invalid_toml_is_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[smtp\nport = 25\n")
    with pytest.raises(ConfigError, match=r"^config.toml: not valid TOML: "):
        load_settings(path, environ={})


def test_missing_named_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_settings(tmp_path / "missing.toml", environ={})
    with pytest.raises(ConfigError, match="no such config file"):
        load_settings(environ={"DIGEST_CONFIG": str(tmp_path / "gone.toml")})


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"DIGEST_SMTP_PORT": "abc"})
    assert str(caught.value) == 'environment DIGEST_SMTP_PORT: must be an integer, got "abc"'


def test_environment_values_are_checked_like_file_values() -> None:
    with pytest.raises(ConfigError, match=r"^environment: \[smtp\] security must be one of"):
        load_settings(environ={"DIGEST_SMTP_SECURITY": "ssl"})


def _fields(cls: type, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    found: set[tuple[str, ...]] = set()
    hints = typing.get_type_hints(cls)
    for spec in dataclasses.fields(cls):
        if spec.name == "source":
            continue
        if dataclasses.is_dataclass(hints[spec.name]):
            found |= _fields(hints[spec.name], (*prefix, spec.name))
        else:
            found.add((*prefix, spec.name))
    return found


def _keys(table: dict, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    found: set[tuple[str, ...]] = set()
    for key, value in table.items():
        if isinstance(value, dict):
            found |= _keys(value, (*prefix, key))
        else:
            found.add((*prefix, key))
    return found


def test_example_documents_every_setting_with_its_default() -> None:
    with EXAMPLE.open("rb") as handle:
        example = tomllib.load(handle)
    assert _keys(example) == _fields(Settings)
    defaults = settings_to_dict(Settings())
    for path in _keys(example):
        value, default = example, defaults
        for key in path:
            value, default = value[key], default[key]
        assert value == default, f"config.example.toml {'.'.join(path)} differs from default"


def test_every_example_key_has_its_own_comment() -> None:
    lines = EXAMPLE.read_text().splitlines()
    for number, line in enumerate(lines):
        if "=" in line and not line.startswith("#"):
            assert number and lines[number - 1].startswith("#"), (
                f"config.example.toml line {number + 1} has no comment above it: {line}"
            )


def test_example_loads_as_a_config(tmp_path: Path) -> None:
    settings = load_settings(EXAMPLE, environ={})
    assert settings.match == Settings().match
    assert settings.smtp == Settings().smtp


def test_an_unreadable_dkim_key_is_named_with_the_reason(tmp_path: Path) -> None:
    path = write(
        tmp_path, '[dkim]\nselector = "mail"\ndomain = "example.org"\nkey_file = "k.pem"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert str(caught.value) == (
        f"config.toml: [dkim] key_file {tmp_path / 'k.pem'} cannot be read: "
        "No such file or directory"
    )
    (tmp_path / "k.pem").write_text("not a key\n")
    with pytest.raises(ConfigError, match=r"^config.toml: \[dkim\] key_file is not a PEM RSA"):
        load_settings(path, environ={})


def test_the_environment_is_checked_as_a_whole_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no config.toml here: defaults, then the environment
    with pytest.raises(ConfigError, match=r"^settings: \[dkim\] key_file, domain must be set"):
        load_settings(environ={"DIGEST_DKIM_SELECTOR": "mail"})
