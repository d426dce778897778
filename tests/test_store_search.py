"""The full-text pre-filter of the search page (digest.store.search, migration 0007), on
SQLite and PostgreSQL.

The proof that matters: over the real papers (and real papers given the text that is
hard to index: ligatures, soft hyphens, decomposed accents, Greek, LaTeX, names in
quotes), for several hundred interest lists drawn from their titles, the syntax table,
and the real author and organisation names, the matcher choosing among the papers the
index finds chooses exactly what it chooses among all stored papers. Then: every
character of the Unicode blocks papers use is indexed as the matcher reads it, or its
paper marked unsure; the triggers keep the index in step as papers are saved; papers
stored before the migration are found after it, by `digest db upgrade` too.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

from click.testing import CliRunner
from render_samples import load_papers
from sqlalchemy import text

from digest.cli import cli
from digest.match import INTEREST_EXAMPLES, Interests, Matcher, match_subscriber, parse_interests
from digest.match.index import FIELD_NAMES, field_text
from digest.match.prefilter import search_query, stem_start
from digest.match.query import MAX_CHARS, MAX_ENTRIES
from digest.match.text import JOIN, fold, gap_key, tokens
from digest.paper import Paper
from digest.store import Database
from digest.store.papers import list_papers, save_papers
from digest.store.search import Candidates, search_papers
from tests.test_store_migrations import _migrate

DATA = Path(__file__).parent / "data"
SEEN = datetime(2026, 6, 12, 6, 0, tzinfo=UTC)
EVERYTHING = 10_000  # more than any test stores: nothing is capped, every match is listed


def _real(number: int) -> Paper:
    return load_papers()[number]


def unusual_papers() -> list[Paper]:
    """Real papers given the text that an index is likeliest to read otherwise than the
    matcher, each with an interest that must find it (`UNUSUAL_INTERESTS`)."""
    texts = [
        # Ligatures, as PDF extraction leaves them: the matcher folds "ﬁ" to "fi".
        ("Eﬃcient ﬁne-tuning for", "", ()),
        # A soft hyphen and a zero-width space vanish: "pretraining", "transformer".
        ("Scalable pre\u00adtraining of trans\u200bformers", "", ()),
        # Decomposed accents, a sharp s, an accent the index folds itself.
        ("", "A nai\u0308ve baseline from the Straße, with a café.", ()),
        # Greek, full-width letters, superscripts.
        ("α-divergence bounds", "We train ＧＰＴ models on x² features.", ()),
        # LaTeX, markup-like tokens, numbers the PostgreSQL parser would split, links.
        ("", "A $\\alpha$-net with \\textbf{agents}, <eos> tokens, 1e5x steps and "
         "https://github.com/foo/bar-baz for the studies we studied.", ()),
        # Names: accents (known and not), quotes, a backslash, an apostrophe.
        ("", "", ("Jürgen Schmidhuber", "Łukasz Kaiser", 'Jean "JJ" Doe', "A\\B Ng",
                  "Tim O'Neil", "Søren Kierkegaard")),
        # Joined and spaced forms of the same words.
        ("Finetuned agents, fine tuned critics", "Self-supervised  world-models.", ()),
    ]  # fmt: skip
    papers = []
    for number, (title, abstract, authors) in enumerate(texts):
        real = _real(number * 11)
        papers.append(
            replace(
                real,
                id=f"2607.{number:05d}",
                title=(title + " " + real.title).strip(),
                abstract=(abstract + " " + real.abstract).strip(),
                authors=authors or real.authors,
                organization="Université de Montréal" if number == 2 else real.organization,
            )
        )
    return papers


# Each must match the unusual paper of that number (so the proof exercises it).
UNUSUAL_INTERESTS = {
    "fine-tuning": 0, "finetuning": 0, "efficient": 0, "pretraining": 1, "pre-training": 1,
    "transformer": 1, "naive": 2, "naïve": 2, "strasse": 2, "cafe": 2, "α-divergence": 3,
    "gpt": 3, "x2": 3, "agents": 4, "eos": 4, "1e5x": 4,
    "bar-baz": 4, "github": 4, "study": 4, "studied": 4, '"studies"': 4,
    "author:Jurgen Schmidhuber": 5, "author:Łukasz": 5, "author:JJ": 5, "author:Ng": 5,
    "author:Tim O'Neil": 5, "author:Søren": 5, "org:universite de montreal": 2,
    "org:Université": 2, "fine tuned": 6, "fine-tuned agents": 6, "finetuned critic": 6,
    "self supervised": 6, "selfsupervised": 6, "world model": 6, "worldmodels": 6,
}  # fmt: skip


def stored_papers() -> list[Paper]:
    """The papers of every proof: the real ones and the unusual ones."""
    return [*load_papers(), *unusual_papers()]


def title_interests() -> list[str]:
    """Words and phrases of the real titles, in the forms people write them."""
    interests: list[str] = []
    for number, paper in enumerate(load_papers()[::2]):
        words = re.findall(r"[A-Za-z][A-Za-z0-9-]*", paper.title)
        if len(words) < 3:
            continue
        word = max(words, key=len).lower()
        phrase = " ".join(words[number % (len(words) - 1) :][:2])
        longer = " ".join(words[number % (len(words) - 2) :][:3])
        forms = [word, phrase, longer]
        start = word.replace("-", "")[:5]
        forms.append([f"{word}s", f"{start}*", f'"{phrase}"', f"title:{phrase}"][number % 4])
        if "-" in word:  # the hyphenated word joined and spaced
            forms += [word.replace("-", ""), word.replace("-", " ")]
        interests += forms
    return interests


def name_interests() -> list[str]:
    """Every real author (every third, in full) and organisation, as author:/org: entries."""
    names = (DATA / "author_names.txt").read_text(encoding="utf-8").splitlines()
    organizations = (DATA / "organizations.txt").read_text(encoding="utf-8").splitlines()
    authors = [f"author:{name}" for name in names[::3]]
    surnames = [f"author:{name.split()[-1]}" for name in names[1::3]]
    return [*authors, *surnames, *(f"org:{name}" for name in organizations)]


def interest_lists() -> list[str]:
    """Several hundred interest lists: single interests, and lists of several with an
    exclusion, as people write them."""
    titles, names = title_interests(), name_interests()
    single = [*titles, *(example for example, _ in INTEREST_EXAMPLES), *names, *UNUSUAL_INTERESTS]
    lists = [entry for entry in dict.fromkeys(single) if not entry.startswith("-")]
    for start in range(0, len(titles) - 3, 7):
        group = [*titles[start : start + 3], names[start % len(names)], f"-{titles[start + 3]}"]
        lists.append(", ".join(group))
    return lists


def keywords(interests: Interests) -> Interests:
    """The keyword entries: trending is not searched (the search page says so)."""
    return replace(interests, trending=None, trending_first=False)


def store(database: Database, papers: list[Paper]) -> list[Paper]:
    """Save `papers`, first seen at SEEN; every stored paper, as the store reads it back."""
    with database.session() as session:
        save_papers(session, papers, SEEN)
        return list_papers(session)


def search(database: Database, interests: Interests, **window: object) -> Candidates:
    with database.session() as session:
        return search_papers(
            session,
            search_query(interests),
            since=window.get("since"),
            limit=window.get("limit", EVERYTHING),
        )


# --- the proof -----------------------------------------------------------------------


def test_the_matcher_chooses_the_same_among_what_the_index_finds(
    store_database: Database,
) -> None:
    stored = store(store_database, stored_papers())
    everything = Matcher(stored)
    lists = interest_lists()
    assert len(lists) >= 500
    matched = candidates = 0
    for written in lists:
        interests = keywords(parse_interests(written))
        found = search(store_database, interests)
        expected = everything.select(interests, None, EVERYTHING)
        chosen = {match.paper.id for match in expected.matches}
        assert chosen <= {paper.id for paper in found.papers}, written
        assert match_subscriber(interests, found.papers, EVERYTHING) == expected, written
        matched += len(chosen)
        candidates += len(found.papers)
    # The lists find plenty, and the index narrows them down: both could fail.
    assert matched >= 5 * len(lists)
    assert candidates <= 2 * matched + len(lists) * len(unusual_papers())


def test_the_unusual_papers_are_matched_by_their_interests(store_database: Database) -> None:
    """The proof above goes through every hard case: the matcher does match these."""
    unusual = unusual_papers()
    store(store_database, stored_papers())
    for written, number in UNUSUAL_INTERESTS.items():
        interests = parse_interests(written)
        found = search(store_database, interests)
        chosen = match_subscriber(interests, found.papers, EVERYTHING)
        assert unusual[number].id in {match.paper.id for match in chosen.matches}, written


def test_exclusions_are_applied_by_the_matcher(store_database: Database) -> None:
    store(store_database, stored_papers())
    agents = search(store_database, parse_interests("agents"))
    without = parse_interests("agents, -benchmark")
    kept = match_subscriber(without, search(store_database, without).papers, EVERYTHING)
    every = match_subscriber(parse_interests("agents"), agents.papers, EVERYTHING)
    assert 0 < len(kept.matches) < len(every.matches)
    assert all("benchmark" not in match.paper.abstract.lower() for match in kept.matches)


# --- the index reads text as the matcher does ------------------------------------------

# The Unicode blocks papers' text is written in, and those the index must be wary of.
BLOCKS = (
    (0x20, 0x7E), (0xA0, 0x24F), (0x300, 0x3FF), (0x2000, 0x22FF), (0xFB00, 0xFB06),
    (0xFF01, 0xFF5E), (0x1D400, 0x1D433),
)  # fmt: skip


def _character_papers() -> list[Paper]:
    """A paper per character, the character inside words and between them, in every field."""
    papers = []
    for start, end in BLOCKS:
        for code in range(start, end + 1):
            c = chr(code)
            papers.append(
                Paper(
                    id=f"c{code:06x}",
                    title=f"a{c}b {c}x y{c}",
                    abstract=f"Ab{c}cd {c}{c} ef",
                    authors=(f"Na{c}me", f"{c}Qu"),
                    organization=f"O{c}rg",
                    first_seen_at=SEEN,
                )
            )
    return papers


class Indexed(NamedTuple):
    """What the index holds of a paper: its words and joined pairs as "field:word"."""

    words: set[str]
    pairs: set[str]
    unsure: bool


def _indexed(database: Database) -> dict[str, Indexed]:
    """Each paper's words as the index holds them.

    A pair is two words written as one: on PostgreSQL those the index joined (a space or
    hyphen between them), on SQLite any two at adjacent positions.
    """
    found: dict[str, Indexed] = {}
    with database.engine.begin() as connection:
        if database.is_sqlite:
            connection.exec_driver_sql(
                "CREATE VIRTUAL TABLE temp.words USING fts5vocab(main, paper_search, instance)"
            )
            rows = connection.exec_driver_sql(
                "SELECT papers.id, words.col, words.offset, words.term FROM temp.words "
                "JOIN papers ON papers.rowid = words.doc ORDER BY words.doc, words.col, "
                "words.offset"
            )
            at: dict[tuple[str, str, int], str] = {}
            for paper, field, offset, word in rows:
                indexed = found.setdefault(paper, Indexed(set(), set(), False))
                if field == "unsure":
                    found[paper] = indexed._replace(unsure=True)
                    continue
                indexed.words.add(f"{field}:{word}")
                before = at.get((paper, field, offset - 1))
                if before is not None:
                    indexed.pairs.add(f"{field}:{before}{word}")
                at[paper, field, offset] = word
            return found
        fields = {"t": "title", "a": "abstract", "p": "authors", "o": "organization"}
        rows = connection.execute(
            text(
                "SELECT id, tsvector_to_array(paper_search_words(title, abstract, authors, "
                "organization)) FROM papers"
            )
        )
        for paper, lexemes in rows:
            words = {f"{fields[x[0]]}:{x[1:]}" for x in lexemes if x[0] in fields}
            pairs = {f"{fields[x[0].lower()]}:{x[1:]}" for x in lexemes if x[0] in "TAPO"}
            found[paper] = Indexed(words, pairs, "UNSURE" in lexemes)
        return found


def _read_by_the_matcher(paper: Paper) -> Indexed:
    """The words the matcher reads in a paper, and the pairs it may read as one word."""
    words, pairs = set(), set()
    for field in FIELD_NAMES:
        folded, _ = fold(field_text(paper, field))
        spans = tokens(folded)
        words |= {f"{field}:{folded[start:end]}" for start, end in spans}
        if field in ("title", "abstract"):  # a plain word, joined: only in prose
            pairs |= {
                f"{field}:{folded[start:end]}{folded[following:after]}"
                for (start, end), (following, after) in itertools.pairwise(spans)
                if gap_key(folded[end:following]) == JOIN
            }
    return Indexed(words, pairs, False)


def test_every_character_is_indexed_as_the_matcher_reads_it_or_marked_unsure(
    store_database: Database,
) -> None:
    papers = _character_papers()
    store(store_database, papers)
    indexed = _indexed(store_database)
    sure = []
    for paper in papers:
        index = indexed.get(paper.id, Indexed(set(), set(), False))
        if index.unsure:
            continue
        sure.append(chr(int(paper.id[1:], 16)))
        matcher = _read_by_the_matcher(paper)
        if "\\" in paper.title:  # the matcher skips a LaTeX command; the index need not
            assert matcher.words <= index.words, paper
        else:
            assert matcher.words == index.words, paper
        assert matcher.pairs <= index.pairs, paper
    # What KNOWN promises is kept: accents, dashes, quotes, arrows and operators are read
    # as the matcher reads them; what the index cannot fold so is marked unsure.
    assert set("é Åñ-–—“”’…→≤≈×·") <= set(sure)
    assert not set("ßﬁ\u00ad\u0301αＧ𝐀") & set(sure)
    assert len(sure) >= 750


# --- the index kept in step --------------------------------------------------------------


def _ids(found: Candidates) -> list[str]:
    return [paper.id for paper in found.papers]


def test_saved_papers_are_found_and_a_later_sighting_is_reindexed(
    store_database: Database,
) -> None:
    first = replace(_real(0), id="2606.00001", abstract="")
    other = replace(_real(1), id="2606.00002")
    store(store_database, [first, other])
    elsewhere = (other.title + " " + other.abstract).lower()
    words = sorted(re.findall(r"[A-Za-z]{5,}", first.title), key=len, reverse=True)
    title_word = next(word for word in words if word.lower() not in elsewhere)
    abstract_word = "cornucopian"
    assert _ids(search(store_database, parse_interests(title_word))) == ["2606.00001"]
    assert _ids(search(store_database, parse_interests(abstract_word))) == []
    # A later sighting fills the missing abstract (an UPDATE): its words are found.
    later = replace(first, abstract=f"A {abstract_word} abstract.", upvotes=12)
    with store_database.session() as session:
        report = save_papers(session, [later], SEEN + timedelta(hours=1))
    assert report.updated == 1
    assert _ids(search(store_database, parse_interests(abstract_word))) == ["2606.00001"]
    assert _ids(search(store_database, parse_interests(title_word))) == ["2606.00001"]
    # Upvotes alone change nothing the index holds; the paper is found as before.
    with store_database.session() as session:
        save_papers(session, [replace(later, upvotes=40)], SEEN + timedelta(hours=2))
    assert _ids(search(store_database, parse_interests(abstract_word))) == ["2606.00001"]
    # A deleted paper leaves the index too (the store deletes none today; an operator may).
    with store_database.engine.begin() as connection:
        connection.execute(text("DELETE FROM papers WHERE id = '2606.00001'"))
    assert _ids(search(store_database, parse_interests(title_word))) == []
    if store_database.is_sqlite:  # FTS5's own check of its contentless index
        with store_database.engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO paper_search (paper_search) VALUES ('integrity-check')"
            )


def test_the_search_window_and_the_cap_on_candidates(store_database: Database) -> None:
    papers = [
        replace(_real(number), id=f"2606.{number:05d}", title=f"Agents {number}")
        for number in range(6)
    ]
    with store_database.session() as session:
        for hours, paper in enumerate(papers):
            save_papers(session, [paper], SEEN + timedelta(hours=hours))
    agents = parse_interests("agents")
    since = SEEN + timedelta(hours=2)
    windowed = search(store_database, agents, since=since)
    assert (_ids(windowed), windowed.found, windowed.searched) == (
        ["2606.00005", "2606.00004", "2606.00003", "2606.00002"],
        4,
        4,
    )
    assert not windowed.capped
    capped = search(store_database, agents, since=None, limit=2)
    assert (_ids(capped), capped.found, capped.searched, capped.capped) == (
        ["2606.00005", "2606.00004"],
        6,
        6,
        True,
    )


def test_the_longest_list_and_the_commonest_word_are_searched(store_database: Database) -> None:
    stored = store(store_database, stored_papers())
    words = re.findall(r"[a-z]{8,}", " ".join(paper.abstract.lower() for paper in stored))
    entries: list[str] = []
    for number in range(0, len(words) - 3, 3):
        entry = " ".join(words[number : number + 3])
        if len(entries) == MAX_ENTRIES or len(", ".join([*entries, entry])) > MAX_CHARS:
            break
        entries.append(entry)
    everything = Matcher(stored)
    for written in (", ".join(entries), "the", "a"):
        interests = parse_interests(written)
        found = search(store_database, interests)
        expected = everything.select(interests, None, EVERYTHING)
        assert match_subscriber(interests, found.papers, EVERYTHING) == expected
    assert len(entries) == MAX_ENTRIES or len(", ".join(entries)) > MAX_CHARS - 40
    assert search(store_database, parse_interests("the"), limit=10).capped


def test_a_paper_stored_before_the_limits_is_found_by_the_word_it_is_cut_to(
    store_database: Database,
) -> None:
    # Stored before the limits on papers existed: read back, the title is cut mid-word
    # (digest.paper.bound_paper), and the matcher sees the cut word; the index, the whole.
    long = replace(_real(2), id="2606.00003", title="Agents " * 100 + "x" * 500)
    [stored] = store(store_database, [long])
    assert stored.title.endswith(" " + "x" * 299 + "…")
    interests = parse_interests('"' + "x" * 299 + '"')
    assert match_subscriber(interests, [stored], EVERYTHING).matches
    assert _ids(search(store_database, interests)) == ["2606.00003"]


def test_an_index_query_over_its_budget_is_given_up_for_every_paper_of_the_window(
    store_database: Database,
) -> None:
    stored = store(store_database, stored_papers())
    # Hundreds of two-letter words: each a scan of much of the index, for nothing.
    words = [first + second for first in "abcdefghijklmnopqrstuvwxyz" for second in "aeiouy"]
    costly = parse_interests(
        ", ".join(" ".join(words[start : start + 12]) for start in range(0, 144, 12))
    )
    with store_database.session() as session:
        given_up = search_papers(
            session, search_query(costly), since=None, limit=50, budget=0.000_001
        )
        # The transaction goes on: the same session searches again, within its budget.
        answered = search_papers(session, search_query(costly), since=None, limit=EVERYTHING)
    by_id = sorted(stored, key=lambda paper: paper.id)
    newest = sorted(by_id, key=lambda paper: paper.first_seen_at or SEEN, reverse=True)
    assert not given_up.narrowed and given_up.capped
    assert (given_up.found, given_up.searched) == (len(stored), len(stored))
    assert _ids(given_up) == [paper.id for paper in newest[:50]]
    assert answered.narrowed and not answered.capped
    expected = match_subscriber(costly, stored, EVERYTHING)
    assert match_subscriber(costly, answered.papers, EVERYTHING) == expected


def test_the_start_of_a_stem() -> None:
    assert [stem_start(word) for word in ("studies", "tuning", "study", "fine", "by")] == [
        "stud",
        "tun",
        "stud",
        "fin",
        "by",
    ]


# --- papers stored before the index ------------------------------------------------------


def _stored_before_the_index(database: Database) -> list[Paper]:
    _migrate(database, "downgrade", "0006")
    return store(database, load_papers()[:40])


def _found_as_the_matcher_finds(database: Database, papers: list[Paper]) -> None:
    for written in ("diffusion", "language model", "author:" + papers[3].authors[0]):
        interests = parse_interests(written)
        expected = match_subscriber(interests, papers, EVERYTHING)
        assert expected.matches, written
        found = search(database, interests)
        assert match_subscriber(interests, found.papers, EVERYTHING) == expected, written


def test_the_upgrade_indexes_the_papers_already_stored(store_database: Database) -> None:
    papers = _stored_before_the_index(store_database)
    assert store_database.upgrade() == ("0006", store_database.head_revision())
    _found_as_the_matcher_finds(store_database, papers)


def test_digest_db_upgrade_indexes_the_papers_already_stored(
    store_database: Database, tmp_path: Path
) -> None:
    papers = _stored_before_the_index(store_database)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[service]\ndata_dir = "{tmp_path / "data"}"\n[database]\nurl = "{store_database.url}"\n',
        encoding="utf-8",
    )
    result = CliRunner().invoke(cli, ["--config", str(config), "db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert f"upgraded from 0006 to {store_database.head_revision()}" in result.output
    _found_as_the_matcher_finds(store_database, papers)
