"""A reader's taste: a linear model over the text model's vectors, from their feedback.

Labelled papers are the reader's feedback rows whose papers are stored: "more like this"
and seed papers (`like:ID`) are positives, "less like this" negatives. Two regimes:

- **Cold start** (fewer than `MIN_LABELLED` labelled papers): no classifier, similarity
  instead. The weights are the mean of the positives' vectors minus half the mean of the
  negatives' (Rocchio), so a paper's score is its mean cosine similarity to what the
  reader liked, less some for what they did not.
- **Linear** (`MIN_LABELLED` or more, at least one positive): logistic regression, as
  Scholar Inbox trains one per reader (arxiv-sanity uses a linear SVM; the same family),
  positives against the negatives and the text model's background papers as weak
  negatives, classes balanced. The score is the decision function (log-odds).

Either way a taste is one sparse weight vector and a bias: scoring many readers is one
sparse matrix product (`digest.learn.rank`). A taste also keeps the vectors and titles of
the most recent positives, to say why a paper is suggested ("close to X, which you
liked"). Fitting is deterministic: the same rows give the same taste, byte for byte.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression

from digest.learn.text import TextModel
from digest.store.feedback import Vote

MAX_LABELS = 500
"""The newest labelled papers a taste is fitted on."""
MIN_LABELLED = 5
"""Labelled papers below which a reader gets similarity to their positives, no classifier."""
LINEAR, SIMILAR = "linear", "similar"
# What a suggestion must score: more than this share of the background papers (papers
# at large) score, and, for similarity, at least a mean cosine that on real abstracts
# means a shared topic rather than a few shared words. Log-odds of a classifier trained
# on a handful of positives sit far below even odds, so a fixed level would not do.
SUGGEST_QUANTILE = 0.95
SIMILARITY_FLOOR = 0.05
BACKGROUND_WEIGHT = 0.3  # a background paper counts this much of an explicit "less"
NEGATIVE_PULL = 0.5  # cold start: how much the "less" papers pull the weights away
MAX_WEIGHTS = 4_000  # weights a linear model keeps (its strongest): ~32 KB stored
EXPLAINERS = 20  # the most recent positives kept to explain suggestions
_C = 1.0


@dataclass(frozen=True)
class Taste:
    """A reader's model: `score(x) = weights · x + bias` for a paper's vector `x`."""

    mode: str
    weights: sp.csr_matrix  # 1 x features, float32
    bias: float
    labelled: int
    liked: tuple[str, ...]  # titles of the positives kept to explain, newest first
    liked_vectors: sp.csr_matrix  # their vectors, one row each
    threshold: float  # what a paper no keyword matched must score to be suggested

    def scores(self, vectors: sp.csr_matrix) -> np.ndarray:
        """The scores of papers given as rows."""
        product = vectors @ self.weights.T
        return np.asarray(product.todense()).ravel() + self.bias

    def closest_liked(self, vector: sp.csr_matrix) -> str:
        """The title of the liked paper most similar to `vector` (one row)."""
        if not self.liked:
            return ""
        similarity = np.asarray((self.liked_vectors @ vector.T).todense()).ravel()
        return self.liked[int(np.argmax(similarity))]


def fit_taste(
    votes: Sequence[Vote],
    vectors: Mapping[str, sp.csr_matrix],
    titles: Mapping[str, str],
    text: TextModel,
) -> Taste | None:
    """The taste of a reader with these feedback rows (oldest first); `vectors` and
    `titles` hold the stored papers among them. None when nothing stored is labelled."""
    # The newest `MAX_LABELS` only: tastes drift, and a reader (or a script with their
    # link) voting on every paper must not make each refit slower than the last.
    labelled = [vote for vote in votes if vote.paper_id in vectors][-MAX_LABELS:]
    if not labelled:
        return None
    positives = [vote for vote in labelled if vote.vote > 0]
    negatives = [vote for vote in labelled if vote.vote < 0]
    pos = _rows([vectors[v.paper_id] for v in positives], text.features)
    neg = _rows([vectors[v.paper_id] for v in negatives], text.features)
    if len(labelled) >= MIN_LABELLED and positives:
        mode, weights, bias = LINEAR, *_logistic(pos, neg, text.background)
    else:
        mode, weights, bias = SIMILAR, _rocchio(pos, neg), 0.0
    recent = positives[::-1][:EXPLAINERS]
    taste = Taste(
        mode=mode,
        weights=weights,
        bias=bias,
        labelled=len(labelled),
        liked=tuple(titles[v.paper_id] for v in recent),
        liked_vectors=_rows([vectors[v.paper_id] for v in recent], text.features),
        threshold=0.0,
    )
    return dataclasses.replace(taste, threshold=_threshold(taste, text, bool(positives)))


def _threshold(taste: Taste, text: TextModel, liked: bool) -> float:
    """The score a suggestion needs (`SUGGEST_QUANTILE`); infinite without a positive."""
    if not liked:
        return float("inf")
    level = float(np.quantile(taste.scores(text.background), SUGGEST_QUANTILE))
    return max(level, SIMILARITY_FLOOR) if taste.mode == SIMILAR else level


def _rows(rows: Sequence[sp.csr_matrix], features: int) -> sp.csr_matrix:
    if not rows:
        return sp.csr_matrix((0, features), dtype=np.float32)
    return sp.csr_matrix(sp.vstack(rows), dtype=np.float32)


def _rocchio(pos: sp.csr_matrix, neg: sp.csr_matrix) -> sp.csr_matrix:
    weights = sp.csr_matrix((1, pos.shape[1]), dtype=np.float32)
    if pos.shape[0]:
        weights = weights + sp.csr_matrix(pos.mean(axis=0), dtype=np.float32)
    if neg.shape[0]:
        weights = weights - NEGATIVE_PULL * sp.csr_matrix(neg.mean(axis=0), dtype=np.float32)
    weights = sp.csr_matrix(weights, dtype=np.float32)
    weights.eliminate_zeros()
    return weights


def _logistic(
    pos: sp.csr_matrix, neg: sp.csr_matrix, background: sp.csr_matrix
) -> tuple[sp.csr_matrix, float]:
    x = sp.vstack([pos, neg, background]).tocsr()
    y = np.concatenate([np.ones(pos.shape[0]), np.zeros(neg.shape[0] + background.shape[0])])
    weight = np.concatenate(
        [np.ones(pos.shape[0] + neg.shape[0]), np.full(background.shape[0], BACKGROUND_WEIGHT)]
    )
    # liblinear with a fixed seed: deterministic, so a rebuilt model equals the stored one.
    model = LogisticRegression(
        C=_C, class_weight="balanced", solver="liblinear", random_state=0, max_iter=200
    )
    model.fit(x, y, sample_weight=weight)
    return _strongest(model.coef_.ravel().astype(np.float32)), float(model.intercept_[0])


def _strongest(coef: np.ndarray) -> sp.csr_matrix:
    """The `MAX_WEIGHTS` weights largest in size (ties by feature), the rest dropped:
    the background papers give every word of the vocabulary a small weight, and a model
    of 60,000 floats per reader would not scale to many readers."""
    keep = np.flatnonzero(coef)
    if len(keep) > MAX_WEIGHTS:
        order = np.lexsort((keep, -np.abs(coef[keep])))
        keep = np.sort(keep[order[:MAX_WEIGHTS]])
    return sp.csr_matrix(
        (coef[keep], keep, np.array([0, len(keep)])), shape=(1, len(coef)), dtype=np.float32
    )


# --- storing --------------------------------------------------------------------------


_MAGIC = b"digest-taste-1\n"
_SIZES = struct.Struct("<6q")  # features, liked rows, weights, liked nonzeros, JSON bytes, 0


def dump_taste(taste: Taste) -> bytes:
    """A taste as bytes for the store: a JSON header and the arrays' raw bytes, in one
    buffer (no pickle; read back with no parsing beyond the header: a run loads
    thousands)."""
    header = json.dumps(
        {"mode": taste.mode, "bias": taste.bias, "labelled": taste.labelled,
         "liked": list(taste.liked), "threshold": taste.threshold}
    ).encode()  # fmt: skip
    w, lv = taste.weights, taste.liked_vectors
    sizes = _SIZES.pack(w.shape[1], lv.shape[0], w.nnz, lv.nnz, len(header), 0)
    return b"".join(
        [
            _MAGIC,
            sizes,
            header,
            w.indices.astype(np.int32).tobytes(),
            w.data.astype(np.float32).tobytes(),
            lv.indptr.astype(np.int32).tobytes(),
            lv.indices.astype(np.int32).tobytes(),
            lv.data.astype(np.float32).tobytes(),
        ]
    )


def load_taste(data: bytes) -> Taste:
    """A stored taste (`dump_taste`); ValueError for bytes of another format."""
    if not data.startswith(_MAGIC):
        raise ValueError("not a stored taste of this version; run digest models rebuild")
    at = len(_MAGIC)
    features, liked, weights, nonzeros, header_size, _ = _SIZES.unpack_from(data, at)
    at += _SIZES.size
    header = json.loads(data[at : at + header_size])
    at += header_size

    def take(dtype: type, count: int) -> np.ndarray:
        nonlocal at
        array = np.frombuffer(data, dtype=dtype, count=count, offset=at)
        at += array.nbytes
        return array

    w_indices, w_data = take(np.int32, weights), take(np.float32, weights)
    lv_indptr, lv_indices = take(np.int32, liked + 1), take(np.int32, nonzeros)
    lv_data = take(np.float32, nonzeros)
    return Taste(
        mode=header["mode"],
        weights=sp.csr_matrix(
            (w_data, w_indices, np.array([0, weights])), shape=(1, features), dtype=np.float32
        ),
        bias=float(header["bias"]),
        labelled=int(header["labelled"]),
        liked=tuple(header["liked"]),
        liked_vectors=sp.csr_matrix(
            (lv_data, lv_indices, lv_indptr), shape=(liked, features), dtype=np.float32
        ),
        threshold=float(header["threshold"]),
    )
