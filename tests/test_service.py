"""The service as a person runs it: `digest run`, `digest scheduler`, signals, logs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from pathlib import Path

import httpx
import pytest

from tests.smtp_server import free_port

ROOT = Path(__file__).parents[1]


def write_config(folder: Path, port: int, dead: str) -> Path:
    config = folder / "config.toml"
    config.write_text(
        f"""
[service]
data_dir = "data"
base_url = "http://127.0.0.1:{port}"
[web]
port = {port}
[sources.hf]
base_url = "{dead}"
[sources.arxiv]
feed_url = "{dead}"
min_interval = 0.0
[sources.http]
retries = 1
backoff = 0.1
timeout = 2.0
"""
    )
    return config


def start(config: Path, *command: str, log: Path | None = None) -> subprocess.Popen[str]:
    """Run `digest <command>`; its output goes to `log` (to read while it runs) or a pipe."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DIGEST_CONFIG", None)
    # The child writes to its own copy of the log file: ours can close at once.
    with log.open("a") if log is not None else nullcontext(subprocess.PIPE) as output:
        return subprocess.Popen(
            [sys.executable, "-m", "digest", "--config", str(config), *command],
            cwd=config.parent,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )


def log_of(config: Path) -> Path:
    """Where a long-running service of `config` writes its output."""
    return config.parent / "service.log"


def wait_for_log(
    process: subprocess.Popen[str],
    log: Path,
    done: Callable[[str], bool],
    what: str,
    timeout: float = 30,
) -> str:
    """Poll the service's output until `done(output)`; fail naming `what` if it never is."""
    deadline = time.monotonic() + timeout
    while True:
        output = log.read_text()
        if done(output):
            return output
        assert process.poll() is None, f"the service exited waiting for {what}:\n{output}"
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} in the service's output after {timeout} s:\n{output}")
        time.sleep(0.1)


def wait_until_serving(
    port: int, process: subprocess.Popen[str], log: Path, timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    pytest.fail("the service did not start")


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path, int]]:
    port = free_port()
    config = write_config(tmp_path, port, f"http://127.0.0.1:{free_port()}")
    process = start(config, "run", log=log_of(config))
    try:
        wait_until_serving(port, process, log_of(config))
        yield process, config, port
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def fetch_warnings(output: str, source: str) -> list[str]:
    """The WARNING lines of failed fetches of `source` ("hf 20..." or "arxiv")."""
    return [
        line for line in output.splitlines() if " WARNING " in line and f"fetch {source}" in line
    ]


def test_run_serves_keeps_serving_without_network_and_stops_on_sigterm(
    service: tuple[subprocess.Popen[str], Path, int],
) -> None:
    process, config, port = service
    page = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
    assert page.status_code == 200 and "Subscribe" in page.text
    assert page.headers["server"] == "digest"  # waitress, not Flask's development server
    # The first fetch fails against the dead address: one warning per source and day.
    wait_for_log(
        process,
        log_of(config),
        lambda out: len(fetch_warnings(out, "hf 20")) >= 2 and fetch_warnings(out, "arxiv"),
        "failed first fetch (two 'fetch hf' and one 'fetch arxiv' warnings)",
    )
    assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()["status"] == "ok"
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    output = log_of(config).read_text()
    assert process.returncode == 0, output
    # Once each: the next fetch is an hour away ([schedule] fetch_every_minutes).
    assert len(fetch_warnings(output, "hf 20")) == 2, output  # today, yesterday
    assert len(fetch_warnings(output, "arxiv")) == 1, output
    assert "Traceback" not in output
    assert "SIGTERM received: stopping" in output
    assert "scheduler stopped" in output
    assert (config.parent / "data" / "digest.db").is_file()


def test_a_second_scheduler_is_refused_with_a_clear_message(
    service: tuple[subprocess.Popen[str], Path, int],
) -> None:
    _, config, _ = service
    second = start(config, "scheduler")
    output, _ = second.communicate(timeout=30)
    assert second.returncode == 1
    assert (
        output.strip()
        .splitlines()[-1]
        .startswith("digest: another scheduler is already running (pid ")
    )
    assert "Traceback" not in output


def test_sigint_stops_the_scheduler_alone(tmp_path: Path) -> None:
    config = write_config(tmp_path, free_port(), f"http://127.0.0.1:{free_port()}")
    process = start(config, "scheduler", log=log_of(config))
    try:
        # Only a started scheduler logs "scheduler stopped" (the lock file comes earlier).
        wait_for_log(process, log_of(config), lambda out: "scheduler started" in out, "start")
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = log_of(config).read_text()
    assert process.returncode == 0, output
    assert "SIGINT received: stopping" in output and "scheduler stopped" in output


def test_a_port_in_use_is_one_line_and_no_job_runs(
    service: tuple[subprocess.Popen[str], Path, int], tmp_path: Path
) -> None:
    _, _, port = service  # the first service holds the port
    other = tmp_path / "other"
    other.mkdir()
    config = write_config(other, port, f"http://127.0.0.1:{free_port()}")
    second = start(config, "web")
    output, _ = second.communicate(timeout=30)
    assert second.returncode == 1, output
    assert output.strip().splitlines()[-1] == (
        f"digest: cannot listen on 127.0.0.1:{port}: Address already in use; "
        "set [web] host and port, or stop what is using it"
    )
    assert "Traceback" not in output
    again = start(config, "run")  # web and scheduler: it stops before the scheduler starts
    output, _ = again.communicate(timeout=30)
    assert again.returncode == 1 and "scheduler started" not in output, output
