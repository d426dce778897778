"""How fast `digest send` delivers, against the most a local SMTP sink can take.

One run, on loopback, for N digests of realistic size (~45 KB, 20 papers, HTML + text):

1. ceiling: pre-built, pre-dot-stuffed messages blasted over several persistent
   connections by the leanest clients we could write (raw sockets in threads, one
   command at a time or with MAIL, RCPT and DATA pipelined, and asyncio streams); the
   best of them is the ceiling;
2. naive: `smtplib.SMTP(...).send_message(...)` with a new connection per message;
3. ours: `digest.send.send_due` on an outbox holding the N messages (queueing them is
   timed separately), outbox reads and writes included;
4. render: complete MIME messages built per second per core by `digest.render` (a slot
   for the lead to wire once the renderer lands; skipped until then).

Also the transports compared on their own (no database): our smtplib-based connection,
plain `smtplib.sendmail` on persistent connections, and aiosmtplib.

The sink runs in its own process (so client and sink each have a core): `--sink fast`
is a minimal asyncio SMTP sink that accepts and discards; `--sink aiosmtpd` is aiosmtpd;
both offer PIPELINING, as real servers do, and handle it. `--sink postfix` is a real
MTA: a throwaway Postfix instance made for the run in a temporary folder (its own
config, queue and maildir; listening on 127.0.0.1 only; relaying nothing: every other
destination is refused with an error transport), stopped and removed afterwards. This
script installs nothing; with Postfix missing, that sink is skipped (install it with
`apt-get install -y postfix`; the system's own instance need not run). Postfix's rows
count what it accepted (the messages delivered into its maildir once its queue drained)
and report ours / the most it accepted from the leanest client.

Targets, as ratios from the same run: ours >= 60 % of the ceiling on the fast sink,
>= 95 % of what Postfix accepts, >= 3x naive.

    python bench/send_bench.py                     # 10,000 digests, every sink
    python bench/send_bench.py --count 2000 --sink fast
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from email import message_from_bytes, policy
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

from digest.config import load_settings  # noqa: E402
from digest.message import Message  # noqa: E402
from digest.send import send_due  # noqa: E402
from digest.send.smtp import END_OF_DATA, SmtpBackend, stuff_body  # noqa: E402
from digest.store import open_database  # noqa: E402
from digest.store.models import SubscriberRow  # noqa: E402
from digest.store.outbox import Outgoing, queue_messages  # noqa: E402

DAY = date(2026, 11, 23)
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)

# --- sinks (run in a child process) ----------------------------------------------------


class FastSink(asyncio.Protocol):
    """Accepts and discards: the least work an SMTP server can do per message."""

    counter: multiprocessing.sharedctypes.Synchronized  # type: ignore[name-defined]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.buffer = b""
        self.in_data = False
        self.tail = b""
        self.transport.write(b"220 sink ESMTP\r\n")

    def data_received(self, chunk: bytes) -> None:
        if self.in_data:
            hay = self.tail + chunk
            end = hay.find(b"\r\n.\r\n")
            if end < 0:
                self.tail = hay[-4:]
                return
            self.in_data, self.tail = False, b""
            with self.counter.get_lock():
                self.counter.value += 1
            self.transport.write(b"250 2.0.0 Ok: queued\r\n")
            chunk = hay[end + 5 :]
            if not chunk:
                return
        buffer = self.buffer + chunk
        while (end := buffer.find(b"\r\n")) >= 0:
            verb, buffer = buffer[:4].upper(), buffer[end + 2 :]
            if verb == b"DATA":
                self.transport.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                self.in_data, self.buffer = True, b""
                if buffer:
                    self.data_received(buffer)
                return
            if verb in (b"EHLO", b"HELO"):
                self.transport.write(
                    b"250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 52428800\r\n"
                )
            elif verb == b"QUIT":
                self.transport.write(b"221 Bye\r\n")
                self.transport.close()
                return
            else:
                self.transport.write(b"250 Ok\r\n")
        self.buffer = buffer


def run_sink(kind: str, port: int, counter: object, ready: object) -> None:
    if kind == "fast":
        FastSink.counter = counter  # type: ignore[assignment]

        async def serve() -> None:
            server = await asyncio.get_running_loop().create_server(FastSink, "127.0.0.1", port)
            ready.set()  # type: ignore[attr-defined]
            await server.serve_forever()

        asyncio.run(serve())
    else:
        from aiosmtpd.controller import Controller

        class Count:
            async def handle_EHLO(
                self, server: object, session: object, envelope: object, host: str, lines: list
            ) -> list:
                session.host_name = host  # type: ignore[attr-defined]
                return [*lines[:-1], "250-PIPELINING", lines[-1]]  # it reads commands as sent

            async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
                with counter.get_lock():  # type: ignore[attr-defined]
                    counter.value += 1  # type: ignore[attr-defined]
                return "250 2.0.0 Ok: queued"

        controller = Controller(Count(), hostname="127.0.0.1", port=port)
        controller.start()
        ready.set()  # type: ignore[attr-defined]
        threading.Event().wait()


class Sink:
    """The sink in a child process, with its accepted count and CPU time."""

    def __init__(self, kind: str) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        context = multiprocessing.get_context("fork")
        self.counter = context.Value("q", 0)
        ready = context.Event()
        self.process = context.Process(
            target=run_sink, args=(kind, self.port, self.counter, ready), daemon=True
        )
        self.process.start()
        ready.wait(30)

    def cpu(self) -> float:
        with open(f"/proc/{self.process.pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(5)


class _Accepted:
    """`value`: how many messages Postfix accepted so far (see `PostfixSink`)."""

    def __init__(self, sink: PostfixSink) -> None:
        self.sink = sink

    @property
    def value(self) -> int:
        return self.sink.accepted()


class PostfixSink:
    """A throwaway Postfix instance on 127.0.0.1 that delivers everything for example.net
    into its own maildir and relays nothing. Needs root and an installed Postfix."""

    MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = postfix-bench.invalid
mydestination =
mynetworks = 127.0.0.0/8
relayhost =
default_transport = error:this benchmark instance relays nothing
relay_transport = error:this benchmark instance relays nothing
local_transport = error:this benchmark instance delivers nothing locally
virtual_mailbox_domains = example.net
virtual_mailbox_base = {root}/mail
virtual_mailbox_maps = static:sink/
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_minimum_uid = 1
virtual_mailbox_limit = 0
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions = permit_mynetworks, reject
alias_maps =
alias_database =
biff = no
message_size_limit = 52428800
maillog_file_prefixes = {root}
maillog_file = {root}/maillog
"""
    # No chroot (the services run from the temporary folder); only what delivery needs.
    MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
virtual unix - n n - - virtual
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""

    @staticmethod
    def available() -> str | None:
        """None if a throwaway instance can be made here, else why not."""
        if shutil.which("postfix") is None:
            return "Postfix is not installed (apt-get install -y postfix)"
        if os.geteuid() != 0:
            return "starting a Postfix instance needs root"
        return None

    def __init__(self) -> None:
        import pwd

        self.root = Path(tempfile.mkdtemp(prefix="send-bench-postfix-"))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        user = pwd.getpwnam("postfix")
        for folder in ("etc", "queue", "data", "mail"):
            (self.root / folder).mkdir()
        for folder in ("data", "mail"):
            os.chown(self.root / folder, user.pw_uid, user.pw_gid)
        self.root.chmod(0o755)
        config = self.root / "etc"
        (config / "main.cf").write_text(
            self.MAIN_CF.format(root=self.root, uid=user.pw_uid, gid=user.pw_gid)
        )
        (config / "master.cf").write_text(self.MASTER_CF.format(port=self.port))
        self._postfix("start")
        self.maildir = self.root / "mail" / "sink"
        self.total = 0
        self.counter = _Accepted(self)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"Postfix did not start; see {self.root}/maillog")

    def _postfix(self, command: str) -> None:
        subprocess.run(
            ["postfix", "-c", str(self.root / "etc"), command],
            check=True,
            capture_output=True,
        )

    def _queued(self) -> int:
        return sum(
            len(files)
            for name in ("maildrop", "incoming", "active", "deferred")
            for _, _, files in os.walk(self.root / "queue" / name)
        )

    def accepted(self) -> int:
        """Messages accepted so far: once the queue has drained, those delivered (each
        round's files are counted, then removed, so the disk holds one round at most)."""
        deadline = time.monotonic() + 300
        while self._queued() and time.monotonic() < deadline:
            time.sleep(0.2)
        for sub in ("new", "cur"):
            folder = self.maildir / sub
            if folder.is_dir():
                for name in os.listdir(folder):
                    (folder / name).unlink()
                    self.total += 1
        return self.total

    def _master(self) -> int:
        return int((self.root / "queue" / "pid" / "master.pid").read_text().split()[0])

    def cpu(self) -> float:
        """CPU seconds of the master and its live children, and of the children it reaped."""
        master, total = self._master(), 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(entry) == master or int(fields[1]) == master:
                total += sum(int(f) for f in fields[11:15])
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        try:
            self._postfix("stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


# --- clients ------------------------------------------------------------------------------


def lean_threads(port: int, wire: list[tuple[bytes, bytes, bytes]], connections: int) -> None:
    """Raw sockets, one thread per connection, commands in lock-step, nothing else."""
    pending = list(reversed(wire))

    def reply(sock: socket.socket) -> bytes:
        data = sock.recv(4096)
        while not data.endswith(b"\r\n") or (b"\r\n" in data[:-2] and data[-6:-5] == b"-"):
            data += sock.recv(4096)
        return data

    def one() -> None:
        sock = socket.create_connection(("127.0.0.1", port))
        reply(sock)
        sock.sendall(b"EHLO bench\r\n")
        while reply(sock).splitlines()[-1][3:4] != b" ":
            pass
        while True:
            try:
                mail, rcpt, payload = pending.pop()
            except IndexError:
                break
            sock.sendall(mail)
            reply(sock)
            sock.sendall(rcpt)
            reply(sock)
            sock.sendall(b"DATA\r\n")
            reply(sock)
            sock.sendall(payload)
            if not reply(sock).startswith(b"250"):
                raise RuntimeError("sink refused a message")
        sock.sendall(b"QUIT\r\n")
        sock.close()

    threads = [threading.Thread(target=one) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def lean_pipelined(port: int, wire: list[tuple[bytes, bytes, bytes]], connections: int) -> None:
    """Raw sockets as above, with MAIL, RCPT and DATA in one write (RFC 2920)."""
    pending = list(reversed(wire))

    def one() -> None:
        sock = socket.create_connection(("127.0.0.1", port))
        buffer = sock.recv(4096)
        sock.sendall(b"EHLO bench\r\n")
        while b"\r\n250 " not in buffer or not buffer.endswith(b"\r\n"):
            buffer += sock.recv(4096)
        buffer = b""
        while True:
            try:
                mail, rcpt, payload = pending.pop()
            except IndexError:
                break
            sock.sendall(mail + rcpt + b"DATA\r\n")
            while buffer.count(b"\r\n") < 3:  # single-line replies from these servers
                buffer += sock.recv(4096)
            if not buffer.split(b"\r\n")[2].startswith(b"354"):
                raise RuntimeError(f"refused: {buffer!r}")
            sock.sendall(payload)
            buffer = sock.recv(4096)
            while not buffer.endswith(b"\r\n"):
                buffer += sock.recv(4096)
            if not buffer.startswith(b"250"):
                raise RuntimeError("sink refused a message")
            buffer = b""
        sock.sendall(b"QUIT\r\n")
        sock.close()

    _threads(one, connections)


def lean_asyncio(port: int, wire: list[tuple[bytes, bytes, bytes]], connections: int) -> None:
    """asyncio streams, one task per connection, commands in lock-step."""
    pending = list(reversed(wire))

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.readline()
        writer.write(b"EHLO bench\r\n")
        while (await reader.readline())[3:4] != b" ":
            pass
        while pending:
            mail, rcpt, payload = pending.pop()
            for line in (mail, rcpt, b"DATA\r\n", payload):
                writer.write(line)
                await reader.readline()
        writer.write(b"QUIT\r\n")
        await reader.readline()
        writer.close()

    async def main() -> None:
        await asyncio.gather(*(one() for _ in range(connections)))

    asyncio.run(main())


def naive(port: int, emails: list[object]) -> None:
    """What a first version would do: a new connection and send_message per digest."""
    for email in emails:
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            smtp.send_message(email)  # type: ignore[arg-type]


def transport_ours(port: int, messages: list[Message], connections: int) -> None:
    """Our SMTP connection (smtplib setup + lean transaction), threads, no database."""
    settings = load_settings(
        environ={}, overrides={"smtp": {"host": "127.0.0.1", "port": port, "security": "none"}}
    )
    backend = SmtpBackend(settings.smtp, local_hostname="bench")
    pending = list(reversed(messages))

    def one() -> None:
        connection = backend.open()
        while True:
            try:
                message = pending.pop()
            except IndexError:
                break
            if connection.deliver(message).status != "sent":
                raise RuntimeError("not sent")
        connection.close()

    _threads(one, connections)


def transport_sendmail(port: int, messages: list[Message], connections: int) -> None:
    """Plain smtplib.sendmail on persistent connections (its regex dot-stuffing included)."""
    pending = list(reversed(messages))

    def one() -> None:
        smtp = smtplib.SMTP("127.0.0.1", port, local_hostname="bench")
        while True:
            try:
                message = pending.pop()
            except IndexError:
                break
            smtp.sendmail(message.sender, [message.recipient], message.data)
        smtp.quit()

    _threads(one, connections)


def transport_aiosmtplib(port: int, messages: list[Message], connections: int) -> None:
    """aiosmtplib on persistent connections, one task per connection."""
    import aiosmtplib

    pending = list(reversed(messages))

    async def one() -> None:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
        await smtp.connect()
        while pending:
            message = pending.pop()
            await smtp.sendmail(message.sender, [message.recipient], message.data)
        await smtp.quit()

    async def main() -> None:
        await asyncio.gather(*(one() for _ in range(connections)))

    asyncio.run(main())


def _threads(target: Callable[[], None], count: int) -> None:
    threads = [threading.Thread(target=target) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


# --- the outbox for "ours" ----------------------------------------------------------------


def _renderer_and_digests(count: int, distinct: int = 200) -> tuple[object, list]:
    """The real renderer and `count` (subscriber, 20-paper selection) pairs: `distinct`
    selections from real papers, each sent to many different subscribers."""
    from dataclasses import replace

    from render_bench import realistic_digests, settings_for

    from digest.render import DigestRenderer

    folder = Path(tempfile.mkdtemp(prefix="send-bench-render-"))
    renderer = DigestRenderer(settings_for(folder, dkim=False), "bench-secret")
    base = realistic_digests(min(count, distinct))
    digests = []
    for n in range(count):
        reader, selection = base[n % len(base)]
        digests.append((replace(reader, id=n + 1, email=f"reader{n}@example.net"), selection))
    return renderer, digests


def build_messages(count: int) -> list[Message]:
    """`count` complete digests of 20 real papers each, rendered by `digest.render`."""
    renderer, digests = _renderer_and_digests(count)
    return [
        renderer.render_digest(reader, selection, DAY, now=NOW) for reader, selection in digests
    ]


def queue_outbox(folder: Path, messages: list[Message]) -> float:
    """Make an outbox database holding the messages; return the queueing rate (msg/s)."""
    settings = load_settings(environ={}, overrides={"service": {"data_dir": str(folder)}})
    database = open_database(settings)
    with database.session() as session:
        rows = [
            SubscriberRow(
                email=m.recipient,
                interests="x",
                status="active",
                send_time="08:00",
                timezone="UTC",
                created_at=NOW,
                status_changed_at=NOW,
                consecutive_failures=0,
            )
            for m in messages
        ]
        session.add_all(rows)
        session.flush()
        ids = [row.id for row in rows]
    started = time.perf_counter()
    for start in range(0, len(messages), 1000):
        with database.session() as session:
            queue_messages(
                session,
                [
                    Outgoing(sid, "digest", DAY, m)
                    for sid, m in zip(
                        ids[start : start + 1000], messages[start : start + 1000], strict=False
                    )
                ],
                now=NOW,
            )
    rate = len(messages) / (time.perf_counter() - started)
    database.dispose()
    return rate


def ours(port: int, template_db: Path, connections: int) -> Callable[[], object]:
    """`send_due` on a fresh copy of the queued outbox (the copy is made untimed)."""
    folder = Path(tempfile.mkdtemp(prefix="send-bench-"))
    shutil.copytree(template_db, folder, dirs_exist_ok=True)
    settings = load_settings(
        environ={},
        overrides={
            "service": {"data_dir": str(folder)},
            "smtp": {
                "host": "127.0.0.1",
                "port": port,
                "security": "none",
                "connections": connections,
            },
            "delivery": {"backend": "smtp"},
        },
    )
    database = open_database(settings)

    def run() -> object:
        report = send_due(settings, database, now=NOW)
        database.dispose()
        shutil.rmtree(folder, ignore_errors=True)
        return report

    return run


# --- the render slot ----------------------------------------------------------------------


def render_rate(count: int) -> float:
    """Complete MIME digests built per CPU second, on one core, by `digest.render`
    (a renderer made for the run, as the daily job makes one)."""
    renderer, digests = _renderer_and_digests(count)
    started = time.process_time()
    for reader, selection in digests:
        renderer.render_digest(reader, selection, DAY, now=NOW)
    return count / (time.process_time() - started)


# --- the run ------------------------------------------------------------------------------


def measure(name: str, sink: Sink, action: Callable[[], object], expected: int) -> dict:
    before_count, before_sink = sink.counter.value, sink.cpu()
    before_me = sum(os.times()[:2])
    started = time.perf_counter()
    result = action()
    seconds = time.perf_counter() - started
    accepted = sink.counter.value - before_count
    if accepted != expected:
        raise RuntimeError(f"{name}: the sink accepted {accepted}, expected {expected}")
    return {
        "name": name,
        "rate": accepted / seconds,
        "sink_cpu": (sink.cpu() - before_sink) / seconds,
        "client_cpu": (sum(os.times()[:2]) - before_me) / seconds,
        "result": result,
    }


def run_sink_suite(kind: str, args: argparse.Namespace, data: dict) -> list[dict]:
    """Every row against one sink; each row `--repeat` times, interleaved, best kept."""
    sink = PostfixSink() if kind == "postfix" else Sink(kind)
    n, conns = args.count, args.connections
    wire, messages, emails = data["wire"], data["messages"], data["emails"]
    naive_count = min(n, args.naive_count)
    rows: list[tuple[str, Callable[[], Callable[[], object]], int]] = [
        (f"ceiling: raw sockets x{conns}", lambda: lambda: lean_threads(sink.port, wire, conns), n),
        (
            f"ceiling: raw sockets, pipelined x{conns}",
            lambda: lambda: lean_pipelined(sink.port, wire, conns),
            n,
        ),
        (f"ceiling: asyncio x{conns}", lambda: lambda: lean_asyncio(sink.port, wire, conns), n),
        (
            "naive: send_message, new connection each",
            lambda: lambda: naive(sink.port, emails[:naive_count]),
            naive_count,
        ),
        (
            f"ours: send_due x{conns} (outbox included)",
            lambda: ours(sink.port, data["db"], conns),
            n,
        ),
        (
            f"transport: our SmtpConnection x{conns}",
            lambda: lambda: transport_ours(sink.port, messages, conns),
            n,
        ),
        (
            f"transport: smtplib.sendmail x{conns}",
            lambda: lambda: transport_sendmail(sink.port, messages, conns),
            n,
        ),
    ]
    try:
        import aiosmtplib  # noqa: F401

        rows.append(
            (
                f"transport: aiosmtplib x{conns}",
                lambda: lambda: transport_aiosmtplib(sink.port, messages, conns),
                n,
            )
        )
    except ImportError:
        print("  (aiosmtplib not installed: pip install -e '.[bench]' to compare it)")
    best: dict[str, dict] = {}
    try:
        for _ in range(args.repeat):
            for name, prepare, expected in rows:
                row = measure(name, sink, prepare(), expected)
                if name not in best or row["rate"] > best[name]["rate"]:
                    best[name] = row
    finally:
        sink.stop()
    return [best[name] for name, _, _ in rows]


def report(kind: str, rows: list[dict]) -> None:
    ceiling = max(r["rate"] for r in rows if r["name"].startswith("ceiling"))
    naive_rate = next(r["rate"] for r in rows if r["name"].startswith("naive"))
    ours_rate = next(r["rate"] for r in rows if r["name"].startswith("ours"))
    print(f"\nsink: {kind}")
    print(f"  {'':<44}{'msg/s':>8}{'/ceiling':>10}{'/naive':>8}{'sink cpu':>10}{'client cpu':>12}")
    for row in rows:
        print(
            f"  {row['name']:<44}{row['rate']:>8.0f}{row['rate'] / ceiling:>10.0%}"
            f"{row['rate'] / naive_rate:>7.1f}x{row['sink_cpu']:>10.0%}{row['client_cpu']:>12.0%}"
        )
    share = {"fast": 0.6, "postfix": 0.95}.get(kind)
    verdict_naive = "met" if ours_rate >= 3 * naive_rate else "NOT met"
    target = ""
    if share is not None:
        verdict = "met" if ours_rate >= share * ceiling else "NOT met"
        target = f" (target >= {share:.0%}: {verdict})"
    what = "of what Postfix accepted" if kind == "postfix" else "of the ceiling"
    print(
        f"  ours = {ours_rate / ceiling:.0%} {what}{target}, "
        f"{ours_rate / naive_rate:.1f}x naive (target >= 3x: {verdict_naive})"
    )


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument(
        "--naive-count",
        type=int,
        default=2_000,
        help="messages for the naive baseline (it is slow; its rate does not depend on it)",
    )
    parser.add_argument("--repeat", type=int, default=2, help="runs of each row; best kept")
    parser.add_argument("--sink", choices=["fast", "aiosmtpd", "postfix", "all"], default="all")
    args = parser.parse_args()
    print(
        f"send bench: {args.count} digests ({min(args.count, args.naive_count)} for naive), "
        f"{args.connections} connections, best of {args.repeat}, {os.cpu_count()} cores, "
        f"load {load()}"
    )
    messages = build_messages(args.count)
    size = sum(len(m.data) for m in messages) / len(messages)
    print(f"  messages: {size / 1000:.1f} KB on average")
    wire = [
        (
            f"MAIL FROM:<{m.sender}> SIZE={len(m.data)}\r\n".encode(),
            f"RCPT TO:<{m.recipient}>\r\n".encode(),
            stuff_body(m.data) + END_OF_DATA,
        )
        for m in messages
    ]
    emails = [message_from_bytes(m.data, policy=policy.SMTP) for m in messages[: args.naive_count]]
    folder = Path(tempfile.mkdtemp(prefix="send-bench-outbox-"))
    queue_rate = queue_outbox(folder, messages)
    print(f"  queueing into the outbox (wire form + insert): {queue_rate:.0f} msg/s")
    rendered = render_rate(args.count)
    print(f"  render: {rendered:.0f} complete digests/s on one core (target >= 1,500)")
    data = {"wire": wire, "messages": messages, "emails": emails, "db": folder}
    kinds = ["fast", "aiosmtpd", "postfix"] if args.sink == "all" else [args.sink]
    if "postfix" in kinds and (why := PostfixSink.available()):
        print(f"  (no Postfix rows: {why})")
        kinds.remove("postfix")
    for kind in kinds:
        report(kind, run_sink_suite(kind, args, data))
    print(f"\nload at the end: {load()}")
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
