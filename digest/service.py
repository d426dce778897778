"""The running service: the web app (waitress), the scheduler, or both in one process.

`digest run` serves both, for a small install; `digest web` and `digest scheduler` run
them apart, for production (several web workers, one scheduler). SIGTERM and SIGINT stop
cleanly: the job at work finishes the message in flight and records it, the web server
finishes the requests it holds, then the process exits 0.

With `[web] metrics` on, the process that runs the scheduler also serves /metrics on
`[web] metrics_listen` (`digest.metrics.MetricsServer`): there is one scheduler per
database, so one listener, where several `digest web` sharing a config would fight over
the address. With `metrics_listen = "web"` the web app answers /metrics itself.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from types import FrameType
from typing import TYPE_CHECKING, Any

from digest.clock import clock_from_environment
from digest.config import Settings
from digest.config.settings import METRICS_ON_WEB, WILDCARD_HOSTS, web_url
from digest.errors import DigestError
from digest.store import Database, open_database

if TYPE_CHECKING:
    from digest.metrics import MetricsServer

log = logging.getLogger("digest.service")


class Stop(KeyboardInterrupt):
    """Raised in the main thread by SIGTERM/SIGINT to leave the serving loop.

    A KeyboardInterrupt, because waitress's loop lets those through (and closes its
    sockets) where it would log and swallow an ordinary exception.
    """


def configure_logging(settings: Settings) -> None:
    """One line per event, greppable: `2026-06-12 08:00:01 INFO digest.schedule: ...`."""
    logging.basicConfig(
        level=settings.service.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )
    for noisy in ("alembic", "apscheduler", "waitress", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    stopped = threading.Event()

    def handle(signum: int, _frame: FrameType | None) -> None:
        if stopped.is_set():
            return
        stopped.set()
        log.info("%s received: stopping", signal.Signals(signum).name)
        raise Stop

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stopped
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _listen(app: Any, settings: Settings) -> Any:
    """The WSGI server, bound to [web] host and port; DigestError if it cannot bind."""
    from waitress import create_server

    from digest.web import MAX_BODY

    host, port = settings.web.host, settings.web.port
    # Waitress removes X-Forwarded-* before the app sees them unless told otherwise; behind
    # trusted proxies the app's ProxyFix reads them (digest.web.create_app), so keep them.
    # Without, waitress keeps clearing them: nothing downstream can be fooled by them.
    keep_proxy_headers = settings.web.trusted_proxies > 0
    try:
        return create_server(
            app,
            host=host,
            port=port,
            threads=settings.web.threads,
            ident="digest",
            clear_untrusted_proxy_headers=not keep_proxy_headers,
            # Refused before it is read: waitress would otherwise take up to 1 GB to disk
            # and only then let the app answer 413.
            max_request_body_size=MAX_BODY,
        )
    except OSError as error:
        raise DigestError(
            f"cannot listen on {host}:{port}: {error.strerror or error}; "
            "set [web] host and port, or stop what is using it"
        ) from None


def _say_where_links_point(settings: Settings, port: int | None) -> None:
    """Log once, at start, where the web app listens (`port`; None: no web app here) and
    the address the links in emails use, with a note when people could not follow them
    to this web app as it stands."""
    host, base = settings.web.host, settings.service.base_url.rstrip("/")
    derived = base == web_url(host, settings.web.port)  # [service] base_url left empty
    if port is None:  # the scheduler alone: `digest web` serves the links
        log.info("links in emails point to %s", base)
        return
    log.info("web app on http://%s:%s; links in emails point to %s", host, port, base)
    if derived and host in WILDCARD_HOSTS:
        log.warning(
            "the web app listens on every address (%s), so links in emails name this "
            "machine as %s, which opens only here: set [service] base_url to the "
            "address people reach",
            host or "all",
            base,
        )
    elif base != web_url(host, port):
        log.info(
            "links in emails point to [service] base_url %s, not to where the web app "
            "listens: right behind a reverse proxy; otherwise leave base_url unset to "
            "follow [web] host and port",
            base,
        )


def _serve_metrics(
    settings: Settings, database: Database, clock: Callable[[], datetime], *, scheduler: bool
) -> MetricsServer | None:
    """Start /metrics on its own address in the scheduler's process (see the module
    docstring), or None: off, served by the web app, or by the scheduler's process."""
    address = settings.web.metrics_listen
    if not settings.web.metrics or address == METRICS_ON_WEB:
        return None
    if not scheduler:
        log.info("/metrics is served on %s by the process that runs the scheduler", address)
        return None
    from digest.metrics import serve_metrics

    metrics = serve_metrics(settings, database, clock)
    log.info("metrics on %s", metrics.url)
    return metrics


def run(
    settings: Settings,
    *,
    web: bool = True,
    scheduler: bool = True,
    clock: Callable[[], datetime] | None = None,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT; `ready(url)` is called once the web app listens."""
    from digest.schedule import Scheduler
    from digest.web import create_app

    clock = clock or clock_from_environment()
    database = open_database(settings)
    jobs = Scheduler(settings, database, clock) if scheduler else None
    server = None
    app = None
    metrics = None
    with _stop_on_signals() as stopped:
        try:
            if web:  # listen first: a port in use stops us before any job has run
                app = create_app(settings, database=database, clock=clock)
                server = _listen(app, settings)
            metrics = _serve_metrics(settings, database, clock, scheduler=scheduler)
            if jobs is not None:
                jobs.start()
            port = server.effective_port if server is not None else None  # type: ignore[union-attr]
            _say_where_links_point(settings, port)
            if server is not None:
                url = f"http://{settings.web.host}:{port}"
                if ready:
                    ready(url)
                server.run()
            else:
                if ready:
                    ready("")
                stopped.wait()
        except Stop:
            pass
        finally:
            if metrics is not None:
                metrics.stop()
            if server is not None:
                server.close()  # stop listening
                server.task_dispatcher.shutdown()  # finish the requests in hand
            if app is not None:
                courier = app.extensions["digest"].courier
                if courier is not None:
                    courier.stop()
            if jobs is not None:
                jobs.stop()
            database.dispose()
