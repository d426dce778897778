"""Models applied in the digest run: keyword matches re-ordered, Suggested for you, rules kept."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from digest.config import Settings
from digest.jobs.digests import queue_due_digests
from digest.learn.models import current_text_model
from digest.learn.rank import Learning, learning_for_batch
from digest.match import Matcher, Selection, parse_interests
from digest.match.results import SUGGESTED
from digest.render import DigestRenderer
from digest.store import Database
from digest.store.subscribers import get_subscriber
from digest.subscriber import Subscriber
from digest.tokens import secret_key
from tests.learn_support import DIFFUSION, T0, add_reader, fit_text, store_papers, vote

DAY1 = datetime(2026, 6, 11, 8, 0, tzinfo=UTC)


@pytest.fixture
def papers(real_papers: Any) -> tuple[Any, ...]:
    """The real papers, first seen one minute apart from T0 (ids in the same order)."""
    return tuple(
        dataclasses.replace(paper, first_seen_at=T0 + timedelta(minutes=i))
        for i, paper in enumerate(real_papers)
    )


def _choose(
    database: Database, matcher: Matcher, readers: list[Subscriber], max_papers: int = 20
) -> dict[int, Selection]:
    """The selections of a run over `matcher`'s papers, learning applied as the run does."""
    with database.session() as session:
        text = current_text_model(session)
        assert text is not None
        learned = learning_for_batch(session, Learning(text), readers)
    parsed = {who.id: parse_interests(who.interests) for who in readers}
    chosen = matcher.select_many([(w, parsed[w.id], w.last_digest_at) for w in readers], max_papers)
    if learned is not None:
        chosen = learned.refine(matcher, chosen, lambda who: parsed[who.id], max_papers)
    return {who.id: selection for who, selection in chosen}


def _reader(database: Database, reader: int) -> Subscriber:
    with database.session() as session:
        found = get_subscriber(session, reader)
        assert found is not None
        return found


def _ids(matches: Any) -> list[str]:
    return [m.paper.id for m in matches]


@pytest.fixture
def liked(database: Database, papers: Any) -> int:
    """A reader who follows "language model" and liked four diffusion papers."""
    store_papers(database, papers)
    fit_text(database)
    reader = add_reader(database, "ada@example.org", "language model")
    for index in DIFFUSION[:4]:
        vote(database, reader, papers[index], 1)
    return reader


def test_keyword_matches_are_ordered_by_the_model_in_one_block_product(
    database: Database, papers: Any, liked: int
) -> None:
    matcher = Matcher(papers)
    who = _reader(database, liked)
    plain = matcher.select(parse_interests(who.interests), None, 20)
    learned = _choose(database, matcher, [who])[liked]
    # The same papers are keyword matches (a hard rule), in another order.
    assert learned.matches and set(_ids(learned.matches)) <= set(_ids(plain.matches)) | set(
        _ids(matcher.select(parse_interests(who.interests), None, 200).matches)
    )
    assert all(m.hits[0].interest == "language model" for m in learned.matches)
    assert _ids(learned.matches) != _ids(plain.matches)
    # The order is the model's: its scores, computed for one reader, decrease.
    with database.session() as session:
        text = current_text_model(session)
        taste = learning_for_batch(session, Learning(text), [who]).tastes[liked]  # type: ignore[arg-type,union-attr]
    rows = text.transform([m.paper for m in learned.matches])  # type: ignore[union-attr]
    scores = taste.scores(rows)
    assert (np.diff(scores) <= 1e-5).all()
    # A diffusion paper that mentions language models comes first.
    assert "diffusion" in learned.matches[0].paper.title.lower()


def test_suggestions_are_papers_no_keyword_matched_and_say_why(
    database: Database, papers: Any, liked: int
) -> None:
    selection = _choose(database, Matcher(papers), [_reader(database, liked)])[liked]
    suggested = selection.suggested
    assert 1 <= len(suggested) <= 5
    assert selection.sections[-1] == (SUGGESTED, suggested)
    keyword = set(
        _ids(Matcher(papers).select(parse_interests("language model"), None, 200).matches)
    )
    rated = {papers[i].id for i in DIFFUSION[:4]}
    for match in suggested:
        assert match.paper.id not in keyword | rated | set(_ids(selection.matches))
        [hit] = match.hits
        assert hit.interest.startswith("close to “") and hit.interest.endswith("”, which you liked")
        assert any(papers[i].title in hit.interest for i in DIFFUSION[:4])
    # The other diffusion papers are what it suggests.
    assert {m.paper.id for m in suggested} & {papers[i].id for i in DIFFUSION[4:]}


def test_exclusions_override_the_model(database: Database, papers: Any, liked: int) -> None:
    from digest.store.subscribers import update_preferences

    with database.session() as session:
        update_preferences(session, liked, interests="language model\n-diffusion\n-score")
        session.commit()
    selection = _choose(database, Matcher(papers), [_reader(database, liked)])[liked]
    shown = [*selection.matches, *selection.suggested]
    assert shown
    for match in shown:
        text = f"{match.paper.title} {match.paper.abstract}".lower()
        assert "diffusion" not in text and "score" not in text


def test_suggestions_zero_turns_them_off_and_readers_without_a_model_are_untouched(
    database: Database, papers: Any, liked: int
) -> None:
    from digest.store.subscribers import update_preferences

    other = add_reader(database, "bob@example.org", "language model")
    with database.session() as session:
        update_preferences(session, liked, suggestions=0)
        session.commit()
    matcher = Matcher(papers)
    chosen = _choose(database, matcher, [_reader(database, liked), _reader(database, other)])
    assert chosen[liked].suggested == () and chosen[liked].matches
    assert chosen[other] == matcher.select(parse_interests("language model"), None, 20)


def test_suggestions_and_trending_share_the_digest_with_the_matches(
    database: Database, papers: Any, liked: int
) -> None:
    from digest.store.subscribers import update_preferences

    listed = tuple(
        dataclasses.replace(p, upvotes=len(papers) - i, sources=("hf",), hf_seen_at=p.first_seen_at)
        for i, p in enumerate(papers)
    )
    with database.session() as session:
        update_preferences(session, liked, interests="trending:3\nlanguage model")
        session.commit()
    selection = _choose(database, Matcher(listed), [_reader(database, liked)], max_papers=8)[liked]
    # Eight papers in all: the suggestions first take their room, trending (first in
    # the list) the next, the matches what is left.
    assert selection.suggested and len(selection.trending) == 3
    assert len(selection.matches) == 8 - 3 - len(selection.suggested)
    assert selection.more > 0  # the matches left out are counted
    assert not set(_ids(selection.trending)) & set(_ids(selection.matches))
    shown = set(_ids(selection.trending)) | set(_ids(selection.matches))
    assert not shown & set(_ids(selection.suggested))


def test_no_paper_twice_across_sections_or_days(
    settings: Settings, database: Database, papers: Any, real_papers: Any
) -> None:
    """Two days of the real run: each day's digest holds papers first seen since the
    last one only, suggested or matched, and no paper shows twice."""
    store_papers(database, real_papers[:100], T0)
    fit_text(database)
    reader = add_reader(database, "ada@example.org", "language model", at=T0 - timedelta(days=1))
    for index in DIFFUSION[:4]:
        vote(database, reader, real_papers[index], 1)
    captured: list[Selection] = []
    renderer = DigestRenderer(settings, secret_key(settings))
    real = renderer.render_digest

    def capture(subscriber: Subscriber, selection: Selection, day: Any, **kw: Any) -> Any:
        captured.append(selection)
        return real(subscriber, selection, day, **kw)

    renderer.render_digest = capture  # type: ignore[method-assign]
    assert queue_due_digests(settings, database, now=DAY1, renderer=renderer).queued == 1
    store_papers(database, real_papers[100:], DAY1)
    day2 = DAY1 + timedelta(days=1)
    assert queue_due_digests(settings, database, now=day2, renderer=renderer).queued == 1
    first, second = captured
    seen: list[str] = []
    for selection in (first, second):
        shown = [m.paper.id for _, section in selection.sections for m in section]
        assert len(shown) == len(set(shown))
        seen += shown
    assert len(seen) == len(set(seen))
    day1_ids = {p.id for p in real_papers[:100]}
    assert {m.paper.id for m in second.suggested} and not {
        m.paper.id for m in second.suggested
    } & day1_ids
    assert not {m.paper.id for m in second.matches} & day1_ids


def test_suggestions_take_at_most_a_quarter_of_a_full_digest(
    database: Database, papers: Any, liked: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from digest.learn import taste
    from digest.learn.models import rebuild_models
    from digest.store.subscribers import update_preferences

    # A lenient model (half the papers at large pass), so candidates are many.
    monkeypatch.setattr(taste, "SUGGEST_QUANTILE", 0.5)
    monkeypatch.setattr(taste, "SIMILARITY_FLOOR", 0.0)
    rebuild_models(database, T0)
    with database.session() as session:
        update_preferences(session, liked, suggestions=20)
        session.commit()
    who = _reader(database, liked)
    matcher = Matcher(papers)
    full = _choose(database, matcher, [who], max_papers=20)[liked]
    assert (len(full.matches), len(full.suggested)) == (15, 5)
    assert full.more > 0  # the matches the suggestions displaced are counted
    one = _choose(database, matcher, [who], max_papers=1)[liked]
    assert (len(one.matches), one.suggested) == (1, ())  # the keyword match keeps its place
    # A list that matches little leaves its room to the suggestions.
    with database.session() as session:
        update_preferences(session, liked, interests="title:hallucination")
        session.commit()
    few = _choose(database, matcher, [_reader(database, liked)], max_papers=20)[liked]
    assert (len(few.matches), len(few.suggested)) == (2, 18)


def test_with_matches_first_a_trending_match_keeps_both_reasons(
    database: Database, papers: Any, liked: int
) -> None:
    from digest.store.subscribers import update_preferences

    # The most upvoted papers are those on alignment: trending and matching at once.
    listed = tuple(
        dataclasses.replace(
            p,
            upvotes=i + (1000 if "alignment" in p.title.lower() else 0),
            sources=("hf",),
            hf_seen_at=p.first_seen_at,
        )
        for i, p in enumerate(papers)
    )
    with database.session() as session:
        update_preferences(session, liked, interests="title:alignment\ntrending:5")
        session.commit()
    who = _reader(database, liked)
    selection = _choose(database, Matcher(listed), [who], max_papers=20)[liked]
    shown = [m.paper.id for _, section in selection.sections for m in section]
    assert len(shown) == len(set(shown)) <= 20
    ranked = [m for m in selection.matches if any(hit.rank for hit in m.hits)]
    assert ranked, "a trending paper that matched shows under the matches"
    for match in ranked:
        labels = [hit.interest for hit in match.hits]
        assert "title:alignment" in labels and any(label.startswith("trending") for label in labels)
    ranks = [hit.rank for m in (*selection.matches, *selection.trending) for hit in m.hits]
    assert sorted(rank for rank in ranks if rank) == [1, 2, 3, 4, 5]  # each rank once
