"""Prebuilt templates: holes filled and escaped exactly as css-inline would write them."""

from __future__ import annotations

import binascii

import css_inline
import pytest
from hypothesis import given
from hypothesis import strategies as st
from markupsafe import escape

from digest.render import mime
from digest.render.skeleton import (
    LinkLines,
    Skeleton,
    html_attribute_escape,
    html_text_escape,
    plain,
)
from digest.render.snippet import clean_text

NONCE = "0123abcd"
INLINER = css_inline.CSSInliner(minify_css=True, load_remote_stylesheets=False)
# Text as the renderer passes it: cleaned (no control characters), no carriage returns.
TEXT = st.text(st.characters(exclude_categories=("Cs", "Cc"))).map(clean_text)


def hole(name: str) -> str:
    return f"@@{NONCE}:{name}@@"


@given(TEXT)
def test_text_escaping_is_css_inlines_own(value: str) -> None:
    """A value escaped by Jinja and rewritten by css-inline reads as html_text_escape
    writes it, so a hole filled after inlining equals inlining after filling."""
    through_inliner = INLINER.inline_fragment(f"<p>{escape(value)}</p>", "")
    assert through_inliner == f"<p>{html_text_escape(value)}</p>"


@given(TEXT)
def test_attribute_escaping_is_css_inlines_own(value: str) -> None:
    through_inliner = INLINER.inline_fragment(f'<a href="{escape(value)}">x</a>', "")
    assert through_inliner == f'<a href="{html_attribute_escape(value)}">x</a>'


def test_holes_are_escaped_for_where_they_land() -> None:
    page = Skeleton(
        f'<a class="x" href="{hole("url")}">{hole("label")}</a>\n<p>{hole("url")}</p>\n',
        NONCE,
        escape_by_context=True,
    )
    filled = page.fill({"url": 'https://x.org/?a=1&b="2"', "label": "<b>A & B</b>\xa0"})
    assert filled == (
        '<a class="x" href="https://x.org/?a=1&amp;b=&quot;2&quot;">'
        "&lt;b&gt;A &amp; B&lt;/b&gt;&nbsp;</a>\n"
        '<p>https://x.org/?a=1&amp;b="2"</p>\n'
    )


def test_without_context_values_go_in_as_they_are() -> None:
    card = Skeleton(f"<h2>{hole('title')}</h2>\n", NONCE, escape_by_context=False)
    assert card.fill({"title": "<mark>Diffusion</mark> &amp; more"}) == (
        "<h2><mark>Diffusion</mark> &amp; more</h2>\n"
    )


def test_other_placeholders_are_just_text() -> None:
    page = Skeleton("<p>@@ffff:title@@ and @@title@@</p>\n", NONCE, escape_by_context=True)
    assert page.fill({}) == "<p>@@ffff:title@@ and @@title@@</p>\n"


LONG_STATIC = "<p>" + "static text " * 50 + "</p>\n"
TEMPLATE = (
    f"<title>{hole('subject')}</title>\n"
    + LONG_STATIC
    + f"<h1>{hole('heading')}</h1>\n<p>short</p>\n<p>{hole('reason')}</p>\n"
    + f"{hole('block:cards')}\n"
    + LONG_STATIC
    + "<p>no newline at the end</p>"
)


@given(TEXT, TEXT, TEXT, st.lists(TEXT, max_size=3))
def test_encoding_equals_encoding_the_filled_text(
    subject: str, heading: str, reason: str, cards: list[str]
) -> None:
    page = Skeleton(TEMPLATE, NONCE, escape_by_context=True)
    values = {"subject": subject, "heading": heading, "reason": reason}
    card_text = "".join(card.replace("\n", " ") + "\n" for card in cards)
    filled = page.fill({**values, "cards": card_text})
    encoded = page.encode(values, {"cards": [mime.encode_lines(card_text)] if cards else []})
    assert b"".join(encoded) == mime.encode_lines(filled)
    assert filled.endswith("<p>no newline at the end</p>\n")


# Link lines: URLs joined in between soft line breaks, never encoded per message

URL_TEXT = st.text(st.sampled_from("abcXYZ019._~:/?#@!$'()*+,;%[]-"), max_size=300)
STATIC = st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=120).map(clean_text)


def decoded(data: bytes) -> str:
    assert all(len(line) <= 76 for line in data.split(b"\r\n"))
    assert data.endswith(b"\r\n") and b"\n" not in data.replace(b"\r\n", b"")
    return binascii.a2b_qp(data.replace(b"\r\n", b"\n")).decode()


@given(STATIC, STATIC, STATIC, URL_TEXT, URL_TEXT, URL_TEXT)
def test_link_lines_decode_to_the_filled_text(
    before: str, between: str, after: str, base: str, first: str, second: str
) -> None:
    rendered = f"{before}{hole('a')}{between}\n  {hole('b')}{after}\n"
    lines = LinkLines(rendered, NONCE, False, ("a", "b"))
    expected = f"{before}{base}{first}{between}\n  {base}{second}{after}\n"
    start, ends = plain(base), (plain(first), plain(second))
    assert start is not None and ends[0] is not None and ends[1] is not None
    frame = lines.frame((start, start))
    assert decoded(b"".join(LinkLines.fill(frame, ends))) == expected  # type: ignore[arg-type]
    assert decoded(lines.encode((base + first, base + second))) == expected


def test_link_lines_take_only_plain_values_as_they_are() -> None:
    html = LinkLines(f'<a href="{hole("url")}">x · y</a>\n', NONCE, True, ("url",))
    assert plain("https://example.org/a b") is None  # a space: encoded the ordinary way
    assert plain("https://example.org/?a=1&b=2") is None  # "=" and "&"
    assert plain("é") is None
    odd = 'https://example.org/?a=1&b="2"'
    assert decoded(html.encode((odd,))) == (
        '<a href="https://example.org/?a=1&amp;b=&quot;2&quot;">x · y</a>\n'
    )
    url = "https://example.org/" + "x" * 200
    end = plain(url)
    assert end is not None
    joined = b"".join(LinkLines.fill(html.frame((b"",)), (end,)))
    assert decoded(joined) == f'<a href="{url}">x · y</a>\n'
    assert url.encode()[:75] + b"=\r\n" in joined  # cut every 75 characters


def test_link_lines_holes_must_be_the_ones_named() -> None:
    with pytest.raises(ValueError, match="holes"):
        LinkLines(f"{hole('b')} {hole('a')}\n", NONCE, False, ("a", "b"))
