"""The SMTP backend against aiosmtpd: STARTTLS, implicit TLS, AUTH, and clear errors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from digest.errors import ConfigError
from digest.message import dot_unstuff
from digest.send import make_backend, send_due
from digest.send.backends import SENT, BackendMisconfigured, BackendUnavailable
from digest.send.maildir import MaildirBackend
from digest.send.smtp import END_OF_DATA, SmtpBackend, stuff_body
from digest.store import open_database
from tests.messages import build_digest, queue_digests
from tests.smtp_server import free_port
from tests.tls import server_context

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
LOGIN = ("digest", "s3cret")


def _send(make_settings: Any, server: Any, count: int = 3, **smtp: Any) -> tuple[Any, Any, Any]:
    settings = make_settings(smtp=server.smtp_settings(**smtp), delivery={"backend": "smtp"})
    database = open_database(settings)
    messages = queue_digests(database, count, now=NOW)
    report = send_due(settings, database, now=NOW)
    database.dispose()
    return report, messages, settings


def test_starttls_with_login(
    make_settings: Any, start_smtp_server: Any, tls_certificate: Any
) -> None:
    cert, key = tls_certificate
    server = start_smtp_server(
        security="starttls", tls_context=server_context(cert, key), login=LOGIN
    )
    report, messages, _ = _send(
        make_settings, server, ca_file=str(cert), username=LOGIN[0], password=LOGIN[1]
    )
    assert (report.sent, report.error) == (3, None)
    assert sorted(server.message_ids()) == sorted(m.message_id for m in messages)
    assert server.logins and set(server.logins) == {"digest"}


def test_implicit_tls(make_settings: Any, start_smtp_server: Any, tls_certificate: Any) -> None:
    cert, key = tls_certificate
    server = start_smtp_server(security="tls", tls_context=server_context(cert, key))
    report, _, _ = _send(make_settings, server, ca_file=str(cert))
    assert (report.sent, report.error) == (3, None)
    assert len(server.received) == 3


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_login_without_tls_when_the_server_allows_it(
    make_settings: Any, start_smtp_server: Any
) -> None:
    server = start_smtp_server(login=LOGIN, auth_require_tls=False)
    report, _, _ = _send(make_settings, server, username=LOGIN[0], password=LOGIN[1])
    assert report.sent == 3 and server.logins


def test_a_wrong_password_is_one_actionable_line_and_sends_nothing(
    make_settings: Any, start_smtp_server: Any, tls_certificate: Any
) -> None:
    cert, key = tls_certificate
    server = start_smtp_server(
        security="starttls", tls_context=server_context(cert, key), login=LOGIN
    )
    report, _, settings = _send(
        make_settings, server, ca_file=str(cert), username="digest", password="wrong"
    )
    assert report.sent == 0 and server.received == []
    assert report.error.startswith(
        f'SMTP server localhost:{server.port} refused the login of "digest": 535'
    )
    assert report.error.endswith("check [smtp] username and password")
    # The messages were not tried: they wait, untouched, for the settings to be fixed.
    database = open_database(settings)
    from digest.store.outbox import count_due

    with database.session() as session:
        assert count_due(session, now=NOW) == 3
    database.dispose()


def test_an_untrusted_certificate_says_what_to_check(
    make_settings: Any, start_smtp_server: Any, tls_certificate: Any
) -> None:
    cert, key = tls_certificate
    server = start_smtp_server(security="tls", tls_context=server_context(cert, key))
    report, _, _ = _send(make_settings, server)  # no ca_file: the system's CAs
    assert report.sent == 0
    assert report.error.startswith(f"TLS with SMTP server localhost:{server.port} failed:")
    assert "certificate" in report.error and "[smtp] ca_file" in report.error


def test_starttls_asked_of_a_server_without_it(make_settings: Any, smtp_server: Any) -> None:
    settings = make_settings(
        smtp={**smtp_server.smtp_settings(), "security": "starttls"},
        delivery={"backend": "smtp"},
    )
    backend = make_backend(settings)
    with pytest.raises(
        BackendMisconfigured, match=r'does not offer STARTTLS; set \[smtp\] security to "tls"'
    ):
        backend.open().deliver(build_digest(1, "a@example.net"))


def test_nothing_listening_is_a_temporary_failure(make_settings: Any) -> None:
    port = free_port()
    settings = make_settings(smtp={"host": "127.0.0.1", "port": port, "security": "none"})
    with pytest.raises(BackendUnavailable) as raised:
        make_backend(settings).open().deliver(build_digest(1, "a@example.net"))
    assert str(raised.value) == (
        f"cannot connect to SMTP server 127.0.0.1:{port}: Connection refused; "
        "check [smtp] host and port"
    )


def test_a_reused_connection_the_server_dropped_is_reopened(
    smtp_server: Any, make_settings: Any
) -> None:
    settings = make_settings(smtp=smtp_server.smtp_settings())
    connection = make_backend(settings).open()
    first = connection.deliver(build_digest(1, "a@example.net"))
    connection.smtp.sock.close()  # as if the server had timed the idle connection out
    connection.smtp.sock = None
    connection.smtp = None
    second = connection.deliver(build_digest(2, "b@example.net"))
    assert (first.status, second.status) == (SENT, SENT)
    assert smtp_server.connections == 2 and len(smtp_server.received) == 2


def test_backend_choice(make_settings: Any) -> None:
    assert isinstance(make_backend(make_settings()), MaildirBackend)
    assert isinstance(make_backend(make_settings(smtp={"host": "mail.example.org"})), SmtpBackend)
    with pytest.raises(ConfigError, match=r"\[smtp\] host is empty"):
        make_backend(make_settings(delivery={"backend": "smtp"}))


@pytest.mark.parametrize(
    ("data", "wire"),
    [
        (b"a\r\nb\r\n", b"a\r\nb\r\n.\r\n"),
        (b".a\r\n.\r\n..b\r\n", b"..a\r\n..\r\n...b\r\n.\r\n"),
        (b"no final newline", b"no final newline\r\n.\r\n"),
    ],
)
def test_dot_stuffing(data: bytes, wire: bytes) -> None:
    assert stuff_body(data) + END_OF_DATA == wire  # the whole DATA payload
    if data.endswith(b"\r\n"):  # what the outbox stores comes back as it was
        assert dot_unstuff(stuff_body(data)) == data
