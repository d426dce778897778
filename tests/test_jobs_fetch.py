"""fetch_sources: sources into the store, from saved files and from a loopback server."""

from __future__ import annotations

import html
import json
import re
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from digest.jobs import FetchReport, fetch_sources, paper_to_dict, stored_papers
from digest.jobs import fetch as fetch_job
from digest.sources import PoliteClient
from digest.store import Database
from digest.store.models import FetchRow, HttpCacheRow
from digest.store.papers import count_papers, last_fetches, list_papers

DATA = Path(__file__).parent / "data" / "sources"
FIXTURES = {
    "hf_api_daily_papers_2026-06-12.json": ("hf", date(2026, 6, 12), 30, 0),
    "hf_papers_page_2024-08-01.html": ("hf", date(2024, 8, 1), 13, 0),
    "hf_paper_detail_2509.24002_prettified.html": ("hf", date(2025, 10, 1), 1, 0),
    "arxiv_rss_2026-09-24_excerpt.xml": ("arxiv", date(2026, 9, 24), 2, 0),
    "arxiv_atom_2026-09-25_excerpt.xml": ("arxiv", date(2026, 9, 25), 1, 0),
    "arxiv_api_query_2026-06-14.xml": ("arxiv", date(2026, 6, 14), 5, 0),
}
NOW = datetime(2026, 6, 12, 21, 0, tzinfo=UTC)
LATER = datetime(2026, 6, 12, 22, 0, tzinfo=UTC)


def snapshot(database: Database) -> tuple[list[dict[str, Any]], list[tuple[Any, ...]]]:
    """Everything fetching may change but the fetch log: papers and validators."""
    with database.session() as session:
        papers = [paper_to_dict(paper) for paper in list_papers(session)]
        cache = [
            (row.url, row.etag, row.last_modified, row.updated_at)
            for row in session.query(HttpCacheRow).order_by(HttpCacheRow.url)
        ]
    return papers, cache


def fetch_rows(database: Database) -> list[FetchRow]:
    with database.session() as session:
        return list(session.query(FetchRow).order_by(FetchRow.id))


# --- Saved files ------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_fetch_file_twice_changes_nothing_the_second_time(
    settings: Any, database: Database, name: str
) -> None:
    source, day, count, skipped = FIXTURES[name]
    path = DATA / name
    (first,) = fetch_sources(settings, database, file=path, now=NOW)
    assert first == FetchReport(
        source=source,
        day=day,
        origin=str(path),
        papers=count,
        new=count,
        updated=0,
        skipped=skipped,
        note=first.note,
    )
    before = snapshot(database)
    (second,) = fetch_sources(settings, database, file=path, now=LATER)
    assert (second.papers, second.new, second.updated, second.skipped) == (count, 0, 0, skipped)
    assert snapshot(database) == before
    rows = fetch_rows(database)
    assert [(r.source, r.day, r.origin, r.papers, r.new, r.error) for r in rows] == [
        (source, day, str(path), count, count, None),
        (source, day, str(path), count, 0, None),
    ]


def test_all_fixtures_together(settings: Any, database: Database) -> None:
    for name in sorted(FIXTURES):
        fetch_sources(settings, database, file=DATA / name, now=NOW)
    with database.session() as session:
        assert count_papers(session) == sum(count for _, _, count, _ in FIXTURES.values())


def _page_from_api(upvote_bonus: int) -> str:
    """The real 2024 day page carrying the API fixture's entries, upvotes raised."""
    entries = json.loads((DATA / "hf_api_daily_papers_2026-06-12.json").read_bytes())
    for entry in entries[:10]:
        entry["paper"]["upvotes"] += upvote_bonus
    page = (DATA / "hf_papers_page_2024-08-01.html").read_text()
    props = {"date": "2026-06-12T00:00:00.000Z", "dailyPapers": entries}
    escaped = html.escape(json.dumps(props), quote=True)
    return re.sub(
        r'(data-target="DailyPapers" data-props=")[^"]*(")',
        lambda found: found.group(1) + escaped + found.group(2),
        page,
        count=1,
    )


def test_hf_page_after_the_api_updates_upvotes_without_duplicates(
    settings: Any, database: Database, tmp_path: Path
) -> None:
    fetch_sources(settings, database, file=DATA / "hf_api_daily_papers_2026-06-12.json", now=NOW)
    before = {paper.id: paper for paper in stored_papers(database)}
    page = tmp_path / "day.html"
    page.write_text(_page_from_api(upvote_bonus=3))
    (report,) = fetch_sources(settings, database, file=page, now=LATER)
    assert (report.source, report.day, report.papers) == ("hf", date(2026, 6, 12), 30)
    assert (report.new, report.updated, report.skipped) == (0, 10, 0)
    after = {paper.id: paper for paper in stored_papers(database)}
    assert len(after) == 30
    entries = json.loads((DATA / "hf_api_daily_papers_2026-06-12.json").read_bytes())
    for entry in entries[:10]:
        paper_id = entry["paper"]["id"]
        assert after[paper_id].upvotes == before[paper_id].upvotes + 3
        assert after[paper_id].first_seen_at == NOW
    for entry in entries[10:]:
        assert after[entry["paper"]["id"]] == before[entry["paper"]["id"]]


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"garbage \x00\x01",
        (DATA / "hf_api_daily_papers_2026-06-12.json").read_bytes()[:50_000],
        (DATA / "hf_papers_page_2024-08-01.html").read_bytes()[:100_000],
        (DATA / "arxiv_rss_2026-09-24_excerpt.xml").read_bytes()[:4_000],
        b"<!DOCTYPE html><html><body>Checking your browser</body></html>",
    ],
    ids=["empty", "binary", "truncated-json", "truncated-page", "truncated-feed", "challenge"],
)
def test_bad_file_changes_nothing_and_is_logged(
    settings: Any, database: Database, tmp_path: Path, content: bytes
) -> None:
    fetch_sources(settings, database, file=DATA / "arxiv_rss_2026-09-24_excerpt.xml", now=NOW)
    before = snapshot(database)
    bad = tmp_path / "bad.saved"
    bad.write_bytes(content)
    (report,) = fetch_sources(settings, database, file=bad, now=LATER)
    assert not report.ok
    assert report.error and str(bad) in report.error
    assert (report.papers, report.new, report.updated) == (0, 0, 0)
    assert snapshot(database) == before
    last = fetch_rows(database)[-1]
    assert (last.origin, last.error, last.papers) == (str(bad), report.error, 0)


def test_a_listing_the_database_refuses_is_a_logged_failure_and_the_others_run(
    server_settings: Any,
    server_database: Database,
    httpserver: HTTPServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    httpserver.expect_request("/api/daily_papers").respond_with_data(HF_API)
    httpserver.expect_request("/rss/cs.LG+cs.CL").respond_with_data(RSS)
    real_save = fetch_job.save_papers

    def refuse_hf(session: Any, papers: Any, now: Any) -> Any:  # a fault in the database
        if any(p.sources == ("hf",) for p in papers):
            raise OverflowError("Python int too large to convert to SQLite INTEGER")
        return real_save(session, papers, now)

    monkeypatch.setattr(fetch_job, "save_papers", refuse_hf)
    hf_report, arxiv_report = fetch_sources(
        server_settings, server_database, day=date(2026, 6, 12), now=NOW
    )
    assert hf_report.error == (
        "hf: cannot store the listing: Python int too large to convert to SQLite INTEGER"
    )
    assert arxiv_report.ok and arxiv_report.new == 2
    with server_database.session() as session:
        assert count_papers(session) == 2  # nothing of the refused listing is kept
    last = fetch_rows(server_database)
    assert [(row.source, row.error is None) for row in last] == [("hf", False), ("arxiv", True)]


def test_file_for_the_wrong_source_is_refused(settings: Any, database: Database) -> None:
    path = DATA / "arxiv_rss_2026-09-24_excerpt.xml"
    (report,) = fetch_sources(settings, database, source="hf", file=path, now=NOW)
    assert report.error == f"hf: cannot read {path}: not an hf listing: it is an XML feed"
    assert stored_papers(database) == []


# --- From a server ----------------------------------------------------------------------

HF_API = (DATA / "hf_api_daily_papers_2026-06-12.json").read_bytes()
RSS = (DATA / "arxiv_rss_2026-09-24_excerpt.xml").read_bytes()


def serve_with_etag(body: bytes, etag: str) -> Any:
    def handler(request: Request) -> Response:
        if request.headers.get("If-None-Match") == etag:
            return Response(status=304, headers={"ETag": etag})
        return Response(body, headers={"ETag": etag})

    return handler


@pytest.fixture
def server_settings(make_settings: Any, httpserver: HTTPServer) -> Any:
    root = httpserver.url_for("/").rstrip("/")
    return make_settings(
        sources={
            "hf": {"base_url": root},
            "arxiv": {
                "feed_url": root,
                "api_url": root,
                "categories": ["cs.LG", "cs.CL"],
                "min_interval": 0,
            },
            "http": {"retries": 0, "timeout": 5.0},
        }
    )


@pytest.fixture
def server_database(server_settings: Any) -> Any:
    from digest.store import open_database

    database = open_database(server_settings)
    yield database
    database.dispose()


def test_fetch_all_then_not_modified(
    server_settings: Any, server_database: Database, httpserver: HTTPServer
) -> None:
    httpserver.expect_request(
        "/api/daily_papers", query_string="date=2026-06-12"
    ).respond_with_handler(serve_with_etag(HF_API, '"hf-1"'))
    httpserver.expect_request("/rss/cs.LG+cs.CL").respond_with_handler(
        serve_with_etag(RSS, '"rss-1"')
    )
    reports = fetch_sources(server_settings, server_database, now=NOW)
    assert [report.summary() for report in reports] == [
        "hf 2026-06-12: 30 papers, 30 new, 0 updated, 0 skipped",
        "arxiv 2026-09-24: 2 papers, 2 new, 0 updated, 0 skipped (left out 1 cross, 1 replace)",
    ]
    before = snapshot(server_database)
    assert [row[1] for row in before[1]] == ['"hf-1"', '"rss-1"']
    again = fetch_sources(server_settings, server_database, now=LATER)
    assert [report.summary() for report in again] == [
        "hf 2026-06-12: not modified since last fetch",
        "arxiv 2026-09-24: not modified since last fetch",
    ]
    assert snapshot(server_database)[0] == before[0]
    with server_database.session() as session:
        latest = last_fetches(session)
    assert latest["arxiv"].day == date(2026, 9, 24)
    assert latest["arxiv"].started_at == LATER


def test_without_a_given_time_papers_are_stamped_when_saved_not_when_the_fetch_began(
    server_settings: Any, server_database: Database, httpserver: HTTPServer
) -> None:
    answered: list[datetime] = []

    def slow(request: Request) -> Response:  # a slow server: the fetch takes a while
        time.sleep(0.5)
        answered.append(datetime.now(UTC))
        return Response(HF_API)

    httpserver.expect_request("/api/daily_papers").respond_with_handler(slow)
    began = datetime.now(UTC)
    (report,) = fetch_sources(server_settings, server_database, source="hf", day=date(2026, 6, 12))
    assert report.new == 30, report.summary()
    with server_database.session() as session:
        seen = {paper.first_seen_at for paper in list_papers(session)}
    assert len(seen) == 1 and seen.pop() >= answered[0] > began + timedelta(seconds=0.4)


def test_default_day_is_today_in_utc(
    server_settings: Any, server_database: Database, httpserver: HTTPServer
) -> None:
    httpserver.expect_request(
        "/api/daily_papers", query_string="date=2026-06-13"
    ).respond_with_data("[]")
    late_evening_in_california = datetime(2026, 6, 13, 1, 0, tzinfo=UTC)
    (report,) = fetch_sources(
        server_settings, server_database, source="hf", now=late_evening_in_california
    )
    assert report.summary() == "hf 2026-06-13: no listing for that day (no papers listed)"


def test_a_failing_source_does_not_stop_the_others(
    server_settings: Any, server_database: Database, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/api/daily_papers").respond_with_data("", status=503)
    httpserver.expect_request("/papers/date/2026-06-12").respond_with_data("", status=503)
    httpserver.expect_request("/rss/cs.LG+cs.CL").respond_with_data(RSS)
    hf_report, arxiv_report = fetch_sources(server_settings, server_database, now=NOW)
    root = httpserver.url_for("/").rstrip("/")
    assert not hf_report.ok
    assert hf_report.error == (
        f"hf: cannot fetch {root}/papers/date/2026-06-12: HTTP 503 Service Unavailable "
        "(gave up after 1 attempt) (and the API failed: HTTP 503 Service Unavailable "
        "(gave up after 1 attempt))"
    )
    assert hf_report.day == date(2026, 6, 12)
    assert arxiv_report.ok and arxiv_report.new == 2
    assert {paper.id for paper in stored_papers(server_database)} == {"2609.26811", "2609.26820"}
    rows = fetch_rows(server_database)
    assert [(row.source, row.error is None) for row in rows] == [("hf", False), ("arxiv", True)]


def test_a_parse_failure_keeps_no_validators(
    server_settings: Any, server_database: Database, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/rss/cs.LG+cs.CL").respond_with_data(
        RSS[:3000], headers={"ETag": '"broken"'}
    )
    (report,) = fetch_sources(server_settings, server_database, source="arxiv", now=NOW)
    assert "not well-formed XML" in (report.error or "")
    assert snapshot(server_database) == ([], [])


def test_disabled_sources_are_not_fetched(make_settings: Any, tmp_path: Path) -> None:
    from digest.store import open_database

    settings = make_settings(sources={"hf": {"enabled": False}, "arxiv": {"enabled": False}})
    database = open_database(settings)
    try:
        assert fetch_sources(settings, database, now=NOW) == []
    finally:
        database.dispose()


def test_given_client_is_used_and_left_open(
    server_settings: Any, server_database: Database, httpserver: HTTPServer, fake_time: Any
) -> None:
    httpserver.expect_request("/rss/cs.LG+cs.CL").respond_with_data(RSS)
    client = PoliteClient(
        user_agent="scheduler/1", min_intervals={}, sleep=fake_time.sleep, clock=fake_time.clock
    )
    for _ in range(2):
        fetch_sources(server_settings, server_database, source="arxiv", now=NOW, client=client)
    assert httpserver.log[0][0].headers["User-Agent"] == "scheduler/1"
    client.get(httpserver.url_for("/rss/cs.LG+cs.CL"), source="arxiv")  # still open
    client.close()


def test_unknown_source_is_a_clear_error(settings: Any, database: Database) -> None:
    from digest.errors import DigestError

    with pytest.raises(DigestError, match='unknown source "rss": use hf, arxiv or all'):
        fetch_sources(settings, database, source="rss", now=NOW)


# --- Seed papers (like:ID) --------------------------------------------------------------

API = (DATA / "arxiv_api_query_2026-06-14.xml").read_bytes()  # 2606.13677 ... 2606.13501


def name_seeds(database: Database, email: str, *paper_ids: str, status: str = "active") -> None:
    """A reader whose interests name these seed papers (`like:ID`)."""
    from digest.store.feedback import sync_seeds
    from digest.store.subscribers import create_subscriber

    with database.session() as session:
        reader = create_subscriber(
            session, email, "agents", send_time="08:00", timezone="UTC", now=NOW, status=status
        )
        sync_seeds(session, reader.id, paper_ids, NOW)


def test_an_unconfirmed_sign_up_seeds_wait_for_its_confirmation(database: Database) -> None:
    name_seeds(database, "stranger@example.org", "2606.99999", status="pending")
    assert missing_seeds(database) == []
    name_seeds(database, "paused@example.org", "2606.99998", status="paused")
    assert missing_seeds(database) == ["2606.99998"]


def missing_seeds(database: Database) -> list[str]:
    from digest.store.feedback import missing_seed_papers

    with database.session() as session:
        return missing_seed_papers(session)


def test_missing_seed_papers_are_fetched_from_the_arxiv_api_and_stored(
    server_settings: Any,
    server_database: Database,
    httpserver: HTTPServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    name_seeds(server_database, "ada@example.org", "2606.13677", "2609.26811", "2609.99999")
    name_seeds(server_database, "bo@example.org", "2606.13591")
    httpserver.expect_request("/rss/cs.LG+cs.CL").respond_with_data(RSS)  # has 2609.26811
    httpserver.expect_request("/api/query").respond_with_data(API)
    feed, seeds = fetch_sources(server_settings, server_database, source="arxiv", now=NOW)
    assert feed.ok and feed.new == 2
    assert seeds.summary() == (
        "seeds: 2 papers, 2 new, 0 updated, 0 skipped (seed papers named with like:, "
        "3 missing; 1 unknown to arXiv)"
    )
    # One request for the seeds the store lacked once the feed was in, politely made.
    (feed_request, _), (api_request, _) = httpserver.log
    assert api_request.path == "/api/query"
    assert api_request.args.to_dict() == {
        "id_list": "2606.13591,2606.13677,2609.99999",
        "max_results": "3",
    }
    assert api_request.headers["User-Agent"] == feed_request.headers["User-Agent"]
    # Only the papers asked for are kept, not the rest of the answer.
    stored = {paper.id: paper for paper in stored_papers(server_database)}
    assert set(stored) == {"2609.26811", "2609.26820", "2606.13677", "2606.13591"}
    assert stored["2606.13677"].title == "Mana: Dexterous Manipulation of Articulated Tools"
    assert stored["2606.13677"].sources == ("arxiv",)
    assert stored["2606.13677"].first_seen_at == NOW  # submitted the day before: news
    # The unknown id stays missing, named in one line of the log.
    assert missing_seeds(server_database) == ["2609.99999"]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        "seed papers: arXiv knows no paper 2609.99999 (named with like:); they stay missing"
    ]
    # The next fetch asks for what is still missing only.
    fetch_sources(server_settings, server_database, source="arxiv", now=LATER)
    assert httpserver.log[-1][0].args["id_list"] == "2609.99999"


def test_an_old_seed_paper_is_no_news_for_the_next_digests(
    server_settings: Any, server_database: Database, httpserver: HTTPServer
) -> None:
    from digest.store.papers import papers_first_seen_between

    name_seeds(server_database, "ada@example.org", "2606.13515")
    httpserver.expect_request("/rss/cs.LG+cs.CL").respond_with_data(RSS)
    httpserver.expect_request("/api/query").respond_with_data(API)
    weeks_later = datetime(2026, 7, 1, 21, 0, tzinfo=UTC)
    fetch_sources(server_settings, server_database, source="arxiv", now=weeks_later)
    (paper,) = [p for p in stored_papers(server_database) if p.id == "2606.13515"]
    assert paper.first_seen_at == datetime(2026, 6, 11, tzinfo=UTC)  # its submission day
    with server_database.session() as session:
        day_before, end = weeks_later - timedelta(days=1), weeks_later + timedelta(seconds=1)
        window = papers_first_seen_between(session, day_before, end)
    assert "2606.13515" not in {p.id for p in window}
    assert {"2609.26811", "2609.26820"} <= {p.id for p in window}


def test_seed_papers_are_asked_for_a_hundred_at_a_time_at_arxivs_pace(
    make_settings: Any, httpserver: HTTPServer, fake_time: Any
) -> None:
    from digest.store import open_database

    root = httpserver.url_for("/").rstrip("/")
    settings = make_settings(
        sources={
            "hf": {"enabled": False},
            "arxiv": {"enabled": False, "api_url": root, "min_interval": 3.0},
            "http": {"retries": 0, "timeout": 5.0},
        }
    )
    database = open_database(settings)
    try:
        seeds = [f"2606.{13400 + n:05d}" for n in range(150)] + ["2606.13677"]
        name_seeds(database, "ada@example.org", *seeds)
        httpserver.expect_request("/api/query").respond_with_data(API)
        client = PoliteClient.from_settings(settings, sleep=fake_time.sleep, clock=fake_time.clock)
        with client:
            (report,) = fetch_sources(settings, database, now=NOW, client=client)
        asked = [request.args["id_list"].split(",") for request, _ in httpserver.log]
        assert [len(ids) for ids in asked] == [100, 51]
        assert [request.args["max_results"] for request, _ in httpserver.log] == ["100", "51"]
        assert sorted(asked[0] + asked[1]) == sorted(seeds)
        assert fake_time.sleeps == [3.0]  # arXiv's interval between the two requests
        assert (report.papers, report.new) == (3, 3)  # those of the 151 the answers hold
    finally:
        database.dispose()


def test_a_failed_seed_request_is_logged_and_fails_nothing_else(
    server_settings: Any,
    server_database: Database,
    httpserver: HTTPServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    name_seeds(server_database, "ada@example.org", "2606.13677")
    httpserver.expect_request("/rss/cs.LG+cs.CL").respond_with_data(RSS)
    httpserver.expect_request("/api/query").respond_with_data("", status=503)
    feed, seeds = fetch_sources(server_settings, server_database, source="arxiv", now=NOW)
    assert feed.ok and seeds.ok
    assert seeds.summary() == (
        "seeds: seed papers named with like:, 1 missing; 1 not fetched (see the log)"
    )
    root = httpserver.url_for("/").rstrip("/")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        f"seed papers: arxiv: cannot fetch {root}/api/query?id_list=2606.13677&max_results=1: "
        "HTTP 503 Service Unavailable (gave up after 1 attempt)"
    ]
    assert missing_seeds(server_database) == ["2606.13677"]
    # An answer that is no arXiv feed is one line too.
    httpserver.clear()
    httpserver.expect_request("/rss/cs.LG+cs.CL").respond_with_data(RSS)
    httpserver.expect_request("/api/query").respond_with_data("<html>busy</html>")
    caplog.clear()
    fetch_sources(server_settings, server_database, source="arxiv", now=LATER)
    (line,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert line.startswith("seed papers: arxiv: cannot read ") and "not an arXiv feed" in line


def test_seed_papers_are_fetched_with_arxiv_only_never_with_hf_or_a_file(
    server_settings: Any, server_database: Database, httpserver: HTTPServer
) -> None:
    name_seeds(server_database, "ada@example.org", "2606.13677")
    httpserver.expect_request("/api/daily_papers").respond_with_data(HF_API)
    (report,) = fetch_sources(
        server_settings, server_database, source="hf", day=date(2026, 6, 12), now=NOW
    )
    assert report.source == "hf"
    fetch_sources(server_settings, server_database, file=DATA / "arxiv_rss_2026-09-24_excerpt.xml")
    assert [request.path for request, _ in httpserver.log] == ["/api/daily_papers"]
    assert missing_seeds(server_database) == ["2606.13677"]
