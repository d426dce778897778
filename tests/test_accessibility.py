"""Accessibility as a test: every email and every page a visitor can reach passes
axe-core's WCAG 2.1 A and AA rules in headless Chromium, in light and in dark mode.

axe-core comes bundled in axe-playwright-python. The emails are the ones
test_render_browser renders; the pages are served as test_web_browser serves them (the
real app behind waitress, mailing a real SMTP server), and each is reached the way a
visitor reaches it. A new page is one line in `PAGES`: its name and how to reach it.

A failure lists every violation: the rule, its impact, the element (a CSS selector) and
what axe says to fix.

Outside CI a missing Chromium skips these tests; in CI (CI=true) it fails them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
from render_samples import load_papers
from test_render_browser import emails, open_email
from test_web_browser import Served, browser, served

from digest.tokens import feedback_base, feedback_url
from tests.web_support import SECRET

# The fixtures of those modules, used here too (exported: the linter sees them used).
__all__ = ["browser", "emails", "served"]

WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
AXE_OPTIONS = {
    "runOnly": {"type": "tag", "values": WCAG_21_AA},
    "resultTypes": ["violations"],
    "iframes": False,  # frames are checked one by one (see `violations`)
}
SCHEMES = ["light", "dark"]


def axe(page: Any) -> list[dict[str, Any]]:
    """What axe finds against WCAG 2.1 A and AA in the page's own document."""
    try:
        from axe_playwright_python.sync_playwright import Axe
    except ImportError:  # as tests.browser does for Chromium: only CI must have it
        reason = "axe-playwright-python is not installed (pip install -e '.[test]')"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: CI must run the accessibility tests")
        pytest.skip(reason)
    return Axe().run(page, options=AXE_OPTIONS).response["violations"]


def violations(page: Any) -> list[dict[str, Any]]:
    """What axe finds in the page and in each of its frames.

    A sandboxed frame (the manage page's sample) runs no script, axe's included, so each
    frame's document is checked on a page of its own, its elements named "iframe[title]
    >> selector".
    """
    found = axe(page)
    for frame in page.frames[1:]:
        where = f'iframe[title="{frame.frame_element().get_attribute("title")}"]'
        alone = page.context.new_page()
        try:
            alone.set_content(frame.content(), wait_until="load")
            for violation in axe(alone):
                for node in violation["nodes"]:
                    node["target"] = [where, *node["target"]]
                found.append(violation)
        finally:
            alone.close()
    return found


def report(found: list[dict[str, Any]]) -> str:
    """Each rule broken, then each element breaking it and what to fix there."""
    lines = [f"{sum(len(v['nodes']) for v in found)} accessibility violations:"]
    for violation in found:
        lines.append(f"{violation['id']} ({violation['impact']}): {violation['help']}")
        lines.append(f"  {violation['helpUrl']}")
        for node in violation["nodes"]:
            target = " >> ".join(str(selector) for selector in node["target"])
            summary = node.get("failureSummary", "").replace("\n", "\n      ")
            lines.append(f"  - {target} ({node.get('impact') or violation['impact']})")
            lines.append(f"      {summary}")
    return "\n".join(lines)


def assert_accessible(page: Any) -> None:
    found = violations(page)
    if found:
        pytest.fail(report(found))


# --- the emails -----------------------------------------------------------------------

EMAILS = ["digest", "trending", "empty", "escaping", "confirmation", "manage-link"]


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("name", EMAILS)
def test_emails_are_accessible(
    browser: Any, emails: dict[str, str], name: str, scheme: str
) -> None:
    page = open_email(browser, emails[name], 600, scheme)
    try:
        assert_accessible(page)
    finally:
        page.close()


# --- the pages ------------------------------------------------------------------------

# How a page is reached: (the browser tab, the served app, an address of its own).
Reach = Callable[[Any, Served, str], object]


def path(url: str) -> Reach:
    """Open a path of the site."""
    return lambda page, app, address: page.goto(app.url + url)


def link(purpose: str, status: str = "active", query: str = "") -> Reach:
    """Open a reader's signed `purpose` link (confirm, manage, unsubscribe)."""

    def reach(page: Any, app: Served, address: str) -> None:
        reader = app.site.add_reader(address, "diffusion\nagent", status=status)
        page.goto(f"{app.url}/{purpose}/{app.site.token(purpose, reader)}{query}")

    return reach


def then(first: Reach, *selectors: str) -> Reach:
    """Reach a page with `first`, then press what `selectors` name, in turn."""

    def reach(page: Any, app: Served, address: str) -> None:
        first(page, app, address)
        for selector in selectors:
            page.click(selector)
            page.wait_for_load_state("load")

    return reach


def signup_with_mistakes(page: Any, app: Served, address: str) -> None:
    page.goto(app.url + "/")
    page.fill("#email", address + ">")
    page.fill("#interests", 'diffusion\n"world model')
    page.click("button[type=submit]")
    page.locator("#interests-error").wait_for()


def signed_up(page: Any, app: Served, address: str) -> None:
    page.goto(app.url + "/")
    page.fill("#email", address)
    page.fill("#interests", "diffusion\nlarge language model")
    page.click("button[type=submit]")
    page.wait_for_url("**/check-your-email")


def signup_rate_limited(page: Any, app: Served, address: str) -> None:
    """Sign-ups for one address up to its hourly limit (from elsewhere, so the limit per
    client stays untouched), then one more in the browser: 429, the form with a notice."""
    from limits import parse

    for number in range(parse(app.site.settings.web.address_limit).amount):
        sent = app.site.signup(address, environ_base={"REMOTE_ADDR": f"192.0.2.{number + 1}"})
        assert sent.status_code == 303, sent.status_code
    page.goto(app.url + "/")
    page.fill("#email", address)
    page.fill("#interests", "diffusion")
    with page.expect_response(lambda response: response.request.method == "POST") as answer:
        page.click("button[type=submit]")
    assert answer.value.status == 429


def manage_mistake(field: str, value: str) -> Reach:
    """The manage page saved with a mistake in one field, its error shown."""

    def reach(page: Any, app: Served, address: str) -> None:
        link("manage")(page, app, address)
        page.fill(f"#{field}", value)
        page.click("text=Save changes")
        page.locator(f"#{field}-error").wait_for()

    return reach


def manage_with_sample(page: Any, app: Served, address: str) -> None:
    link("manage", query="?sample=1")(page, app, address)
    page.frame_locator("iframe").locator("body").wait_for()


def feedback(vote: str) -> Reach:
    """Open a reader's "more / less like this" link for a stored paper."""

    def reach(page: Any, app: Served, address: str) -> None:
        reader = app.site.add_reader(address, "diffusion")
        base = feedback_base(app.site.settings, SECRET, reader.id, reader.email)
        page.goto(feedback_url(base, vote, load_papers()[0].id))

    return reach


def taught(page: Any, app: Served, address: str) -> None:
    """A "more like this" pressed, then the reader's manage page (from their email: the
    feedback pages link to no settings), which lists it."""
    then(feedback("more"), "main button[type=submit]")(page, app, address)
    reader = app.site.subscriber(address)
    assert reader is not None
    page.goto(f"{app.url}/manage/{app.site.token('manage', reader)}#taught-heading")


TAUGHT = (taught,)

PAGES: list[tuple[str, Reach]] = [
    ("signup", path("/")),
    ("signup-mistakes", signup_with_mistakes),
    ("signup-rate-limited", signup_rate_limited),
    ("check-email", signed_up),
    ("confirm", link("confirm", status="pending")),
    ("confirmed", then(link("confirm", status="pending"), "button[type=submit]")),
    ("confirmed-already", link("confirm")),
    ("manage", link("manage")),
    ("manage-mistakes", manage_mistake("interests", 'diffusion\n"world model')),
    ("manage-saved", link("manage", query="?done=saved")),
    ("manage-paused", link("manage", status="paused")),
    ("manage-bounced", link("manage", status="bounced")),
    ("manage-sample", manage_with_sample),
    ("manage-suggestions-mistake", manage_mistake("suggestions", "21")),
    ("manage-taught", then(*TAUGHT)),
    ("manage-undone", then(*TAUGHT, ".taught-list button")),
    ("feedback", feedback("more")),
    ("feedback-done", then(feedback("less"), "main button[type=submit]")),
    ("unsubscribe", link("unsubscribe")),
    ("unsubscribed", then(link("unsubscribe"), "button[type=submit]")),
    ("resubscribed", then(link("unsubscribe"), "button[type=submit]", "text=Resubscribe")),
    ("invalid-link", path("/confirm/not-a-real-token")),
    ("not-found", path("/no-such-page")),
]


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize(("name", "reach"), PAGES, ids=[name for name, _ in PAGES])
def test_pages_are_accessible(
    browser: Any, served: Served, name: str, reach: Reach, scheme: str
) -> None:
    context = browser.new_context(viewport={"width": 1000, "height": 800}, color_scheme=scheme)
    page = context.new_page()
    try:
        reach(page, served, f"{name}-{scheme}@example.org")
        page.wait_for_load_state("load")
        assert_accessible(page)
    finally:
        context.close()
