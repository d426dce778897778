"""A real SMTP server for the send tests: aiosmtpd on loopback, with injectable faults.

`SmtpServer` records every message it accepted (`received`, `message_ids()`), and the
`faults` say how to misbehave, per recipient address where it makes sense and with a
count for one-shot faults (so a second send run finds the server well again):
421 at the greeting, 451 or 550 on RCPT, 552 after DATA, the connection cut in the
middle of DATA or just after the final ".", and a stall longer than the client's timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

MESSAGE_ID = re.compile(rb"^Message-ID:\s*(<[^>\r\n]+>)", re.IGNORECASE | re.MULTILINE)


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _take(counts: dict[str, int], key: str) -> bool:
    """Use up one of the remaining faults for `key` (or "*" for any address)."""
    for name in (key, "*"):
        if counts.get(name, 0) > 0:
            counts[name] -= 1
            return True
    return False


@dataclass
class Faults:
    """How the server misbehaves. Counts are per address ("*": any address)."""

    greeting_421: int = 0  # connections answered "421" at once, then closed
    rcpt_451: dict[str, int] = field(default_factory=dict)
    rcpt_550: set[str] = field(default_factory=set)  # addresses that do not exist
    relay_denied: bool = False  # every RCPT refused as a relay that does not know us
    data_552: set[str] = field(default_factory=set)  # messages refused after DATA
    cut_in_data: dict[str, int] = field(default_factory=dict)  # reset half-way through DATA
    cut_after_dot: dict[str, int] = field(default_factory=dict)  # reset after the final "."
    stall_rcpt: float = 0.0  # seconds to wait before answering RCPT


@dataclass(frozen=True)
class Received:
    """One accepted message."""

    sender: str
    recipients: tuple[str, ...]
    message_id: str
    data: bytes
    at: float = 0.0  # time.monotonic() when it was accepted


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(
        self, smtp: SMTP, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        faults = self.server.faults
        if faults.stall_rcpt:
            await asyncio.sleep(faults.stall_rcpt)
        if faults.relay_denied:
            return f"554 5.7.1 <{address}>: Relay access denied"
        if address in faults.rcpt_550:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if _take(faults.rcpt_451, address):
            return "451 4.3.0 Temporary lookup failure, try again later"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, smtp: SMTP, session: Any, envelope: Any) -> str:
        faults = self.server.faults
        recipient = envelope.rcpt_tos[0]
        content = envelope.original_content
        found = MESSAGE_ID.search(content)
        received = Received(
            envelope.mail_from,
            tuple(envelope.rcpt_tos),
            found.group(1).decode() if found else "",
            content,
            time.monotonic(),
        )
        if recipient in faults.data_552:
            return "552 5.3.4 Message size exceeds fixed limit"
        if _take(faults.cut_after_dot, recipient):
            # The whole message arrived; the client never hears whether we took it.
            self.server.cut_after_dot.append(received)
            smtp.transport.abort()
            return "250 2.0.0 Ok: never delivered to the client"
        self.server.received.append(received)
        return "250 2.0.0 Ok: queued"


class _FaultySMTP(SMTP):
    """aiosmtpd's SMTP with faults at the greeting and during DATA."""

    def __init__(self, handler: Any, server: SmtpServer, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.sink = server

    async def _handle_client(self) -> None:
        if self.sink.faults.greeting_421 > 0:
            self.sink.faults.greeting_421 -= 1
            await self.push("421 4.3.2 Service not available, closing transmission channel")
            self.transport.close()
            return
        self.sink.connections += 1
        await super()._handle_client()

    async def smtp_DATA(self, arg: str) -> None:
        recipients = self.envelope.rcpt_tos if self.envelope else []
        if recipients and _take(self.sink.faults.cut_in_data, recipients[0]):
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            for _ in range(10):  # take a few lines, then reset the connection
                await self._reader.readuntil(b"\r\n")
            self.sink.cut_in_data += 1
            self.transport.abort()
            return
        await super().smtp_DATA(arg)


class _Controller(Controller):
    def __init__(self, server: SmtpServer, **kwargs: Any) -> None:
        self.sink = server
        super().__init__(_Handler(server), **kwargs)

    def factory(self) -> SMTP:
        return _FaultySMTP(self.handler, self.sink, **self.SMTP_kwargs)


class SmtpServer:
    """An aiosmtpd server on 127.0.0.1 (or `localhost` for TLS) at `port`."""

    def __init__(
        self,
        port: int | None = None,
        *,
        security: str = "none",
        tls_context: ssl.SSLContext | None = None,
        login: tuple[str, str] | None = None,
        auth_require_tls: bool = True,
    ) -> None:
        self.port = port or free_port()
        self.security = security
        self.faults = Faults()
        self.received: list[Received] = []
        self.cut_after_dot: list[Received] = []
        self.cut_in_data = 0
        self.connections = 0  # connections that got past the greeting
        self.logins: list[str] = []
        self._lock = threading.Lock()
        kwargs: dict[str, Any] = {"hostname": "127.0.0.1", "port": self.port}
        if security == "tls":
            kwargs["ssl_context"] = tls_context
        elif security == "starttls":
            kwargs["tls_context"] = tls_context
            kwargs["require_starttls"] = True
        if login:
            kwargs["authenticator"] = self._authenticator(login)
            kwargs["auth_require_tls"] = auth_require_tls
            kwargs["auth_required"] = True
        self.controller = _Controller(self, **kwargs)
        self.running = False

    def _authenticator(self, login: tuple[str, str]) -> Any:
        def check(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
            ok = (
                isinstance(data, LoginPassword)
                and (
                    data.login.decode(),
                    data.password.decode(),
                )
                == login
            )
            if ok:
                self.logins.append(data.login.decode())
            return AuthResult(success=ok, handled=False)  # on failure, aiosmtpd says 535

        return check

    def start(self) -> SmtpServer:
        """Listen (and answer) from now on."""
        self.controller.start()
        self.connections = 0  # not the controller's own trigger connection
        self.running = True
        return self

    def stop(self) -> None:
        """Stop listening."""
        if self.running:
            with contextlib.suppress(Exception):
                self.controller.stop()
            self.running = False

    def message_ids(self) -> Counter[str]:
        """How many times each Message-ID arrived."""
        return Counter(message.message_id for message in self.received)

    def smtp_settings(self, **extra: Any) -> dict[str, Any]:
        """The `[smtp]` settings that point at this server."""
        host = "localhost" if self.security != "none" else "127.0.0.1"
        values = {"host": host, "port": self.port, "security": self.security, "timeout": 5.0}
        values.update(extra)
        return values
