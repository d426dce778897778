"""Learning from readers, in the digest email: every card's "more / less like this" links
(signed for the one reader, while the cards stay shared between readers) and the
"Suggested for you" section. The messages are also checked against the reference
construction (tests/reference/render.py) byte for byte, as in test_render.py.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from render_samples import html_of, load_papers, select, subscriber, text_of
from test_render import (
    DAY,
    NOW,
    SECRET,
    check_tokens,
    same_message,
    strictly_parsed_html,
)

from digest import tokens
from digest.match import Hit, Match, Selection
from digest.match.query import Trending
from digest.message import Message
from digest.paper import Paper
from digest.render import DigestRenderer
from digest.subscriber import MAX_SUGGESTIONS

BASE = "https://digest.example.org"
INTERESTS = ["diffusion", "agent"]
LIKED = "Denoising Diffusion Probabilistic Models"
_FEEDBACK = re.compile(re.escape(BASE) + r"/feedback/([A-Za-z0-9_.-]+)/(more|less)/(\S+)")


@pytest.fixture(scope="module")
def papers() -> list[Paper]:
    return load_papers()


@pytest.fixture
def renderer(make_settings: Any) -> DigestRenderer:
    settings = make_settings(
        service={"base_url": BASE}, mail={"from_address": "digest@example.org"}
    )
    return DigestRenderer(settings, SECRET)


def why(title: str) -> str:
    return f"close to “{title}”, which you liked"


def suggestions(papers: list[Paper], taken: Selection, count: int = 3) -> tuple[Match, ...]:
    """`count` papers the selection does not show, each with its reason."""
    shown = {m.paper.id for m in (*taken.matches, *taken.trending)}
    chosen = [paper for paper in papers if paper.id not in shown][:count]
    return tuple(
        Match(paper, 0.5, (Hit(why(f"{LIKED} {n}"), ()),)) for n, paper in enumerate(chosen)
    )


def with_suggestions(papers: list[Paper], count: int = 3) -> Selection:
    selection = select(papers, INTERESTS, max_papers=5)
    return Selection(
        selection.matches, selection.more, suggested=suggestions(papers, selection, count)
    )


def three_sections(papers: list[Paper]) -> Selection:
    """Matching first, then trending (the reader's order), then suggested."""
    matching = select(papers, INTERESTS, max_papers=4)
    ids = {m.paper.id for m in matching.matches}
    hot = [p for p in papers if p.id not in ids][:3]
    trending = tuple(
        Match(p, 1.0, (Hit(f"trending #{n}", (), rank=n),)) for n, p in enumerate(hot, 1)
    )
    base = Selection(matching.matches, 0, trending, Trending(3), trending_first=False)
    return Selection(
        matching.matches,
        0,
        trending,
        Trending(3),
        trending_first=False,
        suggested=suggestions(papers, base, 2),
    )


def feedback_links(text: str) -> list[tuple[str, str, str]]:
    """Every feedback link of `text`: (token, vote, paper id)."""
    return [(t, vote, unquote(paper_id)) for t, vote, paper_id in _FEEDBACK.findall(text)]


def cards_of(html: str) -> list[Any]:
    return strictly_parsed_html(html).findall(".//table[@class='card']")


def card_feedback(card: Any) -> dict[str, str]:
    """A card's feedback line: {link text: href}."""
    line = card.find(".//p[@class='feedback']")
    assert line is not None
    return {"".join(a.itertext()): a.get("href") for a in line.findall("a")}


def paper_id_of(card: Any) -> str:
    """The id a card's Abstract link names (these samples are arXiv papers)."""
    links = {a.text: a.get("href") for a in card.findall(".//a[@class='link']")}
    return links["Abstract"].rsplit("/abs/", 1)[1]


def without_feedback(html: str) -> str:
    return "\n".join(line for line in html.split("\n") if 'class="feedback"' not in line)


def section_titles(html: str) -> list[str]:
    return [
        "".join(h.itertext()).strip()
        for h in strictly_parsed_html(html).iter("h2")
        if h.get("class") == "section-title"
    ]


# ---------------------------------------------------------------------------------------
# The feedback links


def test_every_card_has_both_links_signed_for_its_reader(
    renderer: DigestRenderer, papers: list[Paper]
) -> None:
    reader = subscriber(", ".join(INTERESTS))
    selection = with_suggestions(papers)
    message = renderer.render_digest(reader, selection, DAY, now=NOW)
    html, text = html_of(message), text_of(message)
    cards = cards_of(html)
    shown = [*selection.matches, *selection.suggested]
    assert len(cards) == len(shown) == 8
    made = set()
    for card, match in zip(cards, shown, strict=True):
        links = card_feedback(card)
        assert list(links) == ["More like this", "Less like this"]
        for label, vote in (("More like this", "more"), ("Less like this", "less")):
            ((token, found_vote, paper_id),) = feedback_links(links[label])
            assert (found_vote, paper_id) == (vote, match.paper.id)
            subscriber_id, tag = tokens.read_token(SECRET, "feedback", token)
            assert subscriber_id == reader.id and tokens.token_matches(tag, reader.email)
            assert links[label] == tokens.feedback_url(f"{BASE}/feedback/{token}", vote, paper_id)
            made.add(token)
    assert len(made) == 1  # one token per message, whatever the number of cards
    # The link text says what it does; nothing about the reader is shown.
    assert reader.email not in "".join(cards[0].find(".//p[@class='feedback']").itertext())
    # A feedback token is no manage or unsubscribe token.
    with pytest.raises(Exception, match="not valid"):
        tokens.read_token(SECRET, "manage", made.pop())
    # The text part has them too, under each card's other links.
    in_text = feedback_links(text)
    assert [(vote, paper_id) for _, vote, paper_id in in_text] == [
        (vote, m.paper.id) for m in shown for vote in ("more", "less")
    ]
    assert {t for t, _, _ in in_text} == {t for t, _, _ in feedback_links(html)}
    first = shown[0].paper.id
    more = text.index(f"    More like this: {BASE}/feedback/")
    assert text.index(f"    PDF: https://arxiv.org/pdf/{first}") < more
    assert text.index("    Less like this: ", more) < text.index(" 2. ")


def test_readers_sharing_a_selection_share_the_cards_but_not_the_links(
    renderer: DigestRenderer, papers: list[Paper]
) -> None:
    selection = with_suggestions(papers)
    one = subscriber(", ".join(INTERESTS))
    other = subscriber(", ".join(INTERESTS), 7, "someone.else@example.org")
    first = renderer.render_digest(one, selection, DAY, now=NOW)
    second = renderer.render_digest(other, selection, DAY, now=NOW)
    html_one, html_other = html_of(first), html_of(second)
    tokens_one = {t for t, _, _ in feedback_links(html_one)}
    tokens_other = {t for t, _, _ in feedback_links(html_other)}
    assert len(tokens_one) == len(tokens_other) == 1 and tokens_one != tokens_other
    assert tokens.read_token(SECRET, "feedback", tokens_other.pop())[0] == other.id
    # The cards themselves are byte for byte the same, their feedback lines left out...
    cards_one = re.findall(r'<table class="card".*?</table>', html_one, re.S)
    cards_other = re.findall(r'<table class="card".*?</table>', html_other, re.S)
    assert len(cards_one) == 8
    assert [without_feedback(c) for c in cards_one] == [without_feedback(c) for c in cards_other]
    assert cards_one != cards_other
    # ...and in the message as sent: the encoded card (up to its feedback line) is one
    # cached piece, joined in as it is.
    card = renderer._cards.card(selection.matches[0])
    assert card.html in first.data and card.html in second.data
    assert renderer._cards.card(selection.matches[0]) is card


def test_a_paper_id_with_a_slash_gets_a_working_link(
    renderer: DigestRenderer, papers: list[Paper]
) -> None:
    old = dataclasses.replace(papers[0], id="hep-th/9901001", url_abs=None, url_pdf=None)
    odd = dataclasses.replace(papers[1], id="odd id?#&", url_abs=None, url_pdf=None)
    selection = Selection(
        (Match(old, 1.0, (Hit("diffusion", ()),)),),
        suggested=(Match(odd, 0.5, (Hit(why(LIKED), ()),)),),
    )
    reader = subscriber("diffusion")
    message = renderer.render_digest(reader, selection, DAY, now=NOW)
    html, text = html_of(message), text_of(message)
    hrefs = [card_feedback(card) for card in cards_of(html)]
    assert [h["More like this"].rsplit("/more/", 1)[1] for h in hrefs] == [
        "hep-th/9901001",
        "odd%20id%3F%23%26",
    ]
    for paper, links in zip((old, odd), hrefs, strict=True):
        for vote, href in (("more", links["More like this"]), ("less", links["Less like this"])):
            url = urlsplit(href)
            assert (url.scheme, url.netloc, url.query, url.fragment) == (
                "https", "digest.example.org", "", ""
            )  # fmt: skip
            # The path reads back as /feedback/TOKEN/VOTE/PAPER_ID, the id whole.
            _, kind, token, found_vote, rest = url.path.split("/", 4)
            assert (kind, found_vote, unquote(rest)) == ("feedback", vote, paper.id)
            assert tokens.read_token(SECRET, "feedback", token)[0] == reader.id
            assert f"{vote.capitalize()} like this: {href}" in text
    same_message(renderer, reader, selection)


# ---------------------------------------------------------------------------------------
# The Suggested section


def test_suggested_papers_have_their_own_section_with_their_reasons(
    renderer: DigestRenderer, papers: list[Paper]
) -> None:
    selection = with_suggestions(papers)
    reader = subscriber(", ".join(INTERESTS))
    message = renderer.render_digest(reader, selection, DAY, now=NOW)
    html, text = html_of(message), text_of(message)
    assert section_titles(html) == ["Suggested for you"]
    note = (
        "Papers none of your keywords matched, chosen by what you marked “more like this”. "
        "Each says why."
    )
    assert note in " ".join(html.split()) and note in " ".join(text.split())
    cards = cards_of(html)
    for card, match in zip(cards[5:], selection.suggested, strict=True):
        assert paper_id_of(card) == match.paper.id
        labels = ["".join(x.itertext()) for x in card.findall(".//span[@class='label']")]
        assert labels == [match.hits[0].interest]  # the reason in full, not cut as interests
    # The text part: the section after the matches, its cards numbered on from them.
    section = text.index("== Suggested for you ==")
    numbers = [int(n) for n in re.findall(r"^ ?(\d+)\. ", text, re.MULTILINE)]
    assert numbers == list(range(1, 9))
    assert text.index(" 5. ") < section < text.index(" 6. ")
    for match in selection.suggested:
        assert f"Why: {match.hits[0].interest}" in " ".join(text.split())
    assert text.count("Why: ") == 3 and text.count("Matched: ") == 5
    same_message(renderer, reader, selection)


def test_sections_come_matching_trending_suggested_numbered_on(
    renderer: DigestRenderer, papers: list[Paper]
) -> None:
    selection = three_sections(papers)
    reader = subscriber(", ".join(INTERESTS) + "\ntrending:3")
    message = renderer.render_digest(reader, selection, DAY, now=NOW)
    html, text = html_of(message), text_of(message)
    titles = ["Matching your interests", "Trending", "Suggested for you"]
    assert section_titles(html) == titles
    starts = [text.index(f"== {title} ==") for title in titles]
    assert starts == sorted(starts)
    shown = [*selection.matches, *selection.trending, *selection.suggested]
    assert [paper_id_of(card) for card in cards_of(html)] == [m.paper.id for m in shown]
    numbers = [int(n) for n in re.findall(r"^ ?(\d+)\. ", text, re.MULTILINE)]
    assert numbers == list(range(1, len(shown) + 1)) == list(range(1, 10))
    assert starts[1] < text.index(" 5. ") < text.index(" 7. ") < starts[2] < text.index(" 8. ")
    assert [vote for _, vote, _ in feedback_links(text)] == ["more", "less"] * 9
    same_message(renderer, reader, selection)
    trending_first = Selection(
        selection.matches, 0, selection.trending, Trending(3), trending_first=True,
        suggested=selection.suggested,
    )  # fmt: skip
    html = html_of(renderer.render_digest(reader, trending_first, DAY, now=NOW))
    assert section_titles(html) == ["Trending", "Matching your interests", "Suggested for you"]
    same_message(renderer, reader, trending_first)


def test_no_suggestions_no_section(renderer: DigestRenderer, papers: list[Paper]) -> None:
    reader = subscriber(", ".join(INTERESTS))
    message = renderer.render_digest(reader, select(papers, INTERESTS), DAY, now=NOW)
    html, text = html_of(message), text_of(message)
    assert "Suggested for you" not in html and "Suggested for you" not in text
    assert "Why: " not in text and section_titles(html) == []
    assert len(feedback_links(text)) == 2 * 20  # the links are there all the same


def test_suggestions_alone(renderer: DigestRenderer, papers: list[Paper]) -> None:
    """Nothing matched, but the reader's feedback suggests papers: they are shown, and
    the preheader names them."""
    suggested = suggestions(papers, Selection(()), 2)
    selection = Selection((), suggested=suggested)
    reader = subscriber("quantum gravity")
    message = renderer.render_digest(reader, selection, DAY, now=NOW)
    html, text = html_of(message), text_of(message)
    assert "Nothing new matched your interests today." in text
    assert section_titles(html) == ["Suggested for you"]
    assert len(cards_of(html)) == 2 and " 1. " in text and " 2. " in text
    preheader = strictly_parsed_html(html).find(".//div[@class='preheader']")
    assert suggested[0].paper.title[:40] in preheader.text
    same_message(renderer, reader, selection)


def test_suggestions_are_not_capped_by_max_papers(make_settings: Any, papers: list[Paper]) -> None:
    settings = make_settings(
        service={"base_url": BASE},
        mail={"from_address": "digest@example.org"},
        match={"max_papers": 2},
    )
    renderer = DigestRenderer(settings, SECRET)
    matched = select(papers, INTERESTS, max_papers=5)
    many = suggestions(papers, matched, MAX_SUGGESTIONS)
    assert len(many) == MAX_SUGGESTIONS
    selection = Selection(matched.matches, matched.more, suggested=many)
    reader = subscriber(", ".join(INTERESTS))
    message = renderer.render_digest(reader, selection, DAY, now=NOW)
    text = text_of(message)
    assert len(cards_of(html_of(message))) == 2 + MAX_SUGGESTIONS
    numbers = [int(n) for n in re.findall(r"^ ?(\d+)\. ", text, re.MULTILINE)]
    assert numbers == list(range(1, 2 + MAX_SUGGESTIONS + 1))
    same_message(renderer, reader, selection)


def test_a_suggested_paper_also_matched_elsewhere_gets_its_own_card(
    renderer: DigestRenderer, papers: list[Paper]
) -> None:
    """The card cache tells a suggested card (reasons) from a matched one (interests),
    even for the same paper and the same words."""
    paper = papers[0]
    hit = Hit(why(LIKED), ())
    matched = Selection((Match(paper, 1.0, (hit,)),))
    suggested = Selection((), suggested=(Match(paper, 1.0, (hit,)),))
    reader = subscriber("x")
    as_match = text_of(renderer.render_digest(reader, matched, DAY, now=NOW))
    as_suggestion = text_of(renderer.render_digest(reader, suggested, DAY, now=NOW))
    assert "Matched: close to" in as_match and "Why: " not in as_match
    assert "Why: close to" in " ".join(as_suggestion.split())


def test_the_reference_gives_the_same_feedback_lines(
    renderer: DigestRenderer, papers: list[Paper]
) -> None:
    """With warm caches, for a second reader: the cards are shared, the lines are not."""
    selection = with_suggestions(papers)
    for reader in (subscriber("a"), subscriber("a", 8, "b@example.org"), subscriber("a")):
        same_message(renderer, reader, selection)
        message: Message = renderer.render_digest(reader, selection, DAY, now=NOW)
        assert check_tokens(text_of(message), reader).count("/feedback/TOKEN/") == 16
