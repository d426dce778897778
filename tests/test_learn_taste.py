"""A reader's taste: cold start by similarity, then logistic regression; stored as bytes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from digest.learn.taste import (
    LINEAR,
    MAX_WEIGHTS,
    MIN_LABELLED,
    SIMILAR,
    dump_taste,
    fit_taste,
    load_taste,
)
from digest.learn.text import TextModel, dump_text_model, fit_vectorizer, load_text_model
from digest.store.feedback import Vote
from tests.learn_support import DIFFUSION

NOW = datetime(2026, 6, 10, tzinfo=UTC)


@pytest.fixture(scope="module")
def text(real_papers: Any) -> TextModel:
    vectorizer, background = fit_vectorizer(real_papers)
    return load_text_model(1, dump_text_model(vectorizer, background))


@pytest.fixture(scope="module")
def vectors(text: TextModel, real_papers: Any) -> Any:
    rows = text.transform(real_papers)
    return (
        rows,
        {p.id: rows[i] for i, p in enumerate(real_papers)},
        {p.id: p.title for p in real_papers},
    )


def _votes(papers: Any, picks: list[tuple[int, int]]) -> list[Vote]:
    return [Vote(n, 1, papers[i].id, value, "email", NOW) for n, (i, value) in enumerate(picks)]


def test_few_labelled_papers_give_similarity_to_what_was_liked(
    text: TextModel, vectors: Any, real_papers: Any
) -> None:
    rows, by_id, titles = vectors
    taste = fit_taste(_votes(real_papers, [(25, 1), (40, 1)]), by_id, titles, text)
    assert taste is not None and taste.mode == SIMILAR and taste.labelled == 2
    scores = taste.scores(rows)
    # The other diffusion papers rank above the rest of the papers.
    others = [i for i in DIFFUSION if i not in (25, 40)]
    rest = [i for i in range(len(real_papers)) if i not in DIFFUSION]
    assert np.median(scores[others]) > np.percentile(scores[rest], 90)
    assert taste.closest_liked(rows[56]) in (real_papers[25].title, real_papers[40].title)


def test_enough_labels_train_a_linear_model(
    text: TextModel, vectors: Any, real_papers: Any
) -> None:
    rows, by_id, titles = vectors
    picks = [(i, 1) for i in DIFFUSION[:4]] + [(0, -1), (1, -1)]
    assert len(picks) >= MIN_LABELLED
    taste = fit_taste(_votes(real_papers, picks), by_id, titles, text)
    assert taste is not None and taste.mode == LINEAR
    assert taste.weights.nnz <= MAX_WEIGHTS
    scores = taste.scores(rows)
    held_out = DIFFUSION[4:]
    assert all(scores[i] > taste.threshold for i in held_out[:3])
    assert scores[0] < scores[held_out[0]]
    # Newest positive first: the explanation names a liked paper.
    assert taste.liked[0] == real_papers[DIFFUSION[3]].title


def test_the_same_rows_give_the_same_taste_byte_for_byte(
    text: TextModel, vectors: Any, real_papers: Any
) -> None:
    _, by_id, titles = vectors
    picks = [(i, 1) for i in DIFFUSION[:5]] + [(3, -1)]
    first = dump_taste(fit_taste(_votes(real_papers, picks), by_id, titles, text))  # type: ignore[arg-type]
    again = dump_taste(fit_taste(_votes(real_papers, picks), by_id, titles, text))  # type: ignore[arg-type]
    assert first == again
    assert dump_taste(load_taste(first)) == first
    assert len(first) < 100_000  # a model is small enough to keep one per reader


def test_papers_not_stored_are_not_labels(text: TextModel, vectors: Any, real_papers: Any) -> None:
    _, by_id, titles = vectors
    votes = [Vote(1, 1, "2509.99999", 1, "seed", NOW)]
    assert fit_taste(votes, by_id, titles, text) is None
    votes.append(Vote(2, 1, real_papers[25].id, 1, "email", NOW))
    taste = fit_taste(votes, by_id, titles, text)
    assert taste is not None and taste.labelled == 1


def test_only_less_like_this_suggests_nothing(
    text: TextModel, vectors: Any, real_papers: Any
) -> None:
    rows, by_id, titles = vectors
    taste = fit_taste(_votes(real_papers, [(0, -1), (1, -1)]), by_id, titles, text)
    assert taste is not None and taste.liked == ()
    assert (taste.scores(rows) <= taste.threshold).all()


def test_only_the_newest_labels_count(
    text: TextModel, vectors: Any, real_papers: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from digest.learn import taste as module

    _, by_id, titles = vectors
    monkeypatch.setattr(module, "MAX_LABELS", 6)
    picks = [(i, -1) for i in range(100, 110)] + [(i, 1) for i in DIFFUSION[:6]]
    fitted = fit_taste(_votes(real_papers, picks), by_id, titles, text)
    newest = fit_taste(_votes(real_papers, picks[-6:]), by_id, titles, text)
    assert fitted is not None and newest is not None and fitted.labelled == 6
    assert dump_taste(fitted) == dump_taste(newest)
