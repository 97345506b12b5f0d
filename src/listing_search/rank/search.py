"""Candidate retrieval and re-ranking over :class:`ListingVectors`: one result per listing.

Candidates are the union of the best listings by text cosine and by best-photo cosine (so each
channel can bring in what the other misses); the learned ranker orders them. Used by the
evaluation, the personalised feed and the serving engine's rescorer alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from listing_search.rank.features import Query, image_cosine, pair_features, text_cosine
from listing_search.rank.ranker import Ranker
from listing_search.rank.vectors import ListingVectors


@dataclass
class Ranked:
    """Listing rows, best first, with their scores and pair features (for explanations)."""

    rows: np.ndarray
    scores: np.ndarray
    features: np.ndarray


def top_rows(scores: np.ndarray, n: int, allowed: np.ndarray | None = None) -> np.ndarray:
    """Rows of the ``n`` highest scores among ``allowed`` ones, best first (ties by row)."""
    s = np.where(allowed, scores, -np.inf) if allowed is not None else scores
    n = min(n, int(np.isfinite(s).sum()))
    if n <= 0:
        return np.zeros(0, np.int64)
    part = np.argpartition(-s, n - 1)[:n]
    return part[np.lexsort((part, -s[part]))]


def retrieve(query: Query, vectors: ListingVectors, n: int, allowed: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(candidate rows, text sims [L], image sims [L]): top ``n`` of each channel the query has."""
    t, i = text_cosine(query, vectors), image_cosine(query, vectors)
    parts = []
    if query.text_vec is not None:
        parts.append(top_rows(t, n, allowed))
    if query.image_vecs is not None and len(query.image_vecs):
        parts.append(top_rows(i, n, allowed))
    if query.category_probs is not None and not parts:
        parts.append(top_rows(np.asarray(query.category_probs)[vectors.labels], n, allowed))
    rows = np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
    return rows, t, i


def rank(query: Query, vectors: ListingVectors, ranker: Ranker, k: int, candidates: int = 200,
         allowed: np.ndarray | None = None) -> Ranked:
    """The ``k`` best listings for ``query`` among ``allowed`` rows (all when None)."""
    rows, t, i = retrieve(query, vectors, candidates, allowed)
    x = pair_features(query, vectors, rows, t, i)
    scores = ranker.score(x) if len(rows) else np.zeros(0, np.float32)
    order = np.lexsort((rows, -scores))[:k]
    return Ranked(rows[order], scores[order], x[order])
