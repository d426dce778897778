"""Prebuilt templates: rendered once with placeholders, filled in for each message.

Rendering a Jinja template and inlining its CSS for every message is most of the cost
of a naive renderer, and most of the output is the same for everyone. A `Skeleton` is a
template rendered (and CSS-inlined) once with placeholders, `@@NONCE:name@@`, where
per-message values go, then split into static text and holes. Filling it is joining
strings; encoding it as quoted-printable touches only the lines that hold a hole, the
long static runs having been encoded once (quoted-printable works line by line, see
`digest.mime.encode_lines`).

A value put into an already-inlined page must read exactly as it would had it gone
through css-inline with the page: the escaping below is that of css-inline's HTML
serializer (html5ever's), by context (text or attribute value). The tests check the
result against the straightforward render byte for byte.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from digest.render import mime


def html_text_escape(value: str) -> str:
    """`value` escaped as css-inline writes text: &, no-break space, < and >."""
    if "&" in value:
        value = value.replace("&", "&amp;")
    if "\xa0" in value:
        value = value.replace("\xa0", "&nbsp;")
    if "<" in value:
        value = value.replace("<", "&lt;")
    if ">" in value:
        value = value.replace(">", "&gt;")
    return value


def html_attribute_escape(value: str) -> str:
    """`value` escaped as css-inline writes an attribute value: &, no-break space, "."""
    return value.replace("&", "&amp;").replace("\xa0", "&nbsp;").replace('"', "&quot;")


def _identity(value: str) -> str:
    """No escaping: the value is HTML already, or plain text."""
    return value


# Static text shorter than this between two lines with holes is encoded with them, for
# each message: cheaper than one more encoding call.
_SHORT_STATIC = 400


def _is_static(parts: Sequence[str | _Hole]) -> bool:
    return all(isinstance(part, str) for part in parts)


@dataclass(frozen=True, slots=True)
class _Hole:
    """Where a per-message value goes, and how it is escaped there."""

    name: str
    escape: Callable[[str], str]


@dataclass(frozen=True, slots=True)
class _Block:
    """Where a run of whole lines goes (the cards), given already encoded."""

    name: str


class Skeleton:
    """A rendered (and CSS-inlined) template with holes, split once so that filling it is
    string joins and encoding it touches only the lines that hold a hole.

    Holes are placeholders `@@NONCE:name@@` rendered where per-message values go; with
    `escape_by_context`, a value is escaped for the attribute or the text it lands in,
    otherwise it goes in as it is (HTML already, or plain text). `@@NONCE:block:name@@`
    alone on a line takes a run of whole lines, given already encoded.
    """

    def __init__(self, rendered: str, nonce: str, escape_by_context: bool) -> None:
        if not rendered.endswith("\n"):
            rendered += "\n"
        self._lines: list[list[str | _Hole | _Block]] = []
        hole = f"@@{nonce}:"
        position = 0
        for line_text in rendered.splitlines(keepends=True):
            line: list[str | _Hole | _Block] = []
            cursor = 0
            if line_text.startswith(hole + "block:") and line_text.endswith("@@\n"):
                self._lines.append([_Block(line_text[len(hole) + 6 : -3])])
                cursor = len(line_text) - 1  # the line break after a block starts a line
            while (start := line_text.find(hole, cursor)) != -1:
                end = line_text.index("@@", start + len(hole))
                line.append(line_text[cursor:start])
                escape = _identity
                if escape_by_context:
                    at = position + start
                    in_tag = rendered.rfind("<", 0, at) > rendered.rfind(">", 0, at)
                    escape = html_attribute_escape if in_tag else html_text_escape
                line.append(_Hole(line_text[start + len(hole) : end], escape))
                cursor = end + 2
            line.append(line_text[cursor:])
            self._lines.append(line)
            position += len(line_text)
        self._segments = self._encode_static()
        self._pieces = self._merge_static()

    def _encode_static(self) -> list[bytes | list[str | _Hole] | _Block]:
        """Long runs of lines without holes encoded once; lines with holes, and the short
        static runs between them, kept together to be encoded in one go by `encode`."""
        runs: list[list[str] | list[str | _Hole] | _Block] = []
        for line in self._lines:
            kind = "block" if isinstance(line[0], _Block) else "static" if len(line) == 1 else ""
            if kind == "block":
                runs.append(line[0])  # type: ignore[arg-type]
            elif runs and isinstance(runs[-1], list) and _is_static(runs[-1]) == (kind != ""):
                runs[-1].extend(line)
            else:
                runs.append(list(line))  # type: ignore[arg-type]
        segments: list[bytes | list[str | _Hole] | _Block] = []
        for run in runs:
            if isinstance(run, _Block):
                segments.append(run)
            elif _is_static(run) and sum(map(len, run)) >= _SHORT_STATIC:  # type: ignore[arg-type]
                segments.append(mime.encode_lines("".join(run)))  # type: ignore[arg-type]
            elif segments and isinstance(segments[-1], list):
                segments[-1].extend(run)
            else:
                segments.append(list(run))
        return segments

    def _merge_static(self) -> list[str | _Hole | _Block]:
        """All parts in order, runs of static text joined into one string."""
        pieces: list[str | _Hole | _Block] = []
        for part in (part for line in self._lines for part in line):
            if isinstance(part, str) and pieces and isinstance(pieces[-1], str):
                pieces[-1] += part
            else:
                pieces.append(part)
        return pieces

    def fill(self, values: dict[str, str]) -> str:
        """The text with every hole filled (blocks too, from `values`)."""
        return "".join(
            part
            if isinstance(part, str)
            else values[part.name]
            if isinstance(part, _Block)
            else part.escape(values[part.name])
            for part in self._pieces
        )

    def encode(self, values: dict[str, str], blocks: dict[str, list[bytes]]) -> list[bytes]:
        """The filled text, quoted-printable encoded, as pieces to join."""
        out: list[bytes] = []
        for segment in self._segments:
            if isinstance(segment, bytes):
                out.append(segment)
            elif isinstance(segment, _Block):
                out.extend(blocks[segment.name])
            else:
                text = "".join(
                    part if isinstance(part, str) else part.escape(values[part.name])
                    for part in segment
                )
                out.append(mime.encode_lines(text))
        return out


# Characters that quoted-printable leaves as they are and HTML needs no escaping for, in
# text or in an attribute: what a URL is made of (no "=", "&", quotes, spaces, non-ASCII).
_PLAIN = re.compile(r"[A-Za-z0-9._~:/?#@!$'()*+,;%\[\]-]*")
_SOFT_BREAK = b"=\r\n"
_ROOM = mime.MAX_LINE - 3  # characters a quoted-printable line holds before its "="


def plain(value: str) -> bytes | None:
    """`value` encoded to go into `LinkLines.join`: quoted-printable lines that each end
    with a soft break. None if a character of it needs encoding or HTML escaping."""
    if not _PLAIN.fullmatch(value):
        return None
    data = value.encode("ascii")
    return b"".join([data[i : i + _ROOM] + _SOFT_BREAK for i in range(0, len(data), _ROOM)])


class LinkLines:
    """A few short lines with holes for URLs, made for every card of every message (the
    feedback links): filling them should cost no quoted-printable encoding.

    Quoted-printable lets an encoder break a line anywhere with a soft break (`=` at its
    end), which decoding removes. So the static text around the holes is encoded once,
    each piece before a hole ending with a soft break, and values made by `plain` (URLs:
    each character as it is, a soft break every 75 characters and at the end) are joined
    in between. A value may be joined from plain parts: `frame` joins the starts that
    many fillings share (a message's link base) to the static pieces once, and `fill`
    joins each filling's ends (a paper's path) in. `encode` fills in any text and
    encodes it the ordinary way (`Skeleton.encode`); both decode to the same text.
    """

    def __init__(
        self, rendered: str, nonce: str, escape_by_context: bool, names: Sequence[str]
    ) -> None:
        self._skeleton = Skeleton(rendered, nonce, escape_by_context)
        self._names = tuple(names)
        found: list[str] = []
        texts = [""]  # the static text before each hole, and after the last
        for piece in self._skeleton._pieces:
            if isinstance(piece, _Block):
                raise ValueError("link lines have no blocks")
            if isinstance(piece, _Hole):
                found.append(piece.name)
                texts.append("")
            else:
                texts[-1] += piece
        if tuple(found) != self._names:
            raise ValueError(f"the holes are {found}, not {list(names)}")
        self._static = [_encode_piece(text, n == len(texts) - 1) for n, text in enumerate(texts)]

    def frame(self, starts: Sequence[bytes]) -> list[bytes]:
        """The encoded static pieces with the start of each value (by `plain`, in the
        holes' order) joined on, for `fill`."""
        return [*map(bytes.__add__, self._static, starts), self._static[-1]]

    @staticmethod
    def fill(frame: list[bytes], ends: Sequence[bytes]) -> list[bytes]:
        """The lines, quoted-printable encoded, as pieces to join (the message joins them
        with the rest): `frame` with the end of each value (by `plain`, in the holes'
        order) in between."""
        parts = [b""] * (2 * len(ends) + 1)
        parts[0::2] = frame
        parts[1::2] = ends
        return parts

    def encode(self, values: Sequence[str]) -> bytes:
        """The lines with any `values` (in the holes' order) filled in and escaped,
        quoted-printable encoded."""
        filled = dict(zip(self._names, values, strict=True))
        return b"".join(self._skeleton.encode(filled, {}))


def _encode_piece(text: str, last: bool) -> bytes:
    """Static text encoded to stand before a value (ending in a soft break, or in a line
    break when it ends a line) or, `last`, to end the lines."""
    if last or not text or text.endswith("\n"):
        return mime.encode_lines(text) if text else b""
    # Encoded with one more character, then that character cut off: its line had room
    # for it, so it has room for the "=" (and a space before it stayed a space, right
    # since the value follows it).
    encoded = mime.encode_lines(text + "x\n")
    assert encoded.endswith(b"x" + mime.CRLF)
    encoded = encoded[: -1 - len(mime.CRLF)]
    return encoded if encoded.endswith(_SOFT_BREAK) else encoded + _SOFT_BREAK
