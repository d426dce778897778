"""The whole day on Celery task workers: the measuring parts of `day_bench.py --celery`.

    DIGEST_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:55432/postgres \\
        python bench/day_bench.py --celery 1 2 --sizes 10000

(see bench/day_bench.py for the mode). Here: a loopback SMTP sink that stamps the time of
the last message it accepted, a private redis-server, K `digest worker -c 1` processes,
CPU and peak RSS read from /proc, and the instrumented worker entry point

    DAY_BENCH_TASK_LOG=FILE python bench/day_celery.py worker --config CONFIG worker -c 1

which runs `digest worker` (the same click command as `python -m digest`) with two
additions for the bench: Celery's task_prerun/task_postrun signals time each task (wall
and CPU of the pool process that runs it) and the outbox claims inside it
(`digest.send.delivery.claim_due` wrapped: calls, rows, wall), one JSON line per task
appended to FILE. So "inside tasks" is the task body as Celery calls it; what the
worker processes spend outside task bodies (taking messages from Redis, acknowledging,
handing them to the pool process, Celery's own loop) is their CPU less that.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if __name__ == "__main__":
    sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

TASK_LOG_VARIABLE = "DAY_BENCH_TASK_LOG"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- waiting for a quiet machine -----------------------------------------------------------


def wait_quiet(below: float, longest: float, what: str, poll: float = 30.0) -> float:
    """Wait until the 1-minute load average is under `below` (0: do not wait), polling
    every `poll` s for at most `longest` s; return the load then (said on stderr)."""
    started = time.monotonic()
    load = os.getloadavg()[0]
    while below > 0 and load >= below and time.monotonic() - started < longest:
        say(f"  waiting for a quiet machine before {what}: load {load:.2f} >= {below}")
        time.sleep(poll)
        load = os.getloadavg()[0]
    if below > 0 and load >= below:
        say(f"  still load {load:.2f} after {longest:.0f} s: measuring {what} anyway")
    else:
        say(f"  measuring {what} at load {load:.2f}")
    return load


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- /proc -------------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command (fields[0] is the state)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def own_cpu(pid: int) -> tuple[float, float, str] | None:
    """(its CPU s, its finished children's CPU s, start time) of a process, or None."""
    fields = _stat(pid)
    if fields is None:
        return None
    own = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    reaped = (int(fields[13]) + int(fields[14])) / CLOCK_TICKS
    return own, reaped, fields[19]


def children(pid: int) -> list[int]:
    """The live children of a process (every thread's)."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(n) for n in (task / "children").read_text().split()]
    return found


def machine_cpu() -> dict[str, float]:
    """This machine's CPU seconds so far, all cores (/proc/stat): `busy` (user, nice,
    system, irq, softirq), `idle` (idle, iowait), `steal` (taken by the hypervisor) and
    `at` (the monotonic time)."""
    ticks = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = ticks
    return {
        "busy": (user + nice + system + irq + softirq) / CLOCK_TICKS,
        "idle": (idle + iowait) / CLOCK_TICKS,
        "steal": steal / CLOCK_TICKS,
        "at": time.monotonic(),
    }


def machine_since(before: dict[str, float]) -> dict[str, float]:
    """`machine_cpu` since `before`."""
    return {key: value - before[key] for key, value in machine_cpu().items()}


def vm_hwm_mb(pid: int) -> float:
    """VmHWM of a live process, in MB (0 if gone)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def reset_peak_rss() -> None:
    """Start this process's VmHWM again from its present RSS (Linux: clear_refs 5)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ").split()
    except OSError:
        return []


def postmasters() -> list[int]:
    """The PostgreSQL servers running here (postgres processes whose parent is not one)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            parent = int((_stat(int(entry.name)) or ["", "0"])[1])
            if Path(f"/proc/{parent}/comm").read_text().strip() != "postgres":
                found.append(int(entry.name))
    return found


class CpuTracker:
    """CPU seconds of a changing set of processes between `start` and the last `sample`.

    Each process counts from its CPU at the first sample that saw it (0 for one born after
    `start`), to the last sample that saw it: one that ends between samples loses at most
    one interval. `reaped` names processes whose finished children's CPU counts too (a
    server whose short-lived children end within the run).
    """

    def __init__(self, pick: Callable[[], list[int]], reaped: Callable[[], list[int]]) -> None:
        self.pick = pick
        self.reaped = reaped
        self.first: dict[tuple[int, str], float] = {}
        self.last: dict[tuple[int, str], float] = {}
        self.started = False

    def sample(self) -> None:
        for pid in self.pick():
            read = own_cpu(pid)
            if read is None:
                continue
            key = (pid, read[2])
            self.first.setdefault(key, read[0] if not self.started else 0.0)
            self.last[key] = read[0]
        for pid in self.reaped():
            read = own_cpu(pid)
            if read is not None:
                key = (-pid, read[2])
                self.first.setdefault(key, read[1] if not self.started else 0.0)
                self.last[key] = read[1]
        self.started = True

    @property
    def seconds(self) -> float:
        return sum(self.last[key] - self.first[key] for key in self.last)


def worker_tracker(mains: list[int]) -> CpuTracker:
    """The worker processes and their pool processes (and any pool process that ended)."""
    return CpuTracker(lambda: [p for m in mains for p in (m, *children(m))], lambda: mains)


def postgres_trackers(database: str) -> tuple[CpuTracker, CpuTracker]:
    """(the backends serving `database`, every PostgreSQL process here, others' too)."""
    masters = postmasters()

    def ours() -> list[int]:
        return [
            pid
            for master in masters
            for pid in children(master)
            if _cmdline(pid)[2:3] == [database]
        ]

    def every() -> list[int]:
        return [pid for master in masters for pid in (master, *children(master))]

    return CpuTracker(ours, lambda: []), CpuTracker(every, lambda: masters)


class ActivitySampler:
    """What PostgreSQL's backends for one database are doing, sampled (pg_stat_activity):
    per sample, each active backend's statement (its first words) and what it waits on,
    counted; so the statements where PostgreSQL's time goes show as the most samples."""

    def __init__(self, url: str) -> None:
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url

        self.database = make_url(url).database
        self.engine = create_engine(make_url(url).set(database="postgres"), pool_size=1)
        self.seen: Counter[str] = Counter()
        self.samples = 0

    def sample(self) -> None:
        from sqlalchemy import text

        query = text(
            "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 110), wait_event_type "
            "FROM pg_stat_activity WHERE datname = :name AND state = 'active' "
            "AND pid <> pg_backend_pid()"
        )
        with self.engine.connect() as connection:
            rows = connection.execute(query, {"name": self.database}).all()
        self.samples += 1
        for statement, waiting in rows:
            self.seen[f"{statement} [{waiting or 'CPU'}]"] += 1

    def top(self, count: int = 8) -> list[tuple[str, float]]:
        """The statements most often active: (statement [wait], busy backends on average)."""
        return [(name, n / max(1, self.samples)) for name, n in self.seen.most_common(count)]

    def close(self) -> None:
        self.engine.dispose()


class Sampler:
    """Samples trackers every `interval` s in a thread, from `start` until `stop`."""

    def __init__(self, trackers: list[Any], interval: float = 0.5) -> None:
        self.trackers = trackers
        self.interval = interval
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def _run(self) -> None:
        while not self.done.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        for tracker in self.trackers:
            tracker.sample()

    def start(self) -> None:
        self.sample()
        self.thread.start()

    def stop(self) -> None:
        self.done.set()
        self.thread.join()
        self.sample()


# --- the sink ------------------------------------------------------------------------------


def _serve_timed_sink(port: int, counter: Any, last: Any, ready: Any) -> None:
    from send_bench import FastSink

    class TimedSink(FastSink):
        """send_bench's fast sink, stamping when it accepted its last message."""

        def data_received(self, chunk: bytes) -> None:
            before = counter.value
            super().data_received(chunk)
            if counter.value != before:
                last.value = time.monotonic()

    TimedSink.counter = counter

    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(TimedSink, "127.0.0.1", port)
        ready.set()
        await server.serve_forever()

    asyncio.run(serve())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class StampedSink:
    """A minimal SMTP sink on loopback in its own process: `accepted`, `last` (the
    monotonic time, system-wide, of the last message accepted) and its CPU."""

    def __init__(self) -> None:
        self.port = free_port()
        context = multiprocessing.get_context("fork")
        self.counter = context.Value("q", 0)
        self.last = context.Value("d", 0.0)
        ready = context.Event()
        self.process = context.Process(
            target=_serve_timed_sink,
            args=(self.port, self.counter, self.last, ready),
            daemon=True,
        )
        self.process.start()
        if not ready.wait(30):
            raise RuntimeError("the SMTP sink did not start")

    @property
    def accepted(self) -> int:
        return int(self.counter.value)

    def cpu(self) -> float:
        read = own_cpu(self.process.pid or 0)
        return read[0] if read else 0.0

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(5)


# --- redis ---------------------------------------------------------------------------------


class RedisServer:
    """A private redis-server on a free loopback port (no persistence), and its figures."""

    def __init__(self, folder: Path) -> None:
        from redis import Redis

        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.pidfile = folder / "redis.pid"
        subprocess.run(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--daemonize", "yes",
             "--dir", str(folder), "--pidfile", str(self.pidfile),
             "--logfile", str(folder / "redis.log")],
            check=True,
        )  # fmt: skip
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.client = Redis.from_url(self.url)
        for _ in range(100):
            with contextlib.suppress(Exception):
                if self.client.ping():
                    break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"redis-server on port {self.port} did not answer")

    def reset(self) -> None:
        """Empty, and its command counts from zero: a fresh broker for the next run."""
        self.client.flushall()
        self.client.config_resetstat()

    def figures(self) -> dict[str, Any]:
        """CPU seconds so far, and commands run since the last `reset` (by command)."""
        cpu = self.client.info("cpu")
        stats = self.client.info("commandstats")
        calls = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
        return {"cpu": float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]), "calls": calls}

    def waiting(self, queues: tuple[str, ...]) -> int:
        """Tasks queued or taken and not yet acknowledged (kombu's `unacked` hash)."""
        return sum(int(self.client.llen(q)) for q in queues) + int(self.client.hlen("unacked"))

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.client.shutdown(nosave=True)
        with contextlib.suppress(OSError, ValueError):
            pid = int(self.pidfile.read_text())
            for _ in range(100):
                if _stat(pid) is None:
                    return
                time.sleep(0.05)
            os.kill(pid, signal.SIGKILL)


# --- the workers ---------------------------------------------------------------------------


def toml_config(sections: dict[str, dict[str, Any]]) -> str:
    """A config file of plain values (strings, numbers, booleans)."""
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        for key, value in values.items():
            shown = json.dumps(value) if not isinstance(value, bool) else str(value).lower()
            lines.append(f"{key} = {shown}")
        lines.append("")
    return "\n".join(lines)


@dataclass
class Workers:
    """`count` instrumented `digest worker -c 1` processes (see the module docstring)."""

    count: int
    config: Path
    folder: Path
    clock_file: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def task_log(self) -> Path:
        return self.folder / "tasks.jsonl"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
        env |= {"DIGEST_CLOCK_FILE": str(self.clock_file), TASK_LOG_VARIABLE: str(self.task_log)}
        command = [sys.executable, str(Path(__file__).resolve()), "worker",
                   "--config", str(self.config), "worker", "-c", "1"]  # fmt: skip
        for number in range(self.count):
            log = (self.folder / f"worker{number}.log").open("wb")
            self.processes.append(
                subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
            )
            log.close()

    def wait_ready(self, app: Any, timeout: float = 120.0) -> None:
        """Until every worker answers a ping and has its pool process."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"a worker exited ({process.returncode}): {self.logs()}")
            answers = app.control.ping(timeout=1.0) or []
            if len(answers) >= self.count and all(children(p) for p in self.pids):
                return
        raise RuntimeError(f"{self.count} workers not ready in {timeout:.0f} s: {self.logs()}")

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def peak_rss(self) -> list[tuple[float, float]]:
        """(the worker process, its largest pool process) peak RSS in MB, per worker."""
        return [
            (vm_hwm_mb(pid), max((vm_hwm_mb(c) for c in children(pid)), default=0.0))
            for pid in self.pids
        ]

    def logs(self) -> str:
        tails = []
        for path in sorted(self.folder.glob("worker*.log")):
            tails.append(f"\n--- {path.name}\n" + path.read_text(errors="replace")[-3000:])
        return "".join(tails)

    def stop(self) -> None:
        """SIGTERM (tasks at work finish first), SIGKILL after 60 s."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def task_figures(path: Path) -> dict[str, Any]:
    """What the workers' task log says: per task name, count, wall and CPU inside tasks,
    the calls counted inside them (`CALLS_COUNTED`); and when the first task started and
    the last one ended (monotonic)."""
    tasks: list[dict[str, Any]] = []
    if path.exists():
        tasks = [json.loads(line) for line in path.read_text().splitlines() if line]
    names: dict[str, dict[str, float]] = {}
    for task in tasks:
        figures = names.setdefault(task["name"], Counter())
        for key, value in task.items():
            if key not in ("name", "pid", "start", "end"):
                figures[key] += value
        figures["count"] += 1
    total = Counter()
    for figures in names.values():
        total.update(figures)
    return {
        "by_name": {name: dict(figures) for name, figures in names.items()},
        "total": dict(total),
        "first_start": min((t["start"] for t in tasks), default=0.0),
        "last_end": max((t["end"] for t in tasks), default=0.0),
        "pids": sorted({t["pid"] for t in tasks}),
    }


# --- py-spy --------------------------------------------------------------------------------


def start_py_spy(pid: int, seconds: int, output: Path) -> subprocess.Popen[bytes] | None:
    """`py-spy record` of one process in raw (collapsed stacks) form, if py-spy is here."""
    try:
        return subprocess.Popen(
            ["py-spy", "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "100",
             "--format", "raw", "--nolineno", "--output", str(output)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
    except OSError as error:
        say(f"  py-spy not run: {error}")
        return None


def raw_stacks(path: Path) -> Iterator[tuple[list[str], int]]:
    """Each stack of a py-spy raw profile (`frame;frame;... count`), with its samples;
    nothing if the file is missing."""
    if not path.exists():
        return
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            yield stack.split(";"), int(count)


def py_spy_top(path: Path, lines: int = 15) -> dict[str, list[tuple[str, float]]]:
    """The functions a py-spy raw profile spent the most samples in: `self` (the frame
    on top) and `inclusive` (the project's functions anywhere in the stack: Celery's
    frames under every task would top that list), as shares of all samples."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for frames, samples in raw_stacks(path):
        total += samples
        own[_short(frames[-1])] += samples
        for frame in {_short(f) for f in frames if _ours(f)}:
            inclusive[frame] += samples
    share = max(1, total)
    return {
        "samples": [("total", float(total))],
        "self": [(name, n / share) for name, n in own.most_common(lines)],
        "inclusive": [(name, n / share) for name, n in inclusive.most_common(lines)],
    }


def _ours(frame: str) -> bool:
    """A frame of the project's code under a task (py-spy names files from their sys.path
    entry); not the command line's and worker's frames, under every task alike."""
    ours = "(digest/" in frame or "/digest/" in frame
    return ours and "digest/cli/" not in frame and not frame.startswith("run_worker ")


def _short(frame: str) -> str:
    """`function (digest/jobs/digests.py)` from py-spy's full path in the frame."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    for marker in ("/site-packages/", f"{ROOT}/", "/lib/python3.11/"):
        if marker in where:
            where = where.split(marker, 1)[1]
            break
    return f"{name} ({where})" if where else name


# --- the instrumented worker (a separate process) ---------------------------------------


# What the instrumented workers count inside tasks (calls, wall s): outbox claims, and
# the round trips to the broker a task makes (asking for send chunks, counting a batch
# done, keeping send latencies in Redis for /metrics).
CLAIM = ("digest.send.delivery", "claim_due", "claim")
BROKER_CALLS = (
    ("digest.tasks.work:send_chunk", "apply_async", "enqueue"),
    ("digest.tasks.progress", "batch_done", "batch_done"),
    ("digest.tasks.progress", "record_latencies", "latency"),
)
CALLS_COUNTED = (CLAIM, *BROKER_CALLS)


def count_calls(targets: tuple[tuple[str, str, str], ...]) -> tuple[Counter[str], Any]:
    """From now on in this process, count the calls of each (owner, function, key):
    `KEY_calls`, `KEY_wall` (s) and, for claims, `claimed` (rows). The owner is a module,
    or `module:name` for an object in it. Returns the counts and a function that puts
    the originals back."""
    from importlib import import_module

    counts: Counter[str] = Counter()
    originals = []
    for owner_name, function, key in targets:
        module, _, name = owner_name.partition(":")
        owner = import_module(module)
        owner = getattr(owner, name) if name else owner
        original = getattr(owner, function)
        setattr(owner, function, _counted(original, key, counts))
        originals.append((owner, function, original))

    def restore() -> None:
        for owner, function, original in originals:
            setattr(owner, function, original)

    return counts, restore


def _counted(function: Callable[..., Any], key: str, counts: Counter[str]) -> Callable[..., Any]:
    def counted(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            result = function(*args, **kwargs)
        finally:
            counts[f"{key}_calls"] += 1
            counts[f"{key}_wall"] += time.perf_counter() - started
        if key == "claim":
            counts["claimed"] += len(result)
        return result

    return counted


@contextlib.contextmanager
def counting_claims() -> Iterator[Counter[str]]:
    """Count `send_due`'s outbox claims in this process while the block runs."""
    counts, restore = count_calls((CLAIM,))
    try:
        yield counts
    finally:
        restore()


def worker_main(arguments: list[str]) -> None:
    """`digest ARGUMENTS` (the worker command) with each task timed into the task log."""
    from celery import signals

    from digest.cli import main

    log_path = os.environ[TASK_LOG_VARIABLE]
    counts, _ = count_calls(CALLS_COUNTED)  # for the whole process, its pool's too
    running: dict[str, tuple[float, float, float, Counter[str]]] = {}

    def before(task_id: str = "", **_: Any) -> None:
        running[task_id] = (time.monotonic(), time.perf_counter(), time.process_time(),
                            Counter(counts))  # fmt: skip

    def after(task_id: str = "", task: Any = None, **_: Any) -> None:
        start, wall, cpu, counted = running.pop(task_id, (0.0, 0.0, 0.0, Counter()))
        line = {
            "name": getattr(task, "name", "?"),
            "pid": os.getpid(),
            "start": start,
            "end": time.monotonic(),
            "wall": time.perf_counter() - wall,
            "cpu": time.process_time() - cpu,
            **{key: counts[key] - counted[key] for key in counts},
        }
        descriptor = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(descriptor, (json.dumps(line) + "\n").encode())
        finally:
            os.close(descriptor)

    signals.task_prerun.connect(before, weak=False)
    signals.task_postrun.connect(after, weak=False)
    sys.argv = ["digest", *arguments]
    main()


if __name__ == "__main__":
    if sys.argv[1:2] != ["worker"]:
        raise SystemExit("usage: python bench/day_celery.py worker --config FILE worker -c 1")
    worker_main(sys.argv[2:])
