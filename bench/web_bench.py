"""How many requests a second the web pages answer, against baselines in the same run.

    python bench/web_bench.py [--days 60] [--requests 2000] [--rounds 3] [--server --clients 8]
    python bench/web_bench.py --forms [--seconds 10] [--clients 16]

The first form measures the papers pages (below); `--forms` the signup and unsubscribe
forms as deployed (see `digest_forms`, further down).

The store: the saved Hugging Face listing (tests/data/sources) on today's day, and
papers.jsonl's 188 real papers copied onto `--days` earlier days (new ids, the same
text), so a day page holds 30 to 140 papers and the table some thousands of rows. Then
one app, one data folder (SQLite), and for each page `--requests` GETs (a fifth of
that for the slow baselines), timed:

- baselines: the signup page (GET /, a form rendered per request), and a second app on
  the same store with the cache off (app.config["PAPERS_CACHE_BYTES"] = 0): the papers
  pages read the day and render it on every request, and so does the signup box
  (/papers/signup-box, which each visitor of a papers page loads besides it);
- cached: /papers, /papers/<day> and the feed with the cache warm, /papers asked with
  the ETag the client has (304), and the signup box (rendered once, each visitor's
  token filled in).

By default through the Flask test client in this process (the app's own cost, no
sockets); with --server, through waitress on 127.0.0.1 with `--clients` threads sending
keep-alive requests (http.client), as a browser would reach it. Each figure is the best
of --rounds rounds, wall time; the load average is printed too: compare ratios.
"""

from __future__ import annotations

import argparse
import http.client
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from render_samples import load_papers  # noqa: E402

from digest.config import load_settings  # noqa: E402
from digest.sources import hf  # noqa: E402
from digest.store import Database, open_database  # noqa: E402
from digest.store.papers import save_papers  # noqa: E402
from digest.web import create_app  # noqa: E402

NOW = datetime(2026, 6, 12, 10, 0, tzinfo=UTC)
HF_LISTING = ROOT / "tests" / "data" / "sources" / "hf_api_daily_papers_2026-06-12.json"
SECRET = "bench-secret-0123456789-abcdefghijklmnopqrstuv"

# GET a path with headers: the status, the body and the headers (any case of their names).
Get = Callable[[str, dict[str, str]], tuple[int, bytes, Any]]


def fill_store(database: Database, days: int) -> int:
    """Today's real HF listing, and papers.jsonl on each of `days` earlier days."""
    listing = hf.parse_api(HF_LISTING.read_bytes(), "hf").papers
    papers = load_papers()
    with database.session() as session:
        save_papers(session, listing, NOW - timedelta(hours=2))
        for back in range(1, days + 1):
            day = NOW.date() - timedelta(days=back)
            copies = [
                replace(p, id=f"{p.id}.{back}", listed=day, first_seen_at=None) for p in papers
            ]
            save_papers(session, copies, NOW - timedelta(days=back))
    return len(listing) + days * len(papers)


def client_getter(app: Any) -> Get:
    """GET through the Flask test client (a new client: no cookies carried over)."""
    client = app.test_client()

    def get(path: str, headers: dict[str, str]) -> tuple[int, bytes, Any]:
        response = client.get(path, headers=headers)
        return response.status_code, response.get_data(), response.headers

    return get


class Served:
    """The app behind waitress on loopback, with one keep-alive connection per thread."""

    def __init__(self, app: Any, threads: int) -> None:
        from waitress import create_server

        # A full task queue is what a benchmark is for: no warning per request.
        logging.getLogger("waitress.queue").setLevel(logging.ERROR)
        self.server = create_server(app, host="127.0.0.1", port=0, threads=threads)
        self.port = self.server.effective_port  # type: ignore[union-attr]
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        self.local = threading.local()

    def get(self, path: str, headers: dict[str, str]) -> tuple[int, bytes, Any]:
        connection = getattr(self.local, "connection", None)
        if connection is None:
            connection = self.local.connection = http.client.HTTPConnection(
                "127.0.0.1", self.port, timeout=30
            )
        try:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
        except (http.client.RemoteDisconnected, ConnectionError):
            # Waitress closes a connection idle for two minutes: open a new one, once.
            connection.close()
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
        return response.status, response.read(), response.msg

    def close(self) -> None:
        self.server.close()


def rate(get: Get, path: str, requests: int, clients: int, headers: dict[str, str]) -> float:
    """Requests a second for `requests` GETs of `path`, over `clients` threads."""
    status, _, _ = get(path, headers)
    assert status in (200, 304), (path, status)
    each = requests // clients

    def work() -> None:
        for _ in range(each):
            get(path, headers)

    threads = [threading.Thread(target=work) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return each * clients / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=60, help="earlier days of papers")
    parser.add_argument("--requests", type=int, default=2000, help="GETs per figure")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--server", action="store_true", help="through waitress on loopback")
    parser.add_argument("--clients", type=int, default=8, help="client threads (--server)")
    parser.add_argument("--forms", action="store_true", help="the forms, as deployed")
    parser.add_argument("--seconds", type=float, default=10.0, help="per case (--forms)")
    parser.add_argument(
        "--cases", default=",".join(FORM_CASES), help="which of them (--forms), comma-separated"
    )
    parser.add_argument("--serve", help=argparse.SUPPRESS)  # internal: a server process
    options = parser.parse_args()
    if options.serve:
        serve(options.serve)
        return
    if options.forms:
        clients = options.clients if "--clients" in sys.argv else FORM_CLIENTS
        digest_forms(options.seconds, clients, tuple(options.cases.split(",")))
        return

    clients = options.clients if options.server else 1
    with tempfile.TemporaryDirectory() as folder:
        settings = load_settings(
            environ={},
            overrides={
                "service": {"data_dir": folder, "base_url": "http://digest.test"},
                "web": {"secret_key": SECRET},
            },
        )
        database = open_database(settings)
        stored = fill_store(database, options.days)
        cached = create_app(settings, database=database, clock=lambda: NOW)
        uncached = create_app(settings, database=database, clock=lambda: NOW)
        uncached.config["PAPERS_CACHE_BYTES"] = 0
        apps = {"cached": cached, "uncached": uncached}
        servers: list[Served] = []
        if options.server:
            servers = [Served(app, settings.web.threads) for app in apps.values()]
            getters = {name: s.get for name, s in zip(apps, servers, strict=True)}
        else:
            getters = {name: client_getter(app) for name, app in apps.items()}

        day = (NOW.date() - timedelta(days=3)).isoformat()  # a day of papers.jsonl's
        _, page, headers = getters["cached"]("/papers", {})
        etag = {"If-None-Match": headers["ETag"]}
        slow = max(options.requests // 5, clients)  # the baselines: fewer GETs, same rounds
        cases = [
            ("GET / (signup page)", "uncached", "/", {}, slow),
            ("GET /papers/signup-box, cache off", "uncached", "/papers/signup-box", {}, slow),
            ("GET /papers, cache off", "uncached", "/papers", {}, slow),
            (f"GET /papers/{day}, cache off", "uncached", f"/papers/{day}", {}, slow),
            ("GET /papers, cached", "cached", "/papers", {}, options.requests),
            (f"GET /papers/{day}, cached", "cached", f"/papers/{day}", {}, options.requests),
            ("GET /papers/feed.xml, cached", "cached", "/papers/feed.xml", {}, options.requests),
            ("GET /papers, ETag held (304)", "cached", "/papers", etag, options.requests),
            ("GET /papers/signup-box, cached", "cached", "/papers/signup-box", {}, slow),
        ]
        figures = []
        for label, app, path, sent, count in cases:
            best = max(
                rate(getters[app], path, count, clients, sent) for _ in range(options.rounds)
            )
            figures.append((label, best))
        for server in servers:
            server.close()
        database.dispose()

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    how = f"waitress on loopback, {clients} client threads" if options.server else "test client"
    print(f"web benchmark: {how}, best of {options.rounds} rounds of {options.requests} GETs")
    print(f"load average {load:.2f} on {os.cpu_count()} cores; {stored} papers stored")
    shown = page.count(b'class="paper"')
    print(f"/papers is {len(page) / 1000:.0f} kB ({shown} papers)")
    signup = figures[0][1]
    uncached_papers = figures[2][1]
    print(f"  {'':<38} {'req/s':>8}  {'/ signup':>8}  {'/ papers uncached':>17}")
    for label, value in figures:
        ratios = f"x{value / signup:7.1f}  x{value / uncached_papers:16.1f}"
        print(f"  {label:<38} {value:8.0f}  {ratios}")


# --- --forms: the signup and unsubscribe forms as deployed, against a bare Flask "hello" --
#
# Each server is a process of its own, started the way `digest web` starts (digest.service
# `run`, waitress with its settings and thread count), or, for the baseline, a Flask app
# that answers "hello" behind the very same `_listen`. This process is only the load
# generator: `clients` keep-alive connections on one asyncio loop, each sending its next
# request when the answer to the last is in. Each case runs for `seconds` after a second
# of warm-up; the generator's own CPU is reported, since it shares the 2 cores.

FORM_CLIENTS = 16
ZONE = "Europe/Paris"
RAISED = "1000000 per second"  # rate limits out of the way: the limiter is not measured
ONE_CLICK_BODY = "List-Unsubscribe=One-Click"  # RFC 8058


def _config(folder: Path, name: str, raise_limits: bool) -> Path:
    """A config file for one server of the benchmark (its own data folder)."""
    limits = f'signup_limit = "{RAISED}"\naddress_limit = "{RAISED}"\n' if raise_limits else ""
    path = folder / f"{name}.toml"
    path.write_text(
        f'[service]\ndata_dir = "{folder / name}"\nbase_url = "http://digest.test"\n'
        f'log_level = "WARNING"\n[web]\nport = 0\nsecret_key = "{SECRET}"\n{limits}'
    )
    return path


def serve(spec: str) -> None:
    """Run one server until killed; print its URL once it listens. `spec` is
    "digest:CONFIG" (the web app, as `digest web` runs it) or "hello:CONFIG"."""
    from digest import service

    kind, config = spec.split(":", 1)
    # A full task queue is what a benchmark is for: no warning per request.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    settings = load_settings(Path(config))
    if kind == "digest":
        service.run(settings, web=True, scheduler=False, ready=lambda url: print(url, flush=True))
        return
    from flask import Flask

    hello = Flask("hello")
    hello.add_url_rule("/", "hello", lambda: "hello")
    server = service._listen(hello, settings)
    print(f"http://127.0.0.1:{server.effective_port}", flush=True)
    server.run()


class Server:
    """A server process of the benchmark, and the CPU it has used."""

    def __init__(self, kind: str, config: Path) -> None:
        import subprocess

        command = [sys.executable, __file__, "--serve", f"{kind}:{config}"]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        url = self.process.stdout.readline().strip()  # type: ignore[union-attr]
        assert url.startswith("http://"), f"{kind} server did not start"
        self.port = int(url.rsplit(":", 1)[1])

    def cpu(self) -> float:
        """Seconds of CPU (user and system) the server has used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


Request = Callable[[int, int], bytes]  # (client, n) -> the raw HTTP request


async def _exchange(reader: Any, writer: Any, raw: bytes) -> tuple[int, bytes, bytes]:
    """Send one request; the status, the header block and the body of the answer."""
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    body = await reader.readexactly(length) if length else b""
    return status, head, body


async def _drive(
    port: int, clients: int, seconds: float, make: Request, prepare: Any = None
) -> tuple[int, list[float], dict[int, int], float]:
    """`clients` connections sending `make(client, n)` for `seconds` (after a second of
    warm-up): requests done, their latencies, statuses, and the generator's CPU seconds."""
    import asyncio

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    measuring = {"on": False}

    async def client(index: int, until: float) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        state = await prepare(reader, writer) if prepare else None
        n = 0
        while time.perf_counter() < until:
            raw = make(index, n) if state is None else make(index, n, state)  # type: ignore[call-arg]
            n += 1
            started = time.perf_counter()
            status, _, _ = await _exchange(reader, writer, raw)
            if measuring["on"]:
                latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1
        writer.close()

    start = time.perf_counter()
    until = start + 1.0 + seconds
    tasks = [asyncio.ensure_future(client(i, until)) for i in range(clients)]
    await asyncio.sleep(1.0)  # warm-up: connections open, forms fetched, caches filled
    measuring["on"] = True
    cpu = time.process_time()
    await asyncio.gather(*tasks)
    return len(latencies), latencies, statuses, time.process_time() - cpu


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: digest.test\r\n\r\n".encode()


def _post(path: str, body: str, cookie: str = "") -> bytes:
    extra = f"Cookie: {cookie}\r\n" if cookie else ""
    return (
        f"POST {path} HTTP/1.1\r\nHost: digest.test\r\n{extra}"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode()


async def _fresh_form(reader: Any, writer: Any) -> tuple[str, str]:
    """GET / as a visitor: the form's CSRF token and the session cookie it is bound to."""
    import re

    _, head, body = await _exchange(reader, writer, _get("/"))
    token = re.search(rb'name="csrf_token" type="hidden" value="([^"]+)"', body)
    cookie = re.search(rb"Set-Cookie: (session=[^;]+)", head, re.IGNORECASE)
    assert token and cookie, "no CSRF token or session cookie on GET /"
    return token.group(1).decode(), cookie.group(1).decode()


def _signup(run: str) -> Callable[..., bytes]:
    """A signup POST with the client's own token, for a new address every time."""
    from urllib.parse import urlencode

    def make(client: int, n: int, form: tuple[str, str]) -> bytes:
        token, cookie = form
        fields = {
            "csrf_token": token,
            "email": f"reader.{run}.{client}.{n}@example.org",
            "interests": "diffusion\nlarge language model",
            "send_time": "07:30",
            "timezone": ZONE,
            "website": "",
        }
        return _post("/", urlencode(fields), cookie)

    return make


def _unsubscribe_paths(config: Path, clients: int, seconds: float) -> list[list[str]]:
    """Active subscribers stored for the one-click case, enough that every request
    unsubscribes someone still subscribed: each client's unsubscribe links."""
    from sqlalchemy import insert, select

    from digest.store.models import SubscriberRow
    from digest.tokens import make_token

    each = int(3000 * (seconds + 1)) // clients  # far beyond the goal of 1,000/s
    settings = load_settings(config)
    database = open_database(settings)
    with database.session() as session:
        session.execute(
            insert(SubscriberRow),
            [
                {
                    "email": f"leaving.{i}@example.org",
                    "interests": "diffusion",
                    "status": "active",
                    "created_at": NOW,
                    "status_changed_at": NOW,
                    "next_digest_at": NOW + timedelta(days=1),
                }
                for i in range(each * clients)
            ],
        )
    with database.session() as session:
        rows = session.execute(select(SubscriberRow.id, SubscriberRow.email)).all()
    database.dispose()
    paths = [f"/unsubscribe/{make_token(SECRET, 'unsubscribe', i, email)}" for i, email in rows]
    return [paths[c::clients] for c in range(clients)]


def _confirmations(config: Path) -> tuple[int, int]:
    """Confirmation emails queued, and delivered, by the server that used `config`."""
    from sqlalchemy import func, select

    from digest.store.models import OutboxRow

    database = open_database(load_settings(config))
    with database.session() as session:
        counts = dict(
            session.execute(
                select(OutboxRow.state, func.count())
                .where(OutboxRow.kind == "confirm")
                .group_by(OutboxRow.state)
            ).all()
        )
    database.dispose()
    return sum(counts.values()), counts.get("sent", 0)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


FORM_CASES = ("hello", "get", "signup", "unsubscribe", "limited")


def digest_forms(seconds: float, clients: int, cases: tuple[str, ...] = FORM_CASES) -> None:
    """GET /, signup POST, one-click unsubscribe and the 429 page against "hello", which
    runs first and last (the machine is shared: its load moves during a run)."""
    import asyncio

    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        raised, default = _config(folder, "raised", True), _config(folder, "default", False)
        unsubscribe = _unsubscribe_paths(raised, clients, seconds) if "unsubscribe" in cases else []
        servers = {
            "hello": Server("hello", raised),
            "digest": Server("digest", raised),
            "limited": Server("digest", default),
        }
        makers: dict[str, tuple[str, str, Any, Any]] = {
            "hello": ('bare Flask "hello"', "hello", lambda c, n: _get("/"), None),
            "get": ("GET / (signup page)", "digest", lambda c, n: _get("/"), None),
            "signup": ("signup POST", "digest", _signup("a"), _fresh_form),
            "unsubscribe": (
                "one-click unsubscribe POST",
                "digest",
                lambda c, n: _post(unsubscribe[c][n % len(unsubscribe[c])], ONE_CLICK_BODY),
                None,
            ),
            "limited": ("signup POST, rate-limited (429)", "limited", _signup("b"), _fresh_form),
        }
        order = [c for c in FORM_CASES if c in cases] + (["hello"] if "hello" in cases else [])
        rows: list[tuple[str, int, list[float], dict[int, int], float, float]] = []
        for which in order:
            label, server_name, make, prepare = makers[which]
            server = servers[server_name]
            cpu = server.cpu()
            done, latencies, statuses, own = asyncio.run(
                _drive(server.port, clients, seconds, make, prepare)
            )
            rows.append((label, done, latencies, statuses, own, server.cpu() - cpu))
        for server in servers.values():
            server.stop()
        confirmations = _confirmations(raised)
    _print_forms(rows, seconds, clients, confirmations)


def _print_forms(
    rows: list[tuple[str, int, list[float], dict[int, int], float, float]],
    seconds: float,
    clients: int,
    confirmations: tuple[int, int],
) -> None:
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"forms as deployed: waitress, {clients} clients, {seconds:.0f} s a case")
    print(f"load average {' '.join(load)} (1, 5, 15 min) on {os.cpu_count()} cores")
    hellos = [done for label, done, *_ in rows if label.startswith("bare")]
    base = sum(hellos) / len(hellos) / seconds if hellos else float("nan")
    print(
        f"  {'case':<34}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'% hello':>9}"
        f"{'srv ms/req':>11}{'gen CPU':>8}  statuses"
    )
    for label, done, latencies, statuses, own, server_cpu in rows:
        per_second = done / seconds
        print(
            f"  {label:<34}{per_second:8.0f}{_percentile(latencies, 0.5) * 1000:8.1f}"
            f"{_percentile(latencies, 0.99) * 1000:8.1f}{per_second / base * 100:8.1f}%"
            f"{server_cpu / max(done, 1) * 1000:11.2f}{own / seconds * 100:7.0f}%  {statuses}"
        )
    print("  (% hello: of the mean of the two hello runs; srv ms/req: the server's CPU)")
    accepted = sum(r[3].get(303, 0) for r in rows if r[0] == "signup POST")
    print(
        f"confirmations queued {confirmations[0]}, delivered by the time the server "
        f"stopped {confirmations[1]} (signup POSTs answered 303 while measured: {accepted})"
    )


if __name__ == "__main__":
    main()
