"""The emails in a real browser (headless Chromium through Playwright).

At phone and desktop widths nothing overflows sideways, text stays readable, dark mode
keeps enough contrast, and the page fetches nothing. Screenshots go to test-artifacts/
at the top of the repository, to look at.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from render_samples import html_of, load_papers, nasty_selection, select, subscriber, worst_case
from test_render import DAY, NOW, POSTAL, SECRET

from digest.config import load_settings
from digest.match import Hit, Match, Selection, match_subscriber, parse_interests
from digest.render import DigestRenderer
from tests.browser import COLOURS, contrast, headless_chromium, luminance

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"

# What sticks out the furthest to the right, and how wide the page scrolls.
MEASURE = """() => {
  let right = 0, widest = "";
  for (const element of document.body.querySelectorAll("*")) {
    const box = element.getBoundingClientRect();
    if (box.width > 0 && box.right > right) {
      right = box.right;
      widest = element.tagName.toLowerCase() + "." + element.className;
    }
  }
  return {scroll: document.documentElement.scrollWidth, inner: innerWidth, right, widest};
}"""

# The smallest font size of any visible text.
SMALLEST_TEXT = """() => {
  let smallest = 1000;
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const parent = walker.currentNode.parentElement;
    if (!walker.currentNode.textContent.trim() || !parent.offsetWidth) continue;
    smallest = Math.min(smallest, parseFloat(getComputedStyle(parent).fontSize));
  }
  return smallest;
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with headless_chromium() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def emails(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The HTML of each kind of email, rendered once for the module."""
    settings = load_settings(
        environ={},
        overrides={
            "service": {
                "data_dir": str(tmp_path_factory.mktemp("data")),
                "base_url": "https://digest.example.org",
            },
            "mail": {"from_address": "digest@example.org", "postal_address": POSTAL},
        },
    )
    renderer = DigestRenderer(settings, SECRET)
    papers = load_papers()
    interests = ["diffusion", "RLHF", "agent", "reasoning", "video"]
    reader = subscriber(", ".join(interests))
    worst_reader, worst_selection = worst_case(papers)
    return {
        "digest": html_of(renderer.render_digest(reader, select(papers, interests), DAY, now=NOW)),
        "worst": html_of(renderer.render_digest(worst_reader, worst_selection, DAY, now=NOW)),
        "escaping": html_of(renderer.render_digest(reader, nasty_selection(papers), DAY, now=NOW)),
        "empty": html_of(renderer.render_digest(reader, Selection(()), DAY, now=NOW)),
        "suggested": html_of(
            renderer.render_digest(reader, _with_suggestions(papers, interests), DAY, now=NOW)
        ),
        "trending": html_of(
            renderer.render_digest(
                subscriber("trending:5\nagent"),
                match_subscriber(parse_interests("trending:5\nagent"), papers, 20),
                DAY,
                now=NOW,
            )
        ),
        "confirmation": html_of(
            renderer.render_confirmation(
                reader, "https://digest.example.org/confirm/WzQyLCJhYmMiXQ.token", now=NOW
            )
        ),
        "manage-link": html_of(
            renderer.render_manage_link(
                reader, "https://digest.example.org/manage/WzQyLCJhYmMiXQ.token", now=NOW
            )
        ),
    }


def _with_suggestions(papers: list[Any], interests: list[str]) -> Selection:
    """Five matches, then three suggested papers with long reasons."""
    matched = select(papers, interests, max_papers=5)
    taken = {match.paper.id for match in matched.matches}
    reason = "close to “{}”, which you liked"
    suggested = tuple(
        Match(paper, 0.5, (Hit(reason.format(paper.title), ()),))
        for paper in [paper for paper in papers if paper.id not in taken][:3]
    )
    return Selection(matched.matches, matched.more, suggested=suggested)


def open_email(browser: Browser, html: str, width: int, scheme: str = "light") -> Page:
    """The email in a fresh page; fails the test if the page fetches anything."""
    page = browser.new_page(viewport={"width": width, "height": 800}, color_scheme=scheme)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.set_content(html, wait_until="load")
    assert requests == [], f"the email fetched {requests}"
    return page


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"email-{name}.png"), full_page=True)


@pytest.mark.parametrize(
    ("name", "width"),
    [
        ("digest", 375),
        ("digest", 1000),
        ("digest", 320),
        ("worst", 375),
        ("worst", 1000),
        ("worst", 320),
        ("escaping", 375),
        ("escaping", 1000),
        ("empty", 375),
        ("empty", 1000),
        ("suggested", 320),
        ("suggested", 1000),
        ("confirmation", 375),
        ("confirmation", 1000),
        ("manage-link", 375),
    ],
)
def test_nothing_overflows_and_text_is_readable(
    browser: Browser, emails: dict[str, str], name: str, width: int
) -> None:
    page = open_email(browser, emails[name], width)
    try:
        screenshot(page, f"{name}-{width}")
        measured: dict[str, Any] = page.evaluate(MEASURE)
        assert measured["scroll"] <= measured["inner"], measured
        assert measured["right"] <= width + 0.5, measured
        assert page.evaluate(SMALLEST_TEXT) >= 12
        # The content column is at most 600 px wide, centred on a wide screen.
        box = page.locator("table.container").bounding_box()
        assert box is not None and box["width"] <= 600
        if width >= 600:
            assert abs(box["x"] - (width - box["width"]) / 2) <= 1
    finally:
        page.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_colours_keep_contrast_in_light_and_dark_mode(
    browser: Browser, emails: dict[str, str], scheme: str
) -> None:
    page = open_email(browser, emails["digest"], 375, scheme)
    try:
        screenshot(page, f"digest-375-{scheme}")
        page_background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert (luminance(page_background) < 0.05) == (scheme == "dark")
        for selector in (
            "h1.heading",
            "a.title-link",
            "p.snippet",
            "p.meta",
            "p.snippet mark",
            "span.label",
            "p.links",
            "a.link",
            "p.feedback",
            "p.feedback a",
            "td.footer",
        ):
            foreground, background = page.evaluate(COLOURS, selector)
            assert contrast(foreground, background) >= 4.5, (selector, foreground, background)
    finally:
        page.close()
