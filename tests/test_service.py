"""The service as a person runs it: `digest run`, `digest scheduler`, signals, logs."""

from __future__ import annotations

import email
import email.policy
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import httpx
import pytest

from digest.config import Settings
from digest.service import _say_where_links_point
from tests.smtp_server import free_port
from tests.web_support import csrf_token

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
    # What the service is busy with says so at start, long before the fetch's outcome.
    started = log_of(config).read_text()
    assert (
        "INFO digest.schedule: first fetch of hf, arxiv started; this can take a minute"
        in (started.split(" WARNING ")[0])
    ), started
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


def test_links_in_emails_follow_the_port_the_service_listens_on(tmp_path: Path) -> None:
    """Only [web] port set: the confirmation link opens on that port, not on 8000."""
    port = free_port()
    dead = f"http://127.0.0.1:{free_port()}"
    config = tmp_path / "config.toml"
    config.write_text(
        f'[service]\ndata_dir = "data"\n[web]\nport = {port}\n'
        f'[sources.hf]\nbase_url = "{dead}"\n[sources.arxiv]\nfeed_url = "{dead}"\n'
    )
    process = start(config, "run", log=log_of(config))
    try:
        wait_until_serving(port, process, log_of(config))
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as browser:
            form = browser.get("/")
            answer = browser.post(
                "/",
                data={
                    "csrf_token": csrf_token(form.text),
                    "email": "ada@example.org",
                    "interests": "diffusion",
                    "send_time": "08:00",
                    "timezone": "UTC",
                    "website": "",
                },
            )
            assert answer.status_code == 303, answer.text
        new = tmp_path / "data" / "maildir" / "new"
        wait_for_log(
            process, log_of(config), lambda _: new.is_dir() and any(new.iterdir()), "a mail"
        )
        [path] = new.iterdir()
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        text = message.get_body(("plain",)).get_content()
        link = re.search(r"http://\S+/confirm/\S+", text)
        assert link and link.group(0).startswith(f"http://127.0.0.1:{port}/confirm/"), text
        with httpx.Client(timeout=10) as browser:
            page = browser.get(link.group(0))
            assert page.status_code == 200, page.text
            done = browser.post(link.group(0), data={"csrf_token": csrf_token(page.text)})
            assert done.status_code == 200 and "You are subscribed" in done.text
        output = log_of(config).read_text()
        assert f"links in emails point to http://127.0.0.1:{port}" in output
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def _start_notes(
    caplog: pytest.LogCaptureFixture, settings: Settings, port: int | None
) -> list[str]:
    """What `digest run` logs at start about links, listening on `port` (None: no web)."""
    caplog.clear()
    with caplog.at_level("INFO", logger="digest.service"):
        _say_where_links_point(settings, port)
    return [f"{record.levelname} {record.getMessage()}" for record in caplog.records]


def test_start_says_where_links_point_and_when_people_cannot_follow_them(
    caplog: pytest.LogCaptureFixture, make_settings: Any
) -> None:
    settings = make_settings(web={"port": 8123})
    assert _start_notes(caplog, settings, 8123) == [
        "INFO web app on http://127.0.0.1:8123; links in emails point to http://127.0.0.1:8123"
    ]
    assert _start_notes(caplog, settings, None) == [
        "INFO links in emails point to http://127.0.0.1:8123"  # the scheduler alone
    ]
    everywhere = make_settings(web={"host": "0.0.0.0", "port": 8123})
    assert _start_notes(caplog, everywhere, 8123) == [
        "INFO web app on http://0.0.0.0:8123; links in emails point to http://127.0.0.1:8123",
        "WARNING the web app listens on every address (0.0.0.0), so links in emails name "
        "this machine as http://127.0.0.1:8123, which opens only here: set [service] "
        "base_url to the address people reach",
    ]
    proxied = make_settings(service={"base_url": "https://digest.example.org/"})
    assert _start_notes(caplog, proxied, 8000) == [
        "INFO web app on http://127.0.0.1:8000; links in emails point to "
        "https://digest.example.org",
        "INFO links in emails point to [service] base_url https://digest.example.org, not to "
        "where the web app listens: right behind a reverse proxy; otherwise leave base_url "
        "unset to follow [web] host and port",
    ]
