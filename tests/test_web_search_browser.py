"""The search page in a real browser: headless Chromium (Playwright) on the real app
served by waitress on loopback, with the real papers stored.

A person types interests into the box and sees the papers they find, with the matched
words marked; a mistake comes back next to the field, the field marked invalid and
focused, as on the signup form. As everywhere (tests/test_web_browser.py `Visit`): no
console errors, no Content-Security-Policy violations, nothing wider than the screen;
screenshots at phone and desktop width go to test-artifacts/web/.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from render_samples import load_papers

from digest.config import load_settings
from digest.match import match_subscriber, parse_interests
from digest.store import open_database
from digest.store.papers import save_papers
from digest.web import create_app
from tests.browser import headless_chromium
from tests.test_web_browser import DESKTOP, PHONE, Visit
from tests.web_support import NOW, SECRET, Clock


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module."""
    with headless_chromium() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real app behind waitress in a thread, the real papers stored; its address."""
    from waitress import create_server

    holder: dict[str, Any] = {}

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        return holder["app"](environ, start_response)

    server = create_server(wsgi, host="127.0.0.1", port=0, threads=4, ident="digest-test")
    url = f"http://127.0.0.1:{server.effective_port}"  # type: ignore[union-attr]
    settings = load_settings(
        environ={},
        overrides={
            "service": {"data_dir": str(tmp_path_factory.mktemp("search")), "base_url": url},
            "web": {"secret_key": SECRET},
        },
    )
    database = open_database(settings)
    with database.session() as session:
        save_papers(session, load_papers(), NOW - timedelta(hours=2))
    app = create_app(settings, database=database, clock=Clock())
    holder["app"] = app
    thread = threading.Thread(target=server.run, name="waitress", daemon=True)
    thread.start()
    yield url
    server.close()
    server.task_dispatcher.shutdown()  # type: ignore[union-attr]
    thread.join(timeout=5)
    app.extensions["digest"].courier.stop()
    database.dispose()


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_a_person_searches_and_corrects_a_mistake(
    browser: Any, served: str, viewport: dict[str, int]
) -> None:
    visit = Visit(browser, viewport)
    page = visit.page
    try:
        page.goto(served + "/papers/search")
        assert page.locator("h1").inner_text() == "Try your interests"
        assert page.locator("article").count() == 0
        visit.check("search")

        # A query with a mistake: the error sits by the field, which is marked and focused.
        page.fill("#q", 'diffusion, "world model')
        page.press("#q", "Enter")
        page.wait_for_load_state("load")
        error = page.locator("#q-error")
        assert 'Entry 2 (“"world model”): a quote is not closed' in error.inner_text()
        assert page.locator("#q").get_attribute("aria-invalid") == "true"
        assert page.get_attribute("#q", "aria-describedby") == "q-help q-error"
        page.wait_for_function("document.activeElement.id === 'q'", timeout=10_000)
        assert page.locator("[role=alert]").is_visible()
        visit.check("search-error")

        # Corrected: the papers, best first, as the matcher chooses them, words marked.
        query = "diffusion, -survey"
        page.fill("#q", query)
        page.click("button[type=submit]")
        page.wait_for_load_state("load")
        assert page.locator("#q").get_attribute("aria-invalid") == "false"
        expected = match_subscriber(parse_interests(query), load_papers(), 50)
        titles = page.locator("article h3").all_inner_texts()
        assert titles == [" ".join(match.paper.title.split()) for match in expected.matches]
        assert page.locator("article mark").first.is_visible()
        assert f"{len(expected.matches)} papers matched" in page.locator("h2").inner_text()
        assert "q=diffusion%2C+-survey" in page.url  # a shareable address
        visit.check("search-results")

        # The way to subscribe carries the interests along.
        link = page.get_by_role("link", name="Get these by email")
        assert link.get_attribute("href") == "/?interests=diffusion%0A-survey"
    finally:
        visit.close()
