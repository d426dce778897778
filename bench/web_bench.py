"""How many requests a second the papers pages answer, cached, against baselines in the same run.

    python bench/web_bench.py [--days 60] [--requests 2000] [--rounds 3] [--server --clients 8]

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
    options = parser.parse_args()

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


if __name__ == "__main__":
    main()
