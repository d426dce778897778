"""A "more / less like this" link in a real browser: headless Chromium on the real app
served by waitress (the `served` app of test_web_browser, whose store holds the sample
papers).

A reader opens the link of a paper (nothing is recorded yet), presses its one button,
reads what changed, follows the page's link to their settings, finds the verdict listed
there and undoes it. On every page: no console errors, no CSP violations, nothing wider
than the screen; screenshots go to test-artifacts/web/.

Outside CI a missing Chromium skips these tests; in CI (CI=true) it fails them.
"""

from __future__ import annotations

from typing import Any

import pytest
from render_samples import load_papers
from test_web_browser import DESKTOP, PHONE, Served, Visit, browser, served

from digest.store.feedback import LESS, MORE, Vote, votes_of
from digest.tokens import feedback_base, feedback_url, make_token
from tests.web_support import SECRET

__all__ = ["browser", "served"]  # the fixtures shared with test_web_browser


def _votes(served: Served, reader_id: int) -> list[Vote]:
    with served.site.database.session() as session:
        return votes_of(session, reader_id)


@pytest.mark.parametrize(
    ("viewport", "vote", "address"),
    [(PHONE, "less", "lena@example.org"), (DESKTOP, "more", "mo@example.org")],
    ids=["phone-less", "desktop-more"],
)
def test_a_reader_teaches_it_from_a_digest_link_and_undoes_it(
    browser: Any, served: Served, viewport: dict[str, int], vote: str, address: str
) -> None:
    reader = served.site.add_reader(address, "diffusion")
    paper = load_papers()[0]  # stored by the served app
    base = feedback_base(served.site.settings, SECRET, reader.id, reader.email)
    link = feedback_url(base, vote, paper.id)
    assert link.startswith(served.url)
    visit = Visit(browser, viewport)
    page = visit.page
    try:
        page.goto(link)
        heading = "More like this?" if vote == "more" else "Less like this?"
        assert page.locator("h1").inner_text() == heading
        assert paper.title in page.locator("main").inner_text()
        assert _votes(served, reader.id) == []  # opening the link recorded nothing
        visit.check(f"feedback-{vote}")

        page.click("main button[type=submit]")
        page.wait_for_load_state("load")
        fewer = "more" if vote == "more" else "fewer"
        thanks = page.locator("p.lead").inner_text()
        assert thanks == f"You will see {fewer} papers like “{paper.title}”."
        [stored] = _votes(served, reader.id)
        assert (stored.paper_id, stored.vote, stored.source) == (
            paper.id,
            MORE if vote == "more" else LESS,
            "email",
        )
        visit.check(f"feedback-{vote}-done")

        assert "/manage/" not in page.content()  # a feedback token opens no settings
        manage = make_token(SECRET, "manage", reader.id, reader.email)
        page.goto(f"{served.url}/manage/{manage}#taught-heading")
        page.wait_for_load_state("load")
        listed = page.locator(".taught-list li")
        assert listed.count() == 1
        label = "more like this" if vote == "more" else "less like this"
        assert paper.title in listed.first.inner_text() and label in listed.first.inner_text()
        visit.check(f"manage-taught-{vote}")

        listed.first.locator("button").click()
        page.wait_for_load_state("load")
        notice = page.locator("p.notice").inner_text()
        assert notice == f"Removed: {vote} like “{paper.title}”."
        assert page.locator(".taught-list li").count() == 0
        assert "Nothing yet" in page.locator("section.taught").inner_text()
        assert _votes(served, reader.id) == []
        visit.check(f"manage-untaught-{vote}")
    finally:
        visit.context.close()
