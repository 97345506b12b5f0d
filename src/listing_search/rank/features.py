"""Features of (query, candidate listing) pairs, the re-ranker's inputs.

A query is whatever the user gave (words, photos, both) plus what we infer from it (category
probabilities); a user profile built from history is a query of the same shape, so the same
features and the same learned weights rank both searches and feeds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from listing_search.rank.vectors import ListingVectors, best_photo_cosine, tokens

FEATURES = ("text_cos", "image_cos", "category_agreement", "title_overlap", "price_gap")
_EPS = 1e-3


@dataclass
class Query:
    """One query's vectors. Missing parts are None and give 0 for their features."""

    text_vec: np.ndarray | None = None  # [Dt] unit
    image_vecs: np.ndarray | None = None  # [M, Di] unit photo vectors (best photo is taken)
    category_probs: np.ndarray | None = None  # [C], sums to 1
    words: frozenset[str] = field(default_factory=frozenset)
    price: float | None = None

    @classmethod
    def from_text(cls, text: str, text_vec: np.ndarray | None, **kw) -> "Query":
        return cls(text_vec=text_vec, words=tokens(text), **kw)


def text_cosine(query: Query, vectors: ListingVectors) -> np.ndarray:
    if query.text_vec is None:
        return np.zeros(len(vectors), np.float32)
    return vectors.text @ np.asarray(query.text_vec, np.float32)


def image_cosine(query: Query, vectors: ListingVectors) -> np.ndarray:
    if query.image_vecs is None or not len(query.image_vecs):
        return np.zeros(len(vectors), np.float32)
    return best_photo_cosine(query.image_vecs, vectors)


def log_agreement(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """log P(label | query), centred so a uniform belief scores 0 (training and serving share it)."""
    p = np.asarray(probs, np.float64)
    return (np.log(p[np.asarray(labels, np.int64)] + _EPS) - np.log(1.0 / len(p) + _EPS)).astype(np.float32)


def word_overlap(words: frozenset[str], title_tokens: frozenset[str]) -> float:
    """Share of the query's words found in a title (a cheap lexical match)."""
    return len(words & title_tokens) / len(words) if words else 0.0


def category_agreement(query: Query, vectors: ListingVectors, rows: np.ndarray) -> np.ndarray:
    """log P(candidate's root category | query), centred so a uniform belief scores 0."""
    if query.category_probs is None:
        return np.zeros(len(rows), np.float32)
    return log_agreement(query.category_probs, vectors.labels[rows])


def title_overlap(query: Query, vectors: ListingVectors, rows: np.ndarray) -> np.ndarray:
    """Share of the query's words found in the candidate's title."""
    titles = vectors.title_tokens
    return np.array([word_overlap(query.words, titles[r]) for r in rows], np.float32)


def stack_features(n: int, **columns: np.ndarray) -> np.ndarray:
    """[n, len(FEATURES)] in the ranker's column order; a feature not given is 0."""
    out = np.zeros((n, len(FEATURES)), np.float32)
    for name, values in columns.items():
        out[:, FEATURES.index(name)] = values
    return out


def price_gap(query: Query, vectors: ListingVectors, rows: np.ndarray) -> np.ndarray:
    """|log price ratio|, 0 when either price is unknown: similar items ask similar prices."""
    if query.price is None or not np.isfinite(query.price):
        return np.zeros(len(rows), np.float32)
    cand = vectors.prices[rows]
    gap = np.abs(np.log1p(max(query.price, 0.0)) - np.log1p(np.clip(cand, 0.0, None)))
    return np.where(np.isfinite(gap), gap, 0.0).astype(np.float32)


def pair_features(query: Query, vectors: ListingVectors, rows: np.ndarray,
                  text_sims: np.ndarray | None = None, image_sims: np.ndarray | None = None) -> np.ndarray:
    """[len(rows), len(FEATURES)] features of the query against the listings at ``rows``.

    Full-catalogue similarities may be passed in when the caller already computed them for retrieval.
    """
    rows = np.asarray(rows, np.int64)
    t = text_cosine(query, vectors) if text_sims is None else text_sims
    i = image_cosine(query, vectors) if image_sims is None else image_sims
    return stack_features(
        len(rows), text_cos=t[rows], image_cos=i[rows], category_agreement=category_agreement(query, vectors, rows),
        title_overlap=title_overlap(query, vectors, rows), price_gap=price_gap(query, vectors, rows),
    )
