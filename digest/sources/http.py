"""The polite HTTP client every source fetches through.

Being a good citizen of the sites we read is part of the job, so one place does it:
- a descriptive User-Agent (`settings.user_agent`) and a timeout on every request;
- retries with exponential backoff on 429, 5xx and network errors, honouring a
  `Retry-After` header (seconds or an HTTP date), never waiting longer than `max_backoff`
  (a server asking for a longer pause ends the fetch at once, and the client sends that
  host nothing more until the pause is over);
- conditional requests: the caller passes the ETag / Last-Modified of the last good
  response (`Validators`); a 304 comes back as a `Response` with `not_modified` set;
- a minimum interval between two requests to the same host (arXiv asks for one request
  every 3 seconds), kept across calls for as long as the client lives.

Sleeping and both clocks are injectable so tests of backoff and politeness never sleep.
Failures become `FetchError(source, url, what)`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from urllib.parse import urlsplit

import httpx

from digest.config import Settings
from digest.errors import FetchError

log = logging.getLogger(__name__)

# 429 Too Many Requests and every 5xx are worth another try; other 4xx are not.
_RETRY_CLIENT_STATUSES = frozenset({408, 429})
# A listing is at most a few MB; anything far larger is not a listing.
DEFAULT_MAX_BYTES = 32 * 1024 * 1024
# arXiv's hosts besides the configured feed: the courtesy interval applies to all of them.
ARXIV_HOSTS = ("export.arxiv.org", "rss.arxiv.org", "arxiv.org")


@dataclass(frozen=True)
class Validators:
    """The cache validators of a URL's last good response, for a conditional request."""

    url: str
    etag: str | None = None
    last_modified: str | None = None

    def headers(self) -> dict[str, str]:
        """The If-None-Match / If-Modified-Since headers these validators call for."""
        found = {}
        if self.etag:
            found["If-None-Match"] = self.etag
        if self.last_modified:
            found["If-Modified-Since"] = self.last_modified
        return found

    def __bool__(self) -> bool:
        return bool(self.etag or self.last_modified)


@dataclass(frozen=True)
class Response:
    """A finished response: `url` is what was asked for, `final_url` where redirects led."""

    url: str
    final_url: str
    status: int
    content: bytes
    etag: str | None = None
    last_modified: str | None = None
    content_type: str = ""

    @property
    def not_modified(self) -> bool:
        """True for a 304: nothing new since the validators we sent."""
        return self.status == 304

    @property
    def redirected(self) -> bool:
        """True when redirects led somewhere other than the URL asked for."""
        return self.final_url != self.url

    def validators(self) -> Validators:
        """This response's validators, keyed by the URL asked for."""
        return Validators(self.url, self.etag, self.last_modified)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # HTTP dates are GMT; some servers omit the zone
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def describe_size(size: int) -> str:
    """A byte count for messages: `32 MB`, `500 KB`, `1000 bytes`."""
    for unit, name in ((1024 * 1024, "MB"), (1024, "KB")):
        if size >= unit and size % unit == 0:
            return f"{size // unit} {name}"
    return f"{size} bytes"


def host_of(url: str) -> str:
    """The host (and port, if any) a URL points at: the unit of politeness."""
    return urlsplit(url).netloc.lower()


def _describe_network_error(error: httpx.RequestError, timeout: float) -> str:
    if isinstance(error, httpx.TimeoutException):
        return f"no answer within {timeout:g} s ({type(error).__name__})"
    if isinstance(error, httpx.ConnectError):
        return f"cannot connect ({error})"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


class _TooLarge(Exception):
    """The body went past the size limit."""


class PoliteClient:
    """An httpx client with retries, backoff, conditional requests and per-host pacing.

    `min_intervals` maps a host (`host_of(url)`) to the least number of seconds between
    the end of one request to it and the start of the next. `sleep(seconds)` waits,
    `clock()` is a monotonic clock in seconds, `wall_clock()` the aware UTC time (for
    Retry-After dates). `transport` lets tests plug in an httpx transport.
    """

    def __init__(
        self,
        *,
        user_agent: str,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 2.0,
        max_backoff: float = 120.0,
        min_intervals: Mapping[str, float] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_bytes: int = DEFAULT_MAX_BYTES,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.min_intervals = {host.lower(): gap for host, gap in (min_intervals or {}).items()}
        self.max_bytes = max_bytes
        self._sleep = sleep
        self._clock = clock
        self._wall_clock = wall_clock
        self._last_done: dict[str, float] = {}
        # Hosts that asked (Retry-After) for a longer pause than we retry within: no
        # request goes to them before this clock() time.
        self._not_before: dict[str, float] = {}
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout),
            headers={"User-Agent": user_agent},
            follow_redirects=True,
            transport=transport,
        )

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: object) -> PoliteClient:
        """A client configured by `[sources.http]`, pacing arXiv's hosts by `min_interval`."""
        http = settings.sources.http
        gap = settings.sources.arxiv.min_interval
        intervals = {host: gap for host in ARXIV_HOSTS}
        intervals[host_of(settings.sources.arxiv.feed_url)] = gap
        intervals[host_of(settings.sources.arxiv.api_url)] = gap
        options: dict[str, object] = {
            "user_agent": settings.user_agent,
            "timeout": http.timeout,
            "retries": http.retries,
            "backoff": http.backoff,
            "max_backoff": http.max_backoff,
            "min_intervals": intervals,
        }
        options.update(kwargs)
        return cls(**options)  # type: ignore[arg-type]

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> PoliteClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def get(
        self,
        url: str,
        *,
        source: str,
        validators: Validators | None = None,
        max_bytes: int | None = None,
    ) -> Response:
        """GET `url`, retrying what is worth retrying; raise FetchError when it cannot.

        A 2xx or a 304 is returned; any other status, or retries running out, raises. A
        body past `max_bytes` (the client's `max_bytes` when None, or whichever is
        smaller) is refused without reading the rest.
        """
        limit = self.max_bytes if max_bytes is None else min(max_bytes, self.max_bytes)
        headers = validators.headers() if validators else {}
        resting = self._not_before.get(host_of(url), 0.0) - self._clock()
        if resting > 0:
            raise FetchError(
                source, url, f"the server asked us to wait; {resting:.0f} s still to go"
            )
        problem = ""
        for attempt in range(self.retries + 1):
            self._wait_turn(url)
            retry_after: float | None = None
            try:
                response, retry_after_header = self._request(url, headers, limit)
            except _TooLarge:
                raise FetchError(
                    source,
                    url,
                    f"the response is larger than {describe_size(limit)}, more than any "
                    "listing: refused",
                ) from None
            except httpx.TransportError as error:
                problem = _describe_network_error(error, self.timeout)
            except httpx.RequestError as error:  # bad URL, redirect loop: retrying won't help
                raise FetchError(
                    source, url, _describe_network_error(error, self.timeout)
                ) from None
            else:
                status = response.status
                if 200 <= status < 300 or status == 304:
                    return response
                if status < 500 and status not in _RETRY_CLIENT_STATUSES:
                    raise FetchError(source, url, f"HTTP {status} {_reason(status)}")
                problem = f"HTTP {status} {_reason(status)}"
                retry_after = parse_retry_after(retry_after_header, self._wall_clock())
            if attempt == self.retries:
                break
            if retry_after is not None and retry_after > self.max_backoff:
                # The server asks for a longer pause than a job should sit through:
                # respect it by asking nothing more of that host until it is over.
                self._not_before[host_of(url)] = self._clock() + retry_after
                raise FetchError(
                    source, url, f"{problem}; the server asks to wait {retry_after:.0f} s"
                )
            delay = self._backoff_delay(attempt, retry_after)
            log.debug("%s: %s on %s; retrying in %.1f s", source, problem, url, delay)
            self._sleep(delay)
        tries = self.retries + 1
        raise FetchError(
            source, url, f"{problem} (gave up after {tries} attempt{'s' if tries > 1 else ''})"
        )

    def _backoff_delay(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff, or the server's Retry-After when longer; capped."""
        delay = self.backoff * (2**attempt)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(delay, self.max_backoff)

    def _wait_turn(self, url: str) -> None:
        """Sleep until this host's minimum interval since our last request has passed."""
        host = host_of(url)
        gap = self.min_intervals.get(host, 0.0)
        last = self._last_done.get(host)
        if gap <= 0 or last is None:
            return
        remaining = last + gap - self._clock()
        if remaining > 0:
            log.debug("waiting %.1f s before the next request to %s", remaining, host)
            self._sleep(remaining)

    def _request(
        self, url: str, headers: dict[str, str], max_bytes: int
    ) -> tuple[Response, str | None]:
        """One GET: the response and its Retry-After header; the body is size-capped."""
        try:
            with self._http.stream("GET", url, headers=headers) as response:
                body = bytearray()
                for chunk in response.iter_bytes():
                    body.extend(chunk)
                    if len(body) > max_bytes:
                        raise _TooLarge
                finished = Response(
                    url=url,
                    final_url=str(response.url),
                    status=response.status_code,
                    content=bytes(body),
                    etag=response.headers.get("ETag"),
                    last_modified=response.headers.get("Last-Modified"),
                    content_type=response.headers.get("Content-Type", ""),
                )
                return finished, response.headers.get("Retry-After")
        finally:
            self._last_done[host_of(url)] = self._clock()


def _reason(status: int) -> str:
    try:
        return httpx.codes(status).phrase
    except ValueError:
        return ""
