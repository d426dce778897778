"""The polite client and the fetches, against a real HTTP server on 127.0.0.1.

The server (pytest-httpserver) serves the saved pages and plays the sites' bad days:
429 with Retry-After, 503, ETag/304, an empty HF day redirecting to /papers, a stall.
Sleeping is injected (`fake_time`), so no test waits for a backoff.
"""

from __future__ import annotations

import socket
import time
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from digest.errors import FetchError, ParseError
from digest.sources import arxiv, hf
from digest.sources.http import PoliteClient, Validators, host_of, parse_retry_after

DATA = Path(__file__).parent / "data" / "sources"
HF_API = (DATA / "hf_api_daily_papers_2026-06-12.json").read_bytes()
HF_PAGE = (DATA / "hf_papers_page_2024-08-01.html").read_bytes()
RSS = (DATA / "arxiv_rss_2026-09-24_excerpt.xml").read_bytes()
NOW = datetime(2026, 6, 12, 9, 30, tzinfo=UTC)
CHALLENGE = (
    b"<!DOCTYPE html><html><head><title>Human Verification</title></head>"
    b"<body><script src='/challenge.js'></script></body></html>"
)


@pytest.fixture
def make_client(fake_time: Any) -> Any:
    """Build clients that sleep on the fake clock; closed after the test."""
    clients: list[PoliteClient] = []

    def build(**options: Any) -> PoliteClient:
        defaults: dict[str, Any] = {
            "user_agent": "digest-tests/1 (+http://127.0.0.1; mailto:ops@example.org)",
            "timeout": 5.0,
            "retries": 2,
            "backoff": 1.0,
            "max_backoff": 60.0,
            "sleep": fake_time.sleep,
            "clock": fake_time.clock,
            "wall_clock": lambda: NOW,
        }
        client = PoliteClient(**{**defaults, **options})
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.close()


def statuses(server: HTTPServer) -> list[int]:
    return [response.status_code for _, response in server.log]


# --- The client -------------------------------------------------------------------------


def test_get_sends_user_agent_and_returns_body(httpserver: HTTPServer, make_client: Any) -> None:
    httpserver.expect_request("/feed").respond_with_data(RSS, content_type="application/xml")
    response = make_client().get(httpserver.url_for("/feed"), source="arxiv")
    assert response.status == 200
    assert response.content == RSS
    assert not response.not_modified and not response.redirected
    ((request, _),) = httpserver.log
    assert request.headers["User-Agent"] == (
        "digest-tests/1 (+http://127.0.0.1; mailto:ops@example.org)"
    )
    assert "If-None-Match" not in request.headers


def test_429_honours_retry_after_seconds(
    httpserver: HTTPServer, make_client: Any, fake_time: Any
) -> None:
    httpserver.expect_oneshot_request("/feed").respond_with_data(
        "slow down", status=429, headers={"Retry-After": "7"}
    )
    httpserver.expect_request("/feed").respond_with_data(RSS)
    response = make_client().get(httpserver.url_for("/feed"), source="arxiv")
    assert response.content == RSS
    assert statuses(httpserver) == [429, 200]
    assert fake_time.sleeps == [7.0]  # Retry-After beats the 1 s backoff


def test_429_honours_retry_after_http_date(
    httpserver: HTTPServer, make_client: Any, fake_time: Any
) -> None:
    later = format_datetime(NOW + timedelta(seconds=30), usegmt=True)
    httpserver.expect_oneshot_request("/feed").respond_with_data(
        "", status=429, headers={"Retry-After": later}
    )
    httpserver.expect_request("/feed").respond_with_data(RSS)
    make_client().get(httpserver.url_for("/feed"), source="arxiv")
    assert fake_time.sleeps == [30.0]


def test_a_retry_after_longer_than_max_backoff_stops_asking_that_host_until_it_is_over(
    httpserver: HTTPServer, make_client: Any, fake_time: Any
) -> None:
    # Asked to wait an hour: stop now and leave the host alone for the hour, rather than
    # retrying sooner than asked or holding the job for an hour.
    httpserver.expect_oneshot_request("/feed").respond_with_data(
        "", status=503, headers={"Retry-After": "3600"}
    )
    httpserver.expect_request("/feed").respond_with_data(RSS)
    url = httpserver.url_for("/feed")
    client = make_client(max_backoff=10.0)
    with pytest.raises(FetchError) as caught:
        client.get(url, source="arxiv")
    assert str(caught.value) == (
        f"arxiv: cannot fetch {url}: HTTP 503 Service Unavailable; the server asks to wait 3600 s"
    )
    assert fake_time.sleeps == [] and statuses(httpserver) == [503]
    # Nothing goes to that host until the hour is over (another page of it included).
    fake_time.now += 1800
    with pytest.raises(FetchError, match="the server asked us to wait; 1800 s still to go"):
        client.get(httpserver.url_for("/other"), source="hf")
    assert statuses(httpserver) == [503]
    fake_time.now += 1800
    assert client.get(url, source="arxiv").content == RSS


def test_503_backs_off_exponentially_then_succeeds(
    httpserver: HTTPServer, make_client: Any, fake_time: Any
) -> None:
    for _ in range(2):
        httpserver.expect_oneshot_request("/feed").respond_with_data("busy", status=503)
    httpserver.expect_request("/feed").respond_with_data(RSS)
    response = make_client(backoff=2.0).get(httpserver.url_for("/feed"), source="arxiv")
    assert response.status == 200
    assert statuses(httpserver) == [503, 503, 200]
    assert fake_time.sleeps == [2.0, 4.0]


def test_5xx_until_retries_run_out_is_a_fetch_error(
    httpserver: HTTPServer, make_client: Any, fake_time: Any
) -> None:
    httpserver.expect_request("/feed").respond_with_data("down", status=503)
    url = httpserver.url_for("/feed")
    with pytest.raises(FetchError) as raised:
        make_client(retries=2).get(url, source="arxiv")
    assert str(raised.value) == (
        f"arxiv: cannot fetch {url}: HTTP 503 Service Unavailable (gave up after 3 attempts)"
    )
    assert statuses(httpserver) == [503, 503, 503]
    assert fake_time.sleeps == [1.0, 2.0]


def test_404_is_not_retried(httpserver: HTTPServer, make_client: Any, fake_time: Any) -> None:
    httpserver.expect_request("/feed").respond_with_data("no", status=404)
    with pytest.raises(FetchError, match=r"HTTP 404 Not Found$"):
        make_client().get(httpserver.url_for("/feed"), source="arxiv")
    assert statuses(httpserver) == [404]
    assert fake_time.sleeps == []


def test_conditional_request_and_304(httpserver: HTTPServer, make_client: Any) -> None:
    modified = "Thu, 24 Sep 2026 08:58:05 GMT"

    def conditional(request: Request) -> Response:
        if request.headers.get("If-None-Match") == '"v1"':
            return Response(status=304, headers={"ETag": '"v1"'})
        return Response(RSS, headers={"ETag": '"v1"', "Last-Modified": modified})

    httpserver.expect_request("/feed").respond_with_handler(conditional)
    client = make_client()
    url = httpserver.url_for("/feed")
    first = client.get(url, source="arxiv")
    assert first.validators() == Validators(url, '"v1"', modified)
    second = client.get(url, source="arxiv", validators=first.validators())
    assert second.not_modified
    assert second.content == b""
    request = httpserver.log[1][0]
    assert request.headers["If-None-Match"] == '"v1"'
    assert request.headers["If-Modified-Since"] == modified


def test_stall_past_the_timeout_is_a_fetch_error(httpserver: HTTPServer, make_client: Any) -> None:
    def stall(request: Request) -> Response:
        time.sleep(1.0)
        return Response(RSS)

    httpserver.expect_request("/slow").respond_with_handler(stall)
    with pytest.raises(FetchError) as raised:
        make_client(timeout=0.2, retries=0).get(httpserver.url_for("/slow"), source="arxiv")
    assert "no answer within 0.2 s" in raised.value.what
    assert "gave up after 1 attempt)" in raised.value.what


def test_connection_refused_is_retried_then_a_fetch_error(make_client: Any, fake_time: Any) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(FetchError, match="cannot connect") as raised:
        make_client(retries=1).get(f"http://127.0.0.1:{port}/feed", source="hf")
    assert raised.value.source == "hf"
    assert fake_time.sleeps == [1.0]


def test_oversized_response_is_refused(httpserver: HTTPServer, make_client: Any) -> None:
    httpserver.expect_request("/big").respond_with_data(HF_API)
    with pytest.raises(FetchError, match="larger than 1000 bytes"):
        make_client(max_bytes=1000).get(httpserver.url_for("/big"), source="hf")


def test_min_interval_per_host(httpserver: HTTPServer, make_client: Any, fake_time: Any) -> None:
    httpserver.expect_request("/feed").respond_with_data(RSS)
    url = httpserver.url_for("/feed")
    client = make_client(min_intervals={host_of(url): 3.0})
    client.get(url, source="arxiv")
    assert fake_time.sleeps == []  # the first request goes at once
    client.get(url, source="arxiv")
    assert fake_time.sleeps == [3.0]  # the fake clock did not move: a full interval
    fake_time.now += 5.0
    client.get(url, source="arxiv")
    assert fake_time.sleeps == [3.0]  # enough time passed: no wait


def test_min_interval_counts_backoff_time(
    httpserver: HTTPServer, make_client: Any, fake_time: Any
) -> None:
    httpserver.expect_oneshot_request("/feed").respond_with_data("", status=503)
    httpserver.expect_request("/feed").respond_with_data(RSS)
    url = httpserver.url_for("/feed")
    make_client(min_intervals={host_of(url): 3.0}).get(url, source="arxiv")
    # 1 s of backoff, then the 2 s still missing from arXiv's 3 s interval.
    assert fake_time.sleeps == [1.0, 2.0]


def test_other_hosts_are_not_paced(
    httpserver: HTTPServer, make_client: Any, fake_time: Any
) -> None:
    httpserver.expect_request("/feed").respond_with_data(RSS)
    client = make_client(min_intervals={"export.arxiv.org": 3.0})
    for _ in range(3):
        client.get(httpserver.url_for("/feed"), source="hf")
    assert fake_time.sleeps == []


def test_client_from_settings(make_settings: Any) -> None:
    settings = make_settings(
        sources={
            "arxiv": {"feed_url": "http://127.0.0.1:9/", "min_interval": 4.5},
            "http": {"timeout": 7.0, "retries": 5, "user_agent": "ua/1"},
        }
    )
    with PoliteClient.from_settings(settings) as client:
        assert client.min_intervals["127.0.0.1:9"] == 4.5
        assert client.min_intervals["export.arxiv.org"] == 4.5
        assert (client.timeout, client.retries) == (7.0, 5)
        assert client._http.headers["User-Agent"] == "ua/1"


def test_default_user_agent_names_the_service(make_settings: Any) -> None:
    settings = make_settings(mail={"from_address": "digest@example.org"})
    assert settings.user_agent.startswith("digest/")
    assert "mailto:digest@example.org" in settings.user_agent


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (format_datetime(NOW + timedelta(minutes=2), usegmt=True), 120.0),
        (format_datetime(NOW - timedelta(minutes=2), usegmt=True), 0.0),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, NOW) == seconds


# --- Hugging Face over HTTP -------------------------------------------------------------


def base(server: HTTPServer) -> str:
    return server.url_for("/").rstrip("/")


def test_hf_fetch_from_the_api(httpserver: HTTPServer, make_client: Any) -> None:
    httpserver.expect_request(
        "/api/daily_papers", query_string="date=2026-06-12"
    ).respond_with_data(HF_API, content_type="application/json", headers={"ETag": 'W/"api-1"'})
    listing = hf.fetch(make_client(), base(httpserver), date(2026, 6, 12))
    assert len(listing.papers) == 30
    assert listing.day == date(2026, 6, 12)
    assert listing.origin == f"{base(httpserver)}/api/daily_papers?date=2026-06-12"
    assert listing.validators == Validators(listing.origin, 'W/"api-1"', None)
    assert listing.note == ""


def test_hf_fetch_304_is_nothing_new(httpserver: HTTPServer, make_client: Any) -> None:
    def conditional(request: Request) -> Response:
        assert request.headers.get("If-None-Match") == 'W/"api-1"'
        return Response(status=304)

    httpserver.expect_request("/api/daily_papers").respond_with_handler(conditional)
    known = lambda url: Validators(url, 'W/"api-1"')  # noqa: E731
    listing = hf.fetch(make_client(), base(httpserver), date(2026, 6, 12), known=known)
    assert listing.not_modified
    assert listing.papers == ()
    assert listing.validators is None


def test_hf_falls_back_to_the_day_page(httpserver: HTTPServer, make_client: Any) -> None:
    httpserver.expect_request("/api/daily_papers").respond_with_data("down", status=503)
    httpserver.expect_request("/papers/date/2024-08-01").respond_with_data(
        HF_PAGE, content_type="text/html"
    )
    listing = hf.fetch(make_client(retries=0), base(httpserver), date(2024, 8, 1))
    assert len(listing.papers) == 13
    assert listing.origin == f"{base(httpserver)}/papers/date/2024-08-01"
    assert listing.note == (
        "from the day page; the API failed: HTTP 503 Service Unavailable (gave up after 1 attempt)"
    )


def test_hf_empty_day_redirect_is_no_listing(httpserver: HTTPServer, make_client: Any) -> None:
    httpserver.expect_request("/api/daily_papers").respond_with_data("[]", status=404)
    httpserver.expect_request("/papers/date/2026-06-13").respond_with_data(
        "", status=302, headers={"Location": "/papers"}
    )
    httpserver.expect_request("/papers").respond_with_data(HF_PAGE, content_type="text/html")
    listing = hf.fetch(make_client(), base(httpserver), date(2026, 6, 13))
    assert listing.papers == ()  # never the 2024-08-01 papers /papers shows
    assert listing.day == date(2026, 6, 13)
    assert listing.note == "no listing for that day (redirected to /papers)"
    assert listing.validators is None
    assert statuses(httpserver) == [404, 302, 200]


def test_hf_both_ways_failing_names_both(httpserver: HTTPServer, make_client: Any) -> None:
    httpserver.expect_request("/api/daily_papers").respond_with_data(CHALLENGE, status=200)
    httpserver.expect_request("/papers/date/2026-06-12").respond_with_data(CHALLENGE, status=202)
    with pytest.raises(ParseError) as raised:
        hf.fetch(make_client(), base(httpserver), date(2026, 6, 12))
    error = raised.value
    assert error.where == f"{base(httpserver)}/papers/date/2026-06-12"
    assert error.what.startswith("unknown page layout")
    assert "(and the API failed: the response is not valid JSON" in error.what


def test_hf_both_ways_down_is_a_fetch_error(httpserver: HTTPServer, make_client: Any) -> None:
    httpserver.expect_request("/api/daily_papers").respond_with_data("", status=500)
    httpserver.expect_request("/papers/date/2026-06-12").respond_with_data("", status=403)
    with pytest.raises(FetchError) as raised:
        hf.fetch(make_client(retries=0), base(httpserver), date(2026, 6, 12))
    assert raised.value.what == (
        "HTTP 403 Forbidden (and the API failed: HTTP 500 Internal Server Error "
        "(gave up after 1 attempt))"
    )


# --- arXiv over HTTP --------------------------------------------------------------------


def test_arxiv_fetch_and_not_modified(
    httpserver: HTTPServer, make_client: Any, make_settings: Any
) -> None:
    def conditional(request: Request) -> Response:
        if request.headers.get("If-Modified-Since") == "Thu, 24 Sep 2026 08:58:05 GMT":
            return Response(status=304)
        return Response(
            RSS,
            content_type="application/rss+xml",
            headers={"Last-Modified": "Thu, 24 Sep 2026 08:58:05 GMT"},
        )

    httpserver.expect_request("/rss/cs.LG+cs.CL").respond_with_handler(conditional)
    settings = make_settings(
        sources={"arxiv": {"feed_url": base(httpserver), "categories": ["cs.LG", "cs.CL"]}}
    )
    client = make_client()
    listing = arxiv.fetch(client, settings.sources.arxiv)
    assert [paper.id for paper in listing.papers] == ["2609.26811", "2609.26820"]
    assert listing.origin == f"{base(httpserver)}/rss/cs.LG+cs.CL"
    assert listing.validators.last_modified == "Thu, 24 Sep 2026 08:58:05 GMT"
    again = arxiv.fetch(client, settings.sources.arxiv, known=lambda url: listing.validators)
    assert again.not_modified
    assert again.papers == ()
