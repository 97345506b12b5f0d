"""Pair features against brute-force references."""

from __future__ import annotations

import numpy as np

from listing_search.rank.features import FEATURES, Query, pair_features
from listing_search.rank.vectors import best_photo_cosine, tokens
from tests.rank.fixtures import make_vectors


def test_best_photo_cosine_matches_brute_force():
    v = make_vectors(n=12, photos_per_listing=3)
    rng = np.random.default_rng(1)
    v = v.subset(rng.permutation(len(v)))  # photos no longer in listing order before sorting
    q = rng.normal(size=(2, v.photos.shape[1]))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    expected = [max(float(a @ b) for a in q for b in v.photos_of(r)) for r in range(len(v))]
    np.testing.assert_allclose(best_photo_cosine(q, v), expected, atol=1e-6)


def test_listing_without_photos_scores_zero():
    v = make_vectors(n=6)
    keep = v.photo_row != 2
    v.photos, v.photo_row = v.photos[keep], v.photo_row[keep]
    v.__dict__.pop("has_photo", None)
    assert best_photo_cosine(v.photos[:1], v)[2] == 0.0


def test_missing_query_parts_give_zero_features():
    v = make_vectors(n=6)
    x = pair_features(Query(), v, np.arange(6))
    assert x.shape == (6, len(FEATURES)) and not x.any()


def test_text_title_category_and_price_features():
    v = make_vectors(n=6)
    p = np.array([0.8, 0.1, 0.1])
    q = Query.from_text("laptop bag", v.text[1], category_probs=p, price=float(v.prices[1]))
    x = dict(zip(FEATURES, pair_features(q, v, np.array([0, 1])).T))
    np.testing.assert_allclose(x["text_cos"], [v.text[0] @ v.text[1], 1.0], atol=1e-6)
    assert x["title_overlap"].tolist() == [0.0, 0.5]  # "laptop" of {"laptop", "bag"}
    assert x["category_agreement"][0] > 0 > x["category_agreement"][1]  # listing 0 is category 0
    assert x["price_gap"][1] == 0.0 and x["price_gap"][0] > 0


def test_tokens_drop_stopwords_and_case():
    assert tokens("The NEW Sofa, for sale!") == frozenset({"sofa"})
