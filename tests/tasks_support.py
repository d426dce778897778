"""Real parts for the task worker tests (tests/test_tasks_*.py).

- `RedisServer`: the Debian package's `redis-server` on a free loopback port, with its
  own folder (an append-only file, fsynced at every write, so that a restart keeps the
  queues as a broker's Redis does), started, stopped and restarted by the test.
- `Worker`: `python -m digest --config FILE worker` in a process group of its own, its
  output in a log file; the test follows its tasks in that log (`at_work`, `finished`),
  SIGKILLs its pool process or the whole group, or asks it to stop (SIGTERM).
  `worker_pool` stops them all after the test and prints their logs, which pytest
  shows for a failed test only.
- `TcpProxy`: a threaded TCP proxy in front of PostgreSQL that the test cuts (every
  connection reset, old and new) and restores, for a database briefly unreachable.
- The store: `stock` makes readers due and papers in their window directly in the
  store (as tests/test_jobs_digests.py does); `digest_rows`, `received_by` and
  `arxiv_ids` read back what was queued and what arrived.

Without redis-server (or PostgreSQL: DIGEST_TEST_POSTGRES_URL), the tests skip; under
CI=true they fail instead, as the other PostgreSQL tests do.
"""

from __future__ import annotations

import contextlib
import email
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from digest.paper import Paper
from digest.sources import hf
from digest.store import Database
from digest.store.models import OutboxRow, SubscriberRow
from digest.store.papers import save_papers
from digest.store.subscribers import NewReader, change_status, create_subscribers
from tests.outbox_rows import get_message
from tests.smtp_server import SmtpServer, free_port

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data" / "sources"
# Thursday 11 June 2026: papers first seen and readers signed up; their digests are due
# at 08:00 in Paris on Friday (06:00 UTC), which is when the scheduler's tick comes.
SIGNUP = datetime(2026, 6, 11, 12, 0, tzinfo=UTC)
NOW = datetime(2026, 6, 12, 6, 0, tzinfo=UTC)
DAY = date(2026, 6, 12)
# The workers' clock (DIGEST_CLOCK_FILE): send chunks take their `now` from it; the
# test's ticks come between NOW and it, so what they queue is due for the workers.
WORKER_NOW = NOW + timedelta(minutes=30)
SECRET = "tasks-test-secret-" + "x" * 40
# Papers a digest holds at most: small digests make the tests quick, and the size of a
# digest changes nothing that they prove.
MAX_PAPERS = 3
# The settings the workers' config and the in-process run share.
SHARED = {
    "service": {"base_url": "https://digest.example.org"},
    "mail": {"from_address": "digest@lab.example.org", "postal_address": "1 Lab Road"},
    "web": {"secret_key": SECRET},
    "match": {"max_papers": MAX_PAPERS},
}
# Interests of the readers, in turn: every one of them matches some of the 30 papers.
INTERESTS = (
    "agents",
    "model, models",
    "learning",
    "language",
    "vision",
    "diffusion, video",
    "reasoning",
    "title:agent*",
    "benchmark, evaluation",
    "trending:3",
)
ABSTRACT = re.compile(r"https://arxiv\.org/abs/([0-9]{4}\.[0-9]{4,5})")
# Celery's log lines of a task's life: "Task digest.batch[<id>] received", "... succeeded
# in 0.2s", "... retry: Retry in 2s", "... raised unexpected: ...".
TASK_EVENT = re.compile(r"Task (digest\.\w+)\[([0-9a-f-]+)\] (received|succeeded|retry|raised)")
# SMTP connections per send chunk: at most one message each may arrive twice after a
# chunk is killed (digest/send/delivery.py says why).
SMTP_CONNECTIONS = 2
DEADLINE = 90.0  # seconds any one wait may take before the test fails


def _required(what: str, hint: str) -> None:
    """Skip a test that lacks `what`, or fail it under CI, where everything must run."""
    if os.environ.get("CI"):
        pytest.fail(f"CI must test the task workers: {what} is missing ({hint})")
    pytest.skip(f"{what} is missing ({hint})")


def require_redis() -> str:
    """The path of redis-server (skip, or fail under CI, without it)."""
    found = shutil.which("redis-server")
    if found is None:
        _required("redis-server", "apt-get install redis-server")
    assert found is not None
    try:
        import celery  # noqa: F401
        import redis  # noqa: F401
    except ImportError:
        _required("celery[redis]", "pip install -e '.[test]'")
    return found


def wait_for(
    predicate: Callable[[], bool],
    what: str,
    *,
    timeout: float = DEADLINE,
    logs: Callable[[], str] | None = None,
    every: float = 0.05,
) -> None:
    """Poll `predicate` until it holds; fail after `timeout` seconds saying what we
    waited for (and the logs, if given)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(
                f"timed out after {timeout:.0f} s waiting for {what}\n{logs() if logs else ''}"
            )
        time.sleep(every)


# --- redis-server -----------------------------------------------------------------


def stable_port() -> int:
    """A loopback port free now and outside the range the system hands out to outgoing
    connections, so that none can take it while a server restarts on it."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rng = random.Random()
    for _ in range(100):
        port = rng.randrange(max(1024, low - 12000), low)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return free_port()


class RedisServer:
    """redis-server on 127.0.0.1 at a free port (the same across restarts), its files
    in `folder`."""

    def __init__(self, folder: Path, executable: str) -> None:
        self.folder = folder
        self.executable = executable
        self.port = stable_port()
        self.process: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        """The broker URL of database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start it (again: on the same port and files) and wait until it answers."""
        assert self.process is None or self.process.poll() is not None, "already running"
        command = [
            self.executable,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.folder),
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--protected-mode", "no",
        ]  # fmt: skip
        log = (self.folder / "redis.log").open("ab")
        self.process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        wait_for(self.answers, f"redis-server on port {self.port}", timeout=20, logs=self.log)
        return self

    def answers(self) -> bool:
        """Whether it answers PING now (a raw socket: redis-py would back off and retry
        for a second or more while the server is still starting)."""
        assert self.process is not None
        assert self.process.poll() is None, f"redis-server exited\n{self.log()}"
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as probe:
                probe.sendall(b"PING\r\n")
                return probe.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def client(self) -> Any:
        """A new client of database 0."""
        from redis import Redis

        return Redis(port=self.port, socket_timeout=5.0, socket_connect_timeout=5.0)

    def stop(self) -> None:
        """Stop it (SIGTERM: it syncs its append-only file and exits)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def restart(self, down: float = 0.0) -> None:
        """Stop, stay down `down` seconds, start again."""
        self.stop()
        time.sleep(down)
        self.start()

    def log(self) -> str:
        """Its log so far."""
        path = self.folder / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextlib.contextmanager
def running_redis(folder: Path) -> Iterator[RedisServer]:
    """A started RedisServer in `folder`, stopped afterwards (its log printed, which
    pytest shows when the test failed)."""
    server = RedisServer(folder, require_redis())
    try:
        yield server.start()
    finally:
        server.stop()
        print(f"--- redis-server log ({folder}) ---\n{server.log()[-4000:]}")


# --- PostgreSQL behind a proxy ------------------------------------------------------


class TcpProxy:
    """A TCP proxy on a free loopback port to `host:port`, one thread per direction of
    each connection. `cut()` resets every connection, and every new one as soon as it
    is accepted, until `restore()`: clients find the server gone, as when it is out of
    reach. (The port stays bound meanwhile: closed, it could be taken as the local port
    of some outgoing connection, and could not be listened on again.)"""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = free_port()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._cut = threading.Event()
        self._listener: socket.socket | None = None
        self.connections = 0  # accepted and forwarded, over the proxy's life

    def start(self) -> TcpProxy:
        """Listen and forward."""
        self._listener = socket.create_server(("127.0.0.1", self.port), backlog=64)
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        """Take connections, each forwarded to the target (or reset while cut)."""
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # closed by stop()
                return
            if self._cut.is_set():
                self._reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                self._reset(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._cut.is_set():  # cut meanwhile
                    self._reset(client)
                    self._reset(upstream)
                    continue
                self._sockets.update((client, upstream))
                self.connections += 1
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        """Copy one direction of a connection until either end closes."""
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            self._close(end)

    def _close(self, end: socket.socket) -> None:
        """Close one end politely and forget it."""
        with contextlib.suppress(OSError):
            end.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            end.close()
        with self._lock:
            self._sockets.discard(end)

    def _reset(self, end: socket.socket) -> None:
        """Close with a reset (RST), not a polite FIN. Shut for reading first: that
        wakes a pump blocked in recv() on it, which would hold the socket open."""
        with contextlib.suppress(OSError):
            end.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            end.shutdown(socket.SHUT_RD)
        with contextlib.suppress(OSError):
            end.close()
        with self._lock:
            self._sockets.discard(end)

    def cut(self) -> None:
        """The database becomes unreachable: every connection reset, now and new."""
        self._cut.set()
        with self._lock:
            ends = list(self._sockets)
        for end in ends:
            self._reset(end)

    def restore(self) -> None:
        """The database is reachable again."""
        self._cut.clear()

    def stop(self) -> None:
        """Cut for good and stop listening."""
        self.cut()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() under way
            self._listener.close()

    def url(self, database_url: str) -> str:
        """`database_url` (of the proxied server) with the proxy as its host and port."""
        from sqlalchemy.engine import make_url

        return make_url(database_url).set(host="127.0.0.1", port=self.port).render_as_string(False)


def proxy_for(database: Database) -> TcpProxy:
    """A started proxy in front of `database`'s PostgreSQL server."""
    from sqlalchemy.engine import make_url

    url = make_url(database.url)
    return TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()


# --- the store: readers, papers and what was queued ---------------------------------


def listing() -> tuple[Paper, ...]:
    """The 30 papers of the Hugging Face list of 12 June 2026."""
    return hf.parse_api((DATA / "hf_api_daily_papers_2026-06-12.json").read_bytes(), "api").papers


def stock(database: Database, readers: int) -> list[str]:
    """The listing first seen at SIGNUP, and `readers` active readers (08:00 Paris, so
    due at NOW) with interests from INTERESTS in turn; their addresses, by id."""
    emails = [f"r{number:05d}@example.org" for number in range(readers)]
    with database.session() as session:
        save_papers(session, listing(), SIGNUP)
        ids = create_subscribers(
            session,
            [
                NewReader(address, INTERESTS[n % len(INTERESTS)], "08:00", "Europe/Paris")
                for n, address in enumerate(emails)
            ],
            now=SIGNUP,
        )
        change_status(session, ids, "active", SIGNUP)
        session.commit()
    with database.session() as session:
        due = session.scalars(
            select(SubscriberRow.next_digest_at).where(SubscriberRow.status == "active")
        ).all()
    assert len(due) == readers and all(when is not None and when <= NOW for when in due)
    return emails


@dataclass(frozen=True)
class DigestRow:
    """A digest in the outbox: whose, which day, its Message-ID, state and papers."""

    email: str
    day: date
    message_id: str
    state: str
    papers: frozenset[str]


def digest_rows(database: Database, *, papers: bool = False) -> list[DigestRow]:
    """Every digest row of the outbox, by id (with the arXiv ids of its message, if
    `papers`)."""
    found = []
    with database.session() as session:
        rows = session.execute(
            select(
                OutboxRow.id,
                SubscriberRow.email,
                OutboxRow.digest_date,
                OutboxRow.message_id,
                OutboxRow.state,
            )
            .join(SubscriberRow, SubscriberRow.id == OutboxRow.subscriber_id)
            .where(OutboxRow.kind == "digest")
            .order_by(OutboxRow.id)
        ).all()
        for row_id, address, day, message_id, state in rows:
            ids: frozenset[str] = frozenset()
            if papers:
                message = get_message(session, row_id)
                assert message is not None
                ids = arxiv_ids(message.data)
            found.append(DigestRow(address, day, message_id, state, ids))
    return found


def digest_count(database: Database, state: str | None = None) -> int:
    """Digest rows in the outbox (in `state`, if given)."""
    query = "SELECT count(*) FROM outbox WHERE kind = 'digest'"
    with database.session() as session:
        if state is None:
            return session.execute(text(query)).scalar_one()
        return session.execute(text(query + " AND state = :state"), {"state": state}).scalar_one()


def still_due(database: Database, now: datetime = NOW) -> int:
    """Active readers whose digest is still due at `now`."""
    with database.session() as session:
        return session.execute(
            select(text("count(*)"))
            .select_from(SubscriberRow)
            .where(SubscriberRow.status == "active", SubscriberRow.next_digest_at <= now)
        ).scalar_one()


def open_transactions(database: Database) -> int:
    """Other sessions on this PostgreSQL database inside a transaction right now (a
    worker in the middle of a digest batch holds one)."""
    with database.session() as session:
        return session.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"
            )
        ).scalar_one()


def arxiv_ids(data: bytes) -> frozenset[str]:
    """The arXiv ids a digest's text part links to (its papers' abstracts)."""
    # The compat32 parser: a quarter of the default policy's time, for the same text.
    for part in email.message_from_bytes(data).walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return frozenset(
                ABSTRACT.findall(payload.decode(part.get_content_charset() or "utf-8"))
            )
    raise AssertionError("a digest without a text part")


def received_by(server: SmtpServer) -> dict[str, list[tuple[str, frozenset[str]]]]:
    """What the sink took, by recipient: (Message-ID, arXiv ids) per message."""
    found: dict[str, list[tuple[str, frozenset[str]]]] = {}
    for message in list(server.received):
        for recipient in message.recipients:
            found.setdefault(recipient, []).append((message.message_id, arxiv_ids(message.data)))
    return found


# --- `digest worker` subprocesses -----------------------------------------------------


def write_config(
    folder: Path,
    *,
    database_url: str,
    broker: str,
    smtp: SmtpServer,
    name: str = "config",
    rate: float = 0.0,
    **queue: Any,
) -> Path:
    """A config for workers in `folder`: the store, the broker, the SMTP sink (at most
    `rate` messages a second per send chunk, 0: no limit) and the `[queue]` values given
    (small batches and short timeouts, as the test wants)."""
    queue = {"broker": broker, "batch": 50, "send_chunk": 100, **queue}
    shared = "".join(
        f"[{section}]\n" + "".join(f"{key} = {_toml(value)}\n" for key, value in values.items())
        for section, values in SHARED.items()
        if section != "service"
    )
    path = folder / f"{name}.toml"
    path.write_text(
        "[service]\n"
        f'data_dir = "{folder / "data"}"\n'
        f'base_url = "{SHARED["service"]["base_url"]}"\n'
        'log_level = "INFO"\n'
        f'[database]\nurl = "{database_url}"\n'
        f"{shared}"
        f'[smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\nsecurity = "none"\n'
        f"connections = {SMTP_CONNECTIONS}\ntimeout = 10.0\nrate = {rate}\n"
        '[delivery]\nbackend = "smtp"\n'
        "[queue]\n" + "".join(f"{key} = {_toml(value)}\n" for key, value in queue.items())
    )
    return path


def _toml(value: object) -> str:
    """A string, number or boolean as TOML writes it (strings here need no escapes)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return f'"{value}"' if isinstance(value, str) else str(value)


def worker_clock(folder: Path, when: datetime = WORKER_NOW) -> Path:
    """The file the workers read the time from (DIGEST_CLOCK_FILE)."""
    path = folder / "clock"
    path.write_text(when.isoformat())
    return path


class Worker:
    """`digest worker` in its own process group; its output goes to `log_path`."""

    def __init__(self, config: Path, name: str, *, clock: Path | None = None) -> None:
        self.config = config
        self.name = name
        self.log_path = config.parent / f"{name}.log"
        self.clock = clock
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, *arguments: str, concurrency: int = 1) -> Worker:
        """Start the worker (`arguments` after `worker`, such as "-Q", "send")."""
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("DIGEST_CONFIG", None)
        env.pop("DIGEST_CLOCK_FILE", None)
        if self.clock is not None:
            env["DIGEST_CLOCK_FILE"] = str(self.clock)
        command = [
            sys.executable, "-m", "digest", "--config", str(self.config),
            "worker", "-c", str(concurrency), *arguments,
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            log.write(f"=== start {self.starts + 1}: {' '.join(command[2:])}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.config.parent,
                start_new_session=True,  # its own process group: killed whole, pool and all
            )
        self.starts += 1
        return self

    @property
    def pid(self) -> int:
        """The main process's id."""
        assert self.process is not None
        return self.process.pid

    def running(self) -> bool:
        """Whether the main process is still alive."""
        return self.process is not None and self.process.poll() is None

    def wait_ready(self, timeout: float = 60) -> Worker:
        """Wait until this start of the worker says it is ready."""
        starts = self.starts

        def ready() -> bool:
            assert self.running(), f"worker {self.name} exited\n{self.log()}"
            return self.log().split("=== start ")[starts].count(" ready.") > 0

        wait_for(ready, f"worker {self.name} to be ready", timeout=timeout, logs=self.log)
        return self

    def children(self) -> list[int]:
        """The pool's processes (the main process's children), by pid."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
            if int(fields[1]) == self.pid and fields[0] != "Z":
                found.append(int(entry.name))
        return sorted(found)

    def kill_child(self) -> int:
        """SIGKILL the pool's only process (the one at work); its pid."""
        children = self.children()
        assert len(children) == 1, f"expected one pool process, found {children}"
        os.kill(children[0], signal.SIGKILL)
        return children[0]

    def kill(self) -> None:
        """SIGKILL the whole worker, main process and pool, at once."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait(20)

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM (a warm shutdown: the tasks at work finish); its exit status."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"worker {self.name} did not stop on SIGTERM\n{self.log()}")

    def stop(self) -> None:
        """Stop it whatever state it is in (teardown): SIGKILL the group, pool and all.
        A warm stop would take seconds a test; what the workers leave is dropped with
        the test's database and broker."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait(20)

    def at_work(self, task: str) -> list[str]:
        """The ids of the `task` tasks ("digest.batch", "digest.send") it has received
        and not finished (succeeded, failed or put off for a retry), from its log."""
        state: dict[str, bool] = {}
        for name, task_id, event in TASK_EVENT.findall(self.log()):
            if name == task:
                state[task_id] = event == "received"
        return [task_id for task_id, working in state.items() if working]

    def finished(self, task: str) -> int:
        """How many `task` tasks it finished (succeeded), from its log."""
        return sum(
            1
            for name, _, event in TASK_EVENT.findall(self.log())
            if name == task and event == "succeeded"
        )

    def log(self) -> str:
        """Everything it printed, over all its starts."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Workers:
    """The workers of one test, stopped at teardown with their logs printed."""

    def __init__(self) -> None:
        self.all: list[Worker] = []

    def start(
        self, config: Path, *names: str, arguments: tuple[str, ...] = (), clock: Path | None = None
    ) -> list[Worker]:
        """Start a worker of each name at once, then wait until all are ready."""
        started = [Worker(config, name, clock=clock).start(*arguments) for name in names]
        self.all.extend(started)
        for worker in started:
            worker.wait_ready()
        return started

    def logs(self) -> str:
        """Every worker's log, one after another."""
        return "\n".join(f"--- worker {w.name} ({w.log_path}) ---\n{w.log()}" for w in self.all)

    def stop(self) -> None:
        """Stop every worker, then print their logs (shown for a failed test)."""
        for worker in self.all:
            worker.stop()
        print(self.logs())


@contextlib.contextmanager
def worker_pool() -> Iterator[Workers]:
    """The test's `Workers`, all stopped afterwards."""
    workers = Workers()
    try:
        yield workers
    finally:
        workers.stop()


def broker_idle(server: RedisServer) -> bool:
    """No task waiting in either queue, and none taken but not yet acknowledged (a
    task at work, or waiting to be retried, is held unacknowledged)."""
    client = server.client()
    try:
        return not (client.llen("digests") or client.llen("send") or client.hlen("unacked"))
    finally:
        client.close()
