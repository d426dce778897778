"""A whole day at N readers: `queue_due_digests`, then `digest send`, per stage.

    python bench/day_bench.py                          # 10k and 100k readers, SQLite
    python bench/day_bench.py --sizes 10000 --workers 1 2
    DIGEST_TEST_POSTGRES_URL=postgresql+psycopg://... python bench/day_bench.py --postgres
    DIGEST_TEST_POSTGRES_URL=postgresql+psycopg://... python bench/day_bench.py \
        --celery 1 2 --sizes 10000 100000          # in-process vs 1 and 2 task workers

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

`--models FRACTION`: the added cost of readers' models (digest.learn). The filled store
gets a text model (`refit_text_model`); then, on fresh copies of it, the job is timed
without any reader model (baseline) and with FRACTION of the readers (drawn at random)
given a model: 5 to 20 random "more"/"less" votes each on stored papers, written as
feedback rows, fitted by `rebuild_models` before the timed part. Both with the first
`--workers` value, alternated `--repeat` times; no send (it does not depend on models).
Printed: baseline and with-models wall, process CPU and the CPU of each stage (the least
of each kind's runs), their ratio, and the added seconds per 1k modelled readers.
`--profile PATH` adds one more with-models run under `py-spy record` (untimed: py-spy
perturbs what it measures) and prints its top lines.

`--celery K...` (PostgreSQL: task workers share the database; needs redis-server and the
celery extra): per size, the store is filled once and each run gets a fresh copy of it:
first the day in-process on the same PostgreSQL (`queue_due_digests` in one process,
then `send_due`), then for each K a fresh redis-server and K `digest worker -c 1`
processes (bench/day_celery.py's instrumented entry point: the same command, each task
timed) with a config naming the copy, the broker, `[queue] batch`/`send_chunk` and the
loopback sink (security "none"); `dispatch_due` is called once and again every `--tick`
seconds, as the scheduler's digest check would, until the sink has every digest and
nothing is due. Before each run the bench waits for a 1-minute load under
`--quiet-below` (polling every 30 s, at most `--quiet-wait`). Wall runs from the job's
start (in-process) or the first dispatch to the last message the sink accepted.
Printed per size: wall, ms of wall and of CPU per reader (CPU: the bench process
in-process; the worker processes and their pool processes, from /proc, with tasks),
the speed-up against 1 worker, PostgreSQL's CPU (its backends for the copy, from /proc)
and share of all CPU, the sink's and Redis's CPU, peak RSS per worker; the task
overhead (worker CPU outside task bodies and Redis's CPU against the workers' CPU,
Redis commands, outbox claims and their wall, idle time of the workers); the goals
(2 workers >= 1.8x one; overhead < 5 %); 1M readers extrapolated to K machines; and,
with `--py-spy S`, the top functions of one pool process (a run of its own: py-spy
perturbs what it measures).
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
from collections import Counter
from dataclasses import replace
from datetime import timedelta
from itertools import zip_longest
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

from day_celery import (  # noqa: E402
    ActivitySampler,
    RedisServer,
    Sampler,
    StampedSink,
    Workers,
    _short,
    children,
    counting_claims,
    machine_cpu,
    machine_since,
    postgres_trackers,
    py_spy_top,
    raw_stacks,
    reset_peak_rss,
    say,
    start_py_spy,
    task_figures,
    toml_config,
    vm_hwm_mb,
    wait_quiet,
    worker_tracker,
)
from match_bench import DAY, InterestMaker, load_real, synthesise_papers, vocabulary  # noqa: E402
from send_bench import Sink  # noqa: E402
from sqlalchemy import bindparam, func, insert, select, update  # noqa: E402

from digest.config import Settings, load_settings  # noqa: E402
from digest.jobs.digests import queue_due_digests  # noqa: E402
from digest.learn.models import rebuild_models, refit_text_model  # noqa: E402
from digest.send import send_due  # noqa: E402
from digest.store import Database, open_database  # noqa: E402
from digest.store.models import FeedbackRow, PaperRow, SubscriberRow  # noqa: E402
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


def base_sections(folder: Path) -> dict[str, dict[str, Any]]:
    """The settings every run of the bench has (a config file's sections)."""
    return {
        "service": {"data_dir": str(folder), "base_url": "https://digest.example.org"},
        "mail": {
            "from_address": "digest@example.org",
            "postal_address": "Paper Digest, 12 Rue des Écoles, 75005 Paris",
        },
    }


def bench_settings(folder: Path, url: str | None, **sections: dict[str, Any]) -> Settings:
    overrides: dict[str, Any] = base_sections(folder)
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
    started, process = time.perf_counter(), time.process_time()
    report = queue_due_digests(settings, database, now=NOW, workers=workers)
    wall = time.perf_counter() - started
    return {
        "workers": workers,
        "wall": wall,
        "process_cpu": time.process_time() - process,  # this process's (1 worker: all)
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


# --- readers' models (--models) -----------------------------------------------------------


def store_votes(database: Database, fraction: float, rng: random.Random) -> int:
    """Feedback rows for `fraction` of the readers (drawn at random): 5 to 20 votes each
    on distinct stored papers, "more" or "less" at even odds. Returns how many readers."""
    with database.session() as session:
        readers = list(session.scalars(select(SubscriberRow.id).order_by(SubscriberRow.id)))
        papers = list(session.scalars(select(PaperRow.id).order_by(PaperRow.id)))
        chosen = sorted(rng.sample(readers, round(fraction * len(readers))))
        rows = [
            {"subscriber_id": reader, "paper_id": paper, "vote": rng.choice((1, -1)),
             "source": "email", "created_at": SIGNUP}
            for reader in chosen
            for paper in rng.sample(papers, rng.randint(5, 20))
        ]  # fmt: skip
        for start in range(0, len(rows), 20_000):
            session.execute(insert(FeedbackRow), rows[start : start + 20_000])
        session.commit()
    return len(chosen)


def run_size_models(size: int, args: argparse.Namespace) -> dict[str, Any]:
    """The job without reader models and with `args.models` of the readers modelled,
    each run on a fresh copy of its store, alternated. The filled store gets its text
    model, is copied as the baseline's store, then gets the votes and the models (fitted
    once: a rebuild takes a while) and is the with-models runs' store."""
    rng = random.Random(args.seed)
    top = Path(tempfile.mkdtemp(prefix="day-bench-models-"))
    workers = args.workers[0]
    row: dict[str, Any] = {"size": size, "backend": "sqlite", "workers": workers,
                           "fraction": args.models, "baseline": [], "models": []}  # fmt: skip
    try:
        with contextlib.ExitStack() as stores:
            settings, database = stores.enter_context(fresh_store("sqlite", top / "filled"))
            started = time.perf_counter()
            row["papers"] = store_papers(database, rng)
            store_readers(database, size, rng)
            row["text_model"] = refit_text_model(database, SIGNUP).text_version
            row["setup_s"] = time.perf_counter() - started
            plain = stores.enter_context(copy_store("sqlite", database, settings, top / "plain"))
            row["modelled"] = store_votes(database, args.models, random.Random(args.seed + 1))
            report = rebuild_models(database, SIGNUP + timedelta(hours=1))
            row["rebuild_s"], row["models_built"] = report.seconds, report.models
            sources = {"baseline": plain, "models": (settings, database)}
            runs = [kind for _ in range(args.repeat) for kind in ("baseline", "models")]
            for number, kind in enumerate([*runs, *(["profile"] if args.profile else [])]):
                source_settings, source = sources["models" if kind == "profile" else kind]
                folder = top / f"run{number}"
                with copy_store("sqlite", source, source_settings, folder) as (s, d):
                    profiler = None
                    if kind == "profile":
                        profiler = start_py_spy(os.getpid(), 3600, Path(args.profile))
                        time.sleep(1.0)  # py-spy attaches
                    job = run_job(s, d, workers)
                    if profiler is not None:
                        profiler.send_signal(2)  # SIGINT: py-spy writes its profile
                        profiler.wait(timeout=120)
                        row["py_spy"] = py_spy_top(Path(args.profile), 20)
                        row["py_spy_learn"] = learn_frames(Path(args.profile))
                        row["profile_wall"] = job["wall"]
                    else:
                        row[kind].append(job)
                shutil.rmtree(folder, ignore_errors=True)
    finally:
        shutil.rmtree(top, ignore_errors=True)
    return row


def learn_frames(path: Path, lines: int = 12) -> list[tuple[str, float]]:
    """The share of a py-spy raw profile's samples spent anywhere under each function of
    `digest.learn` (and all of them together, first): what the models cost in the run."""
    anywhere: Counter[str] = Counter()
    total = 0
    for stack, samples in raw_stacks(path):
        total += samples
        frames = {_short(f) for f in stack if "digest/learn/" in f}
        for frame in frames:
            anywhere[frame] += samples
        if frames:
            anywhere["(any digest.learn function)"] += samples
    return [(name, n / max(1, total)) for name, n in anywhere.most_common(lines)]


def print_models(rows: list[dict]) -> None:
    """Baseline against with-models, per size: wall and this process's CPU (the job runs
    in it with 1 worker), each the best (least) of the runs of its kind."""
    print("\nreaders' models: the job without and with models (s per 1k readers; best of runs)")
    print(
        "| readers | modelled | measure | baseline | with models | ratio | added s per 1k "
        "modelled readers |"
    )
    print("|---:|---:|---|---:|---:|---:|---:|")
    for row in rows:
        size, modelled = row["size"], row["modelled"]
        measures = [("wall", lambda job: job["wall"]), ("CPU", lambda job: job["process_cpu"])]
        measures += [
            (f"{stage} CPU", lambda job, stage=stage: job["cpu"].get(stage, 0.0))
            for stage in STAGES
        ]
        for name, value in measures:
            base = min(value(job) for job in row["baseline"])
            made = min(value(job) for job in row["models"])
            ratio = f"{made / base:.3f}" if base else "–"
            print(
                f"| {size:,} | {modelled:,} | {name} | {per_k(base, size)} | {per_k(made, size)} "
                f"| {ratio} | {(made - base) / modelled * 1000:.3f} |"
            )
        queued = [job["queued"] for job in row["baseline"] + row["models"]]
        print(
            "  every run, wall / CPU s: baseline "
            + ", ".join(f"{j['wall']:.1f} / {j['process_cpu']:.1f}" for j in row["baseline"])
            + "; with models "
            + ", ".join(f"{j['wall']:.1f} / {j['process_cpu']:.1f}" for j in row["models"])
            + f"; queued {queued}; load {[j['load'] for j in row['baseline'] + row['models']]}"
        )
        print(
            f"  setup (not timed): store {row['setup_s']:.1f} s; rebuild of "
            f"{row['models_built']:,} models {row['rebuild_s']:.1f} s"
        )
        if "py_spy" in row:
            print_py_spy(
                {"py_spy": row["py_spy"], "workers": row["workers"]},
                f"py-spy of a with-models run (untimed, wall {row['profile_wall']:.1f} s)",
            )
            print("  digest.learn's functions, share of samples anywhere in the stack:")
            for name, share in row["py_spy_learn"]:
                print(f"  {share:6.1%} {name}")


# --- on task workers (--celery) ----------------------------------------------------------


def auto_batch(size: int) -> int:
    """Readers per digest task: 20 tasks at least (so 2 workers end within a task of
    each other), at most the service's default 2,000."""
    return max(100, min(2000, size // 20))


def database_name(database: Database) -> str:
    from sqlalchemy.engine import make_url

    return str(make_url(database.url).database)


def sink_sections(port: int) -> dict[str, dict[str, Any]]:
    return {
        "smtp": {"host": "127.0.0.1", "port": port, "security": "none", "connections": 4},
        "delivery": {"backend": "smtp"},
    }


def vacuum_analyze(database: Database) -> None:
    """VACUUM ANALYZE the filled store before it is copied: every copy starts as a store
    that autovacuum keeps up with would be (filling it updated every reader twice, and
    a copy made before autovacuum came by had twice the rows dead and no statistics: the
    first run on it spent 2.6x the PostgreSQL CPU of the later ones at 100k readers)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database.url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text("VACUUM ANALYZE"))
    finally:
        engine.dispose()


def run_inprocess_day(folder: Path, database: Database, args: argparse.Namespace) -> dict:
    """The day in this process, on PostgreSQL: `queue_due_digests` (1 process), then
    `send_due` to the stamped sink; wall from the job's start to the last message the
    sink accepted."""
    sink = StampedSink()
    settings = bench_settings(folder, database.url, **sink_sections(sink.port))
    ours, every = postgres_trackers(database_name(database))
    activity = ActivitySampler(database.url) if args.pg_activity else None
    sampler = Sampler([ours, every, *([activity] if activity else [])])
    try:
        load_before = wait_quiet(args.quiet_below, args.quiet_wait, "the day in-process")
        reset_peak_rss()
        sink_cpu = sink.cpu()
        machine = machine_cpu()
        sampler.start()
        started, cpu = time.monotonic(), time.process_time()
        with counting_claims() as claims:
            job = queue_due_digests(settings, database, now=NOW, workers=1)
            job_wall, job_cpu = time.monotonic() - started, time.process_time() - cpu
            sent = send_due(settings, database, now=NOW + timedelta(minutes=1))
        cpu = time.process_time() - cpu
        sampler.stop()
        machine = machine_since(machine)
        if not sink.accepted == sent.sent == job.queued:
            raise RuntimeError(f"queued {job.queued}, sent {sent.sent}, sink {sink.accepted}")
        wall = sink.last.value - started
        return {
            "wall": wall, "job_wall": job_wall, "send_wall": wall - job_wall, "cpu": cpu,
            "job_cpu": job_cpu, "stages": job.cpu, "queued": job.queued,
            "pg_cpu": ours.seconds, "pg_all_cpu": every.seconds, "sink_cpu": sink.cpu() - sink_cpu,
            "claims": dict(claims), "rss_mb": vm_hwm_mb(os.getpid()), "machine": machine,
            "pg_activity": activity.top() if activity else [],
            "load": [load_before, load()],
        }  # fmt: skip
    finally:
        sink.stop()


def run_celery_day(
    folder: Path,
    database: Database,
    count: int,
    expected: int,
    redis: RedisServer,
    args: argparse.Namespace,
) -> dict:
    """The day on `count` workers: dispatch_due once, then every `--tick` s until the
    sink has every message; wall from the first dispatch to the last message accepted."""
    from digest.tasks import QUEUES
    from digest.tasks.dispatch import dispatch_due
    from digest.tasks.work import configure

    folder.mkdir(parents=True, exist_ok=True)
    redis.reset()
    sink = StampedSink()
    queue = {"broker": redis.url, "batch": args.queue_batch, "send_chunk": args.send_chunk}
    sections = {"database": {"url": database.url}, "queue": queue, **sink_sections(sink.port)}
    settings = bench_settings(folder, database.url, **sections)
    config = folder / "config.toml"
    config.write_text(toml_config(base_sections(folder) | sections))
    clock = folder / "clock"  # the workers' time: when `run_send` sends in-process
    clock.write_text((NOW + timedelta(minutes=1)).isoformat())
    workers = Workers(count, config, folder, clock)
    spy = None
    try:
        workers.start()
        workers.wait_ready(configure(settings))
        load_before = wait_quiet(args.quiet_below, args.quiet_wait, f"the day on {count} workers")
        tracked = worker_tracker(workers.pids)
        ours, every = postgres_trackers(database_name(database))
        activity = ActivitySampler(database.url) if args.pg_activity else None
        sampler = Sampler([tracked, ours, every, *([activity] if activity else [])])
        broker, sink_cpu = redis.figures(), sink.cpu()
        machine = machine_cpu()
        sampler.start()
        started, cpu = time.monotonic(), time.process_time()
        first = dispatch_due(settings, database, now=NOW)
        dispatched = time.monotonic() - started
        if args.py_spy and count == max(args.celery):
            pool = children(workers.pids[0])
            spy = start_py_spy(pool[0], args.py_spy, folder / "py-spy.txt") if pool else None
        ticks, next_tick, deadline = 1, started + args.tick, started + args.timeout
        while sink.accepted < expected:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{sink.accepted} of {expected} sent: {workers.logs()}")
            time.sleep(0.05)
            if time.monotonic() >= next_tick:
                dispatch_due(settings, database, now=NOW)
                ticks, next_tick = ticks + 1, next_tick + args.tick
        wall = sink.last.value - started
        while redis.waiting(QUEUES) and time.monotonic() < deadline:
            time.sleep(0.05)  # tasks still running or queued (a send chunk finding none)
        sampler.stop()
        machine = machine_since(machine)
        cpu = time.process_time() - cpu
        last = dispatch_due(settings, database, now=NOW)  # the tick that finds nothing due
        if last.run or last.busy_with or last.due_to_send or sink.accepted != expected:
            raise RuntimeError(f"not done: {last.summary()}; sink {sink.accepted} of {expected}")
        broker_after = redis.figures()
        rss = workers.peak_rss()
    finally:
        workers.stop()
        sink_cpu_after = sink.cpu()
        sink.stop()
    with database.session() as session:
        state = SubscriberRow.metadata.tables["outbox"].c.state
        sent = session.scalar(select(func.count()).where(state == "sent"))
    if sent != expected:
        raise RuntimeError(f"{sent} outbox rows sent, expected {expected}")
    calls = Counter(broker_after["calls"])
    calls.subtract(broker["calls"])
    row = {
        "workers": count, "wall": wall, "dispatch_wall": dispatched, "ticks": ticks,
        "batches": first.batches, "worker_cpu": tracked.seconds, "bench_cpu": cpu,
        "pg_cpu": ours.seconds, "pg_all_cpu": every.seconds,
        "redis_cpu": broker_after["cpu"] - broker["cpu"],
        "redis_calls": {name: n for name, n in calls.items() if n > 0},
        "sink_cpu": sink_cpu_after - sink_cpu, "rss_mb": rss,
        "tasks": task_figures(workers.task_log), "started": started, "machine": machine,
        "pg_activity": activity.top() if activity else [],
        "load": [load_before, load()],
    }  # fmt: skip
    if spy is not None:
        _, error = spy.communicate()
        if spy.returncode:
            say(f"  py-spy failed: {error.decode(errors='replace').strip()[-500:]}")
        row["py_spy"] = py_spy_top(folder / "py-spy.txt")
    return row


def run_size_celery(size: int, args: argparse.Namespace) -> dict:
    """One size on PostgreSQL: the store filled once, then on a fresh copy each, the day
    in-process and on each `--celery` count of workers."""
    rng = random.Random(args.seed)
    top = Path(tempfile.mkdtemp(prefix="day-bench-celery-"))
    row: dict[str, Any] = {"size": size, "backend": "postgresql", "mode": "celery",
                           "batch": args.queue_batch, "send_chunk": args.send_chunk}  # fmt: skip
    redis = RedisServer(top / "redis")
    try:
        with fresh_store("postgresql", top / "filled") as (settings, database):
            started = time.perf_counter()
            row["papers"] = store_papers(database, rng)
            store_readers(database, size, rng)
            vacuum_analyze(database)
            row["setup_s"] = time.perf_counter() - started
            say(f"  {size:,} readers stored in {row['setup_s']:.0f} s")
            with copy_store("postgresql", database, settings, top / "inprocess") as (_, copy):
                row["inprocess"] = run_inprocess_day(top / "inprocess", copy, args)
            say(f"  in-process: {json.dumps(row['inprocess'])}")
            row["celery"] = []
            for count in args.celery:
                folder = top / f"workers{count}"
                with copy_store("postgresql", database, settings, folder) as (_, copy):
                    expected = row["inprocess"]["queued"]
                    run = run_celery_day(folder, copy, count, expected, redis, args)
                row["celery"].append(run)
                say(f"  {count} workers: wall {run['wall']:.1f} s, CPU {run['worker_cpu']:.1f} s")
    finally:
        redis.stop()
        shutil.rmtree(top, ignore_errors=True)
    return row


def print_celery_table(rows: list[dict]) -> None:
    for row in rows:
        size, home = row["size"], row["inprocess"]
        runs = {run["workers"]: run for run in row["celery"]}
        one = runs.get(1)
        print(f"\nthe whole day on PostgreSQL, {size:,} readers ({home['queued']:,} digests), "
              f"task batch {row['batch']:,} readers, send chunk {row['send_chunk']}")  # fmt: skip
        print("| run | wall s | ms wall/reader | speed-up vs 1 worker | CPU s (whose) "
              "| ms CPU/reader | PostgreSQL CPU s (share of all CPU) | sink CPU s "
              "| redis CPU s | peak RSS MB | load |")  # fmt: skip
        print("|---|---:|---:|---:|---|---:|---:|---:|---:|---|---|")
        total = home["cpu"] + home["pg_cpu"] + home["sink_cpu"]
        versus = f"{one['wall'] / home['wall']:.2f}x" if one else "–"
        print(f"| in-process (job {home['job_wall']:.1f} + send {home['send_wall']:.1f}) "
              f"| {home['wall']:.1f} | {home['wall'] / size * 1000:.3f} | {versus} "
              f"| {home['cpu']:.1f} (bench) | {home['cpu'] / size * 1000:.3f} "
              f"| {home['pg_cpu']:.1f} ({home['pg_cpu'] / total:.0%}) "
              f"| {home['sink_cpu']:.1f} | – | {home['rss_mb']:,.0f} "
              f"| {home['load'][0]:.2f}–{home['load'][1]:.2f} |")  # fmt: skip
        for count, run in runs.items():
            total = run["worker_cpu"] + run["pg_cpu"] + run["sink_cpu"] + run["redis_cpu"]
            rss = ", ".join(f"{main:,.0f}+{pool:,.0f}" for main, pool in run["rss_mb"])
            speed = one["wall"] / run["wall"] if one else 0.0
            print(f"| {count} worker(s) | {run['wall']:.1f} | {run['wall'] / size * 1000:.3f} "
                  f"| {speed:.2f}x | {run['worker_cpu']:.1f} (workers) "
                  f"| {run['worker_cpu'] / size * 1000:.3f} | {run['pg_cpu']:.1f} "
                  f"({run['pg_cpu'] / total:.0%}) | {run['sink_cpu']:.1f} "
                  f"| {run['redis_cpu']:.2f} | {rss} "
                  f"| {run['load'][0]:.2f}–{run['load'][1]:.2f} |")  # fmt: skip
        print(
            "\n  (peak RSS of a worker: its Celery process + its pool process; in-process: "
            "the bench process over the day)"
        )
        print_machine(home, runs)
        print_overhead(home, runs)
        print_goals(runs, home)
        for name, record in [
            ("in-process", home),
            *((f"{k} worker(s)", r) for k, r in runs.items()),
        ]:
            if record.get("pg_activity"):
                print(f"\nPostgreSQL, {name}: statements most often active (busy backends on "
                      "average, from pg_stat_activity every 0.5 s)")  # fmt: skip
                for statement, busy in record["pg_activity"]:
                    print(f"  {busy:5.2f} {statement}")
        print_extrapolation(row, runs)
        for run in row["celery"]:
            if "py_spy" in run:
                print_py_spy(run)


BROKER_KEYS = ("enqueue", "batch_done", "latency")


def print_machine(home: dict, runs: dict[int, dict]) -> None:
    """How busy the machine's cores were over each run (/proc/stat), and how much of
    that was this bench's processes (the rest: other people's work on the machine)."""
    print("\nthe machine's cores over each run (from /proc/stat; ours: the processes above)")
    print("| run | s | cores busy (of 2) | ours | others | idle | steal |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    ours = {"in-process": home["cpu"] + home["pg_cpu"] + home["sink_cpu"]}
    for count, run in runs.items():
        ours[f"{count} worker(s)"] = (run["worker_cpu"] + run["pg_cpu"] + run["sink_cpu"]
                                      + run["redis_cpu"] + run["bench_cpu"])  # fmt: skip
    for (name, mine), record in zip(ours.items(), [home, *runs.values()], strict=True):
        machine = record.get("machine")
        if not machine:
            continue
        span = machine["at"]
        print(f"| {name} | {span:.1f} | {machine['busy'] / span:.2f} | {mine / span:.2f} "
              f"| {max(0.0, machine['busy'] - mine) / span:.2f} | {machine['idle'] / span:.2f} "
              f"| {machine['steal'] / span:.2f} |")  # fmt: skip


def overhead(run: dict, home: dict) -> dict[str, float]:
    """The task overhead of a run, in worker-seconds: `outside` (the workers' CPU outside
    task bodies: taking, acknowledging and handing over messages), `broker` (wall of the
    broker round trips inside tasks), `claims` (wall of the outbox claims inside tasks
    beyond what sending the same rows in-process spent claiming), and their `share` of
    the workers' day (workers x wall)."""
    tasks = run["tasks"]["total"]
    outside = run["worker_cpu"] - tasks.get("cpu", 0.0)
    broker = sum(tasks.get(f"{key}_wall", 0.0) for key in BROKER_KEYS)
    claims = max(0.0, tasks.get("claim_wall", 0.0) - home["claims"].get("claim_wall", 0.0))
    day = run["workers"] * run["wall"]
    return {"outside": outside, "broker": broker, "claims": claims,
            "share": (outside + broker + claims) / day, "day": day}  # fmt: skip


def print_overhead(home: dict, runs: dict[int, dict]) -> None:
    print("\ntask overhead (worker-seconds; the workers' day is workers x wall)")
    print("| workers | tasks (batch, send) | worker CPU s | inside tasks: CPU s, wall s "
          "| A: CPU outside tasks s | B: broker calls in tasks: n, wall s "
          "| claims: n, wall s (C: beyond in-process) | redis: commands, CPU s "
          "| (A+B+C) / workers' day | idle: workers' day not in a task "
          "| worker CPU / in-process CPU |")  # fmt: skip
    print("|---:|---|---:|---|---:|---|---|---|---:|---:|---:|")
    claims = home["claims"]
    print(f"| in-process | – | {home['cpu']:.1f} | – | – | – "
          f"| {claims.get('claim_calls', 0):,}, {claims.get('claim_wall', 0.0):.2f} "
          f"| – | – | – | – |")  # fmt: skip
    for count, run in runs.items():
        tasks, names = run["tasks"]["total"], run["tasks"]["by_name"]
        cost = overhead(run, home)
        broker_calls = sum(int(tasks.get(f"{key}_calls", 0)) for key in BROKER_KEYS)
        commands = sum(run["redis_calls"].values())
        idle = 1 - tasks.get("wall", 0.0) / cost["day"]
        batches = int(names.get("digest.batch", {}).get("count", 0))
        sends = int(names.get("digest.send", {}).get("count", 0))
        print(f"| {count} | {batches + sends} ({batches}, {sends}) | {run['worker_cpu']:.1f} "
              f"| {tasks.get('cpu', 0.0):.1f}, {tasks.get('wall', 0.0):.1f} "
              f"| {cost['outside']:.2f} | {broker_calls:,}, {cost['broker']:.2f} "
              f"| {int(tasks.get('claim_calls', 0)):,}, {tasks.get('claim_wall', 0.0):.2f} "
              f"({cost['claims']:.2f}) | {commands:,}, {run['redis_cpu']:.2f} "
              f"| {cost['share']:.1%} | {idle:.1%} "
              f"| {run['worker_cpu'] / home['cpu']:.2f}x |")  # fmt: skip
    for count, run in runs.items():
        tasks = run["tasks"]["total"]
        parts = ", ".join(
            f"{key} {int(tasks.get(key + '_calls', 0)):,} calls {tasks.get(key + '_wall', 0):.2f} s"
            for key in BROKER_KEYS
        )
        print(f"  B with {count} worker(s): {parts}")


def print_goals(runs: dict[int, dict], home: dict) -> None:
    print("\ngoals")
    if 1 in runs and 2 in runs:
        speed = runs[1]["wall"] / runs[2]["wall"]
        verdict = "met" if speed >= 1.8 else "NOT met"
        print(f"  2 workers vs 1: {speed:.2f}x (goal >= 1.8x): {verdict}")
    for count, run in runs.items():
        share = overhead(run, home)["share"]
        verdict = "met" if share < 0.05 else "NOT met"
        print(f"  {count} worker(s): task overhead {share:.1%} of the workers' day "
              f"(goal < 5 %): {verdict}")  # fmt: skip


def print_extrapolation(row: dict, runs: dict[int, dict]) -> None:
    """1M readers on K machines from this size's figures (see the assumptions printed)."""
    size = row["size"]
    if 1 not in runs:
        return
    one, best = runs[1], runs[max(runs)]
    wall_one = one["wall"] / size  # s per reader, one worker (PostgreSQL on the other core)
    wall_best = best["wall"] / size
    pg = best["pg_cpu"] / size  # PostgreSQL CPU s per reader
    sink = best["sink_cpu"] / size
    print(f"\n1M readers on K machines of 2 cores (target: the day < 20 min), from "
          f"{size:,} readers: (a) as measured here, {max(runs)} workers sharing the machine with "
          f"PostgreSQL, Redis and the sink: 1M x {wall_best * 1000:.3f} ms / K; "
          f"(b) machines running only 2 workers (PostgreSQL, Redis and the MTA elsewhere), "
          f"each worker as fast as the single worker here: 1M x {wall_one * 1000:.3f} ms / 2K. "
          f"PostgreSQL cores busy = readers/s x {pg * 1000:.3f} ms of its CPU per reader "
          f"(measured, its backends for this database); the sink's {sink * 1000:.3f} ms per "
          f"reader is the MTA's, elsewhere.")  # fmt: skip
    print("| K | (a) min | (b) min | PostgreSQL cores busy in (b) |")
    print("|---:|---:|---:|---:|")
    for machines in (1, 2, 4, 8):
        measured = 1_000_000 * wall_best / machines
        ideal = 1_000_000 * wall_one / (2 * machines)
        print(f"| {machines} | {measured / 60:.1f} | {ideal / 60:.1f} "
              f"| {1_000_000 * pg / ideal:.1f} |")  # fmt: skip


def print_py_spy(run: dict, title: str = "") -> None:
    profile = run["py_spy"]
    total = int(profile["samples"][0][1])
    title = title or f"py-spy of one pool process ({run['workers']} workers)"
    print(f"\n{title}, {total} samples: top functions by own time | by time anywhere in the stack")
    pairs = zip_longest(profile["self"], profile["inclusive"], fillvalue=("", 0.0))
    for (own, share), (anywhere, inclusive) in pairs:
        print(f"  {share:6.1%} {own[:70]:70} | {inclusive:6.1%} {anywhere[:70]}")


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
    models = parser.add_argument_group("readers' models (--models; SQLite, in-process)")
    models.add_argument("--models", type=float, default=0.0, metavar="FRACTION",
                        help="time the job without models and with this share of readers "
                             "modelled (e.g. 0.1)")  # fmt: skip
    models.add_argument("--repeat", type=int, default=1, help="baseline/models runs alternated")
    models.add_argument(
        "--profile",
        metavar="PATH",
        help="one more with-models run under py-spy, raw profile to PATH",
    )
    celery = parser.add_argument_group("task workers (--celery; PostgreSQL, redis-server)")
    celery.add_argument(
        "--celery",
        type=int,
        nargs="+",
        metavar="K",
        help="the day in-process, then on K `digest worker -c 1` processes",
    )
    celery.add_argument(
        "--queue-batch",
        type=int,
        default=0,
        help="[queue] batch (default: readers / 20, from 100 to 2,000)",
    )
    celery.add_argument("--send-chunk", type=int, default=500, help="[queue] send_chunk")
    celery.add_argument("--tick", type=float, default=5.0, help="s between dispatch_due calls")
    celery.add_argument(
        "--timeout",
        type=float,
        default=0.0,
        help="s a run may take (default: 120 + 20 ms per reader)",
    )
    celery.add_argument(
        "--quiet-below",
        type=float,
        default=1.0,
        help="wait for a 1-minute load under this before each run (0: not)",
    )
    celery.add_argument(
        "--quiet-wait",
        type=float,
        default=1800.0,
        help="s to wait for that at most, then measure anyway",
    )
    celery.add_argument(
        "--pg-activity",
        action="store_true",
        help="sample pg_stat_activity: which statements PostgreSQL runs",
    )
    celery.add_argument("--py-spy", type=int, default=0, metavar="S",
                        help="py-spy record S s of a pool process in the largest K's run "
                             "(perturbs that run: profile in a run of its own)")  # fmt: skip
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    backend = "postgresql" if args.postgres or args.celery else "sqlite"
    if args.child:
        (size,) = args.sizes
        if args.celery:
            args.queue_batch = args.queue_batch or auto_batch(size)
            args.timeout = args.timeout or 120 + size * 0.02
            row = run_size_celery(size, args)
        elif args.models:
            row = run_size_models(size, args)
        else:
            row = run_size(size, backend, args.workers, args.maildir_max, args.seed)
        print(json.dumps(row))
        return
    if args.models and backend != "sqlite":
        raise SystemExit("--models runs on SQLite, in-process (no --postgres, no --celery)")
    if backend == "postgresql" and not os.environ.get("DIGEST_TEST_POSTGRES_URL"):
        raise SystemExit("set DIGEST_TEST_POSTGRES_URL to a PostgreSQL server to make databases on")
    print(f"day bench: {os.cpu_count()} cores, load {os.getloadavg()}", flush=True)
    rows = []
    for size in args.sizes:
        command = [sys.executable, __file__, *sys.argv[1:], "--child", "--sizes", str(size)]
        output = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout
        row = json.loads(output.strip().splitlines()[-1])
        if not args.celery and not args.models:
            row["queued_share"] = row["jobs"][0]["queued"] / size
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.celery:
        print_celery_table(rows)
    elif args.models:
        print_models(rows)
    else:
        print_table(rows)
    print(f"\nload at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
