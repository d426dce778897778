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
