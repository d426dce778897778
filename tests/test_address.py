"""One address check everywhere: email-validator's syntax, what SMTP and our headers carry."""

from __future__ import annotations

import pytest

from digest.address import AddressError, check_address, check_domain, check_url, header_text
from digest.errors import DigestError


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("reader@example.org", "reader@example.org"),
        ("first.last+digest@Example.ORG", "first.last+digest@example.org"),
        ("o'brien@mail.example.co.uk", "o'brien@mail.example.co.uk"),
        ("leser@bücher.de", "leser@xn--bcher-kva.de"),
        ("dev@labserver", "dev@labserver"),  # a host of the operator's own network
    ],
)
def test_valid_addresses(address: str, expected: str) -> None:
    assert check_address(address).ascii == expected


@pytest.mark.parametrize(
    "address",
    [
        "",
        "reader",
        "reader@",
        "@example.org",
        "a@b@example.org",
        "reader@exa mple.org",
        "reader@-example.org",
        "reader@example..org",
        "two..dots@example.org",
        ".start@example.org",
        '"quoted local"@example.org',
        "Reader <reader@example.org>",
        "reader@example.org\r\nBcc: victim@example.net",
        "reader@example.org\nBcc: victim@example.net",
        "reader\r@example.org",
        "名前@example.org",
        "x" * 65 + "@example.org",
        "reader@" + "a" * 64 + ".org",
        "ab@x..y",
        "dev@localhost",  # reserved names never take mail
        "reader@host.invalid",
        "reader@printer.local",
    ],
)
def test_invalid_addresses_are_refused(address: str) -> None:
    with pytest.raises(DigestError, match="cannot mail"):
        check_address(address)


@pytest.mark.parametrize(
    "url",
    [
        "https://digest.example.org/x",
        "http://127.0.0.1:8000/unsubscribe/WzQyLCJhYmMiXQ.abc_-",
    ],
)
def test_valid_urls(url: str) -> None:
    assert check_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "ftp://example.org/",
        "https://example.org/a b",
        "https://example.org/\r\nBcc: x@y.org",
        'https://example.org/"onmouseover="x',
        "https://example.org/>",
        "https://exämple.org/",
    ],
)
def test_invalid_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        check_url(url)


def test_public_addresses_need_a_routable_domain() -> None:
    assert check_address("dev@labserver").normalized == "dev@labserver"
    with pytest.raises(AddressError, match="should have a period"):
        check_address("dev@labserver", public=True)
    assert check_address("Ada@Example.ORG", public=True).normalized == "Ada@example.org"


def test_international_domains_have_both_forms() -> None:
    checked = check_address("leser@Bücher.de")
    assert checked == ("leser@bücher.de", "leser@xn--bcher-kva.de")


def test_the_error_names_the_address_and_the_reason() -> None:
    with pytest.raises(AddressError) as caught:
        check_address("ab@x..y\r\nBcc: eve@example.org")
    assert str(caught.value).startswith('cannot mail "ab@x..y\\r\\nBcc: eve@example.org": ')
    assert "\n" not in str(caught.value) and caught.value.reason


@pytest.mark.parametrize(
    ("domain", "expected"),
    [("Example.ORG.", "example.org"), ("bücher.de", "xn--bcher-kva.de")],
)
def test_valid_domains(domain: str, expected: str) -> None:
    assert check_domain(domain) == expected


@pytest.mark.parametrize("domain", ["", "a..b", "-a.org", "a b.org", "x" * 64 + ".org"])
def test_invalid_domains_are_refused(domain: str) -> None:
    with pytest.raises(ValueError, match="not a valid domain name"):
        check_domain(domain)


def test_header_text_is_one_line() -> None:
    assert header_text(" a\r\nBcc: b\rc\nd\x00e\u2028f\tg  ") == "a Bcc: b c d e f g"
