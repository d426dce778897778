"""The daily digest job: who is due, which papers, once, across days and downtime."""

from __future__ import annotations

import os
import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from digest.config import Settings
from digest.errors import DigestError
from digest.jobs import digests as digests_job
from digest.jobs.digests import SETTLE, queue_due_digests
from digest.match import Matcher
from digest.paper import Paper
from digest.render import DigestRenderer
from digest.sources import hf
from digest.store import Database, open_database
from digest.store.models import OutboxRow, SubscriberRow
from digest.store.papers import save_papers
from digest.store.subscribers import (
    change_status,
    create_subscriber,
    get_subscriber,
    update_preferences,
)
from digest.subscriber import digest_day, local_send_instant
from tests.outbox_rows import get_message

DATA = Path(__file__).parent / "data" / "sources"
# Thursday 11 June 2026; subscribers read at 08:00 in Paris (06:00 UTC in summer).
SIGNUP = datetime(2026, 6, 11, 12, 0, tzinfo=UTC)
FRIDAY_8AM = datetime(2026, 6, 12, 6, 0, tzinfo=UTC)


@pytest.fixture
def database(store_database: Database) -> Database:
    """Every test here runs on SQLite and on PostgreSQL."""
    return store_database


@pytest.fixture(scope="module")
def listing() -> tuple[Paper, ...]:
    """The 30 papers of the Hugging Face list of 12 June 2026."""
    return hf.parse_api((DATA / "hf_api_daily_papers_2026-06-12.json").read_bytes(), "api").papers


def by_title(papers: tuple[Paper, ...], words: str) -> Paper:
    return next(p for p in papers if words.lower() in p.title.lower())


def store(database: Database, papers: list[Paper] | tuple[Paper, ...], at: datetime) -> None:
    with database.session() as session:
        save_papers(session, papers, at)


def subscribe(
    database: Database,
    email: str,
    interests: str,
    *,
    at: datetime = SIGNUP,
    send_time: str = "08:00",
    timezone: str = "Europe/Paris",
) -> int:
    with database.session() as session:
        return create_subscriber(
            session,
            email,
            interests,
            send_time=send_time,
            timezone=timezone,
            now=at,
            status="active",
        ).id


def digests(database: Database) -> list[tuple[int, date, str]]:
    """(subscriber, digest date, decoded text) of every queued digest."""
    found = []
    with database.session() as session:
        rows = session.execute(
            select(OutboxRow.id, OutboxRow.subscriber_id, OutboxRow.digest_date)
            .where(OutboxRow.kind == "digest")
            .order_by(OutboxRow.id)
        ).all()
        for row_id, subscriber_id, day in rows:
            message = get_message(session, row_id)
            assert message is not None
            found.append((subscriber_id, day, message.body("plain")))
    return found


def run(settings: Settings, database: Database, now: datetime, **kwargs: object):
    return queue_due_digests(settings, database, now=now, **kwargs)  # type: ignore[arg-type]


def test_nothing_is_due_before_the_chosen_time(
    settings: Settings, database: Database, listing: tuple[Paper, ...]
) -> None:
    store(database, listing, SIGNUP)
    subscribe(database, "ada@example.org", "agents")
    report = run(settings, database, FRIDAY_8AM - timedelta(minutes=1))
    assert (report.due, report.queued) == (0, 0)
    assert digests(database) == []


def test_a_due_subscriber_gets_one_digest_of_matching_papers(
    settings: Settings, database: Database, listing: tuple[Paper, ...]
) -> None:
    store(database, listing, SIGNUP)
    ada = subscribe(database, "ada@example.org", "title:psychometric")
    report = run(settings, database, FRIDAY_8AM)
    assert (report.due, report.queued, report.empty) == (1, 1, 0)
    [(subscriber_id, day, text)] = digests(database)
    assert (subscriber_id, day) == (ada, date(2026, 6, 12))
    wanted = [p for p in listing if "psychometric" in p.title.lower()]
    assert wanted and all(p.title[:40] in " ".join(text.split()) for p in wanted)
    others = [p for p in listing if p not in wanted]
    assert not any(p.title[:40] in " ".join(text.split()) for p in others)
    with database.session() as session:
        after = get_subscriber(session, ada)
    assert after is not None
    assert after.last_digest_at == FRIDAY_8AM - SETTLE
    assert after.next_digest_at == FRIDAY_8AM + timedelta(days=1)
    # Running again at once, or a minute later, sends nothing more.
    assert run(settings, database, FRIDAY_8AM).due == 0
    assert run(settings, database, FRIDAY_8AM + timedelta(minutes=1)).due == 0
    assert len(digests(database)) == 1


def test_each_digest_holds_only_papers_first_seen_since_the_last(
    settings: Settings, database: Database, listing: tuple[Paper, ...]
) -> None:
    first, second = listing[:15], listing[15:]
    store(database, first, SIGNUP)
    subscribe(database, "ada@example.org", "model, models, language, agent, agents, learning")
    run(settings, database, FRIDAY_8AM)
    # The rest arrive on Friday afternoon; Saturday's digest has them and only them.
    store(database, second, FRIDAY_8AM + timedelta(hours=8))
    run(settings, database, FRIDAY_8AM + timedelta(days=1))
    [(_, friday, text1), (_, saturday, text2)] = digests(database)
    assert (friday, saturday) == (date(2026, 6, 12), date(2026, 6, 13))
    flat1, flat2 = " ".join(text1.split()), " ".join(text2.split())
    assert any(p.title[:40] in flat1 for p in first)
    assert not any(p.title[:40] in flat1 for p in second)
    assert any(p.title[:40] in flat2 for p in second)
    assert not any(p.title[:40] in flat2 for p in first)


def test_a_paper_seen_just_before_the_cutoff_waits_for_the_next_digest(
    settings: Settings, database: Database, listing: tuple[Paper, ...]
) -> None:
    subscribe(database, "ada@example.org", "title:psychometric")
    paper = next(p for p in listing if "psychometric" in p.title.lower())
    # Saved by a fetch that began two minutes before the digest ran: inside SETTLE.
    store(database, [paper], FRIDAY_8AM - timedelta(minutes=2))
    report = run(settings, database, FRIDAY_8AM)
    assert (report.due, report.queued, report.empty) == (1, 0, 1)
    run(settings, database, FRIDAY_8AM + timedelta(days=1))
    [(_, day, text)] = digests(database)
    assert day == date(2026, 6, 13) and paper.title[:40] in " ".join(text.split())


def test_a_paper_seen_exactly_at_the_cutoff_goes_in_the_next_digest(
    settings: Settings, database: Database, listing: tuple[Paper, ...]
) -> None:
    subscribe(database, "ada@example.org", "title:psychometric")
    paper = next(p for p in listing if "psychometric" in p.title.lower())
    store(database, [paper], FRIDAY_8AM - SETTLE)  # the very instant of Friday's cutoff
    assert run(settings, database, FRIDAY_8AM).empty == 1
    run(settings, database, FRIDAY_8AM + timedelta(days=1))
    [(_, day, text)] = digests(database)
    assert day == date(2026, 6, 13) and paper.title[:40] in " ".join(text.split())


def test_after_downtime_one_digest_dated_the_last_missed_day(
    settings: Settings, database: Database, listing: tuple[Paper, ...]
) -> None:
    store(database, listing[:10], SIGNUP)
    ada = subscribe(database, "ada@example.org", "model, models, language, learning, agents")
    store(database, listing[10:], FRIDAY_8AM + timedelta(days=1))
    # Down from Thursday until Sunday 10:30 Paris time: Friday's, Saturday's and Sunday's
    # 08:00 passed. One digest comes, dated Sunday, with everything since sign-up.
    back = datetime(2026, 6, 14, 8, 30, tzinfo=UTC)
    report = run(settings, database, back)
    assert (report.due, report.queued) == (1, 1)
    [(subscriber_id, day, text)] = digests(database)
    assert (subscriber_id, day) == (ada, date(2026, 6, 14))
    flat = " ".join(text.split())
    assert any(p.title[:40] in flat for p in listing[:10])
    assert any(p.title[:40] in flat for p in listing[10:])
    with database.session() as session:
        after = get_subscriber(session, ada)
    assert after is not None and after.next_digest_at == datetime(2026, 6, 15, 6, tzinfo=UTC)
    assert run(settings, database, back + timedelta(hours=1)).due == 0


def test_nothing_matched_sends_nothing_but_moves_on(
    settings: Settings, database: Database, listing: tuple[Paper, ...]
) -> None:
    store(database, listing, SIGNUP)
    ada = subscribe(database, "ada@example.org", "title:zebrafish")
    report = run(settings, database, FRIDAY_8AM)
    assert (report.due, report.queued, report.empty) == (1, 0, 1)
    assert digests(database) == []
    with database.session() as session:
        after = get_subscriber(session, ada)
    assert after is not None and after.last_digest_at == FRIDAY_8AM - SETTLE


def test_send_empty_sends_a_nothing_new_digest(
    make_settings, database: Database, listing: tuple[Paper, ...]
) -> None:
    settings = make_settings(mail={"send_empty": True})
    store(database, listing, SIGNUP)
    subscribe(database, "ada@example.org", "title:zebrafish")
    assert run(settings, database, FRIDAY_8AM).queued == 1
    [(_, _, text)] = digests(database)
    assert "Nothing new matched your interests today" in " ".join(text.split())


def test_only_active_subscribers_are_due(
    settings: Settings, database: Database, listing: tuple[Paper, ...]
) -> None:
    store(database, listing, SIGNUP)
    ids = {
        status: subscribe(database, f"{status}@example.org", "model, models, agents")
        for status in ("active", "paused", "unsubscribed", "bounced", "pending")
    }
    with database.session() as session:
        for status, subscriber_id in ids.items():
            change_status(session, subscriber_id, status, SIGNUP)
    report = run(settings, database, FRIDAY_8AM)
    assert (report.due, report.queued) == (1, 1)
    assert [subscriber for subscriber, _, _ in digests(database)] == [ids["active"]]


def test_resuming_after_a_pause_starts_from_the_day_before(
    settings: Settings, database: Database, listing: tuple[Paper, ...]
) -> None:
    ada = subscribe(database, "ada@example.org", "model, models, agents, learning")
    with database.session() as session:
        change_status(session, ada, "paused", SIGNUP)
    store(database, listing[:10], SIGNUP + timedelta(days=1))  # seen while paused
    resumed = SIGNUP + timedelta(days=10)
    store(database, listing[10:], resumed - timedelta(hours=2))  # the day before resuming
    with database.session() as session:
        change_status(session, ada, "active", resumed)
    run(settings, database, resumed + timedelta(days=1))
    [(_, _, text)] = digests(database)
    flat = " ".join(text.split())
    assert not any(p.title[:40] in flat for p in listing[:10])
    assert any(p.title[:40] in flat for p in listing[10:])


def test_moving_the_time_later_the_same_day_sends_no_second_digest(
    settings: Settings, database: Database, listing: tuple[Paper, ...]
) -> None:
    store(database, listing[:15], SIGNUP)
    ada = subscribe(database, "ada@example.org", "model, models, agents, learning, language")
    run(settings, database, FRIDAY_8AM)
    noon = FRIDAY_8AM + timedelta(hours=4)
    with database.session() as session:
        update_preferences(session, ada, send_time="20:00", now=noon)
    store(database, listing[15:], noon)
    report = run(settings, database, datetime(2026, 6, 12, 18, 0, tzinfo=UTC))  # 20:00 Paris
    assert (report.due, report.already, report.queued) == (1, 1, 0)
    # The papers of the afternoon are not lost: they come on Saturday evening.
    run(settings, database, datetime(2026, 6, 13, 18, 0, tzinfo=UTC))
    days = [day for _, day, _ in digests(database)]
    assert days == [date(2026, 6, 12), date(2026, 6, 13)]
    assert any(p.title[:40] in " ".join(digests(database)[1][2].split()) for p in listing[15:])


def test_time_zones_pick_their_own_local_morning(
    settings: Settings, database: Database, listing: tuple[Paper, ...]
) -> None:
    store(database, listing, SIGNUP)
    tokyo = subscribe(database, "t@example.org", "agents", timezone="Asia/Tokyo")
    new_york = subscribe(database, "n@example.org", "agents", timezone="America/New_York")
    # 08:00 in Tokyo is 23:00 UTC the day before; in New York 12:00 UTC.
    first = run(settings, database, datetime(2026, 6, 11, 23, 0, tzinfo=UTC))
    assert first.queued == 1
    second = run(settings, database, datetime(2026, 6, 12, 12, 0, tzinfo=UTC))
    assert second.queued == 1
    assert [(s, d) for s, d, _ in digests(database)] == [
        (tokyo, date(2026, 6, 12)),
        (new_york, date(2026, 6, 12)),
    ]


def test_many_subscribers_in_batches(
    settings: Settings,
    database: Database,
    listing: tuple[Paper, ...],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store(database, listing, SIGNUP)
    ids = [subscribe(database, f"reader{n}@example.org", "agents, model") for n in range(7)]
    built = []
    monkeypatch.setattr(
        digests_job, "Matcher", lambda papers, **kw: built.append(papers) or Matcher(papers, **kw)
    )
    report = run(settings, database, FRIDAY_8AM, batch=3)
    assert (report.due, report.queued) == (7, 7)
    assert sorted(s for s, _, _ in digests(database)) == ids
    assert len(built) == 1  # the papers are indexed once for the run, not once per batch


def test_an_old_watermark_widens_only_its_batch_and_at_most_30_days(
    settings: Settings,
    database: Database,
    listing: tuple[Paper, ...],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ancient, old, new = listing[:5], listing[5:15], listing[15:]
    store(database, ancient, FRIDAY_8AM - timedelta(days=35))
    store(database, old, FRIDAY_8AM - timedelta(days=20))
    store(database, new, SIGNUP)
    ids = [
        subscribe(database, f"reader{n}@example.org", "agents, model, learning") for n in range(3)
    ]
    with database.session() as session:  # back after a month away, say
        session.execute(
            update(SubscriberRow)
            .where(SubscriberRow.id == ids[1])
            .values(last_digest_at=FRIDAY_8AM - timedelta(days=40))
        )
    built: list[int] = []
    monkeypatch.setattr(
        digests_job,
        "Matcher",
        lambda papers, **kw: built.append(len(papers)) or Matcher(papers, **kw),
    )
    report = run(settings, database, FRIDAY_8AM, batch=1)
    assert report.queued == 3
    # One index of the last week for the run, one wider (but at most 30 days) for the
    # batch that needs it.
    assert built == [15, 25]
    texts = {subscriber: " ".join(text.split()) for subscriber, _, text in digests(database)}
    assert any(p.title[:40] in texts[ids[1]] for p in old)
    assert not any(p.title[:40] in texts[ids[1]] for p in ancient)
    assert not any(p.title[:40] in texts[ids[0]] for p in old)


def test_a_batch_outside_the_run_window_gets_a_wider_one(
    settings: Settings,
    database: Database,
    listing: tuple[Paper, ...],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store(database, listing, SIGNUP)
    ids = [subscribe(database, f"reader{n}@example.org", "agents") for n in range(2)]
    # As if the run's window had been worked out before someone older became due.
    late = FRIDAY_8AM - timedelta(hours=1)
    monkeypatch.setattr(digests_job, "oldest_due_watermark", lambda session, now: late)
    report = run(settings, database, FRIDAY_8AM, batch=1)
    assert (report.due, report.queued) == (2, 2)
    assert sorted(s for s, _, _ in digests(database)) == ids


def test_interests_that_no_longer_parse_are_skipped_not_fatal(
    settings: Settings, database: Database, listing: tuple[Paper, ...]
) -> None:
    store(database, listing, SIGNUP)
    good = subscribe(database, "good@example.org", "agents")
    bad = subscribe(database, "bad@example.org", "agents")
    with database.session() as session:
        session.execute(
            update(SubscriberRow).where(SubscriberRow.id == bad).values(interests='"unclosed')
        )
    report = run(settings, database, FRIDAY_8AM)
    assert (report.due, report.queued, report.invalid) == (2, 1, 1)
    assert [s for s, _, _ in digests(database)] == [good]
    with database.session() as session:
        skipped = get_subscriber(session, bad)
    assert skipped is not None and skipped.next_digest_at == FRIDAY_8AM + timedelta(days=1)


def test_a_digest_that_cannot_be_rendered_keeps_the_papers_for_later(
    settings: Settings, database: Database, listing: tuple[Paper, ...]
) -> None:
    store(database, listing, SIGNUP)
    good = subscribe(database, "good@example.org", "agents")
    odd = subscribe(database, "odd@example.org", "agents")
    with database.session() as session:  # stored by an older version, say: not mailable
        session.execute(
            update(SubscriberRow).where(SubscriberRow.id == odd).values(email="odd@bad_domain")
        )
        before = get_subscriber(session, odd)
    report = run(settings, database, FRIDAY_8AM)
    assert (report.due, report.queued, report.invalid) == (2, 1, 1)
    with database.session() as session:
        kept, moved = get_subscriber(session, odd), get_subscriber(session, good)
    assert before is not None and kept is not None and moved is not None
    assert kept.last_digest_at == before.last_digest_at  # its papers are still to come
    assert moved.last_digest_at == FRIDAY_8AM - SETTLE
    assert kept.next_digest_at == FRIDAY_8AM + timedelta(days=1)  # tried again tomorrow


def test_a_failing_batch_changes_nothing(
    settings: Settings, database: Database, listing: tuple[Paper, ...]
) -> None:
    store(database, listing, SIGNUP)
    ids = [subscribe(database, f"reader{n}@example.org", "agents, model") for n in range(3)]

    class Broken(DigestRenderer):
        calls = 0

        def render_digest(self, *args: object, **kwargs: object):  # type: ignore[override]
            Broken.calls += 1
            if Broken.calls == 2:
                raise RuntimeError("disk full")
            return super().render_digest(*args, **kwargs)  # type: ignore[arg-type]

    from digest.tokens import secret_key

    with pytest.raises(RuntimeError):
        run(settings, database, FRIDAY_8AM, renderer=Broken(settings, secret_key(settings)))
    assert digests(database) == []
    with database.session() as session:
        for subscriber_id in ids:
            subscriber = get_subscriber(session, subscriber_id)
            assert subscriber is not None and subscriber.next_digest_at == FRIDAY_8AM
    # The next run does the whole job.
    assert run(settings, database, FRIDAY_8AM + timedelta(minutes=5)).queued == 3


def test_a_time_changed_on_the_manage_page_during_the_run_is_kept(
    settings: Settings, database: Database, listing: tuple[Paper, ...]
) -> None:
    store(database, listing, SIGNUP)
    ada = subscribe(database, "ada@example.org", "agents")
    changed_at = FRIDAY_8AM + timedelta(seconds=30)

    class Meanwhile(DigestRenderer):
        """While the job renders, Ada picks 18:00 on the manage page (its own session)."""

        def render_digest(self, *args: object, **kwargs: object):  # type: ignore[override]
            with database.session() as session:
                update_preferences(session, ada, send_time="18:00", now=changed_at)
            return super().render_digest(*args, **kwargs)  # type: ignore[arg-type]

    from digest.tokens import secret_key

    report = run(settings, database, FRIDAY_8AM, renderer=Meanwhile(settings, secret_key(settings)))
    assert report.queued == 1
    with database.session() as session:
        after = get_subscriber(session, ada)
    assert after is not None
    # 18:00 in Paris that same Friday, as she chose; not the job's Saturday 08:00.
    assert after.next_digest_at == datetime(2026, 6, 12, 16, 0, tzinfo=UTC)
    assert after.last_digest_at == FRIDAY_8AM - SETTLE


def test_summary_line(settings: Settings, database: Database) -> None:
    report = run(settings, database, FRIDAY_8AM)
    assert report.summary() == (
        "digests due 0, queued 0, nothing new 0, already queued 0, bad interests 0, "
        "papers considered 0"
    )


# --- one reader, now (`digest send-digests --email`) -----------------------------------

# Thursday 11 June 2026, 17:00 in Paris: long before the reader's 08:00 of Friday.
THURSDAY_5PM = datetime(2026, 6, 11, 15, 0, tzinfo=UTC)


def now_for(database: Database, settings: Settings, email: str, now: datetime):
    return digests_job.queue_digest_now(settings, database, email, now=now)


def test_one_reader_now_gets_todays_digest_once(
    settings: Settings, database: Database, listing: tuple[Paper, ...]
) -> None:
    store(database, listing, SIGNUP)
    ada = subscribe(database, "ada@example.org", "title:psychometric")
    subscribe(database, "bob@example.org", "title:psychometric")
    done = now_for(database, settings, "Ada@Example.org", THURSDAY_5PM)
    assert (done.outcome, done.day, done.state) == ("queued", date(2026, 6, 11), "queued")
    assert (done.papers, done.until) == (len(listing), THURSDAY_5PM - SETTLE)
    assert done.since == SIGNUP - timedelta(days=1)  # the watermark a sign-up starts with
    [(subscriber_id, day, text)] = digests(database)  # Ada's only, dated today in Paris
    assert (subscriber_id, day) == (ada, date(2026, 6, 11))
    assert "psychometric" in text.lower()
    with database.session() as session:
        after = get_subscriber(session, ada)
    assert after is not None
    assert after.last_digest_at == THURSDAY_5PM - SETTLE  # moved as the daily job moves it
    assert after.next_digest_at == FRIDAY_8AM  # her time is still tomorrow 08:00
    # Again the same day: nothing new queued, whatever arrived meanwhile.
    later = Paper(id="2606.99999", title="Psychometric agents", abstract="x")
    store(database, [later], THURSDAY_5PM + timedelta(hours=1))
    again = now_for(database, settings, "ada@example.org", THURSDAY_5PM + timedelta(hours=6))
    assert (again.outcome, again.day, again.state) == ("already", date(2026, 6, 11), "queued")
    assert again.outbox_id == done.outbox_id
    assert len(digests(database)) == 1


def test_the_daily_job_carries_on_from_a_digest_made_now(
    settings: Settings, database: Database, listing: tuple[Paper, ...]
) -> None:
    first, second = listing[:15], listing[15:]
    store(database, first, SIGNUP)
    ada = subscribe(database, "ada@example.org", "model, models, language, agent, agents")
    # Friday 07:00 in Paris, before her 08:00: the digest made now is Friday's, so the
    # daily job at 08:00 finds Friday taken and sends nothing more that day.
    early = FRIDAY_8AM - timedelta(hours=1)
    assert now_for(database, settings, "ada@example.org", early).outcome == "queued"
    store(database, second, early + timedelta(minutes=30))
    report = run(settings, database, FRIDAY_8AM)
    assert (report.due, report.queued, report.already) == (1, 0, 1)
    # Saturday's digest starts where the one made now ended: the rest, and only them.
    run(settings, database, FRIDAY_8AM + timedelta(days=1))
    [(_, friday, text1), (_, saturday, text2)] = digests(database)
    assert (friday, saturday) == (date(2026, 6, 12), date(2026, 6, 13))
    flat1, flat2 = " ".join(text1.split()), " ".join(text2.split())
    assert not any(p.title[:40] in flat1 for p in second)
    assert not any(p.title[:40] in flat2 for p in first)
    assert any(p.title[:40] in flat2 for p in second)
    with database.session() as session:
        after = get_subscriber(session, ada)
    assert after is not None and after.next_digest_at == FRIDAY_8AM + timedelta(days=2)


def test_one_reader_now_after_the_daily_digest_is_already_sent(
    settings: Settings, database: Database, listing: tuple[Paper, ...]
) -> None:
    store(database, listing, SIGNUP)
    subscribe(database, "ada@example.org", "agents")
    assert run(settings, database, FRIDAY_8AM).queued == 1
    done = now_for(database, settings, "ada@example.org", FRIDAY_8AM + timedelta(hours=3))
    assert (done.outcome, done.day) == ("already", date(2026, 6, 12))
    assert len(digests(database)) == 1


def test_one_reader_now_whose_time_passed_moves_on_to_their_next(
    settings: Settings, database: Database, listing: tuple[Paper, ...]
) -> None:
    store(database, listing, SIGNUP)
    ada = subscribe(database, "ada@example.org", "agents")
    # Friday 09:00 in Paris and the daily job has not run (the service was down): the
    # digest made now is Friday's, and her next is Saturday's.
    done = now_for(database, settings, "ada@example.org", FRIDAY_8AM + timedelta(hours=1))
    assert (done.outcome, done.day) == ("queued", date(2026, 6, 12))
    with database.session() as session:
        after = get_subscriber(session, ada)
    assert after is not None and after.next_digest_at == FRIDAY_8AM + timedelta(days=1)
    assert run(settings, database, FRIDAY_8AM + timedelta(hours=2)).due == 0


def test_one_reader_now_with_nothing_matched_queues_nothing_and_moves_on(
    settings: Settings, database: Database, listing: tuple[Paper, ...]
) -> None:
    store(database, listing, SIGNUP)
    ada = subscribe(database, "ada@example.org", "title:zebrafish")
    done = now_for(database, settings, "ada@example.org", THURSDAY_5PM)
    assert (done.outcome, done.state, done.papers) == ("empty", None, len(listing))
    assert digests(database) == []
    with database.session() as session:
        after = get_subscriber(session, ada)
    assert after is not None and after.last_digest_at == THURSDAY_5PM - SETTLE


@pytest.mark.parametrize(
    ("status", "words"),
    [
        ("paused", "ada@example.org is paused: no digest until they resume"),
        ("unsubscribed", "ada@example.org unsubscribed: no digest goes to them"),
        ("bounced", "ada@example.org is bounced"),
        ("pending", "ada@example.org has not confirmed their address yet"),
    ],
)
def test_one_reader_now_who_is_not_active_is_refused(
    settings: Settings, database: Database, listing: tuple[Paper, ...], status: str, words: str
) -> None:
    store(database, listing, SIGNUP)
    ada = subscribe(database, "ada@example.org", "agents")
    with database.session() as session:
        change_status(session, ada, status, SIGNUP)
        before = get_subscriber(session, ada)
    with pytest.raises(DigestError, match=re.escape(words)):
        now_for(database, settings, "ada@example.org", THURSDAY_5PM)
    with database.session() as session:
        assert get_subscriber(session, ada) == before
    assert digests(database) == []


def test_one_reader_now_refusals_change_nothing(
    settings: Settings, database: Database, listing: tuple[Paper, ...]
) -> None:
    store(database, listing, SIGNUP)
    with pytest.raises(
        DigestError, match=re.escape("no subscriber with the address x@example.org")
    ):
        now_for(database, settings, "x@example.org", THURSDAY_5PM)
    bad = subscribe(database, "bad@example.org", "agents")
    odd = subscribe(database, "odd@example.org", "agents")
    with database.session() as session:
        session.execute(
            update(SubscriberRow).where(SubscriberRow.id == bad).values(interests='"unclosed')
        )
        session.execute(
            update(SubscriberRow).where(SubscriberRow.id == odd).values(email="odd@bad_domain")
        )
        before = [get_subscriber(session, bad), get_subscriber(session, odd)]
    with pytest.raises(
        DigestError, match=re.escape("bad@example.org: their interests no longer parse")
    ):
        now_for(database, settings, "bad@example.org", THURSDAY_5PM)
    with pytest.raises(DigestError, match=re.escape("cannot make the digest of odd@bad_domain: ")):
        now_for(database, settings, "odd@bad_domain", THURSDAY_5PM)
    with database.session() as session:
        assert [get_subscriber(session, bad), get_subscriber(session, odd)] == before
    assert digests(database) == []


def test_trending_follows_the_hugging_face_listing_with_fresh_upvotes(
    settings: Settings, database: Database, listing: tuple[Paper, ...]
) -> None:
    top = by_title(listing, "EvoArena")  # 118 upvotes: the most of the list
    # EvoArena was on arXiv two days before the reader signed up (their first digest looks
    # one day back); HF lists it the morning after they signed up.
    on_arxiv = Paper(id=top.id, title=top.title, abstract=top.abstract, sources=("arxiv",))
    store(database, [on_arxiv], SIGNUP - timedelta(days=2))
    reader = subscribe(database, "ada@example.org", "trending:3\nagents")
    keywords_only = subscribe(database, "bob@example.org", "agents")
    rest = [p for p in listing if p.id != top.id]
    store(database, [replace(top, upvotes=1), *rest], SIGNUP + timedelta(hours=6))
    # Upvotes keep rising: a refetch before the send time updates the counts it ranks by.
    store(database, [replace(top, upvotes=500)], FRIDAY_8AM - timedelta(hours=1))
    run(settings, database, FRIDAY_8AM)
    texts = {subscriber: " ".join(text.split()) for subscriber, _, text in digests(database)}
    trending = texts[reader]
    assert (
        "The 3 most upvoted papers on Hugging Face Daily Papers since your last digest" in trending
    )
    first, second = (
        trending.index("== Trending =="),
        trending.index("== Matching your interests =="),
    )
    evo = trending.index("EvoArena")
    assert first < evo < second and trending.count("EvoArena: Tracking") == 1
    assert "500 upvotes" in trending
    # For keywords the paper is old news (first seen before the reader's watermark): it is
    # there for trending alone, and not in the keyword reader's digest at all.
    assert "Matched: trending #1 Large language model" in trending
    assert "EvoArena" not in texts[keywords_only]
    # The next day's digest has no trending paper twice: none new, so the section says so.
    store(database, [replace(top, upvotes=900)], FRIDAY_8AM + timedelta(hours=3))
    run(settings, database, FRIDAY_8AM + timedelta(days=1))
    later = [" ".join(t.split()) for s, day, t in digests(database) if s == reader][1:]
    assert later == [] or "EvoArena" not in later[0]


# --- several processes ([schedule] digest_workers) ----------------------------------------


class PidRecorder(DigestRenderer):
    """Writes down which process rendered each digest (a file: workers are processes)."""

    log: Path

    def render_digest(self, subscriber, *args: object, **kwargs: object):  # type: ignore[override]
        with self.log.open("a") as handle:
            handle.write(f"{os.getpid()} {subscriber.id}\n")
        return super().render_digest(subscriber, *args, **kwargs)  # type: ignore[arg-type]


def test_workers_share_the_batches_and_each_reader_gets_one_digest(
    make_settings,
    database: Database,
    listing: tuple[Paper, ...],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    settings = make_settings(schedule={"digest_workers": 3})
    store(database, listing, SIGNUP)
    ids = [subscribe(database, f"reader{n}@example.org", "agents, model") for n in range(7)]
    built = []
    monkeypatch.setattr(
        digests_job, "Matcher", lambda papers, **kw: built.append(papers) or Matcher(papers, **kw)
    )
    from digest.tokens import secret_key

    renderer = PidRecorder(settings, secret_key(settings))
    renderer.log = tmp_path / "rendered"
    report = run(settings, database, FRIDAY_8AM, batch=2, renderer=renderer)
    assert (report.due, report.queued) == (7, 7)
    assert sorted(s for s, _, _ in digests(database)) == ids
    assert len(built) == 1  # indexed once, before the workers are forked
    rendered = [line.split() for line in renderer.log.read_text().splitlines()]
    assert sorted(int(key) for _, key in rendered) == ids
    assert str(os.getpid()) not in {pid for pid, _ in rendered}  # all made in the workers
    assert {"read", "index", "match", "render", "queue"} <= set(report.cpu)
    with database.session() as session:
        for subscriber_id in ids:
            after = get_subscriber(session, subscriber_id)
            assert after is not None and after.last_digest_at == FRIDAY_8AM - SETTLE
            assert after.next_digest_at == FRIDAY_8AM + timedelta(days=1)
    assert run(settings, database, FRIDAY_8AM + timedelta(minutes=1)).due == 0


def test_a_worker_that_dies_loses_only_its_batch_in_progress(
    settings: Settings, database: Database, listing: tuple[Paper, ...]
) -> None:
    store(database, listing, SIGNUP)
    ids = [subscribe(database, f"reader{n}@example.org", "agents, model") for n in range(5)]
    victim = ids[1]

    class Dies(DigestRenderer):
        """The process is killed (say, out of memory) while it renders one digest."""

        def render_digest(self, subscriber, *args: object, **kwargs: object):  # type: ignore[override]
            if subscriber.id == victim:
                os._exit(9)
            return super().render_digest(subscriber, *args, **kwargs)  # type: ignore[arg-type]

    from digest.tokens import secret_key

    with pytest.raises(DigestError, match="died"):
        run(
            settings,
            database,
            FRIDAY_8AM,
            batch=1,
            workers=2,
            renderer=Dies(settings, secret_key(settings)),
        )
    # The other worker did every other batch; the dead one's batch is still due.
    assert sorted(s for s, _, _ in digests(database)) == [i for i in ids if i != victim]
    with database.session() as session:
        kept = get_subscriber(session, victim)
    assert kept is not None and kept.next_digest_at == FRIDAY_8AM
    assert kept.last_digest_at == SIGNUP - timedelta(days=1)
    # The next run makes the missing digest and nothing twice.
    report = run(settings, database, FRIDAY_8AM + timedelta(minutes=5), workers=2)
    assert (report.due, report.queued) == (1, 1)
    assert sorted(s for s, _, _ in digests(database)) == ids


def test_a_failing_worker_raises_and_its_batch_changes_nothing(
    settings: Settings, database: Database, listing: tuple[Paper, ...]
) -> None:
    store(database, listing, SIGNUP)
    ids = [subscribe(database, f"reader{n}@example.org", "agents, model") for n in range(4)]
    victim = ids[2]

    class Broken(DigestRenderer):
        def render_digest(self, subscriber, *args: object, **kwargs: object):  # type: ignore[override]
            if subscriber.id == victim:
                raise RuntimeError("disk full")
            return super().render_digest(subscriber, *args, **kwargs)  # type: ignore[arg-type]

    from digest.tokens import secret_key

    with pytest.raises(RuntimeError, match="disk full"):
        run(
            settings,
            database,
            FRIDAY_8AM,
            batch=2,
            workers=2,
            renderer=Broken(settings, secret_key(settings)),
        )
    done = [s for s, _, _ in digests(database)]
    # The victim's batch (ids[2:4]) rolled back whole; the other was done, or not started.
    assert victim not in done and ids[3] not in done and len(done) == len(set(done))
    with database.session() as session:
        for subscriber_id in ids[2:]:
            kept = get_subscriber(session, subscriber_id)
            assert kept is not None and kept.next_digest_at == FRIDAY_8AM
    assert run(settings, database, FRIDAY_8AM + timedelta(minutes=5), workers=2).queued == 4 - len(
        done
    )
    assert sorted(s for s, _, _ in digests(database)) == ids


def test_a_reader_due_after_the_batches_were_planned_is_not_left_out(
    settings: Settings, database: Database, listing: tuple[Paper, ...]
) -> None:
    store(database, listing, SIGNUP)
    ids = [subscribe(database, f"reader{n}@example.org", "agents") for n in range(3)]
    late: list[int] = []

    class Meanwhile(DigestRenderer):
        """While the job renders, a new reader confirms whose time has passed too."""

        def render_digest(self, *args: object, **kwargs: object):  # type: ignore[override]
            if not late:
                late.append(subscribe(database, "late@example.org", "agents"))
                with database.session() as session:
                    session.execute(
                        update(SubscriberRow)
                        .where(SubscriberRow.id == late[0])
                        .values(next_digest_at=FRIDAY_8AM - timedelta(minutes=1))
                    )
            return super().render_digest(*args, **kwargs)  # type: ignore[arg-type]

    from digest.tokens import secret_key

    renderer = Meanwhile(settings, secret_key(settings))
    report = run(settings, database, FRIDAY_8AM, batch=2, renderer=renderer)
    assert (report.due, report.queued) == (4, 4)
    assert sorted(s for s, _, _ in digests(database)) == [*ids, *late]


def test_batches_reaching_back_alike_share_one_wider_index(
    settings: Settings,
    database: Database,
    listing: tuple[Paper, ...],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store(database, listing[:10], FRIDAY_8AM - timedelta(days=20))
    store(database, listing[10:], SIGNUP)
    ids = [subscribe(database, f"reader{n}@example.org", "agents, model") for n in range(4)]
    with database.session() as session:  # never sent (an older version's row), say
        session.execute(
            update(SubscriberRow).where(SubscriberRow.id.in_(ids[1:])).values(last_digest_at=None)
        )
    built: list[int] = []
    monkeypatch.setattr(
        digests_job,
        "Matcher",
        lambda papers, **kw: built.append(len(papers)) or Matcher(papers, **kw),
    )
    report = run(settings, database, FRIDAY_8AM, batch=1)
    assert report.queued == 4
    # The run's last week, and 30 days once for the three batches that reach back so far.
    assert built == [20, 30]
    texts = {subscriber: " ".join(text.split()) for subscriber, _, text in digests(database)}
    assert all(any(p.title[:40] in texts[i] for p in listing[:10]) for i in ids[1:])
    assert not any(p.title[:40] in texts[ids[0]] for p in listing[:10])


# --- weekly digests -----------------------------------------------------------------------


def probe(number: int, *, upvotes: int | None = None) -> Paper:
    """A paper only the interest "lattice" matches, numbered so a digest can be read back
    ("Lattice probe 007"); with `upvotes`, a Hugging Face paper (trending counts it)."""
    return Paper(
        id=f"2610.{90000 + number:05d}",
        title=f"Lattice probe {number:03d} on sparse codes",
        abstract="We study lattices of sparse codes.",
        upvotes=upvotes,
        sources=("hf",) if upvotes is not None else ("arxiv",),
    )


def probes_in(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"Lattice probe (\d{3})", " ".join(text.split()))]


def hour_by_hour(
    settings: Settings,
    database: Database,
    start: datetime,
    hours: int,
    *,
    papers_every: int = 12,
    first_probe: int = 0,
    upvotes: dict[int, int] | None = None,
    at_hour: dict[int, object] | None = None,
) -> list[tuple[int, datetime]]:
    """Run the digest job every hour from `start`, storing a probe paper every
    `papers_every` hours (just before that hour's run) and calling `at_hour[h]()` after
    hour h's run; returns (probe number, when stored) of every probe."""
    stored = []
    number = first_probe
    for hour in range(hours):
        now = start + timedelta(hours=hour)
        if hour % papers_every == 0:
            seen = now - timedelta(minutes=30)
            store(database, [probe(number, upvotes=(upvotes or {}).get(number))], seen)
            stored.append((number, seen))
            number += 1
        run(settings, database, now)
        if at_hour and hour in at_hour:
            at_hour[hour]()  # type: ignore[operator]
    return stored


@pytest.mark.parametrize(
    "sunday",
    [
        datetime(2026, 6, 14, 12, 0, tzinfo=UTC),  # a summer week in Paris (UTC+2)
        datetime(2026, 10, 18, 12, 0, tzinfo=UTC),  # the week clocks go back (25 October)
    ],
    ids=["summer", "dst-ends"],
)
def test_a_weekly_reader_gets_one_digest_a_week_with_the_weeks_papers(
    settings: Settings, database: Database, sunday: datetime
) -> None:
    with database.session() as session:
        ada = create_subscriber(
            session,
            "ada@example.org",
            "lattice",
            send_time="08:00",
            timezone="Europe/Paris",
            cadence="weekly:mon",
            now=sunday,
            status="active",
        ).id
        daily = create_subscriber(
            session, "bob@example.org", "lattice", send_time="08:00",
            timezone="Europe/Paris", now=sunday, status="active",
        ).id  # fmt: skip
    hours = 9 * 24  # Sunday noon to the Tuesday noon after next: two Mondays
    stored = hour_by_hour(settings, database, sunday, hours)
    sent = digests(database)
    weekly = [(day, probes_in(text)) for who, day, text in sent if who == ada]
    mondays = [sunday.date() + timedelta(days=1), sunday.date() + timedelta(days=8)]
    assert [day for day, _ in weekly] == mondays  # one digest a week, dated its Monday
    # Each holds the papers seen since the one before, up to its cutoff (08:00 Paris less
    # SETTLE: 05:55 UTC in summer, 06:55 UTC once the clocks went back).
    first_cutoff, second_cutoff = (
        local_send_instant(monday, "08:00", "Europe/Paris") - SETTLE for monday in mondays
    )
    assert weekly[0][1] == [n for n, seen in stored if seen < first_cutoff]
    assert weekly[1][1] == [n for n, seen in stored if first_cutoff <= seen < second_cutoff]
    assert len(weekly[1][1]) == 14  # the week's papers, two a day: none lost, none twice
    # The daily reader beside them got one a day, and the same papers in all.
    days = [day for who, day, _ in sent if who == daily]
    assert days == [sunday.date() + timedelta(days=n) for n in range(1, 10)]
    got_daily = [n for who, _, text in sent if who == daily for n in probes_in(text)]
    got_weekly = weekly[0][1] + weekly[1][1]
    assert got_daily[: len(got_weekly)] == got_weekly
    with database.session() as session:
        after = get_subscriber(session, ada)
    assert after is not None and after.next_digest_at is not None
    assert digest_day(after.next_digest_at, "Europe/Paris") == mondays[1] + timedelta(days=7)


def test_switching_daily_weekly_daily_mid_week_loses_and_repeats_nothing(
    settings: Settings, database: Database
) -> None:
    thursday = datetime(2026, 6, 11, 12, 0, tzinfo=UTC)
    with database.session() as session:
        ada = create_subscriber(
            session, "ada@example.org", "lattice", send_time="08:00",
            timezone="Europe/Paris", now=thursday, status="active",
        ).id  # fmt: skip

    def switch(cadence: str, hour: int) -> object:
        def apply() -> None:
            with database.session() as session:
                now = thursday + timedelta(hours=hour)
                update_preferences(session, ada, cadence=cadence, now=now)

        return apply

    # Tuesday 16 June 10:00 UTC (after that day's digest): weekly on Mondays. Thursday 18
    # June 10:00 UTC: daily again. Then on to Sunday 21 June.
    at_hour = {
        4 * 24 + 22: switch("weekly:mon", 4 * 24 + 22),
        6 * 24 + 22: switch("daily", 6 * 24 + 22),
    }
    stored = hour_by_hour(settings, database, thursday, 10 * 24, at_hour=at_hour)
    sent = [(day, probes_in(text)) for _, day, text in digests(database)]
    june = [day.day for day, _ in sent]
    # Daily to Tuesday; nothing Wednesday or Thursday (weekly, Monday was past); daily from
    # Friday, the first holding everything since Tuesday's.
    assert june == [12, 13, 14, 15, 16, 19, 20, 21]
    got = [n for _, numbers in sent for n in numbers]
    last_cutoff = datetime(2026, 6, 21, 6, 0, tzinfo=UTC) - SETTLE
    assert got == [n for n, seen in stored if seen < last_cutoff]  # each once, in order
    assert len(sent[5][1]) == 6  # Friday's: Tuesday to Friday morning, three days' papers


def test_switching_to_weekly_on_todays_day_after_todays_digest_sends_no_second(
    settings: Settings, database: Database
) -> None:
    store(database, [probe(1)], SIGNUP)
    ada = subscribe(database, "ada@example.org", "lattice")
    run(settings, database, FRIDAY_8AM)  # Friday 12 June, daily
    later = FRIDAY_8AM + timedelta(hours=2)
    with database.session() as session:
        update_preferences(session, ada, cadence="weekly:fri", send_time="18:00", now=later)
    store(database, [probe(2)], later)
    report = run(settings, database, datetime(2026, 6, 12, 16, 0, tzinfo=UTC))  # 18:00 Paris
    assert (report.due, report.already, report.queued) == (1, 1, 0)
    # The paper of the afternoon waits for next Friday's weekly digest.
    run(settings, database, datetime(2026, 6, 19, 16, 0, tzinfo=UTC))
    assert [(day, probes_in(text)) for _, day, text in digests(database)] == [
        (date(2026, 6, 12), [1]),
        (date(2026, 6, 19), [2]),
    ]


def test_weekly_trending_is_the_weeks_most_upvoted(settings: Settings, database: Database) -> None:
    sunday = datetime(2026, 6, 14, 12, 0, tzinfo=UTC)
    with database.session() as session:
        ada = create_subscriber(
            session, "ada@example.org", "trending:3", send_time="08:00",
            timezone="Europe/Paris", cadence="weekly:mon", now=sunday, status="active",
        ).id  # fmt: skip
    # Two Hugging Face papers a day, the week's best spread over several days.
    upvotes = {n: (n * 37) % 101 for n in range(40)}
    stored = hour_by_hour(settings, database, sunday, 9 * 24, papers_every=12, upvotes=upvotes)
    second = [text for who, day, text in digests(database) if who == ada][1]
    first_cutoff = datetime(2026, 6, 15, 6, 0, tzinfo=UTC) - SETTLE
    second_cutoff = datetime(2026, 6, 22, 6, 0, tzinfo=UTC) - SETTLE
    week = [n for n, seen in stored if first_cutoff <= seen < second_cutoff]
    best = sorted(week, key=lambda n: -upvotes[n])[:3]
    assert probes_in(second) == best
    assert len({(seen.date()) for n, seen in stored if n in best}) > 1  # not one day's


# --- a run made as tasks (digest.tasks): planned, then batch by batch, perhaps twice ---


def readers_and_papers(database: Database, listing: tuple[Paper, ...]) -> list[int]:
    store(database, listing, SIGNUP)
    interests = ["agents", "model, models", "learning", "language", "trending:3", "vision"]
    return [subscribe(database, f"r{n}@example.org", text) for n, text in enumerate(interests)]


def test_a_run_made_as_tasks_equals_the_run_in_one_process(
    settings: Settings,
    database: Database,
    listing: tuple[Paper, ...],
    make_settings: object,
    tmp_path: Path,
) -> None:
    readers_and_papers(database, listing)
    plan = digests_job.plan_due_digests(database, now=FRIDAY_8AM, batch=2)
    assert plan is not None and len(plan.ranges) == 3
    for after, last in reversed(plan.ranges):  # in any order, by any worker
        digests_job.queue_digest_batch(
            settings, database, now=plan.now, start=plan.start, after=after, last=last, batch=2
        )
    # The same readers and papers in another store, made by the in-process job.
    other_settings = make_settings(database={"url": f"sqlite:///{tmp_path / 'other.db'}"})  # type: ignore[operator]
    other = open_database(other_settings)
    try:
        readers_and_papers(other, listing)
        run(settings, other, FRIDAY_8AM)
        expected = [(who, day, text) for who, day, text in digests(other)]
    finally:
        other.dispose()

    def comparable(found: list[tuple[int, date, str]]) -> list[tuple[int, date, str]]:
        # Links carry per-message tokens of the same readers: compare without them.
        return sorted((who, day, re.sub(r"https?://\S+", "", text)) for who, day, text in found)

    assert comparable(digests(database)) == comparable(expected)
    assert len(expected) >= 4


def test_a_batch_made_again_queues_nothing_more(
    settings: Settings, database: Database, listing: tuple[Paper, ...]
) -> None:
    readers_and_papers(database, listing)
    plan = digests_job.plan_due_digests(database, now=FRIDAY_8AM, batch=10)
    assert plan is not None
    batch = {"now": plan.now, "start": plan.start, "after": 0, "last": None}
    first = digests_job.queue_digest_batch(settings, database, **batch)  # type: ignore[arg-type]
    again = digests_job.queue_digest_batch(settings, database, **batch)  # type: ignore[arg-type]
    assert first.queued >= 4 and (again.due, again.queued) == (0, 0)
    assert len(digests(database)) == first.queued


def test_two_runs_of_one_batch_at_once_queue_one_digest_each(
    settings: Settings, database: Database, listing: tuple[Paper, ...]
) -> None:
    """A task delivered again while the first delivery still runs (a visibility timeout
    expired), or the next tick's run, reads the same due readers before the other
    commits: only the run that moves a watermark queues the reader's digest."""
    readers = readers_and_papers(database, listing)
    # Nothing matches this one: no digest to find in the outbox, only a watermark moved.
    readers.append(subscribe(database, "none@example.org", "quantum gravity"))
    with database.session() as session:
        stale = digests_job.due_subscribers(session, FRIDAY_8AM, limit=100)
    assert [s.id for s in stale] == readers
    first = digests_job.queue_digest_batch(
        settings, database, now=FRIDAY_8AM, start=SIGNUP - timedelta(days=1), after=0, last=None
    )
    assert first.queued >= 4
    later = FRIDAY_8AM + timedelta(minutes=5)  # another cutoff, the same digest date
    renderer = DigestRenderer(settings, "secret")
    window = digests_job._Window(SIGNUP - timedelta(days=1), Matcher(listing))
    second = digests_job._Run(settings, database, renderer, window, later, later - SETTLE, 100)
    report = digests_job.QueueReport()
    with database.session() as session:
        second._batch(session, stale, report)
    assert report.queued == 0
    assert len(digests(database)) == first.queued
    with database.session() as session:
        marks = {get_subscriber(session, r).last_digest_at for r in readers}  # type: ignore[union-attr]
    assert marks == {FRIDAY_8AM - SETTLE}  # the first run's cutoff: no window skipped
