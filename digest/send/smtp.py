"""The SMTP backend: persistent connections, STARTTLS or implicit TLS, AUTH, timeouts.

smtplib sets each connection up (greeting, EHLO, STARTTLS, AUTH), which is the part with
the most corner cases. Each message then goes through a lean transaction of our own on
the same connection (MAIL, RCPT, DATA, the text, the final "."), for three reasons:

- we must know exactly where a failure happened: a connection lost before the final "."
  is safe to retry, one lost after it may have been accepted (`UNKNOWN`);
- the outbox keeps messages in their wire form (`WireMessage`: CRLF, dot-stuffed), which
  is written as it is; `smtplib.SMTP.data()` would stuff it again with a regular
  expression that costs more than everything else we do per message;
- when the server offers PIPELINING (RFC 2920), MAIL, RCPT and DATA go out together and
  their three replies are read after: two round trips a message instead of four.

A connection stays open for many messages (after a completed transaction the server is
ready for the next MAIL; RSET is sent only after a failed one), and is reopened when the
server drops it. A reused connection that turns out to be dead before anything was sent
is reopened and the message tried once more at once.
"""

from __future__ import annotations

import contextlib
import select
import smtplib
import socket
import ssl
from collections.abc import Callable

from digest.config import SmtpSettings
from digest.message import Message, WireMessage, dot_stuff
from digest.send.backends import (
    PERMANENT,
    SENT,
    TEMPORARY,
    UNKNOWN,
    BackendMisconfigured,
    BackendUnavailable,
    Outcome,
)

CRLF = b"\r\n"
END_OF_DATA = b".\r\n"
DATA = b"DATA\r\n"

stuff_body = dot_stuff  # the message as DATA carries it (kept under its older name)


class _Lost(Exception):
    """The connection died (closed, reset or timed out) at `stage`."""

    def __init__(self, stage: str, why: str) -> None:
        self.stage = stage
        self.why = why
        super().__init__(why)


class SmtpBackend:
    """Deliver over SMTP to `[smtp] host:port` with the configured security and login."""

    name = "smtp"

    def __init__(self, settings: SmtpSettings, *, local_hostname: str | None = None) -> None:
        self.settings = settings
        self.connections = settings.connections
        self.where = f"{settings.host}:{settings.port}"
        # getfqdn() may wait on DNS; ask once, not per connection.
        self.local_hostname = local_hostname or socket.getfqdn()
        self._tls: ssl.SSLContext | None = None

    def tls_context(self) -> ssl.SSLContext:
        """The TLS settings: verify the server against the system's CAs or `[smtp] ca_file`."""
        if self._tls is None:
            ca_file = self.settings.ca_file
            try:
                self._tls = ssl.create_default_context(cafile=ca_file or None)
            except OSError as error:
                raise BackendMisconfigured(
                    f"cannot read [smtp] ca_file {ca_file}: {error.strerror or error}"
                ) from None
        return self._tls

    def open(self) -> SmtpConnection:
        """A connection that connects on its first message."""
        return SmtpConnection(self)

    def connect(self) -> smtplib.SMTP:
        """Open, greet, secure and log in; raise BackendUnavailable/Misconfigured if not."""
        s = self.settings
        try:
            if s.security == "tls":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    s.host,
                    s.port,
                    local_hostname=self.local_hostname,
                    timeout=s.timeout,
                    context=self.tls_context(),
                )
            else:
                smtp = smtplib.SMTP(
                    s.host, s.port, local_hostname=self.local_hostname, timeout=s.timeout
                )
        except smtplib.SMTPConnectError as error:
            raise BackendUnavailable(
                f"SMTP server {self.where} refused the connection: "
                f"{error.smtp_code} {_text(error.smtp_error)}; will retry later"
            ) from None
        except ssl.SSLError as error:
            raise self._tls_failed(error) from None
        except TimeoutError:
            raise BackendUnavailable(
                f"SMTP server {self.where} did not answer within {s.timeout:g} s; "
                "check [smtp] host, port and security"
            ) from None
        except socket.gaierror as error:
            raise BackendUnavailable(
                f"cannot find SMTP server {s.host}: {error.strerror}; check [smtp] host"
            ) from None
        except (smtplib.SMTPException, OSError) as error:
            raise BackendUnavailable(
                f"cannot connect to SMTP server {self.where}: {_why(error)}; "
                "check [smtp] host and port"
            ) from None
        try:
            # Commands and the final "." are small writes; without this, Nagle's algorithm
            # holds them back until the server acknowledges the previous segment.
            smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._hello(smtp)
            if s.security == "starttls":
                self._starttls(smtp)
            if s.username:
                self._login(smtp)
        except BaseException:
            _close(smtp)
            raise
        return smtp

    def _hello(self, smtp: smtplib.SMTP) -> None:
        try:
            code, reply = smtp.ehlo()
            if code == 421:
                raise BackendUnavailable(
                    f"SMTP server {self.where} is not accepting mail: {code} {_text(reply)}; "
                    "will retry later"
                )
            if not 200 <= code < 300:
                code, reply = smtp.helo()
                if not 200 <= code < 300:
                    raise BackendUnavailable(
                        f"SMTP server {self.where} did not accept our greeting: "
                        f"{code} {_text(reply)}; will retry later"
                    )
        except (smtplib.SMTPServerDisconnected, OSError) as error:
            if isinstance(error, ssl.SSLError):
                raise self._tls_failed(error) from None
            raise BackendUnavailable(
                f"SMTP server {self.where} closed the connection at the greeting: "
                f"{_why(error)}; check [smtp] port and security"
            ) from None

    def _starttls(self, smtp: smtplib.SMTP) -> None:
        if not smtp.has_extn("starttls"):
            raise BackendMisconfigured(
                f"SMTP server {self.where} does not offer STARTTLS; set [smtp] security to "
                '"tls" if it expects TLS from the start (usually port 465), or to "none" '
                "for a server without encryption"
            )
        try:
            code, reply = smtp.starttls(context=self.tls_context())
            if code != 220:
                raise smtplib.SMTPResponseException(code, reply)
        except smtplib.SMTPResponseException as error:
            raise BackendUnavailable(
                f"SMTP server {self.where} refused STARTTLS: {error.smtp_code} "
                f"{_text(error.smtp_error)}; will retry later"
            ) from None
        except ssl.SSLError as error:
            raise self._tls_failed(error) from None
        except (smtplib.SMTPServerDisconnected, OSError) as error:
            raise BackendUnavailable(
                f"SMTP server {self.where} closed the connection during STARTTLS: {_why(error)}"
            ) from None
        self._hello(smtp)

    def _login(self, smtp: smtplib.SMTP) -> None:
        s = self.settings
        try:
            smtp.login(s.username, s.password)
        except smtplib.SMTPAuthenticationError as error:
            raise BackendMisconfigured(
                f'SMTP server {self.where} refused the login of "{s.username}": '
                f"{error.smtp_code} {_text(error.smtp_error)}; "
                "check [smtp] username and password"
            ) from None
        except smtplib.SMTPNotSupportedError:
            raise BackendMisconfigured(
                f"SMTP server {self.where} does not offer AUTH (many servers offer it only "
                'over TLS); set [smtp] security to "starttls" or "tls", or leave [smtp] '
                "username empty"
            ) from None
        except smtplib.SMTPException as error:
            if isinstance(error, smtplib.SMTPServerDisconnected):
                raise BackendUnavailable(
                    f"SMTP server {self.where} closed the connection during login: {error}"
                ) from None
            raise BackendMisconfigured(
                f'cannot log in to SMTP server {self.where} as "{s.username}": {error}; '
                "check [smtp] username and password"
            ) from None

    def _tls_failed(self, error: ssl.SSLError) -> BackendMisconfigured:
        reason = getattr(error, "verify_message", None) or error.reason or str(error)
        return BackendMisconfigured(
            f"TLS with SMTP server {self.where} failed: {reason}; check [smtp] security "
            '("tls" for port 465, "starttls" for 587) and [smtp] ca_file'
        )


class SmtpConnection:
    """One persistent SMTP connection, delivering one message at a time."""

    def __init__(self, backend: SmtpBackend) -> None:
        self.backend = backend
        self.smtp: smtplib.SMTP | None = None
        self.used = False  # has it carried a transaction (so it may have gone stale)?
        self.dirty = False  # a transaction was abandoned half-way: RSET before the next

    def deliver(
        self, message: Message | WireMessage, before_end: Callable[[], None] | None = None
    ) -> Outcome:
        """Send one message; reconnect once if a reused connection proved dead at MAIL.

        A `WireMessage` (what the outbox holds) is written as it is; a `Message` is
        dot-stuffed first.
        """
        if self.smtp is None:
            self._open()
        try:
            return self._transaction(message, before_end)
        except _Lost as lost:
            self._drop()
            if lost.stage == "mail":
                # Nothing of this message went out: reopen and try it once more now.
                self._open()
                try:
                    return self._transaction(message, before_end)
                except _Lost as again:
                    self._drop()
                    return _lost_outcome(again)
            return _lost_outcome(lost)

    def close(self) -> None:
        """Say QUIT and close."""
        if self.smtp is not None:
            _close(self.smtp)
            self.smtp = None

    def _open(self) -> None:
        self.smtp = self.backend.connect()
        self.used = self.dirty = False

    def _drop(self) -> None:
        if self.smtp is not None:
            try:
                self.smtp.close()
            finally:
                self.smtp = None

    def _command(self, stage: str, line: bytes) -> tuple[int, bytes]:
        smtp = self.smtp
        assert smtp is not None
        try:
            smtp.send(line)
            return smtp.getreply()
        except (smtplib.SMTPServerDisconnected, OSError) as error:
            raise _Lost(stage, _why(error)) from None

    def _transaction(
        self, message: Message | WireMessage, before_end: Callable[[], None] | None = None
    ) -> Outcome:
        smtp = self.smtp
        assert smtp is not None
        if self.dirty:
            code, reply = self._command("mail", b"RSET\r\n")
            if code == 421:
                raise _Lost("mail", f"{code} {_text(reply)}")
            self.dirty = False
        self.used = True
        wire = message.wire if isinstance(message, WireMessage) else dot_stuff(message.data)
        mail, rcpt = self._envelope(smtp, message.sender, message.recipient, wire)
        if isinstance(mail, Outcome):
            return mail
        if smtp.has_extn("pipelining"):
            refused = self._pipelined_envelope(mail, rcpt)
        else:
            refused = self._lockstep_envelope(mail, rcpt)
        if refused is not None:
            return refused
        try:
            smtp.send(wire)
        except (smtplib.SMTPServerDisconnected, OSError) as error:
            raise _Lost("data", _why(error)) from None
        if before_end is not None:
            try:
                before_end()
            except BaseException:
                self._drop()  # mid-DATA: the message must not be completed
                raise
        if self._server_spoke(smtp):
            # The server closed or spoke out of turn during DATA: the final "." was
            # never sent, so nothing was accepted; safe to retry.
            raise _Lost("data", "the server ended the connection during DATA")
        try:
            smtp.send(END_OF_DATA)
        except (smtplib.SMTPServerDisconnected, OSError) as error:
            raise _Lost("data", _why(error)) from None
        try:
            code, reply = smtp.getreply()
        except (smtplib.SMTPServerDisconnected, OSError) as error:
            raise _Lost("end", _why(error)) from None
        if code == 250:
            return Outcome(SENT, "end", code, _text(reply))
        return self._refused("end", code, reply)

    def _lockstep_envelope(self, mail: bytes, rcpt: bytes) -> Outcome | None:
        """MAIL, RCPT and DATA one at a time; the refusal, or None once DATA said 354."""
        for stage, line, wanted in (("mail", mail, 250), ("rcpt", rcpt, 250), ("data", DATA, 354)):
            code, reply = self._command(stage, line)
            if code != wanted and not (stage == "rcpt" and code == 251):
                return self._refused(stage, code, reply)
        return None

    def _pipelined_envelope(self, mail: bytes, rcpt: bytes) -> Outcome | None:
        """MAIL, RCPT and DATA in one write, then their three replies (RFC 2920)."""
        smtp = self.smtp
        assert smtp is not None
        try:
            smtp.send(mail + rcpt + DATA)
        except (smtplib.SMTPServerDisconnected, OSError) as error:
            raise _Lost("mail", _why(error)) from None
        replies = []
        for stage in ("mail", "rcpt", "data"):
            try:
                replies.append(smtp.getreply())
            except (smtplib.SMTPServerDisconnected, OSError) as error:
                raise _Lost(stage, _why(error)) from None
        (mail_code, mail_reply), (rcpt_code, rcpt_reply), (data_code, data_reply) = replies
        if mail_code == 250 and rcpt_code in (250, 251):
            return None if data_code == 354 else self._refused("data", data_code, data_reply)
        if data_code == 354:
            # DATA was accepted although the envelope was not (RFC 2920 3.1): end it with
            # an empty message, which a server without a recipient cannot deliver.
            with contextlib.suppress(_Lost):  # the refusal below is this message's fate
                self._command("data", END_OF_DATA)
        if mail_code != 250:
            return self._refused("mail", mail_code, mail_reply)
        return self._refused("rcpt", rcpt_code, rcpt_reply)

    def _envelope(
        self, smtp: smtplib.SMTP, sender: str, recipient: str, wire: bytes
    ) -> tuple[bytes | Outcome, bytes]:
        options = b""
        if smtp.has_extn("size"):
            # The wire form's length: a few bytes over the message's, which SIZE allows.
            options += b" SIZE=%d" % len(wire)
        if smtp.has_extn("8bitmime") and not wire.isascii():
            options += b" BODY=8BITMIME"
        addresses = sender + recipient
        if not addresses.isascii():
            if not smtp.has_extn("smtputf8"):
                return (
                    Outcome(
                        PERMANENT,
                        "mail",
                        None,
                        "the address is not ASCII and the server does not offer SMTPUTF8",
                    ),
                    b"",
                )
            options += b" SMTPUTF8"
        mail = b"MAIL FROM:<" + sender.encode() + b">" + options + CRLF
        rcpt = b"RCPT TO:<" + recipient.encode() + b">" + CRLF
        return mail, rcpt

    def _refused(self, stage: str, code: int, reply: bytes) -> Outcome:
        text = _text(reply)
        if code == 421:  # the server is closing this connection
            self._drop()
            return Outcome(TEMPORARY, stage, code, text)
        if stage == "mail" and 500 <= code < 600 and code != 552:
            self._drop()
            raise BackendMisconfigured(
                f"SMTP server {self.backend.where} refused the sender: {code} {text}; "
                "check [mail] from_address and the [smtp] login"
            )
        self.dirty = stage != "end"
        status = PERMANENT if 500 <= code < 600 else TEMPORARY
        return Outcome(status, stage, code, text)

    @staticmethod
    def _server_spoke(smtp: smtplib.SMTP) -> bool:
        sock = smtp.sock
        if sock is None:
            return True
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable)


def _lost_outcome(lost: _Lost) -> Outcome:
    if lost.stage == "end":
        return Outcome(UNKNOWN, "end", None, f"connection lost after the end of data: {lost.why}")
    return Outcome(TEMPORARY, lost.stage, None, f"connection lost: {lost.why}")


def _close(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def _text(reply: bytes | str) -> str:
    if isinstance(reply, bytes):
        reply = reply.decode("utf-8", "replace")
    return " ".join(reply.split())


def _why(error: BaseException) -> str:
    if isinstance(error, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__
