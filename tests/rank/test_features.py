"""Candidate features against hand computations: one row per candidate, in the ranker's column order."""

from __future__ import annotations

import numpy as np

from listing_search.rank.features import (
    FEATURES, IMAGE, LEXICAL, TEXT, QueryContext, candidate_features, rrf, votes,
)
from listing_search.rank.vectors import best_photo_cosine, tokens
from tests.rank.fixtures import make_vectors

ROOTS = ["Home", "Computers", "Sports"]


def _label(root):
    return ROOTS.index(root) if root in ROOTS else None


def test_best_photo_cosine_matches_brute_force():
    v = make_vectors(n=12, photos_per_listing=3)
    rng = np.random.default_rng(1)
    v = v.subset(rng.permutation(len(v)))  # photos no longer in listing order before sorting
    q = rng.normal(size=(2, v.photos.shape[1]))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    expected = [max(float(a @ b) for a in q for b in v.photos_of(r)) for r in range(len(v))]
    np.testing.assert_allclose(best_photo_cosine(q, v), expected, atol=1e-6)


def test_missing_channels_and_records_give_zero_features():
    x = candidate_features(QueryContext(), [{}, {}], [None, None], [None, None], [None, None], _label)
    assert x.shape == (2, len(FEATURES)) and not x.any()


def test_channel_title_category_features():
    qc = QueryContext.of("gaming laptop", np.array([0.1, 0.8, 0.1]), has_image=False)
    scores = [{TEXT: 0.9, LEXICAL: 4.0}, {TEXT: 0.2, LEXICAL: 0.0}, {TEXT: 0.5, LEXICAL: 2.0}]
    x = dict(zip(FEATURES, candidate_features(qc, scores, [tokens(t) for t in ("Gaming laptop 16GB", "Sofa", "laptop bag")],
                                              ["Computers", "Home", "Computers"],
                                              ["Computers / Laptops", "Home / Sofas", "Computers / Bags"],
                                              _label).T))
    np.testing.assert_allclose(x["text_cos"], [0.9, 0.2, 0.5])
    np.testing.assert_allclose(x["bm25_share"], [1.0, 0.0, 0.5])
    assert x["title_overlap"].tolist() == [1.0, 0.0, 0.5]
    assert x["category_agreement"][0] > 0 > x["category_agreement"][1]
    assert x["has_text"].tolist() == [1, 1, 1] and x["has_image"].tolist() == [0, 0, 0]
    assert not x["image_cos"].any()
    # the two Computers listings vote for each other's root; the sofa has no other vote
    assert x["root_vote"][0] > 0 and x["root_vote"][2] > 0 and x["root_vote"][1] == 0


def test_rrf_by_hand():
    scores = [{TEXT: 0.9, IMAGE: 0.1}, {TEXT: 0.5}, {IMAGE: 0.8}]
    got = rrf(scores, [TEXT, IMAGE])
    expect = [1 / 61 + 1 / 62, 1 / 62, 1 / 61]
    np.testing.assert_allclose(got, expect)


def test_votes_exclude_the_candidate_itself():
    w = np.array([3.0, 2.0, 1.0])
    got = votes(["a", "a", "b"], w)
    np.testing.assert_allclose(got, [2 / 3, 3 / 4, 0.0])


def test_tokens_drop_stopwords_and_case():
    assert tokens("The NEW Sofa, for sale!") == frozenset({"sofa"})
