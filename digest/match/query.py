"""Parse a subscriber's interest list: the one parser for the web form, the CLI and the matcher.

A list is entries, one per line or comma-separated; blank entries are skipped, and a line
starting with a list bullet ("- ", "* ", "• ") keeps its text. A comma inside double
quotes does not split: the quotes keep it in the phrase, where it must then appear in the
text too (`"Where, What, Why"`). Smart quotes count as quotes. Each entry is:

    [-] clause [AND clause ...]        - excludes; AND (in capitals) needs every clause
    clause := [field:] term            fields: title: abstract: author: org:
    term   := words | "exact words"    a word ending in * is a prefix (3+ letters)

One entry is no keyword but a rule: `trending` asks for the day's most upvoted papers on
Hugging Face Daily Papers (10 of them; `trending:5` for 5; `trending:5 upvotes>=20` only
those with 20 upvotes or more). It is written at most once, is never excluded, and may be
the whole list; exclusions veto trending papers too. Where it stands says which section
of the email comes first: before every keyword, trending; else the matches. To match the
word itself, quote it ("trending") or give a field (title:trending).

Nor is `like:2509.24002`: it names a seed paper (an arXiv id, any version, `arXiv:` or
an abs link allowed; old ids as `like:hep-th/9901001`), a paper the reader likes, which
`digest.learn` learns their taste from. Seeds (at most MAX_SEEDS) select nothing by
keywords, so a list may be seeds alone; they are never excluded (a digest's "less like
this" link does that).

Case never matters. Plain words are light-stemmed and may be written joined, hyphenated or
spaced (see `digest.match.text`); quoted words and names (author:, org:) are compared
as written. The result, `Interests`, is immutable and hashable so that the matcher can
look each distinct entry up once however many subscribers hold it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from digest.errors import InterestSyntaxError
from digest.match.text import NAMES, PROSE, TOKEN, fold, gap_key
from digest.paper import parse_arxiv_id

MAX_ENTRIES = 50
MAX_CHARS = 2000
MAX_WORDS = 12
MIN_PREFIX = 3
DEFAULT_TRENDING = 10
MAX_TRENDING = 100  # the digest's own limit ([match] max_papers) is applied when matching
MAX_UPVOTES = 1_000_000
MAX_SEEDS = 50  # like: entries, counted apart from the MAX_ENTRIES keyword entries

STEM = "stem"
EXACT = "exact"
PREFIX = "prefix"

# Field prefixes a person may write, and the `Paper` fields (Span.field names) they search.
FIELDS: dict[str, tuple[str, ...]] = {
    "title": ("title",),
    "abstract": ("abstract",),
    "author": ("authors",),
    "org": ("organization",),
}
DEFAULT_FIELDS = ("title", "abstract")
NAME_FIELDS = frozenset({"authors", "organization"})

INTEREST_EXAMPLES: tuple[tuple[str, str], ...] = (
    ("diffusion", "a word, in the title or abstract; plurals and -ing/-ed forms match too"),
    ("large language model", "a phrase: the words in this order (also 'large language models')"),
    ("fine-tuning", "hyphens, spaces and joined forms are alike: also 'fine tuning', 'finetuning'"),
    ('"world model"', "in quotes: exactly these words, no other forms"),
    ("quantiz*", "a prefix: quantize, quantized, quantization, ..."),
    ("title:agents", "only in the title (also abstract:)"),
    ("rlhf AND reward model", "both must appear, anywhere in the paper (AND in capitals)"),
    ("-survey", "never send a paper that matches this"),
    (
        "trending",
        "the 10 most upvoted papers on Hugging Face Daily Papers since your last digest; "
        "trending:5 for 5, trending:5 upvotes>=20 for those with 20 upvotes or more",
    ),
    ("author:Colin Raffel", "papers by an author; org:MiniMax for an organisation"),
)
"""One line per form of the interest syntax: (example, what it does), for forms and docs."""


@dataclass(frozen=True, slots=True)
class Word:
    """One word of a clause, folded; `kind` is STEM, EXACT or PREFIX."""

    text: str
    kind: str


@dataclass(frozen=True, slots=True)
class Clause:
    """Consecutive words to find in some fields of a paper.

    `gaps[i]` is the gap key between `words[i]` and `words[i + 1]` (`text.JOIN` for
    spaces and hyphens, else the punctuation the text must show there).
    """

    fields: tuple[str, ...]
    words: tuple[Word, ...]
    gaps: tuple[str, ...]
    _hash: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        # Hashed once: the matcher looks clauses up for every new entry that holds them.
        object.__setattr__(self, "_hash", hash((self.fields, self.words, self.gaps)))

    def __hash__(self) -> int:
        return self._hash


@dataclass(frozen=True, slots=True)
class Interest:
    """One entry of a list: its label as written, its clauses (all must match), and
    whether it excludes."""

    label: str
    clauses: tuple[Clause, ...]
    exclude: bool = False
    _hash: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        # Hashed once: the matcher looks entries up for every subscriber.
        object.__setattr__(self, "_hash", hash((self.label, self.clauses, self.exclude)))

    def __hash__(self) -> int:
        return self._hash


@dataclass(frozen=True, slots=True)
class Trending:
    """The `trending` rule: the `count` most upvoted papers on Hugging Face Daily Papers
    in the reader's window, of those with at least `min_upvotes`."""

    count: int = DEFAULT_TRENDING
    min_upvotes: int = 0

    @property
    def label(self) -> str:
        """The rule as written in canonical form: `trending`, `trending:5 upvotes>=20`."""
        text = TRENDING if self.count == DEFAULT_TRENDING else f"{TRENDING}:{self.count}"
        return f"{text} upvotes>={self.min_upvotes}" if self.min_upvotes else text

    def describe(self, count: int | None = None) -> str:
        """How the papers were chosen, for the reader: "the 10 most upvoted papers ...".

        `count` is how many the digest may hold, when that is fewer than asked for.
        """
        count = self.count if count is None else min(count, self.count)
        what = "the most upvoted paper" if count == 1 else f"the {count} most upvoted papers"
        text = f"{what} on Hugging Face Daily Papers since your last digest"
        if self.min_upvotes:
            text += f", of those with at least {self.min_upvotes} upvotes"
        return text


@dataclass(frozen=True, slots=True)
class Interests:
    """A parsed interest list: entries in the order written, duplicates dropped.

    `trending` is the trending rule, if the list has one; `trending_first` whether it
    came before every keyword entry (its section then comes first in the email).
    `seeds` are the versionless arXiv ids of the `like:` entries, in the order written,
    duplicates dropped; they are no entries (the matcher never sees them).
    `seed_places` says where each seed was written (how many entries came before it),
    for `text` alone: it is not compared, as it changes nothing the list asks for.
    """

    entries: tuple[Interest, ...]
    trending: Trending | None = None
    trending_first: bool = False
    seeds: tuple[str, ...] = ()
    seed_places: tuple[int, ...] = field(default=(), repr=False, compare=False)
    _hash: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "_hash", hash((self.entries, self.trending, self.trending_first, self.seeds))
        )

    def __hash__(self) -> int:
        return self._hash

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def wanted(self) -> tuple[Interest, ...]:
        """The entries that select papers."""
        return tuple(entry for entry in self.entries if not entry.exclude)

    @property
    def excluded(self) -> tuple[Interest, ...]:
        """The entries that veto papers."""
        return tuple(entry for entry in self.entries if entry.exclude)

    @property
    def text(self) -> str:
        """The list in canonical form, one entry per line; parses back to an equal list."""
        labels = [entry.label for entry in self.entries]
        # Seeds where they were written (after the entries, when that is not known);
        # inserted from the last so that the places of the earlier ones still hold.
        places = self.seed_places
        if len(places) != len(self.seeds):
            places = (len(labels),) * len(self.seeds)
        for seed, place in reversed(list(zip(self.seeds, places, strict=True))):
            labels.insert(min(place, len(labels)), f"{LIKE}:{seed}")
        if self.trending is not None:
            labels.insert(0 if self.trending_first else len(labels), self.trending.label)
        return "\n".join(labels)


class _EntryError(Exception):
    """A problem with one entry; `parse_interests` adds which entry."""


def parse_interests(text: str, *, max_trending: int = MAX_TRENDING) -> Interests:
    """Parse an interest list; raise InterestSyntaxError naming the entry at fault.

    `max_trending` is the most papers `trending:N` may ask for (the forms pass the
    digest's `[match] max_papers`; stored lists are held to it when matched).
    """
    if len(text) > MAX_CHARS:
        raise InterestSyntaxError(
            f"the list is {len(text):,} characters long; shorten it to at most {MAX_CHARS:,}"
        )
    _refuse_control_characters(text)
    raw_entries = split_entries(text)
    if not raw_entries:
        raise InterestSyntaxError(
            "the list is empty: write at least one interest, one per line or comma-separated, "
            "or trending for the day's most upvoted papers"
        )
    entries: list[Interest] = []
    seen: set[tuple[bool, tuple[Clause, ...]]] = set()
    trending: Trending | None = None
    trending_entry = 0
    trending_first = False
    seeds: dict[str, int] = {}  # id: how many entries came before it
    keywords = written_seeds = 0  # entries written, duplicates too: what the caps count
    for number, raw in enumerate(raw_entries, start=1):
        try:
            seed = parse_seed(raw)
            rule = None if seed else parse_trending(raw, max_trending)
            entry = None if seed or rule else parse_entry(raw)
        except _EntryError as error:
            raise InterestSyntaxError(str(error), entry=number, text=raw) from None
        if seed is not None:
            written_seeds += 1
            if written_seeds > MAX_SEEDS:
                raise InterestSyntaxError(
                    f"too many like: entries: at most {MAX_SEEDS} seed papers; "
                    "remove some from here on",
                    entry=number,
                    text=raw,
                )
            seeds.setdefault(seed, len(entries))
            continue
        keywords += 1
        if keywords > MAX_ENTRIES:
            raise InterestSyntaxError(
                f"too many interests: at most {MAX_ENTRIES}; remove some from here on",
                entry=number,
                text=raw,
            )
        if rule is not None:
            if trending is not None:
                raise InterestSyntaxError(
                    f"trending is already asked for in entry {trending_entry}; keep one",
                    entry=number,
                    text=raw,
                )
            trending, trending_entry = rule, number
            trending_first = not any(not known.exclude for known in entries)
        elif entry is not None and (entry.exclude, entry.clauses) not in seen:
            seen.add((entry.exclude, entry.clauses))
            entries.append(entry)
    if trending is None and not seeds and all(entry.exclude for entry in entries):
        raise InterestSyntaxError(
            "the list has only exclusions (entries starting with -); "
            "add at least one interest to match, trending, or like: and a paper you like"
        )
    if trending is None or not any(not entry.exclude for entry in entries):
        trending_first = trending is not None  # nothing to come before
    return Interests(tuple(entries), trending, trending_first, tuple(seeds), tuple(seeds.values()))


LIKE = "like"
# An entry meant as a seed: "like:" (any case, spaces about the colon), excluded or not.
# Anything else with the word in it ("like minds", "like AND diffusion") is a phrase, and
# a quoted "like:..." too.
_LIKE_START = re.compile(r"^(?P<exclude>-\s*)?like\s*:\s*(?P<id>.*)$", re.IGNORECASE)
# What may come before the id: "arXiv:", or the paper's page (abs or pdf) on arXiv.
_ID_PREFIX = re.compile(
    r"^(?:arxiv\s*:\s*|(?:https?://)?(?:www\.|export\.)?arxiv\.org/(?:abs|pdf)/)",
    re.IGNORECASE,
)
# What arXiv issued (the id read, its version dropped, by `digest.paper.parse_arxiv_id`):
# since April 2007 YYMM.NNNN, five digits from 2015 (YYMM 1501) on; before, the archive,
# perhaps with a subject class, "/" and YYMMNNN.
_NEW_ID = re.compile(r"(?P<year>\d\d)(?P<month>\d\d)\.(?P<number>\d{4,5})")
_OLD_ID = re.compile(
    r"(?P<archive>[a-z]+(?:-[a-z]+)*)(?:\.[a-z-]+)?/(?P<year>\d\d)(?P<month>\d\d)(?P<number>\d{3})",
    re.IGNORECASE,
)
_PDF = re.compile(r"\.pdf$", re.IGNORECASE)
_SEED_FORM = f"write {LIKE}:2509.24002 (or {LIKE}:hep-th/9901001)"


def parse_seed(raw: str) -> str | None:
    """The versionless arXiv id a `like:` entry names, or None for an entry that is not one.

    An old-style id is kept as arXiv keeps it: archive in lower case, no subject class
    (`math.GT/0309136` is `math/0309136`, the id the arXiv API answers with).
    """
    found = _LIKE_START.match(" ".join(raw.split()))
    if found is None:
        return None
    written = found.group("id")
    if found.group("exclude"):
        raise _EntryError(
            'a seed paper cannot be excluded: for "less like this", use the link beside '
            f"the paper in a digest; to drop a seed, remove its {LIKE}: entry"
        )
    if not written:
        raise _EntryError(f"{LIKE}: needs the arXiv id of a paper you like: {_SEED_FORM}")
    paper_id = _versionless_id(_ID_PREFIX.sub("", written))
    if paper_id is None:
        raise _EntryError(f"{LIKE}:{written} is not an arXiv id: {_SEED_FORM}")
    return paper_id


def _versionless_id(text: str) -> str | None:
    """The canonical versionless id of an arXiv id as written, or None if it is none:
    read as the sources read ids, then checked against arXiv's calendar."""
    paper_id = parse_arxiv_id(_PDF.sub("", text))
    if paper_id is None:
        return None
    new = _NEW_ID.fullmatch(paper_id)
    if new is not None:
        year, month = int(new.group("year")), int(new.group("month"))
        digits = 5 if (year, month) >= (15, 1) else 4
        if not 1 <= month <= 12 or (year, month) < (7, 4) or len(new.group("number")) != digits:
            return None
        return f"{new.group('year')}{new.group('month')}.{new.group('number')}"
    old = _OLD_ID.fullmatch(paper_id)
    if old is not None:
        year, month = int(old.group("year")), int(old.group("month"))
        # Old ids ran from August 1991 to March 2007.
        if not 1 <= month <= 12 or (7 < year < 91) or (year == 7 and month > 3):
            return None
        archive, number = old.group("archive").lower(), old.group("number")
        return f"{archive}/{old.group('year')}{old.group('month')}{number}"
    return None


TRENDING = "trending"
_TRENDING = re.compile(
    r"(?P<exclude>-\s*)?trending(?:\s*:\s*(?P<count>\S+?))?"
    r"(?:\s+upvotes\s*(?P<op>\S*?)\s*(?P<min>\d\S*)?)?",
    re.IGNORECASE,
)
# An entry meant as the rule rather than the word: "trending", "trending:..." or
# "trending upvotes...". Anything else with the word in it ("trending topics") is a phrase.
_TRENDING_START = re.compile(r"^-?\s*trending(?:\s*:|\s+upvotes\b|$)", re.IGNORECASE)


def parse_trending(raw: str, max_trending: int = MAX_TRENDING) -> Trending | None:
    """The trending rule an entry asks for, or None for an entry that is not one."""
    text = " ".join(raw.split())
    if not _TRENDING_START.match(text):
        return None
    found = _TRENDING.fullmatch(text)
    if found is None:
        raise _EntryError(
            "write trending alone, trending:5 for 5 papers, or trending:5 upvotes>=20 "
            "for those with at least 20 upvotes"
        )
    if found.group("exclude"):
        raise _EntryError(
            "trending cannot be excluded; leave it out, or write trending:5 for fewer papers"
        )
    count = DEFAULT_TRENDING
    if found.group("count") is not None:
        count = _whole_number(
            found.group("count"), "trending: takes a number of papers", "trending:5"
        )
        if not 1 <= count <= max_trending:
            raise _EntryError(f"trending: takes from 1 to {max_trending} papers (got {count})")
    minimum = 0
    if found.group("op") is not None:  # "upvotes" was written
        if found.group("op") != ">=" or found.group("min") is None:
            raise _EntryError("write the least upvotes as upvotes>=20")
        minimum = _whole_number(found.group("min"), "upvotes>= takes a whole number", "upvotes>=20")
        if minimum > MAX_UPVOTES:
            raise _EntryError(f"upvotes>= takes at most {MAX_UPVOTES:,}")
    return Trending(count, minimum)


def _whole_number(text: str, what: str, example: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        raise _EntryError(f"{what}, as in {example} (got {text})")
    return int(text)


# Control characters (Unicode Cc) but the line breaks and tabs that lay a list out (a
# textarea sends CRLF). They match nothing, show as nothing in the form and the email, and
# some cannot be stored at all (PostgreSQL refuses NUL in text) or act on a terminal (ESC).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_CONTEXT = 30  # characters shown before the one at fault


def _refuse_control_characters(text: str) -> None:
    """InterestSyntaxError naming the first control character and the text before it."""
    found = _CONTROL.search(text)
    if found is None:
        return
    # The error never repeats the character itself: it says where it is, by its code.
    before = re.split(r"[\r\n]", text[: found.start()])[-1].strip()  # on its own line
    if len(before) > _CONTEXT:
        before = "..." + before[-_CONTEXT:].lstrip()
    where = f'after "{before}"' if before else "at the start of a line"
    raise InterestSyntaxError(
        f"the list holds an invisible control character (U+{ord(found.group()):04X}) "
        f"{where}: remove it"
    )


_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2033": '"'})
_BULLET = re.compile(r"^(?:[-*\u2022]\s+)")


def split_entries(text: str) -> list[str]:
    """Split a list into entry texts: lines, then commas outside quotes; blanks dropped."""
    entries: list[str] = []
    for line in text.translate(_QUOTES).splitlines():
        line = _BULLET.sub("", line.strip())
        if '"' not in line:  # no quotes to keep commas in: the common case, at C speed
            entries += line.split(",")
            continue
        current: list[str] = []
        quoted = False
        for char in line:
            if char == '"':
                quoted = not quoted
            if char == "," and not quoted:
                entries.append("".join(current))
                current = []
            else:
                current.append(char)
        entries.append("".join(current))
    return [" ".join(entry.split()) for entry in entries if entry.strip()]


_AND = re.compile(r"(?<!\S)AND(?!\S)")
_FIELD = re.compile(r"^([^\W\d_]+)\s*:\s*(.*)$", re.DOTALL)


@lru_cache(maxsize=65536)
def parse_entry(raw: str) -> Interest:
    """Parse one entry (already split from its list); cached, as many people share entries."""
    label = " ".join(raw.translate(_QUOTES).split())
    body = label
    exclude = body.startswith("-")
    if exclude:
        body = body[1:].strip()
    if "\\" in body:
        raise _EntryError("backslashes cannot be matched; leave them out")
    if body.count('"') % 2:
        raise _EntryError('a quote is not closed: put a " at the end of the phrase')
    parts = [part.strip() for part in _split_and(body)]
    if len(parts) > 1 and not all(parts):
        raise _EntryError("has an empty term: write a word or phrase on each side of AND")
    clauses = tuple(_parse_clause(part) for part in parts)
    return Interest(label, clauses, exclude)


def _split_and(body: str) -> list[str]:
    """Split at AND (in capitals) outside quotes."""
    parts: list[str] = []
    start = 0
    for found in _AND.finditer(body):
        if body.count('"', 0, found.start()) % 2 == 0:
            parts.append(body[start : found.start()])
            start = found.end()
    parts.append(body[start:])
    return parts


def _parse_clause(text: str) -> Clause:
    if not text:
        raise _EntryError("has nothing to match: write a word or phrase with letters or digits")
    if text.startswith("-"):
        raise _EntryError("an exclusion (-) goes at the start of the entry, before any AND")
    fields = DEFAULT_FIELDS
    found = _FIELD.match(text)
    if found and '"' not in text[: found.start(2)]:
        name = found.group(1).casefold()
        if name not in FIELDS:
            known = ", ".join(f"{known}:" for known in FIELDS)
            # An arXiv id written alone is most likely a paper the reader likes.
            seed = f"; to name a paper you like, write {LIKE}:{text}" if name == "arxiv" else ""
            raise _EntryError(
                f'"{found.group(1)}:" is not a known field; the fields are {known} '
                f"(to match a colon, put the phrase in quotes){seed}"
            )
        fields = FIELDS[name]
        text = found.group(2).strip()
        if not text:
            raise _EntryError(f'has an empty term: write a word or phrase after "{name}:"')
    exact = False
    if '"' in text:
        quoted = re.fullmatch(r'"([^"]*)"', text)
        if quoted is None:
            raise _EntryError('quotes go around the whole phrase, as in "world model"')
        exact = True
        text = quoted.group(1)
    return _clause_words(text, fields, exact)


def _clause_words(text: str, fields: tuple[str, ...], exact: bool) -> Clause:
    folded, _ = fold(text)
    names = bool(NAME_FIELDS.intersection(fields))
    words: list[Word] = []
    gaps: list[str] = []
    stars = 0
    previous_end = None
    for found in TOKEN.finditer(folded):
        prefix = folded.startswith("*", found.end())
        if prefix and folded[found.end() + 1 : found.end() + 2].isalnum():
            raise _EntryError("a * goes at the end of a word, to match words that start with it")
        if prefix:
            stars += 1
            if len(found.group()) < MIN_PREFIX:
                raise _EntryError(
                    f"a prefix needs at least {MIN_PREFIX} letters before the *, "
                    f'as in quantiz* (got "{found.group()}*")'
                )
        if previous_end is not None:
            gap = folded[previous_end : found.start()].replace("*", "", 1)
            gaps.append(gap_key(gap, NAMES if names else PROSE))
        kind = PREFIX if prefix else EXACT if exact or names else STEM
        words.append(Word(found.group(), kind))
        previous_end = found.end()
    if stars != folded.count("*"):
        raise _EntryError("a * goes at the end of a word, to match words that start with it")
    if not words:
        raise _EntryError("has nothing to match: write a word or phrase with letters or digits")
    if len(words) > MAX_WORDS:
        raise _EntryError(f"is too long: a phrase has at most {MAX_WORDS} words")
    return Clause(fields, tuple(words), tuple(gaps))
