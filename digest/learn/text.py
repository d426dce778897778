"""The shared text representation of papers: tf-idf over title and abstract.

One vectoriser (scikit-learn's `TfidfVectorizer`) is fitted on the store's papers, the
newest `FIT_PAPERS` of them (20,000), and kept in the store (`text_models`), so every process
(scheduler, web, task workers on other hosts) uses the same vocabulary. It is refitted
on a schedule (`[learn] refit_days`), never per digest; a refit changes the vocabulary,
so every reader's model is rebuilt from their feedback rows after it
(`digest.learn.models.refit_and_rebuild`).

Papers become L2-normalised rows (float32, sparse): a dot product of two is their
cosine similarity. The model also keeps a fixed sample of the fitting papers
(`background`), the weak negatives a reader's linear model is trained against: the same
rows every time, so a model rebuilt from the same feedback is the same model.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from digest.paper import Paper

# The newest papers a vectoriser is fitted on: about a month of the default arXiv
# categories, which bounds a refit to ~15 s and a few hundred MB.
FIT_PAPERS = 20_000
MIN_PAPERS = 20  # below this many papers stored there is nothing to learn words from
MAX_FEATURES = 60_000
BACKGROUND = 400  # papers kept as the weak negatives of linear models
_FORMAT = 1


def paper_text(paper: Paper) -> str:
    """What the model reads of a paper: its title (twice: it says most) and abstract."""
    return f"{paper.title}. {paper.title}. {paper.abstract}"


@dataclass(frozen=True)
class TextModel:
    """A fitted vectoriser, its version in the store and its background papers."""

    version: int
    vectorizer: TfidfVectorizer
    background: sp.csr_matrix  # BACKGROUND rows: the weak negatives

    @property
    def features(self) -> int:
        """How many words (and word pairs) the vocabulary has."""
        return len(self.vectorizer.vocabulary_)

    def transform(self, papers: Sequence[Paper]) -> sp.csr_matrix:
        """The papers as rows: tf-idf, L2-normalised, float32."""
        if not papers:
            return sp.csr_matrix((0, self.features), dtype=np.float32)
        matrix = self.vectorizer.transform([paper_text(paper) for paper in papers])
        return sp.csr_matrix(matrix, dtype=np.float32)


def fit_vectorizer(papers: Sequence[Paper]) -> tuple[TfidfVectorizer, sp.csr_matrix]:
    """A vectoriser fitted on `papers`, and its background rows (an even sample of the
    papers by id, so the same papers give the same sample)."""
    vectorizer = TfidfVectorizer(
        sublinear_tf=True,
        stop_words="english",
        ngram_range=(1, 2),
        min_df=2 if len(papers) >= 200 else 1,
        max_df=0.5,
        max_features=MAX_FEATURES,
        dtype=np.float32,
        strip_accents="unicode",
    )
    by_id = sorted(papers, key=lambda paper: paper.id)
    vectorizer.fit([paper_text(paper) for paper in by_id])
    # Every word cut from the vocabulary, kept only for introspection: millions of them on
    # a large store, and they would go into every stored copy (scikit-learn's advice).
    vectorizer.stop_words_ = None
    step = max(1, len(by_id) // BACKGROUND)
    sample = by_id[::step][:BACKGROUND]
    background = sp.csr_matrix(
        vectorizer.transform([paper_text(paper) for paper in sample]), dtype=np.float32
    )
    return vectorizer, background


def dump_text_model(vectorizer: TfidfVectorizer, background: sp.csr_matrix) -> bytes:
    """The fitted vectoriser and background as bytes for the store (pickle: the store
    is the operator's own, as trusted as the code)."""
    buffer = io.BytesIO()
    pickle.dump((_FORMAT, vectorizer, background), buffer, protocol=pickle.HIGHEST_PROTOCOL)
    return buffer.getvalue()


def load_text_model(version: int, data: bytes) -> TextModel:
    """A stored text model; ValueError if it is of a format this version cannot read."""
    loaded = pickle.loads(data)
    if not (isinstance(loaded, tuple) and len(loaded) == 3 and loaded[0] == _FORMAT):
        raise ValueError(
            "the stored text model is of an unknown format; run digest models rebuild --refit"
        )
    _, vectorizer, background = loaded
    return TextModel(version, vectorizer, background)
