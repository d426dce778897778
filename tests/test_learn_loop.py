"""The whole loop, end to end: a click in the email of day 1 changes the order of day 2.

Real parts throughout: papers and readers in a SQLite file, the digest job, the outbox
sent to an aiosmtpd server, the link followed in the web app (a GET that records
nothing, then the button's POST), and the next day's run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

from bs4 import BeautifulSoup

from digest.jobs.digests import queue_due_digests
from digest.send import send_due
from digest.store.feedback import votes_of
from tests.learn_support import add_reader, fit_text, store_papers
from tests.web_support import csrf_token

DAY1 = datetime(2026, 6, 11, 8, 0, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)


def _html(message: EmailMessage) -> BeautifulSoup:
    part = message.get_body(("html",))
    assert part is not None
    return BeautifulSoup(part.get_content(), "html.parser")


def _titles(message: EmailMessage) -> list[str]:
    return [" ".join(a.get_text().split()) for a in _html(message).select("a.title-link")]


def _feedback_links(message: EmailMessage, label: str) -> dict[str, str]:
    """Each paper's link with this label, by the paper's title."""
    soup = _html(message)
    links: dict[str, str] = {}
    for card in soup.select("table.card"):
        title = " ".join(card.select_one("a.title-link").get_text().split())  # type: ignore[union-attr]
        [link] = [a for a in card.find_all("a") if a.get_text().strip() == label]
        links[title] = str(link["href"])
    return links


def _deliver(site: Any, now: datetime, count: int) -> list[EmailMessage]:
    assert queue_due_digests(site.settings, site.database, now=now).queued == 2
    report = send_due(site.settings, site.database, now=now)
    assert report.sent == 2, report.summary()
    return site.mails(count)


def _by_reader(messages: list[EmailMessage], address: str) -> EmailMessage:
    [found] = [m for m in messages if m["To"] == address]
    return found


def test_a_click_in_day_one_email_reorders_day_two(make_site: Any, real_papers: Any) -> None:
    site = make_site(smtp=True)
    papers = list(real_papers)
    store_papers(site.database, papers[:120], DAY1 - timedelta(hours=20))
    fit_text(site.database, DAY1 - timedelta(hours=19))
    ada = add_reader(
        site.database, "ada@example.org", "language model", at=DAY1 - timedelta(days=1)
    )
    add_reader(site.database, "bob@example.org", "language model", at=DAY1 - timedelta(days=1))

    day1 = _deliver(site, DAY1, 2)
    mine, twin = _by_reader(day1, "ada@example.org"), _by_reader(day1, "bob@example.org")
    assert _titles(mine) == _titles(twin)  # nobody has taught it anything yet
    more = _feedback_links(mine, "More like this")
    assert len(more) == len(_titles(mine))
    liked = [title for title in more if "rlhf" in title.lower() or "preference" in title.lower()]
    assert len(liked) == 3, "day 1 shows three papers on preference tuning"

    for clicked, title in enumerate(liked):
        path = urlsplit(more[title]).path
        page = site.get(path)
        assert page.status_code == 200
        with site.database.session() as session:
            assert len(votes_of(session, ada)) == clicked  # opening a link records nothing
        done = site.client.post(path, data={"csrf_token": csrf_token(page.get_data(as_text=True))})
        assert done.status_code == 200
        assert f"You will see more papers like “{title}”." in " ".join(
            done.get_data(as_text=True).split()
        )
    with site.database.session() as session:
        assert len(votes_of(session, ada)) == len(liked)

    store_papers(site.database, papers[120:], DAY1 + timedelta(hours=1))
    day2 = _deliver(site, DAY2, 4)[2:]
    mine, twin = _by_reader(day2, "ada@example.org"), _by_reader(day2, "bob@example.org")
    ordered, plain = _titles(mine), _titles(twin)
    assert ordered != plain
    # The keyword matches are papers the twin gets too, the clicked-on topic first ...
    assert set(ordered) & set(plain)
    assert any(word in ordered[0].lower() for word in ("preference", "align", "reward"))
    assert not any(word in plain[0].lower() for word in ("preference", "align", "reward"))
    # ... and the digest suggests what no keyword matched, saying why.
    text = " ".join(_html(mine).get_text().split())
    assert "Suggested for you" in text and "which you liked" in text
    assert "Suggested for you" not in " ".join(_html(twin).get_text().split())
