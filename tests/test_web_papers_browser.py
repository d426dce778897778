"""The papers pages in a real browser: headless Chromium on the real app served by
waitress (the `served` app of test_web_browser, with the saved listings of
tests/data/sources added to its store).

A visitor reads today's papers, walks to the days before and after, and signs up from
the box at the top of the page, which is a frame: its form lands the whole window on the
check-your-email page. The frame grows with its form (signup-box.js), so the page
scrolls, not the frame. On every page: no console errors, no CSP violations (in the
frame too), nothing wider than the screen; screenshots go to test-artifacts/web/.

Outside CI a missing Chromium skips these tests; in CI (CI=true) it fails them.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_web_browser import DESKTOP, PHONE, Served, Visit, browser, served

from digest.render.view import long_date
from digest.sources import arxiv, hf
from digest.store.papers import neighbour_days, save_papers
from tests.web_support import NOW

__all__ = ["browser", "served"]  # the fixtures shared with test_web_browser

SOURCES = Path(__file__).parent / "data" / "sources"
TODAY = NOW.date()  # 12 June 2026: the saved Hugging Face listing's day

# The frame's height and the height of what it holds, and whether it scrolls inside.
FRAME_FIT = """() => {
  const frame = document.querySelector("iframe.signup-frame");
  const inner = frame.contentDocument;
  return {frame: frame.getBoundingClientRect().height,
          body: inner.body.getBoundingClientRect().height,
          scrolls: inner.documentElement.scrollHeight > inner.documentElement.clientHeight + 1};
}"""


@pytest.fixture(scope="module")
def papers_site(served: Served) -> Served:
    """The served app, its store holding the saved listings too."""
    hf_listing = hf.parse_api((SOURCES / "hf_api_daily_papers_2026-06-12.json").read_bytes(), "hf")
    rss = (SOURCES / "arxiv_rss_2026-09-24_excerpt.xml").read_bytes()
    with served.site.database.session() as session:
        save_papers(session, hf_listing.papers, NOW - timedelta(hours=1))
        save_papers(session, arxiv.parse_feed(rss, "rss", include_cross=True).papers, NOW)
    return served


def _neighbours(served: Served, day: date) -> tuple[date | None, date | None]:
    with served.site.database.session() as session:
        return neighbour_days(session, day)


def _heading(visit: Visit) -> str:
    return visit.page.locator("h1").inner_text()


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP])
def test_a_visitor_reads_today_and_walks_to_the_days_around(
    browser: Any, papers_site: Served, viewport: dict[str, int]
) -> None:
    visit = Visit(browser, viewport)
    page = visit.page
    try:
        page.goto(papers_site.url + "/papers")
        assert _heading(visit) == f"Papers of {long_date(TODAY)}"
        cards = page.locator("section[aria-labelledby=on-hf] li.paper")
        assert cards.count() == 30
        assert cards.first.locator(".rank").inner_text() == "1"
        assert "118 upvotes" in cards.first.locator(".counts").inner_text()
        page.frame_locator("iframe.signup-frame").locator("#email").wait_for()
        visit.check("papers")

        before, after = _neighbours(papers_site, TODAY)
        assert before is not None and after is not None
        page.locator("main a[rel=prev]").first.click()
        page.wait_for_url(f"**/papers/{before}")
        assert _heading(visit) == f"Papers of {long_date(before)}"
        visit.check("papers-previous-day")

        page.locator("main a[rel=next]").first.click()
        page.wait_for_url(f"**/papers/{TODAY}")
        page.locator("main a[rel=next]").first.click()
        page.wait_for_url(f"**/papers/{after}")
        assert after == date(2026, 9, 24)  # the arXiv excerpt's day: arXiv papers only
        assert page.locator("#on-arxiv").inner_text() == "Also on arXiv"
        assert page.locator("#on-hf").count() == 0
        visit.check("papers-arxiv-day")

        page.goto(papers_site.url + "/papers/2026-07-01")  # a day without papers
        assert "No papers were listed on this day." in page.locator("main").inner_text()
        assert page.locator("main a[rel=next]").first.get_attribute("href") == f"/papers/{after}"
        visit.check("papers-empty-day")
    finally:
        visit.close()


@pytest.mark.parametrize(("viewport", "address"), [(PHONE, "lin"), (DESKTOP, "ming")])
def test_a_visitor_signs_up_from_the_box_and_lands_on_check_your_email(
    browser: Any, papers_site: Served, viewport: dict[str, int], address: str
) -> None:
    address = f"{address}@example.org"
    visit = Visit(browser, viewport, timezone_id="Asia/Tokyo")
    page = visit.page
    try:
        page.goto(papers_site.url + "/papers")
        box = page.frame_locator("iframe.signup-frame")
        # timezone.js works in the frame too: the visitor's own zone is preselected.
        assert box.locator("#timezone").input_value() == "Asia/Tokyo"
        page.wait_for_function(
            "() => document.querySelector('iframe.signup-frame').style.height !== ''"
        )
        fitted = page.evaluate(FRAME_FIT)
        assert not fitted["scrolls"] and abs(fitted["frame"] - fitted["body"]) <= 2, fitted
        # Only the email and the trending choice show; the rest opens: the frame grows.
        assert box.locator("#trending").is_checked()
        assert not box.locator("#interests").is_visible()
        box.locator("details.options > summary").click()
        page.wait_for_function(
            f"() => document.querySelector('iframe.signup-frame')"
            f".getBoundingClientRect().height > {fitted['frame'] + 50}"
        )
        assert not page.evaluate(FRAME_FIT)["scrolls"]
        visit.check("papers-box-open")

        box.locator("#email").fill(address)
        box.locator("#interests").fill("diffusion\nlarge language model")
        box.locator("button[type=submit]").click()
        page.wait_for_url("**/check-your-email")  # the whole window, not the frame
        assert _heading(visit) == "Check your email"
        visit.check("papers-box-signed-up")
        subscriber = papers_site.site.subscriber(address)
        assert subscriber is not None and subscriber.status == "pending"
        assert subscriber.timezone == "Asia/Tokyo"
        assert subscriber.interests.startswith("diffusion\nlarge language model\ntrending")
    finally:
        visit.close()


def test_a_mistake_in_the_box_shows_the_signup_page_with_it(
    browser: Any, papers_site: Served
) -> None:
    visit = Visit(browser, DESKTOP)
    page = visit.page
    try:
        page.goto(papers_site.url + "/papers")
        box = page.frame_locator("iframe.signup-frame")
        box.locator("#email").fill("not-an-address")  # trending alone, as the box offers
        box.locator("button[type=submit]").click()
        page.wait_for_url(papers_site.url + "/")
        assert page.locator("#email-error").is_visible()  # on the whole signup page
        assert page.locator("#email").input_value() == "not-an-address"
        visit.check("papers-box-mistake")
    finally:
        visit.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("where", ["/papers", "/papers/2026-09-24", "/papers/2026-07-01"])
def test_the_papers_pages_pass_axe(
    browser: Any, papers_site: Served, where: str, scheme: str
) -> None:
    from test_accessibility import assert_accessible

    visit = Visit(browser, DESKTOP, color_scheme=scheme)
    try:
        visit.page.goto(papers_site.url + where)
        visit.page.frame_locator("iframe.signup-frame").locator("#email").wait_for()
        assert_accessible(visit.page)  # the signup box's frame included
    finally:
        visit.close()


def test_an_address_alone_in_the_box_subscribes_to_the_day_s_trending_papers(
    browser: Any, papers_site: Served
) -> None:
    visit = Visit(browser, PHONE)
    page = visit.page
    try:
        page.goto(papers_site.url + "/papers")
        box = page.frame_locator("iframe.signup-frame")
        box.locator("#email").fill("trend-only@example.org")
        box.locator("button[type=submit]").click()
        page.wait_for_url("**/check-your-email")
        subscriber = papers_site.site.subscriber("trend-only@example.org")
        assert subscriber is not None and subscriber.interests == "trending"
    finally:
        visit.close()
