"""Seed papers (`digest.learn.seeds`): the `like:ID` entries of a reader's interests kept
as feedback rows wherever interests are saved: sign-up, confirmation, the operator's
`add` and `import`. On a real SQLite file."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from digest.config import Settings
from digest.jobs.reader_files import import_readers
from digest.jobs.readers import Mailer, add_reader, check_reader
from digest.learn.seeds import may_have_seeds, seed_ids, sync_reader_seeds
from digest.store import Database
from digest.store.feedback import LESS, record_vote, votes_of
from digest.store.subscribers import create_subscriber
from tests.readers_support import mail_settings, stored
from tests.web_support import NOW, Site, link_path

LATER = NOW + timedelta(hours=1)


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    """Settings that can mail: a base URL for the links, a sender, a secret."""
    return mail_settings(make_settings)


def _seeds(database: Database, email: str) -> list[tuple[str, int, str]]:
    """(paper, vote, source) of a reader's feedback rows, by paper."""
    reader = stored(database, email)
    with database.session() as session:
        return sorted((v.paper_id, v.vote, v.source) for v in votes_of(session, reader.id))


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("diffusion, like:2509.24002v2\nLIKE : hep-th/9901001", ("2509.24002", "hep-th/9901001")),
        ("like:2509.24002, like:arXiv:2509.24002", ("2509.24002",)),
        ("diffusion, -survey", ()),
        ("diffusion, like:2509.240", ()),  # a list that does not parse names nothing
        ("like:2509.24002, title:", ()),
        ("", ()),
    ],
)
def test_seed_ids_are_those_of_a_list_that_parses(text: str, ids: tuple[str, ...]) -> None:
    assert seed_ids(text) == ids


def test_the_cheap_check_misses_no_seed() -> None:
    assert may_have_seeds("diffusion\nLike :2509.24002")
    assert not may_have_seeds("diffusion, likelihood, -survey")


def test_sync_adds_and_drops_seeds_and_keeps_a_readers_own_verdicts(
    database: Database,
) -> None:
    with database.session() as session:
        ada = create_subscriber(
            session, "ada@example.org", "diffusion", send_time="08:00", timezone="UTC", now=NOW
        )
        assert sync_reader_seeds(session, ada.id, "like:2509.24002, like:2510.00001", NOW)
        assert not sync_reader_seeds(session, ada.id, "like:2510.00001\nlike:2509.24002", NOW)
        record_vote(session, ada.id, "2510.00001", LESS, "email", NOW)  # from a digest
        assert sync_reader_seeds(session, ada.id, "diffusion, like:hep-th/9901001", LATER)
        rows = sorted((v.paper_id, v.vote, v.source) for v in votes_of(session, ada.id))
        assert rows == [("2510.00001", -1, "email"), ("hep-th/9901001", 1, "seed")]
        # A list that no longer parses names no seeds: the seed rows go, the verdict stays.
        assert sync_reader_seeds(session, ada.id, "diffusion, like:2509.240", LATER)
        assert [v.paper_id for v in votes_of(session, ada.id)] == ["2510.00001"]


def test_adding_a_reader_stores_their_seeds(settings: Settings, database: Database) -> None:
    fields = check_reader(settings, email="ada@example.org", interests="agents, like:2509.24002")
    add_reader(database, fields, now=NOW, confirmed=True)
    assert _seeds(database, "ada@example.org") == [("2509.24002", 1, "seed")]
    # A sign-up (add without --confirmed) stores them too, pending as the reader is.
    fields = check_reader(settings, email="bo@example.org", interests="like:hep-th/9901001")
    add_reader(database, fields, now=NOW, mailer=Mailer.from_settings(settings))
    assert stored(database, "bo@example.org").status == "pending"
    assert _seeds(database, "bo@example.org") == [("hep-th/9901001", 1, "seed")]
    # The operator confirms the pending reader with other interests: their seeds follow.
    fields = check_reader(settings, email="bo@example.org", interests="like:2510.00001, agents")
    add_reader(database, fields, now=LATER, confirmed=True)
    assert _seeds(database, "bo@example.org") == [("2510.00001", 1, "seed")]


def test_an_import_stores_the_seeds_of_the_rows_naming_some(
    settings: Settings, database: Database, tmp_path: Path
) -> None:
    path = tmp_path / "readers.csv"
    path.write_text(
        "email,interests\n"
        'ada@example.org,"agents, like:2509.24002, like:2510.00001v3"\n'
        "bo@example.org,diffusion\n"
    )
    report = import_readers(settings, database, path, now=NOW, confirmed=True)
    assert report.added == 2
    assert _seeds(database, "ada@example.org") == [
        ("2509.24002", 1, "seed"),
        ("2510.00001", 1, "seed"),
    ]
    assert _seeds(database, "bo@example.org") == []
    # A pending reader the import confirms gets the seeds of its row.
    add_reader(
        database,
        check_reader(settings, email="cy@example.org", interests="like:2509.24002"),
        now=NOW,
        mailer=Mailer.from_settings(settings),
    )
    path.write_text("email,interests\ncy@example.org,like:hep-th/9901001\n")
    import_readers(settings, database, path, now=LATER, confirmed=True)
    assert stored(database, "cy@example.org").status == "active"
    assert _seeds(database, "cy@example.org") == [("hep-th/9901001", 1, "seed")]


def test_signing_up_and_confirming_stores_the_seeds_the_link_carries(site: Site) -> None:
    # Ada left; someone signs her address up with seeds of theirs: nothing changes until
    # she confirms, and then her seeds are those of the link.
    site.add_reader("ada@example.org", "agents", status="unsubscribed")
    with site.database.session() as session:
        sync_reader_seeds(session, site.subscriber().id, "agents, like:2509.24002", NOW)
    site.clock.advance(days=30)
    site.signup(interests="world model, like:2510.00001")
    assert _seeds(site.database, "ada@example.org") == [("2509.24002", 1, "seed")]
    (message,) = site.mails(1)
    assert site.submit(link_path(message, "confirm")).status_code == 200
    assert site.subscriber().status == "active"
    assert _seeds(site.database, "ada@example.org") == [("2510.00001", 1, "seed")]
    # A new address's seeds are stored with the sign-up.
    site.signup("bo@example.org", interests="like:hep-th/9901001")
    assert _seeds(site.database, "bo@example.org") == [("hep-th/9901001", 1, "seed")]
