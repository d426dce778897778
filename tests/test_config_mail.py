"""The mail settings checked as a whole (`mail_identity`) and the DKIM signer's key checks."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from digest.config import Settings
from digest.config.mail import DkimSigner, mail_identity
from digest.errors import ConfigError


def test_identity_of_the_defaults(settings: Settings) -> None:
    identity = mail_identity(settings)
    assert identity.from_address == "digest@localhost.localdomain"
    assert identity.confirm_address == "confirm@localhost.localdomain"
    assert (identity.list_name, identity.list_address) == (
        "Paper digest",
        "digest.localhost.localdomain",
    )
    assert (identity.base_url, identity.site) == ("http://127.0.0.1:8000", "127.0.0.1:8000")
    assert identity.dkim is None


def test_identity_uses_ascii_forms_and_one_line_names(make_settings: Any) -> None:
    identity = mail_identity(
        make_settings(
            mail={
                "from_address": "digest@Bücher.example",
                "from_name": "Papers\r\nBcc: eve@example.org",
                "list_id": "Lab papers <papers.lab.example.org>",
                "unsubscribe_mailto": "leave@example.org",
            },
            service={"base_url": "https://papers.example.org/"},
        )
    )
    assert identity.from_address == "digest@xn--bcher-kva.example"
    assert identity.domain == "xn--bcher-kva.example"
    assert identity.from_name == "Papers Bcc: eve@example.org"
    assert (identity.list_name, identity.list_address) == ("Lab papers", "papers.lab.example.org")
    assert identity.unsubscribe_mailto == "leave@example.org"
    assert identity.base_url == "https://papers.example.org"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("mail", "from_address", "ab@x..y"), r'\[mail\] from_address "ab@x..y" is not a valid'),
        (("mail", "confirm_from", "c@localhost"), r'\[mail\] confirm_from "c@localhost" is not'),
        (("mail", "unsubscribe_mailto", "x"), r'\[mail\] unsubscribe_mailto "x" is not a valid'),
        (("service", "base_url", "https://x.org/\r\nBcc: v@x.org"), r"\[service\] base_url"),
        (("dkim", "selector", "mail"), r"\[dkim\] key_file, domain must be set too"),
    ],
)
def test_settings_that_cannot_make_a_message_are_config_errors(
    settings: Settings, change: tuple[str, str, str], message: str
) -> None:
    # Settings changed after loading (as a program may): the same check, the same words.
    section, key, value = change
    changed = dataclasses.replace(
        settings, **{section: dataclasses.replace(getattr(settings, section), **{key: value})}
    )
    with pytest.raises(ConfigError, match=message):
        mail_identity(changed)


def test_dkim_signer_refuses_a_bad_key_selector_or_domain(tmp_path: Path) -> None:
    key = tmp_path / "dkim.pem"
    key.write_text("-----BEGIN RSA PRIVATE KEY-----\nbm90IGEga2V5\n-----END RSA PRIVATE KEY-----\n")
    with pytest.raises(ConfigError, match="not a PEM RSA private key"):
        DkimSigner.from_files("mail", "example.org", key)
    with pytest.raises(ConfigError, match="cannot be read: No such file"):
        DkimSigner.from_files("mail", "example.org", tmp_path / "missing.pem")


def test_a_dkim_key_file_that_is_a_folder_is_refused(make_settings: Any, tmp_path: Path) -> None:
    dkim = {"selector": "mail", "domain": "example.org", "key_file": str(tmp_path)}
    with pytest.raises(ConfigError, match=r"\[dkim\] key_file .* cannot be read: Is a directory"):
        make_settings(dkim=dkim)
    with pytest.raises(ConfigError, match=r"\[dkim\] selector, domain must be set too"):
        make_settings(dkim={"key_file": str(tmp_path)})
