"""A full-text index over the papers, for the search page's pre-filter.

The index holds each paper's words as the matcher sees them: letters and digits, case
and accents folded (`digest.match.text`), per field (title, abstract, authors,
organization). It only narrows the papers down; the matcher then decides, so the index
may hold more than the matcher would match but never less. Where a paper's text holds a
character whose folding this index cannot promise to do as the matcher does (one outside
ASCII and `KNOWN`: a ligature, a Greek letter, an invisible joiner), the paper is marked
"unsure" and every search includes it.

SQLite: `paper_search`, a contentless FTS5 table keyed by the papers' rowid, kept in
step by triggers. Contentless rather than external-content because what it indexes is
not the stored columns as they are: the authors' names are decoded from their JSON
(stored with \\u escapes) and the "unsure" column is computed. FTS5's unicode61
tokenizer, removing diacritics, folds every character of `KNOWN` as the matcher does.

PostgreSQL: a GIN index on `paper_search_words(title, abstract, authors,
organization)`, an immutable function giving the words as a tsvector whose lexemes are
the folded words with a letter naming their field in front ("tdiffusion" for a title
word), two words joined by a space or hyphen written as one with that letter in upper
case ("Tfinetuning" for "fine-tuning", which the matcher reads as one word too: a GIN
index keeps no word positions), and `UNSURE` for an unsure paper. No text search
configuration is involved: the 'simple' parser would split words the matcher keeps
whole ("1e5x") and drop some it keeps ("<eos>"); 'english' would stem its own way and
drop stop words.

A later migration that rebuilds the papers table on SQLite (batch_alter_table with a
copy) drops these triggers and renumbers the rowids: it must create them again and
refill the index as `upgrade` does here.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Frozen: no application code here. The characters besides ASCII whose folding both
# indexes match exactly (inclusive ranges): letters that fold to one ASCII letter
# (FOLD_FROM), and characters that are neither letters nor digits, so they separate
# words everywhere (spaces, dashes, quotes, arrows, mathematical operators). Checked
# against the matcher's folding and each index by tests/test_store_search.py.
KNOWN = (
    (0x00A0, 0x00A9), (0x00AB, 0x00AC), (0x00AE, 0x00B1), (0x00B4, 0x00B4),
    (0x00B6, 0x00B8), (0x00BB, 0x00BB), (0x00BF, 0x00C5), (0x00C7, 0x00CF),
    (0x00D1, 0x00D7), (0x00D9, 0x00DD), (0x00E0, 0x00E5), (0x00E7, 0x00EF),
    (0x00F1, 0x00F7), (0x00F9, 0x00FD), (0x00FF, 0x010F), (0x0112, 0x0125),
    (0x0128, 0x0130), (0x0134, 0x0137), (0x0139, 0x013E), (0x0143, 0x0148),
    (0x014C, 0x0151), (0x0154, 0x0165), (0x0168, 0x017F), (0x01A0, 0x01A1),
    (0x01AF, 0x01B0), (0x01CD, 0x01DC), (0x01DE, 0x01DF), (0x01E6, 0x01ED),
    (0x01F0, 0x01F0), (0x01F4, 0x01F5), (0x01F8, 0x01FB), (0x0200, 0x021B),
    (0x021E, 0x021F), (0x0226, 0x0233), (0x2000, 0x200A), (0x2010, 0x2029),
    (0x202F, 0x205F), (0x2190, 0x22FF),
)  # fmt: skip
# The letters of KNOWN and the ASCII letter each folds to, in the same order.
FOLD_FROM = (
    "ÀÁÂÃÄÅÇÈÉÊËÌÍÎÏÑÒÓÔÕÖÙÚÛÜÝàáâãäåçèéêëìíîïñòóôõöùúûüýÿĀāĂăĄąĆ"
    "ćĈĉĊċČčĎďĒēĔĕĖėĘęĚěĜĝĞğĠġĢģĤĥĨĩĪīĬĭĮįİĴĵĶķĹĺĻļĽľŃńŅņŇňŌōŎŏŐő"
    "ŔŕŖŗŘřŚśŜŝŞşŠšŢţŤťŨũŪūŬŭŮůŰűŲųŴŵŶŷŸŹźŻżŽžſƠơƯưǍǎǏǐǑǒǓǔǕǖǗǘǙǚ"
    "ǛǜǞǟǦǧǨǩǪǫǬǭǰǴǵǸǹǺǻȀȁȂȃȄȅȆȇȈȉȊȋȌȍȎȏȐȑȒȓȔȕȖȗȘșȚțȞȟȦȧȨȩȪȫȬȭȮȯȰ"
    "ȱȲȳ"
)
FOLD_TO = (
    "aaaaaaceeeeiiiinooooouuuuyaaaaaaceeeeiiiinooooouuuuyyaaaaaac"
    "cccccccddeeeeeeeeeegggggggghhiiiiiiiiijjkkllllllnnnnnnoooooo"
    "rrrrrrssssssssttttuuuuuuuuuuuuwwyyyzzzzzzsoouuaaiioouuuuuuuu"
    "uuaaggkkoooojggnnaaaaaaeeeeiiiioooorrrruuuusstthhaaeeooooooo"
    "oyy"
)

TABLE = "paper_search"
COLUMNS = ("title", "abstract", "authors", "organization", "unsure")
UNSURE = "unsure"  # the SQLite marker: the one word of the "unsure" column
UNSURE_LEXEME = "UNSURE"  # PostgreSQL's: upper case, which no folded word is
FUNCTION = "paper_search_words"
# What joins two words into one for the matcher (digest.match.text.JOIN_CHARS: white space,
# hyphens, LaTeX's $ and braces), and the KNOWN characters that fold to a space (a spacing
# accent: "¨" is a space and a combining diaeresis), as a bracket expression.
JOIN = (
    "[\\x09-\\x0d\\x1c-\\x20\\x85\\xa0\\xa8\\xaf\\xb4\\xb8\\u1680\\u2000-\\u200a"
    "\\u2017\\u2028\\u2029\\u202f\\u203e\\u205f\\u3000${}\\u2010-\\u2013\\u2212-]"
)
INDEX = "ix_papers_search"


def _known_class() -> str:
    """KNOWN as the inside of a bracket expression (GLOB and regular expressions alike)."""
    return "".join(chr(a) if a == b else f"{chr(a)}-{chr(b)}" for a, b in KNOWN)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        _create_sqlite_index()
    elif dialect == "postgresql":
        _create_postgresql_index()


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for trigger in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {TABLE}_{trigger}")
        op.execute(f"DROP TABLE IF EXISTS {TABLE}")
    elif dialect == "postgresql":
        op.execute(f"DROP INDEX IF EXISTS {INDEX}")
        op.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}(text, text, json, text)")


# --- SQLite ---------------------------------------------------------------------------


def _sqlite_values(row: str) -> str:
    """The values `paper_search` indexes for a papers row (`new`, `old`, `papers`).

    A 'delete' must be given exactly the values the row was indexed with: these are
    computed from the row alone, the same way every time.
    """
    authors = (
        f"CASE WHEN json_valid({row}.authors) "
        f"THEN (SELECT group_concat(value, ', ') FROM json_each({row}.authors)) "
        f"ELSE {row}.authors END"
    )
    text = (
        f"{row}.title || ' ' || {row}.abstract || ' ' || coalesce({authors}, '') "
        f"|| ' ' || coalesce({row}.organization, '')"
    )
    outside = f"'*[^' || char(1) || '-' || char(127) || '{_known_class()}]*'"
    unsure = f"CASE WHEN ({text}) GLOB {outside} THEN '{UNSURE}' END"
    return f"{row}.title, {row}.abstract, {authors}, {row}.organization, {unsure}"


def _create_sqlite_index() -> None:
    columns = ", ".join(COLUMNS)
    # remove_diacritics 2 folds accents as the matcher does (see KNOWN). Word positions
    # are kept: "fine" right before "tun*" is the matcher's "finetuning" in "fine-tuning".
    op.execute(
        f"CREATE VIRTUAL TABLE {TABLE} USING fts5({columns}, content='', "
        "tokenize='unicode61 remove_diacritics 2')"
    )
    insert = f"INSERT INTO {TABLE} (rowid, {columns}) VALUES (new.rowid, {_sqlite_values('new')});"
    delete = (
        f"INSERT INTO {TABLE} ({TABLE}, rowid, {columns}) "
        f"VALUES ('delete', old.rowid, {_sqlite_values('old')});"
    )
    op.execute(f"CREATE TRIGGER {TABLE}_insert AFTER INSERT ON papers BEGIN {insert} END")
    op.execute(f"CREATE TRIGGER {TABLE}_delete AFTER DELETE ON papers BEGIN {delete} END")
    # Only a change of the indexed text re-indexes: upvotes change far more often.
    op.execute(
        f"CREATE TRIGGER {TABLE}_update AFTER UPDATE OF title, abstract, authors, "
        f"organization ON papers BEGIN {delete} {insert} END"
    )
    op.execute(
        f"INSERT INTO {TABLE} (rowid, {columns}) "
        f"SELECT papers.rowid, {_sqlite_values('papers')} FROM papers"
    )


# --- PostgreSQL -----------------------------------------------------------------------


def _create_postgresql_index() -> None:
    # Each field is lowered (ASCII only, in the C collation whatever the database's: lower()
    # elsewhere may turn "I" into a dotless "ı"), its KNOWN letters folded (translate is
    # slow, so only for text outside ASCII), then read as words of ASCII letters and digits
    # and the gap after each. A lexeme per word with its field's tag in front, and one per
    # two words joined by a space or a hyphen (JOIN), both written as one, with the tag in
    # upper case: the matcher's "finetuning" in "fine-tuning". Lexemes are cut at 2,000
    # characters (PostgreSQL's limit is 2,047 bytes): so long a word matches no interest
    # but a prefix, and its start still does. COST: the planner is to prefer the index to
    # calling this for every row, even on a small table.
    outside = f"[^\\x01-\\x7f{_known_class()}]"
    op.execute(
        f"""
        CREATE FUNCTION {FUNCTION}(title text, abstract text, authors json, organization text)
        RETURNS tsvector LANGUAGE sql IMMUTABLE PARALLEL SAFE COST 10000 AS $$
          WITH names AS (
            SELECT CASE WHEN json_typeof(authors) = 'array'
              THEN (SELECT string_agg(value, ', ') FROM json_array_elements_text(authors))
              ELSE authors::text END AS text
          ), lowered AS (
            SELECT field.tag, lower(coalesce(field.body, '') COLLATE "C") AS text
            FROM names, LATERAL (VALUES ('t', title), ('a', abstract), ('p', names.text),
                                        ('o', organization)) AS field (tag, body)
          ), folded AS (
            SELECT tag, CASE WHEN text ~ '[^\\x01-\\x7f]'
              THEN translate(text, '{FOLD_FROM}', '{FOLD_TO}') ELSE text END AS text
            FROM lowered
          ), words AS (
            SELECT tag, left(found[1], 2000) AS word, found[2] ~ '^{JOIN}+$' AS joins,
                   left(lead(found[1]) OVER (PARTITION BY tag ORDER BY number), 2000) AS next
            FROM folded, regexp_matches(text, '([a-z0-9]+)([^a-z0-9]*)', 'g')
                           WITH ORDINALITY AS hit (found, number)
          )
          SELECT array_to_tsvector(array(
            SELECT tag || word FROM words
            UNION ALL
            SELECT upper(tag) || left(word || next, 2000) FROM words WHERE joins AND next <> ''
          )) || CASE
            WHEN concat_ws(' ', title, abstract, (SELECT text FROM names), organization)
                 ~ '{outside}'
            THEN '{UNSURE_LEXEME}'::tsvector ELSE ''::tsvector END
        $$
        """
    )
    op.execute(
        f"CREATE INDEX {INDEX} ON papers USING gin "
        f"({FUNCTION}(title, abstract, authors, organization))"
    )
