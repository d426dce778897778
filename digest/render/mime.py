"""Building blocks of a correct internet message, fast enough to make thousands a second.

Python's `EmailMessage` builds a message as a tree of objects and folds every header
through a full parser: correct, but a few hundred digests a second. The renderer only
ever makes one shape of message (headers, then a `multipart/alternative` of a plain-text
and an HTML part, both UTF-8 quoted-printable), so this module writes that shape as
bytes directly:

- Addresses, domains and links are checked by `digest.address` before they get here,
  and all other header text passes `header_text` (`digest.address`): data from the
  database or the config can never add a header.
- `encode_phrase` (display names, list names) and `encode_text` (subjects) turn any text
  into RFC 5322/2047 header syntax: plain words stay readable, everything else becomes
  encoded-words; `header_line` folds a header at 78 characters.
- `encode_lines` quoted-printable-encodes text made of whole lines. Quoted-printable
  works line by line, so pieces that each end with a newline can be encoded once, kept,
  and concatenated later: that is what lets the renderer cache each paper's card.
- `assemble_alternative` puts the headers and the two encoded parts together.

The DKIM signer is `digest.config.mail.DkimSigner` (the settings loader checks its key).

tests/test_render_mime.py parses what these produce with the standard library's strict policy.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterable, Sequence

from digest.address import header_text

__all__ = [
    "CRLF",
    "address_tokens",
    "assemble_alternative",
    "boundary_for",
    "encode_lines",
    "encode_phrase",
    "encode_text",
    "header_line",
    "header_text",
]

MAX_LINE = 78  # RFC 5322: lines SHOULD be at most 78 characters (998 at most)
CRLF = b"\r\n"

_PHRASE_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\- ]+")  # RFC 5322 atext and spaces
# RFC 2047 5(3): characters an encoded-word may carry unencoded, even inside a phrase.
_Q_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
# An encoded-word may have 75 characters; 66 lets one follow "Subject: " within 78.
_ENCODED_WORD_ROOM = 66 - len("=?utf-8?q??=")
_LONGEST_PLAIN_WORD = 60  # longer words are split into encoded-words so they can fold


def _encoded_words(text: str) -> list[str]:
    """`text` as RFC 2047 Q encoded-words of at most 66 characters, split between
    characters (never inside one), safe in a subject and in a display name."""
    words: list[str] = []
    current: list[str] = []
    room = _ENCODED_WORD_ROOM
    for char in text:
        if char == " ":
            piece = "_"
        else:
            piece = "".join(chr(b) if b in _Q_SAFE else f"={b:02X}" for b in char.encode())
        if len(piece) > room:
            words.append("=?utf-8?q?" + "".join(current) + "?=")
            current, room = [], _ENCODED_WORD_ROOM
        current.append(piece)
        room -= len(piece)
    if current:
        words.append("=?utf-8?q?" + "".join(current) + "?=")
    return words


def _needs_encoding(word: str) -> bool:
    return not word.isascii() or "=?" in word or len(word) > _LONGEST_PLAIN_WORD


def encode_text(text: str) -> list[str]:
    """Tokens of an unstructured header (Subject) holding `text`, for `header_line`.

    Plain words stay as they are; runs of words that need it become encoded-words (a
    space between two encoded-words is not shown, so the spaces inside a run are
    encoded with it).
    """
    tokens: list[str] = []
    run: list[str] = []
    for word in header_text(text).split(" "):
        if _needs_encoding(word):
            run.append(word)
            continue
        if run:
            tokens.extend(_encoded_words(" ".join(run)))
            run = []
        tokens.append(word)
    if run:
        tokens.extend(_encoded_words(" ".join(run)))
    return tokens


def encode_phrase(text: str) -> list[str]:
    """Tokens of a display-name phrase holding `text`, for `header_line`.

    Atoms and spaces stay as they are; other ASCII goes in a quoted string; anything
    else becomes encoded-words (never quoted, as RFC 2047 requires).
    """
    text = header_text(text)
    if _PHRASE_ATOM.fullmatch(text) and not any(_needs_encoding(w) for w in text.split(" ")):
        return text.split(" ")
    if text.isascii() and "=?" not in text and len(text) <= _LONGEST_PLAIN_WORD:
        return ['"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"']
    return _encoded_words(text)


def header_line(name: str, tokens: Sequence[str]) -> bytes:
    """`Name: tokens...` folded before a token where a line would pass 78 characters.

    Tokens are ASCII and at most 66 characters (encoded-words, words, addresses), so every
    line stays within the limit except a single over-long token such as a long URL, which
    has no place to fold and stays on a line of its own (well under the 998 maximum).
    """
    lines: list[str] = []
    line = name + ":"
    for token in tokens:
        if len(line) + 1 + len(token) > MAX_LINE and line != name + ":":
            lines.append(line)
            line = ""
        line += " " + token
    lines.append(line)
    return "\r\n".join(lines).encode("ascii") + CRLF


def address_tokens(name: str, address: str) -> list[str]:
    """Tokens of `Name <address>` (the address alone when the name is empty)."""
    phrase = encode_phrase(name) if header_text(name) else []
    return [*phrase, f"<{address}>"] if phrase else [address]


def encode_lines(text: str) -> bytes:
    """Quoted-printable bytes (CRLF line ends) of `text`, which must end with a newline.

    Every line is encoded on its own, so the encodings of pieces that each end with a
    newline concatenate to the encoding of the whole.
    """
    encoded = binascii.b2a_qp(text.encode("utf-8"), quotetabs=False, istext=True, header=False)
    return encoded.replace(b"\n", CRLF)


def boundary_for(seed: str) -> str:
    """A MIME boundary that cannot occur in quoted-printable text ("=_" never does)."""
    return "=_digest_" + seed


def assemble_alternative(
    headers: Iterable[bytes], text_part: Iterable[bytes], html_part: Iterable[bytes], boundary: str
) -> bytes:
    """A whole `multipart/alternative` message: headers, then the plain-text and the HTML
    part (quoted-printable, UTF-8, each already encoded by `encode_lines`)."""
    mark = boundary.encode("ascii")
    part_headers = b'Content-Type: text/%s; charset="utf-8"\r\nContent-Transfer-Encoding: ' + (
        b"quoted-printable\r\n\r\n"
    )
    return b"".join(
        [
            *headers,
            b'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="',
            mark,
            b'"\r\n\r\n--',
            mark,
            CRLF,
            part_headers % b"plain",
            *text_part,
            b"\r\n--",
            mark,
            CRLF,
            part_headers % b"html",
            *html_part,
            b"\r\n--",
            mark,
            b"--\r\n",
        ]
    )
