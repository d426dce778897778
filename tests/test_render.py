"""The digest and confirmation emails: parsed back with the `email` package and checked.

Inputs are real papers (tests/data/papers.jsonl) with matches made by render_samples, as
the matcher would make them. Browser checks are in test_render_browser.py.
"""

from __future__ import annotations

import base64
import dataclasses
import re
import sys
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import dkim
import html5lib
import pytest
from render_samples import (
    NASTY_TITLE,
    find_spans,
    html_of,
    load_papers,
    nasty_selection,
    parse,
    select,
    subscriber,
    text_of,
    worst_case,
)

from digest import tokens
from digest.errors import ConfigError, DigestError
from digest.match import Hit, Match, Selection, Span
from digest.message import Message
from digest.paper import Paper
from digest.render import DigestRenderer
from digest.render.view import HTML_LIMIT, LABELS_SHOWN
from tests.reference.render import reference_digest

DAY = date(2026, 6, 12)  # a Friday
NOW = datetime(2026, 6, 12, 6, 0, tzinfo=UTC)
SECRET = "render-test-secret"
INTERESTS = ["diffusion", "RLHF", "agent", "reasoning", "video"]
DIGEST_HEADERS = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Auto-Submitted",
    "MIME-Version",
    "Content-Type",
]
CONFIRMATION_HEADERS = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Auto-Submitted",
    "MIME-Version",
    "Content-Type",
]
POSTAL = "Paper Digest, 12 Rue des Écoles, 75005 Paris, France"


# ---------------------------------------------------------------------------------------
# Helpers


@pytest.fixture(scope="module")
def papers() -> list[Paper]:
    return load_papers()


@pytest.fixture
def mail_settings(make_settings: Any) -> Any:
    """Settings for a digest sent from example.org; keyword sections override."""

    def build(**sections: Any) -> Any:
        base: dict[str, dict[str, Any]] = {
            "service": {"base_url": "https://digest.example.org"},
            "mail": {"from_address": "digest@example.org", "postal_address": POSTAL},
        }
        for name, values in sections.items():
            base.setdefault(name, {}).update(values)
        return make_settings(**base)

    return build


@pytest.fixture
def renderer(mail_settings: Any) -> DigestRenderer:
    return DigestRenderer(mail_settings(), SECRET)


def digest_for(
    renderer: DigestRenderer, papers: list[Paper], interests: list[str] = INTERESTS, **kw: Any
) -> Message:
    reader = kw.pop("reader", None) or subscriber(", ".join(interests))
    return renderer.render_digest(reader, select(papers, interests), DAY, now=NOW, **kw)


_TOKEN = re.compile(r"/(manage|unsubscribe|feedback)/([A-Za-z0-9_.-]+)")


def check_tokens(text: str, reader: Any) -> str:
    """`text` with each manage/unsubscribe/feedback token checked (it names `reader`) and
    replaced by TOKEN: tokens carry their signing time, so two renders may differ there
    only."""

    def check(found: re.Match[str]) -> str:
        subscriber_id, tag = tokens.read_token(SECRET, found.group(1), found.group(2))
        assert subscriber_id == reader.id
        assert tokens.token_matches(tag, reader.email)
        return f"/{found.group(1)}/TOKEN"

    return _TOKEN.sub(check, text)


def strictly_parsed_html(html: str) -> Any:
    """The HTML parsed by html5lib in strict mode: any parse error fails the test."""
    return html5lib.HTMLParser(strict=True, namespaceHTMLElements=False).parse(html)


# ---------------------------------------------------------------------------------------
# Headers


def test_digest_headers(renderer: DigestRenderer, papers: list[Paper]) -> None:
    reader = subscriber(", ".join(INTERESTS))
    selection = select(papers, INTERESTS)
    message = renderer.render_digest(reader, selection, DAY, now=NOW)
    parsed = parse(message)
    assert list(parsed.keys()) == DIGEST_HEADERS
    sender = parsed["From"].addresses[0]
    assert (sender.display_name, sender.addr_spec) == ("Paper digest", "digest@example.org")
    assert parsed["To"] == "reader@example.org"
    total = len(selection.matches) + selection.more
    assert total > 20 and selection.more > 0
    shown_interests = {hit.interest for match in selection.matches for hit in match.hits}
    assert len(shown_interests) == 4  # "video" only matches papers past the 20th
    assert parsed["Subject"] == (
        f"{total} new papers on diffusion, agent and 2 more interests — Fri 12 Jun"
    )
    assert parsed["Date"].datetime == NOW
    assert re.fullmatch(r"<digest\.20260612\.42\.[0-9a-f]{20}@example\.org>", parsed["Message-ID"])
    assert parsed["List-Id"] == "Paper digest <digest.example.org>"
    unsubscribe = parsed["List-Unsubscribe"]
    assert re.fullmatch(r"<https://digest\.example\.org/unsubscribe/[\w.-]+>", unsubscribe)
    assert check_tokens(unsubscribe, reader) == "<https://digest.example.org/unsubscribe/TOKEN>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed.get_content_type() == "multipart/alternative"
    parts = list(parsed.iter_parts())
    assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
    assert all(part.get_content_charset() == "utf-8" for part in parts)
    assert (message.sender, message.recipient) == ("digest@example.org", "reader@example.org")
    assert message.message_id == parsed["Message-ID"]


def test_lines_stay_within_the_limits(renderer: DigestRenderer, papers: list[Paper]) -> None:
    data = digest_for(renderer, papers).data
    head, _, body = data.partition(b"\r\n\r\n")
    assert data.isascii()
    assert b"\n" not in data.replace(b"\r\n", b"")
    for line in head.split(b"\r\n"):
        assert len(line) <= 78 or line.startswith(b"List-Unsubscribe: <https://")
    assert all(len(line) <= 76 for line in body.split(b"\r\n"))  # quoted-printable's limit


def test_unsubscribe_by_mail_too(mail_settings: Any, papers: list[Paper]) -> None:
    renderer = DigestRenderer(
        mail_settings(mail={"unsubscribe_mailto": "leave@example.org"}), SECRET
    )
    value = parse(digest_for(renderer, papers))["List-Unsubscribe"]
    assert re.fullmatch(
        r"<https://digest\.example\.org/unsubscribe/[\w.-]+>, "
        r"<mailto:leave@example\.org\?subject=unsubscribe>",
        value,
    )


def test_configured_list_id_and_non_ascii_sender(mail_settings: Any, papers: list[Paper]) -> None:
    settings = mail_settings(
        mail={
            "from_name": "Prépublications ✉ du jour",
            "list_id": "Daily papers <daily.example.org>",
        }
    )
    parsed = parse(digest_for(DigestRenderer(settings, SECRET), papers))
    assert parsed["From"].addresses[0].display_name == "Prépublications ✉ du jour"
    assert parsed["List-Id"] == "Daily papers <daily.example.org>"
    bare = mail_settings(mail={"list_id": "daily.example.org"})
    assert parse(digest_for(DigestRenderer(bare, SECRET), papers))["List-Id"] == (
        "<daily.example.org>"
    )


def test_message_id_is_stable_per_subscriber_and_day(
    renderer: DigestRenderer, papers: list[Paper]
) -> None:
    reader = subscriber("diffusion")
    first = renderer.render_digest(reader, select(papers, ["diffusion"]), DAY, now=NOW)
    again = renderer.render_digest(
        reader, select(papers, ["video"]), DAY, now=NOW + timedelta(hours=5)
    )
    fresh_renderer = DigestRenderer(renderer.settings, SECRET)
    resent = fresh_renderer.render_digest(reader, select(papers, ["diffusion"]), DAY, now=NOW)
    assert first.message_id == again.message_id == resent.message_id
    assert parse(resent)["Message-ID"] == first.message_id
    tomorrow = renderer.render_digest(reader, Selection(()), DAY + timedelta(days=1), now=NOW)
    other = renderer.render_digest(
        subscriber("diffusion", 43, "other@example.org"), Selection(()), DAY, now=NOW
    )
    assert len({first.message_id, tomorrow.message_id, other.message_id}) == 3
    assert all(m.message_id.endswith("@example.org>") for m in (first, tomorrow, other))


# ---------------------------------------------------------------------------------------
# The fast path gives the message the reference construction gives


def same_message(renderer: DigestRenderer, reader: Any, selection: Selection) -> None:
    fast = renderer.render_digest(reader, selection, DAY, now=NOW)
    slow = reference_digest(renderer, reader, selection, DAY, now=NOW)
    ours, theirs = parse(fast), parse(slow)
    assert list(ours.keys()) == list(theirs.keys()) == DIGEST_HEADERS
    for name in DIGEST_HEADERS:
        if name == "Content-Type":  # the boundaries differ
            assert ours.get_params() == [
                (k, v if k != "boundary" else ours.get_boundary()) for k, v in theirs.get_params()
            ]
        else:
            # Spaces collapsed: EmailMessage folds a long subject after a space it also
            # keeps ("interest \r\n =?utf-8?b?4oCU?="), so its own parser reads two.
            mine, reference = (" ".join(str(m[name]).split()) for m in (ours, theirs))
            assert check_tokens(mine, reader) == check_tokens(reference, reader)
    assert ours["From"].addresses == theirs["From"].addresses
    assert [p.get_content_type() for p in ours.iter_parts()] == ["text/plain", "text/html"]
    assert [p.get_content_type() for p in theirs.iter_parts()] == ["text/plain", "text/html"]
    for kind in ("plain", "html"):
        mine = ours.get_body((kind,)).get_content()  # type: ignore[union-attr]
        reference = theirs.get_body((kind,)).get_content()  # type: ignore[union-attr]
        assert check_tokens(mine, reader) == check_tokens(reference, reader)
    assert (fast.sender, fast.recipient, fast.message_id) == (
        slow.sender,
        slow.recipient,
        slow.message_id,
    )


@pytest.mark.parametrize(
    "interests",
    [INTERESTS, ["language model"], ["benchmark", "video", "3D", "robot", "speech", "math"], []],
)
def test_fast_path_matches_reference(
    renderer: DigestRenderer, papers: list[Paper], interests: list[str]
) -> None:
    reader = subscriber(", ".join(interests) or "quantum gravity")
    same_message(renderer, reader, select(papers, interests))
    # Again with the caches warm, for someone else with overlapping matches.
    other = subscriber(", ".join(interests[:2]), 7, "someone.else@example.org")
    same_message(renderer, other, select(papers, interests[:2]))


def test_fast_path_matches_reference_on_hard_cases(mail_settings: Any, papers: list[Paper]) -> None:
    settings = mail_settings(
        mail={"from_name": "Prépublications ✉", "unsubscribe_mailto": "leave@example.org"},
        match={"max_papers": 20},
    )
    renderer = DigestRenderer(settings, SECRET)
    same_message(renderer, subscriber("<b>bold</b> & co"), nasty_selection(papers))
    same_message(renderer, *worst_case(papers))
    many = select(papers, ["the", "model"], max_papers=20)  # numbers 1 to 20 in the text
    assert len(many.matches) == 20
    same_message(renderer, subscriber("the, model"), many)


# ---------------------------------------------------------------------------------------
# Content


def test_html_is_clean_self_contained_email_html(
    renderer: DigestRenderer, papers: list[Paper]
) -> None:
    html = html_of(digest_for(renderer, papers))
    document = strictly_parsed_html(html)
    assert document.find(".//head/meta[@charset='utf-8']") is not None
    schemes = document.find(".//head/meta[@name='color-scheme']")
    assert schemes is not None and schemes.get("content") == "light dark"
    assert document.find(".//table[@role='presentation']") is not None
    # Nothing external: no stylesheet links, scripts, fonts, images or CSS imports.
    for tag in ("link", "script", "img", "iframe", "object"):
        assert document.find(f".//{tag}") is None
    assert "@import" not in html and "url(" not in html and "@font-face" not in html
    # The only stylesheet left holds what cannot be inlined: media queries.
    styles = document.findall(".//style")
    assert len(styles) == 1
    assert re.fullmatch(r"\s*(/\*.*?\*/\s*)?(@media[^{]+\{.*\}\s*)+", styles[0].text, re.S)
    # Inlined: every card element has its style attribute.
    for css_class in ("card", "card-body", "title", "meta", "snippet", "label", "link"):
        elements = document.findall(f".//*[@class='{css_class}']")
        assert elements and all(element.get("style") for element in elements), css_class
    for link in document.findall(".//a"):
        assert link.get("href").startswith(("https://", "http://"))


def test_digest_content(renderer: DigestRenderer, papers: list[Paper]) -> None:
    reader = subscriber(", ".join(INTERESTS))
    selection = select(papers, INTERESTS)
    message = renderer.render_digest(reader, selection, DAY, now=NOW)
    html, text = html_of(message), text_of(message)
    document = strictly_parsed_html(html)
    cards = document.findall(".//table[@class='card']")
    assert len(cards) == 20
    first = selection.matches[0]
    title_link = document.find(".//a[@class='title-link']")
    assert "".join(title_link.itertext()).strip() == first.paper.title
    assert title_link.get("href") == first.paper.url_hf or first.paper.url_abs
    labels = ["".join(x.itertext()) for x in cards[0].findall(".//span[@class='label']")]
    assert labels == list(first.interests)
    meta = "".join(cards[0].find(".//p[@class='meta']").itertext()).strip()
    assert meta.startswith(", ".join(first.paper.authors[:3]))
    assert ("et al." in meta) == (len(first.paper.authors) > 3)
    snippet = "".join(cards[0].find(".//p[@class='snippet']").itertext()).strip()
    assert 100 < len(snippet) <= 302
    marks = cards[0].findall(".//p[@class='snippet']/mark")
    assert marks and all(m.text.lower() in [i.lower() for i in INTERESTS] for m in marks)
    links = {a.text: a.get("href") for a in cards[0].findall(".//a[@class='link']")}
    assert links["Abstract"] == f"https://arxiv.org/abs/{first.paper.id}"
    assert links["PDF"] == f"https://arxiv.org/pdf/{first.paper.id}"
    assert f"…and {selection.more} more matched" in html
    footer = "".join(document.find(".//td[@class='footer']").itertext())
    assert "You get this email because you subscribed to Paper digest" in footer
    assert POSTAL in footer
    assert "diffusion, RLHF, agent, reasoning, video" in footer
    hrefs = [a.get("href") for a in document.find(".//td[@class='footer']").iter("a")]
    assert [check_tokens(href, reader) for href in hrefs] == [
        "https://digest.example.org/manage/TOKEN",
        "https://digest.example.org/unsubscribe/TOKEN",
    ]
    # The plain text says the same.
    assert text.startswith(f"{20 + selection.more} new papers on diffusion, agent and 2 more")
    assert "Friday 12 June 2026" in text
    assert " 1. " + first.paper.title[:30] in text
    assert "20. " in text and "21. " not in text
    assert f"Abstract: https://arxiv.org/abs/{first.paper.id}" in text
    assert f"…and {selection.more} more matched" in text
    assert "\n-- \n" in text
    assert check_tokens(text, reader).count("https://digest.example.org/manage/TOKEN") == 2
    assert POSTAL in text
    assert "*" in text  # highlighted words


def test_text_part_is_wrapped_and_free_of_html(
    renderer: DigestRenderer, papers: list[Paper]
) -> None:
    message = renderer.render_digest(subscriber("bold"), nasty_selection(papers), DAY, now=NOW)
    text = text_of(message)
    for line in text.splitlines():
        assert len(line) <= 72 or "://" in line, line
    assert not re.search(r"&(#\d+|#x[0-9a-f]+|[a-z]+);", text.replace("&amp; entity", ""))
    assert NASTY_TITLE[:40] in text.replace("\n    ", " ")
    assert "<b>" in text and "$\\alpha < \\beta$" in text.replace("*", "")


def test_paper_text_is_escaped(renderer: DigestRenderer, papers: list[Paper]) -> None:
    message = renderer.render_digest(
        subscriber("<b>bold</b> & co"), nasty_selection(papers), DAY, now=NOW
    )
    html = html_of(message)
    document = strictly_parsed_html(html)
    body = document.find(".//body")
    for tag in ("script", "img", "b", "i"):
        assert body.find(f".//{tag}") is None, tag
    assert "javascript:" not in html
    title = "".join(document.find(".//a[@class='title-link']").itertext()).strip()
    assert title == NASTY_TITLE
    snippet = "".join(document.find(".//p[@class='snippet']").itertext()).strip()
    assert snippet.startswith("We study $\\alpha < \\beta$ & $x_{i}^{2} > 0$ with <img src=x")
    assert "🤖🧪" in snippet and "&amp; entity" in snippet
    marked = [m.text for m in document.findall(".//mark")]
    assert "<b>bold</b>" in marked and "$\\alpha < \\beta$" in marked and "diffusion" in marked
    labels = [x.text for x in document.findall(".//span[@class='label']")]
    assert labels == ["diffusion", "<b>bold</b> & co", "alpha"]
    meta = "".join(document.find(".//p[@class='meta']").itertext()).strip()
    assert meta.startswith("Zoë <Müller>, O'Brien & Sons, 李明 et al. · Lab <i>of</i> Things & Co")
    links = [a.text for a in document.findall(".//a[@class='link']")]
    assert links == ["Abstract", "PDF", "Hugging Face"]  # no javascript: code, no bad URL


def test_snippet_shows_the_first_match(renderer: DigestRenderer, papers: list[Paper]) -> None:
    paper = next(p for p in papers if p.abstract.find("Spearman") > 600)
    hit = Hit("Spearman", find_spans(paper.abstract, "abstract", "Spearman"))
    selection = Selection((Match(paper, 1.0, (hit,)),))
    html = html_of(renderer.render_digest(subscriber("Spearman"), selection, DAY, now=NOW))
    snippet = strictly_parsed_html(html).find(".//p[@class='snippet']")
    assert "".join(snippet.itertext()).strip().startswith("…")
    assert [m.text for m in snippet.findall("mark")] == ["Spearman"]


def test_max_papers_limits_the_cards(mail_settings: Any, papers: list[Paper]) -> None:
    renderer = DigestRenderer(mail_settings(match={"max_papers": 5}), SECRET)
    selection = select(papers, ["model"], max_papers=50)
    assert len(selection.matches) == 50
    message = renderer.render_digest(subscriber("model"), selection, DAY, now=NOW)
    html = html_of(message)
    assert len(strictly_parsed_html(html).findall(".//table[@class='card']")) == 5
    assert f"…and {45 + selection.more} more matched" in html
    assert parse(message)["Subject"].startswith(f"{50 + selection.more} new papers on model")


def test_one_renderer_shared_by_threads_makes_the_same_messages(
    mail_settings: Any, papers: list[Paper], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The web app's threads and the scheduler share one renderer; a tiny card cache
    # makes them evict each other's cards all the time.
    import threading

    from digest.render import cards

    monkeypatch.setattr(cards, "CARD_CACHE_SIZE", 8)
    # Links' tokens carry the second they were made: hold it still for the comparison.
    monkeypatch.setattr("itsdangerous.timed.time", SimpleNamespace(time=lambda: 1_781_244_000))
    topics = ["diffusion", "agent", "reasoning", "video", "RLHF", "language model", "graph"]
    jobs = []
    for i in range(40):
        interests = topics[i % 7 : i % 7 + 3]
        reader = subscriber(", ".join(interests), subscriber_id=i, email=f"r{i}@example.org")
        jobs.append((reader, select(papers, interests)))
    alone = DigestRenderer(mail_settings(), SECRET)
    expected = [alone.render_digest(r, sel, DAY, now=NOW).data for r, sel in jobs]
    shared = DigestRenderer(mail_settings(), SECRET)
    results: dict[int, bytes] = {}
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for round_ in range(3):
                for i in range(offset, len(jobs), 4):
                    reader, selection = jobs[(i + round_) % len(jobs)]
                    data = shared.render_digest(reader, selection, DAY, now=NOW).data
                    results.setdefault((i + round_) % len(jobs), data)
                    assert data == expected[(i + round_) % len(jobs)]
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: races show
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    assert len(results) == len(jobs)


def test_a_weekly_digest_says_it_covers_the_week(renderer: DigestRenderer) -> None:
    weekly = replace(subscriber("quantum gravity"), cadence="weekly:fri")
    message = renderer.render_digest(weekly, Selection(()), DAY, now=NOW)
    assert parse(message)["Subject"] == (
        "No new papers matched your interests — week to Fri 12 Jun"
    )
    assert "Nothing new matched your interests this week" in html_of(message)
    assert "Nothing new matched your interests this week" in text_of(message)
    # The daily digest rendered next by the same renderer says "today" again: the page's
    # holes are filled per message, not kept from the last one.
    daily = renderer.render_digest(subscriber("quantum gravity"), Selection(()), DAY, now=NOW)
    assert "Nothing new matched your interests today" in text_of(daily)


def test_empty_digest(renderer: DigestRenderer) -> None:
    message = renderer.render_digest(subscriber("quantum gravity"), Selection(()), DAY, now=NOW)
    assert parse(message)["Subject"] == "No new papers matched your interests — Fri 12 Jun"
    html, text = html_of(message), text_of(message)
    document = strictly_parsed_html(html)
    assert document.find(".//table[@class='card']") is None
    assert "Nothing new matched your interests today" in html
    assert "Nothing new matched your interests today" in text
    assert "more matched" not in text


@pytest.mark.parametrize(
    ("count", "interests", "heading"),
    [
        (1, ["diffusion"], "1 new paper on diffusion"),
        (3, ["diffusion", "RLHF"], "3 new papers on diffusion and RLHF"),
        (3, ["a", "b", "c"], "3 new papers on a, b and 1 more interest"),
    ],
)
def test_heading_wording(
    renderer: DigestRenderer, papers: list[Paper], count: int, interests: list[str], heading: str
) -> None:
    matches = tuple(
        Match(papers[n], 1.0, tuple(Hit(i, ()) for i in interests[: count - n] or interests))
        for n in range(count)
    )
    message = renderer.render_digest(subscriber("x"), Selection(matches), DAY, now=NOW)
    assert parse(message)["Subject"] == f"{heading} — Fri 12 Jun"


def test_worst_case_stays_under_gmail_clipping(
    renderer: DigestRenderer, papers: list[Paper]
) -> None:
    reader, selection = worst_case(papers)
    message = renderer.render_digest(reader, selection, DAY, now=NOW)
    html = html_of(message)
    size = len(html.encode("utf-8"))
    assert size < HTML_LIMIT, size
    document = strictly_parsed_html(html)
    assert len(document.findall(".//table[@class='card']")) == 20
    labels = [x.text for x in document.find(".//p[@class='labels']")]
    assert len(labels) == LABELS_SHOWN and labels[-1] == f"+{9 - LABELS_SHOWN} more"
    assert len(message.data) < 3 * HTML_LIMIT


def test_spans_out_of_range_do_no_harm(renderer: DigestRenderer, papers: list[Paper]) -> None:
    paper = papers[3]
    spans = (Span("title", -5, 3), Span("abstract", 10_000, 10_005), Span("title", 9, 2),
             Span("authors", 0, 999), Span("nonsense", 0, 4))  # fmt: skip
    selection = Selection((Match(paper, 1.0, (Hit("odd", spans),)),))
    html = html_of(renderer.render_digest(subscriber("odd"), selection, DAY, now=NOW))
    document = strictly_parsed_html(html)
    assert [m.text for m in document.find(".//a[@class='title-link']")] == [paper.title[:3]]


# ---------------------------------------------------------------------------------------
# Nothing from the database or the config can add a header


def test_header_injection_is_impossible(mail_settings: Any, papers: list[Paper]) -> None:
    crlf = "\r\nBcc: victim@example.net\r\nX-Injected: yes"
    settings = mail_settings(
        mail={
            "from_name": "Evil" + crlf,
            "list_id": "List" + crlf + " <list.example.org>",
            "postal_address": "Street" + crlf,
        }
    )
    renderer = DigestRenderer(settings, SECRET)
    reader = subscriber("diffusion" + crlf)
    paper = dataclasses.replace(papers[0], title="Title" + crlf, url_code="https://x.org/\r\nA: b")
    hits = (Hit("diffusion" + crlf, ()), Hit("\nSubject: spam\n", ()))
    message = renderer.render_digest(reader, Selection((Match(paper, 1.0, hits),)), DAY, now=NOW)
    parsed = parse(message)
    assert list(parsed.keys()) == DIGEST_HEADERS
    head = message.data.partition(b"\r\n\r\n")[0]
    names = [line.partition(b":")[0] for line in head.split(b"\r\n") if line[:1] not in b" \t"]
    assert names == [name.encode() for name in DIGEST_HEADERS]
    assert parsed["From"].addresses[0].addr_spec == "digest@example.org"
    assert "Bcc: victim@example.net" in parsed["From"].addresses[0].display_name  # as text
    assert "\n" not in parsed["Subject"] and "\r" not in parsed["Subject"]
    confirmation = renderer.render_confirmation(reader, "https://digest.example.org/confirm/t")
    assert list(parse(confirmation).keys()) == CONFIRMATION_HEADERS


@pytest.mark.parametrize(
    "address",
    [
        "reader@example.org\r\nBcc: victim@example.net",
        "reader@example.org\n",
        "Reader <reader@example.org>",
        "not-an-address",
        "reader@exa mple.org",
    ],
)
def test_invalid_recipients_are_refused(
    renderer: DigestRenderer, papers: list[Paper], address: str
) -> None:
    reader = subscriber("diffusion", email=address)
    with pytest.raises(DigestError, match="cannot mail"):
        renderer.render_digest(reader, select(papers, ["diffusion"]), DAY, now=NOW)
    with pytest.raises(DigestError, match="cannot mail"):
        renderer.render_confirmation(reader, "https://digest.example.org/confirm/t")


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"service": {"base_url": "https://x.org/\r\nBcc: v@example.net"}}, "base_url"),
        ({"mail": {"list_id": "Name <not a domain>"}}, "list_id"),
        ({"mail": {"from_address": "digest@exa(mple).org"}}, "from_address"),
        ({"dkim": {"selector": "mail"}}, r"\[dkim\] key_file, domain must be set"),
    ],
)
def test_unusable_settings_are_config_errors(
    mail_settings: Any, sections: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        DigestRenderer(mail_settings(**sections), SECRET)


# ---------------------------------------------------------------------------------------
# DKIM


@pytest.fixture(scope="module")
def dkim_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """A fresh RSA key file and its DNS TXT record."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path_factory.mktemp("dkim") / "mail.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return path, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def verifies(data: bytes, record: bytes) -> bool:
    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"mail._domainkey.example.org."
        return record

    return bool(dkim.verify(data, dnsfunc=dns))


def test_dkim_signature_verifies(
    mail_settings: Any, papers: list[Paper], dkim_key: tuple[Path, bytes]
) -> None:
    path, record = dkim_key
    settings = mail_settings(
        dkim={"selector": "mail", "key_file": str(path), "domain": "example.org"}
    )
    renderer = DigestRenderer(settings, SECRET)
    message = digest_for(renderer, papers)
    assert message.data.startswith(b"DKIM-Signature: ")
    assert verifies(message.data, record)
    signature = parse(message)["DKIM-Signature"]
    tags = dict(t.strip().split("=", 1) for t in str(signature).split(";") if t.strip())
    assert tags["d"] == "example.org" and tags["s"] == "mail" and tags["c"] == "relaxed/relaxed"
    signed = tags["h"].replace(" ", "").split(":")
    for name in ("from", "to", "subject", "date", "message-id", "list-unsubscribe",
                 "list-unsubscribe-post"):  # fmt: skip
        assert name in signed
    tampered = message.data.replace(b"Subject: ", b"Subject: Re: ", 1)
    assert not verifies(tampered, record)
    confirmation = renderer.render_confirmation(
        subscriber("diffusion"), "https://digest.example.org/confirm/abc"
    )
    assert verifies(confirmation.data, record)


def test_dkim_key_problems_are_config_errors(mail_settings: Any, tmp_path: Path) -> None:
    dkim_settings = {"selector": "mail", "domain": "example.org"}
    # The settings loader refuses them already; the renderer makes the same check.
    with pytest.raises(ConfigError, match=r"\[dkim\] key_file .*nope.pem cannot be read"):
        missing = mail_settings(dkim={**dkim_settings, "key_file": str(tmp_path / "nope.pem")})
        DigestRenderer(missing, SECRET)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key\n")
    with pytest.raises(ConfigError, match="not a PEM RSA private key"):
        DigestRenderer(mail_settings(dkim={**dkim_settings, "key_file": str(garbage)}), SECRET)


# ---------------------------------------------------------------------------------------
# Confirmation and manage-link emails


def test_confirmation_email(mail_settings: Any) -> None:
    settings = mail_settings(mail={"from_name": "Paper digest"})
    renderer = DigestRenderer(settings, SECRET)
    reader = subscriber('diffusion models, RLHF\n"exact phrase" -survey', 9, "new@example.org")
    url = "https://digest.example.org/confirm/WzksImFiYyJd.token"
    message = renderer.render_confirmation(reader, url, now=NOW)
    parsed = parse(message)
    assert list(parsed.keys()) == CONFIRMATION_HEADERS
    sender = parsed["From"].addresses[0]
    assert (sender.display_name, sender.addr_spec) == ("Paper digest", "confirm@example.org")
    assert message.sender == "confirm@example.org" and message.recipient == "new@example.org"
    assert parsed["Subject"] == "Confirm your subscription to Paper digest"
    assert "List-Unsubscribe" not in parsed and "List-Id" not in parsed
    assert re.fullmatch(r"<confirm\.[0-9a-f]{24}@example\.org>", message.message_id)
    again = renderer.render_confirmation(reader, url, now=NOW)
    assert again.message_id != message.message_id
    html, text = html_of(message), text_of(message)
    document = strictly_parsed_html(html)
    button = document.find(".//a[@class='button']")
    assert button.get("href") == url and button.text == "Confirm subscription"
    assert 'diffusion models, RLHF "exact phrase" -survey' in "".join(document.itertext())
    assert "If this wasn't you, ignore this email" in "".join(document.itertext())
    assert url in text and 'diffusion models, RLHF "exact phrase" -survey' in text
    assert "If this wasn't you, ignore this email" in text
    assert POSTAL in text and POSTAL in html


@pytest.mark.parametrize("url", ["javascript:alert(1)", "https://x.org/a\r\nBcc: v@x.org"])
def test_transactional_emails_refuse_a_bad_link(renderer: DigestRenderer, url: str) -> None:
    with pytest.raises(DigestError, match="the link for the confirm email must be an http"):
        renderer.render_confirmation(subscriber("x"), url)
    with pytest.raises(DigestError, match="the link for the manage link email must be an http"):
        renderer.render_manage_link(subscriber("x"), url)


def test_manage_link_email(renderer: DigestRenderer) -> None:
    reader = subscriber("diffusion, RLHF")
    url = tokens.link(renderer.settings, SECRET, "manage", reader.id, reader.email)
    message = renderer.render_manage_link(reader, url, now=NOW)
    parsed = parse(message)
    assert list(parsed.keys()) == CONFIRMATION_HEADERS
    assert parsed["From"].addresses[0].addr_spec == "confirm@example.org"
    assert parsed["Subject"] == "Your subscription to Paper digest"
    assert re.fullmatch(r"<manage-link\.[0-9a-f]{24}@example\.org>", message.message_id)
    document = strictly_parsed_html(html_of(message))
    assert document.find(".//a[@class='button']").get("href") == url
    page_text = "".join(document.itertext())
    assert "You are already subscribed" in page_text and "diffusion, RLHF" in page_text
    text = text_of(message)
    assert url in text and "If this wasn't you, ignore this email" in text


# ---------------------------------------------------------------------------------------
# Trending: sections


HF_LISTING = Path(__file__).parent / "data" / "sources" / "hf_api_daily_papers_2026-06-12.json"


def _trending_digest(renderer: DigestRenderer, text: str) -> tuple[Selection, Message]:
    from digest.match import match_subscriber, parse_interests
    from digest.sources import hf

    listed = hf.parse_api(HF_LISTING.read_bytes(), "api").papers
    selection = match_subscriber(parse_interests(text), listed, 20)
    return selection, renderer.render_digest(subscriber(text), selection, DAY, now=NOW)


@pytest.mark.parametrize("trending_first", [True, False])
def test_trending_and_interests_are_two_sections_with_no_paper_twice(
    renderer: DigestRenderer, trending_first: bool
) -> None:
    text = "trending:5\nagent" if trending_first else "agent\ntrending:5"
    selection, parsed = _trending_digest(renderer, text)
    html, plain = html_of(parsed), text_of(parsed)
    document = strictly_parsed_html(html)
    titles = [
        " ".join("".join(h.itertext()).split())
        for h in document.iter("h2")
        if h.get("class") == "section-title"
    ]
    expected = ["Trending", "Matching your interests"]
    assert titles == (expected if trending_first else expected[::-1])
    how = "The 5 most upvoted papers on Hugging Face Daily Papers since your last digest."
    assert how in " ".join(html.split()) and how in " ".join(plain.split())
    # Each paper once: the title links of the HTML, the numbered cards of the text.
    shown = [m.paper for _, matches in selection.sections for m in matches]
    links = [a.get("href") for a in document.iter("a") if a.get("class") == "title-link"]
    assert len(links) == len(shown) == len(set(links))
    numbers = re.findall(r"^ ?(\d+)\. ", plain, re.MULTILINE)
    assert [int(n) for n in numbers] == list(range(1, len(shown) + 1))
    first, second = plain.index(f"== {titles[0]} =="), plain.index(f"== {titles[1]} ==")
    assert first < second
    # EvoArena is both: in the first section, with both reasons.
    evo = plain.index("EvoArena")
    assert (first < evo < second) and plain.count("EvoArena: Tracking") == 1
    assert "trending #1" in plain[evo - 200 : evo] + plain[evo : evo + 400]
    heading = parse(parsed)["Subject"]
    assert ("5 trending papers and" in heading) == trending_first
    assert heading.count("trending") == 1


def test_a_trending_only_digest_says_how_its_papers_were_chosen(renderer: DigestRenderer) -> None:
    _, parsed = _trending_digest(renderer, "trending:3 upvotes>=50")
    plain = " ".join(text_of(parsed).split())
    assert parse(parsed)["Subject"].startswith("3 trending papers — ")
    assert "== Trending ==" in plain and "Matching your interests" not in plain
    assert (
        "The 3 most upvoted papers on Hugging Face Daily Papers since your last digest, of "
        "those with at least 50 upvotes." in plain
    )
    assert "arXiv papers have no upvotes" in plain


def test_an_empty_section_says_so(renderer: DigestRenderer) -> None:
    selection, parsed = _trending_digest(renderer, "trending:3 upvotes>=500\nagent")
    assert selection.trending == () and selection.matches
    plain = " ".join(text_of(parsed).split())
    assert "Nothing new on Hugging Face Daily Papers since your last digest." in plain
    assert "trending" not in parse(parsed)["Subject"]


def test_worst_case_in_two_sections_stays_under_gmail_clipping(
    renderer: DigestRenderer, papers: list[Paper]
) -> None:
    """The sections share the 20 papers (the matcher fills the first section first): the
    worst case split 10 and 10, with the sections' titles and notes, fits as one list did."""
    from digest.match.query import Trending

    reader, worst = worst_case(papers)
    selection = Selection(
        worst.matches[10:], 123, worst.matches[:10], Trending(10, 5), trending_first=True
    )
    html = html_of(renderer.render_digest(reader, selection, DAY, now=NOW))
    assert len(html.encode("utf-8")) < HTML_LIMIT
    assert len(strictly_parsed_html(html).findall(".//table[@class='card']")) == 20
