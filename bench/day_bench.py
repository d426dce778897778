"""A whole day at N readers: `queue_due_digests`, then `digest send`, per stage.

    python bench/day_bench.py                          # 10k and 100k readers, SQLite
    python bench/day_bench.py --sizes 10000 --workers 1 2
    DIGEST_TEST_POSTGRES_URL=postgresql+psycopg://... python bench/day_bench.py --postgres

One day of 1,000 papers synthesised from real ones as bench/match_bench.py makes them
(a tenth of them listed on Hugging Face, so trending has papers), and N readers with
interests drawn as match_bench.py draws them (its generator, imported), a third of them
with `trending:5` added (or alone), their watermarks drawn as it draws them. Readers are
stored through `digest.store.subscribers` (rows inserted pending in bulk, then made
active by `change_status`, the one status writer, which schedules them); all are due.

Timed, per size, in a fresh process (so that its peak memory is its own):

- the job: `queue_due_digests` (wall, and the CPU of each stage as its report counts it:
  read, index, match, render, queue), once per `--workers` value, each on a fresh copy
  of the same store, the first (usually 1 worker) being the baseline of the ratios;
- send: `send_due` (what `digest send` runs) to a minimal SMTP sink on loopback
  (bench/send_bench.py's, in its own process) over 4 connections, and to a maildir
  (up to `--maildir-max` readers: a message is ~69 KB on disk).

Printed: seconds per 1k readers for each stage at each N (linear growth shows as equal
figures), the render rate inside the job (digests per CPU second of rendering, i.e. per
core), the whole day extrapolated to 1M readers, peak RSS (the parent's, and the largest
worker's), and the load average beside every figure: others share this machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

from match_bench import DAY, InterestMaker, load_real, synthesise_papers, vocabulary  # noqa: E402
from send_bench import Sink  # noqa: E402
from sqlalchemy import bindparam, insert, select, update  # noqa: E402

from digest.config import Settings, load_settings  # noqa: E402
from digest.jobs.digests import queue_due_digests  # noqa: E402
from digest.send import send_due  # noqa: E402
from digest.store import Database, open_database  # noqa: E402
from digest.store.models import SubscriberRow  # noqa: E402
from digest.store.papers import save_papers  # noqa: E402
from digest.store.subscribers import change_status  # noqa: E402

SIGNUP = DAY - timedelta(days=4)  # readers made active then: due at `SEND_TIME` since
SEND_TIME = "20:00"  # UTC, DAY's hour: everyone is due at NOW
NOW = DAY + timedelta(minutes=10)  # the job's run; its cutoff (NOW - 5 min) is after DAY
STAGES = ("read", "index", "match", "render", "queue")
TRENDING_SHARE = 3  # one reader in 3 has trending
HF_SHARE = 10  # one paper in 10 is listed on Hugging Face


def load() -> float:
    return os.getloadavg()[0]


def peak_rss_mb() -> tuple[float, float]:
    """Peak RSS of this process and of its largest finished child, in MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


# --- the store ---------------------------------------------------------------------------


def bench_settings(folder: Path, url: str | None, **sections: dict[str, Any]) -> Settings:
    overrides: dict[str, Any] = {
        "service": {"data_dir": str(folder), "base_url": "https://digest.example.org"},
        "mail": {
            "from_address": "digest@example.org",
            "postal_address": "Paper Digest, 12 Rue des Écoles, 75005 Paris",
        },
    }
    if url:
        overrides["database"] = {"url": url}
    overrides.update(sections)
    return load_settings(environ={}, overrides=overrides)


def store_papers(database: Database, rng: random.Random) -> int:
    """A day of 1,000 synthetic papers, each saved at its own first sighting."""
    papers = synthesise_papers(load_real(), 1000, rng)
    with database.session() as session:
        for number, paper in enumerate(sorted(papers, key=lambda p: p.first_seen_at)):
            on_hf = number % HF_SHARE == 0
            paper = replace(paper, sources=("hf",) if on_hf else ("arxiv",), listed=DAY.date())
            save_papers(session, [paper], paper.first_seen_at)
    return len(papers)


def store_readers(database: Database, size: int, rng: random.Random) -> None:
    """`size` active readers: inserted pending in bulk, made active by `change_status`,
    then given match_bench's watermarks."""
    maker = InterestMaker(vocabulary(load_real()), rng)
    chunk = 20_000
    for start in range(0, size, chunk):
        rows = []
        for number in range(start, min(size, start + chunk)):
            interests = maker.interests()
            if number % TRENDING_SHARE == 0:
                interests = "trending:5" if rng.random() < 0.2 else interests + "\ntrending:5"
            rows.append(
                {
                    "email": f"reader{number}@example.net",
                    "interests": interests,
                    "status": "pending",
                    "send_time": SEND_TIME,
                    "timezone": "UTC",
                    "created_at": SIGNUP,
                    "status_changed_at": SIGNUP,
                    "consecutive_failures": 0,
                }
            )
        with database.session() as session:
            session.execute(insert(SubscriberRow), rows)
    with database.session() as session:
        ids = list(session.scalars(select(SubscriberRow.id).order_by(SubscriberRow.id)))
        change_status(session, ids, "active", SIGNUP)
        table = SubscriberRow.__table__
        marks = [{"key": key, "mark": maker.watermark()} for key in ids]
        session.execute(
            update(table)
            .where(table.c.id == bindparam("key"))
            .values(last_digest_at=bindparam("mark")),
            marks,
            execution_options={"synchronize_session": False},
        )


# --- one size --------------------------------------------------------------------------


@contextlib.contextmanager
def fresh_store(backend: str, folder: Path):  # type: ignore[no-untyped-def]
    """(settings, database) on a new SQLite file or PostgreSQL database."""
    if backend == "sqlite":
        settings = bench_settings(folder, None)
        database = open_database(settings)
        try:
            yield settings, database
        finally:
            database.dispose()
        return
    from conftest import _fresh_postgres_database

    with contextlib.contextmanager(_fresh_postgres_database)() as database:
        settings = bench_settings(folder, database.url)
        yield settings, database


def copy_store(backend: str, source: Database, settings: Settings, folder: Path) -> Any:
    """A copy of the filled store to run on (SQLite: the file; PostgreSQL: a template)."""
    if backend == "sqlite":
        source.dispose()
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(settings.data_dir / "digest.db", folder / "digest.db")
        copy = bench_settings(folder, None)
        return contextlib.nullcontext((copy, open_database(copy)))
    return _postgres_copy(source, folder)


@contextlib.contextmanager
def _postgres_copy(source: Database, folder: Path):  # type: ignore[no-untyped-def]
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    source.dispose()
    url = make_url(source.url)
    name = f"{url.database}_copy{random.randrange(10**6)}"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{url.database}"'))
    database = Database(url.set(database=name).render_as_string(False))
    try:
        yield bench_settings(folder, database.url), database
    finally:
        database.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def run_job(settings: Settings, database: Database, workers: int) -> dict[str, Any]:
    load_before = load()
    started = time.perf_counter()
    report = queue_due_digests(settings, database, now=NOW, workers=workers)
    wall = time.perf_counter() - started
    return {
        "workers": workers,
        "wall": wall,
        "cpu": report.cpu,
        "due": report.due,
        "queued": report.queued,
        "empty": report.empty,
        "load": [load_before, load()],
    }


def run_send(settings: Settings, database: Database, kind: str, expected: int) -> dict[str, Any]:
    """`send_due` to the sink or the maildir, timed; checks every message went."""
    sink = Sink("fast") if kind == "smtp" else None
    if sink is not None:
        smtp = {"host": "127.0.0.1", "port": sink.port, "security": "none", "connections": 4}
        settings = replace(settings, smtp=replace(settings.smtp, **smtp))
        settings = replace(settings, delivery=replace(settings.delivery, backend="smtp"))
    else:
        settings = replace(settings, delivery=replace(settings.delivery, backend="maildir"))
    load_before = load()
    started, cpu = time.perf_counter(), time.process_time()
    try:
        report = send_due(settings, database, now=NOW + timedelta(minutes=1))
    finally:
        if sink is not None:
            accepted = sink.counter.value
            sink.stop()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    if sink is not None and accepted != expected:
        raise RuntimeError(f"the sink accepted {accepted}, expected {expected}")
    if report.sent != expected:
        raise RuntimeError(f"sent {report.sent}, expected {expected}: {report}")
    return {"kind": kind, "wall": wall, "cpu": cpu, "sent": report.sent,
            "load": [load_before, load()]}  # fmt: skip


def run_size(size: int, backend: str, workers: list[int], maildir_max: int, seed: int) -> dict:
    rng = random.Random(seed)
    top = Path(tempfile.mkdtemp(prefix="day-bench-"))
    row: dict[str, Any] = {"size": size, "backend": backend, "jobs": [], "sends": []}
    try:
        with fresh_store(backend, top / "filled") as (settings, database):
            started = time.perf_counter()
            row["papers"] = store_papers(database, rng)
            store_readers(database, size, rng)
            row["setup_s"] = time.perf_counter() - started
            for number, count in enumerate(workers):
                with copy_store(backend, database, settings, top / f"run{number}") as (s, d):
                    job = run_job(s, d, count)
                    job["rss_mb"] = peak_rss_mb()
                    row["jobs"].append(job)
                    if number == 0:  # sending does not depend on how the job ran
                        row["sends"].append(run_send(s, d, "smtp", job["queued"]))
                if number == 0 and size <= maildir_max:
                    with copy_store(backend, database, settings, top / "maildir") as (s, d):
                        queue_due_digests(s, d, now=NOW, workers=count)
                        row["sends"].append(run_send(s, d, "maildir", job["queued"]))
                    shutil.rmtree(top / "maildir", ignore_errors=True)
                shutil.rmtree(top / f"run{number}", ignore_errors=True)
    finally:
        shutil.rmtree(top, ignore_errors=True)
    row["rss_mb"] = peak_rss_mb()
    return row


# --- the table ---------------------------------------------------------------------------


def per_k(seconds: float, size: int) -> str:
    return f"{seconds / size * 1000:.3f}"


def print_table(rows: list[dict]) -> None:
    print("\nthe job (queue_due_digests): s per 1k readers; stages in CPU s (all workers)")
    print("| readers | backend | workers | wall | " + " | ".join(STAGES) +
          " | render/s/core | queued | peak RSS MB (parent, worker) | load |")  # fmt: skip
    print("|---:|---|---:|---:|" + "---:|" * len(STAGES) + "---:|---:|---|---|")
    for row in rows:
        base = row["jobs"][0]["wall"]
        for job in row["jobs"]:
            stages = " | ".join(per_k(job["cpu"].get(name, 0.0), row["size"]) for name in STAGES)
            render = job["queued"] / job["cpu"]["render"] if job["cpu"].get("render") else 0
            ratio = "" if job is row["jobs"][0] else f" ({base / job['wall']:.2f}x)"
            print(
                f"| {row['size']:,} | {row['backend']} | {job['workers']} "
                f"| {per_k(job['wall'], row['size'])}{ratio} | {stages} | {render:,.0f} "
                f"| {job['queued']:,} | {job['rss_mb'][0]:,.0f}, {job['rss_mb'][1]:,.0f} "
                f"| {job['load'][0]:.2f}–{job['load'][1]:.2f} |"
            )
    print("\nsend (send_due, 4 connections): s per 1k messages")
    print("| readers | backend | to | wall | CPU | msg/s | load |")
    print("|---:|---|---|---:|---:|---:|---|")
    for row in rows:
        for send in row["sends"]:
            print(
                f"| {row['size']:,} | {row['backend']} | {send['kind']} "
                f"| {per_k(send['wall'], send['sent'])} | {per_k(send['cpu'], send['sent'])} "
                f"| {send['sent'] / send['wall']:,.0f} "
                f"| {send['load'][0]:.2f}–{send['load'][1]:.2f} |"
            )
    print("\nthe whole day at 1M readers, from each size's figures (job + send to the sink)")
    for row in rows:
        smtp = next(s for s in row["sends"] if s["kind"] == "smtp")
        send = smtp["wall"] / max(1, smtp["sent"]) * (row["queued_share"] * 1_000_000)
        for job in row["jobs"]:
            day = job["wall"] / row["size"] * 1_000_000 + send
            print(
                f"  {row['size']:,} {row['backend']}, {job['workers']} worker(s): "
                f"{day / 60:.1f} min (job {job['wall'] / row['size'] * 1e6 / 60:.1f}, "
                f"send {send / 60:.1f}); target < 20 min"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--maildir-max", type=int, default=100_000)
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL instead of SQLite")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    backend = "postgresql" if args.postgres else "sqlite"
    if args.child:
        (size,) = args.sizes
        row = run_size(size, backend, args.workers, args.maildir_max, args.seed)
        print(json.dumps(row))
        return
    print(f"day bench: {os.cpu_count()} cores, load {os.getloadavg()}", flush=True)
    rows = []
    for size in args.sizes:
        command = [sys.executable, __file__, "--child", "--sizes", str(size), "--seed",
                   str(args.seed), "--maildir-max", str(args.maildir_max), "--workers",
                   *map(str, args.workers)] + (["--postgres"] if args.postgres else [])  # fmt: skip
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        row = json.loads(output.strip().splitlines()[-1])
        row["queued_share"] = row["jobs"][0]["queued"] / size
        rows.append(row)
        print(json.dumps(row), flush=True)
    print_table(rows)
    print(f"\nload at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
