"""Message building blocks, checked by parsing their output with the standard library."""

from __future__ import annotations

import email
import email.policy
import email.utils
import quopri
from email.header import decode_header, make_header

from hypothesis import given
from hypothesis import strategies as st

from digest.render import mime


def parse(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def header_value(name: str, tokens: list[str]) -> tuple[bytes, str]:
    line = mime.header_line(name, tokens)
    return line, str(parse(line + b"\r\nbody\r\n")[name])


@given(st.text(max_size=300))
def test_any_subject_round_trips(text: str) -> None:
    line, value = header_value("Subject", mime.encode_text(text))
    assert value == mime.header_text(text)
    assert line.isascii()
    assert all(len(part) <= 78 for part in line.split(b"\r\n"))
    assert line.count(b"\r\n") == len(line.splitlines())  # every line ends with CRLF


@given(st.text(max_size=120))
def test_any_display_name_round_trips(name: str) -> None:
    line, _ = header_value("From", mime.address_tokens(name, "digest@example.org"))
    parsed = parse(line + b"\r\nbody\r\n")["From"].addresses
    assert len(parsed) == 1
    assert parsed[0].addr_spec == "digest@example.org"
    # Decoded as RFC 2047 says: the space between two encoded-words is not part of the
    # name. (The default policy's address parser keeps it, even for names that
    # EmailMessage itself folded into several encoded-words.)
    raw = email.message_from_bytes(line + b"\r\n")["From"]
    phrase, address = email.utils.parseaddr(raw)
    assert address == "digest@example.org"
    assert str(make_header(decode_header(phrase))) == mime.header_text(name)
    assert all(len(part) <= 78 for part in line.split(b"\r\n"))


def test_plain_words_stay_readable_in_headers() -> None:
    assert mime.encode_text("7 new papers on RLHF — Thu 12 Jun") == [
        "7", "new", "papers", "on", "RLHF", "=?utf-8?q?=E2=80=94?=", "Thu", "12", "Jun",
    ]  # fmt: skip
    assert mime.encode_phrase("Paper digest") == ["Paper", "digest"]
    assert mime.encode_phrase('The "best" digest') == ['"The \\"best\\" digest"']
    # Text that looks like an encoded-word is encoded, so it shows as written.
    _, value = header_value("Subject", mime.encode_text("=?utf-8?q?Bcc:_x?= hi"))
    assert value == "=?utf-8?q?Bcc:_x?= hi"


LINE_TEXT = st.text(
    st.characters(exclude_categories=("Cs",), exclude_characters="\r"), max_size=200
)


@given(st.lists(LINE_TEXT.map(lambda text: text + "\n"), max_size=8))
def test_quoted_printable_pieces_concatenate(pieces: list[str]) -> None:
    whole = "".join(pieces)
    joined = b"".join(mime.encode_lines(piece) for piece in pieces)
    assert joined == (mime.encode_lines(whole) if whole else b"")
    assert quopri.decodestring(joined).decode("utf-8") == whole.replace("\n", "\r\n")
    assert joined.isascii()
    assert all(len(line) <= 76 for line in joined.split(b"\r\n"))


def test_assembled_message_parses_into_two_parts() -> None:
    headers = [
        mime.header_line("From", mime.address_tokens("Paper digest", "digest@example.org")),
        mime.header_line("To", ["reader@example.org"]),
        mime.header_line("Subject", mime.encode_text("Héllo")),
    ]
    text = "Plain text – with a dash\n.\nFrom the start\n" + "x" * 200 + "\n"
    html = "<p>Ünïcode &amp; more</p>\n"
    data = mime.assemble_alternative(
        headers, [mime.encode_lines(text)], [mime.encode_lines(html)], mime.boundary_for("abc")
    )
    message = parse(data)
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == [
        "text/plain",
        "text/html",
    ]
    assert message.get_body(("plain",)).get_content() == text.replace("\n", "\r\n")
    assert message.get_body(("html",)).get_content() == html.replace("\n", "\r\n")
    assert message["Subject"] == "Héllo"
    assert not message.defects
    assert all(not part.defects for part in message.walk())
    assert data.isascii()
    assert b"\n" not in data.replace(b"\r\n", b"")  # no bare line feeds
