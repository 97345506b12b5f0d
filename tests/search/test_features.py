"""Candidate features against hand computations: one row per candidate, in the ranker's column order."""

from __future__ import annotations

import numpy as np
import pytest

from listing_search.core.text import content_words
from listing_search.search.features import FEATURES, VOTERS, candidate_features, rrf, votes
from listing_search.search.types import IMAGE, LEXICAL, TEXT

ROOTS = ["Home", "Computers", "Sports"]


def test_missing_channels_give_zero_features():
    x = candidate_features(frozenset(), None, False, False, {}, [frozenset(), frozenset()],
                           np.array([-1, -1]), np.array([0, 1]), np.array([0, 1]))
    assert x.shape == (2, len(FEATURES)) and not x.any()


def test_channel_title_category_features():
    scores = {TEXT: np.array([0.9, 0.2, 0.5]), LEXICAL: np.array([4.0, 0.0, 2.0])}
    titles = [content_words(t) for t in ("Gaming laptop 16GB", "Sofa", "laptop bag")]
    roots = np.array([ROOTS.index(r) for r in ("Computers", "Home", "Computers")])
    paths = np.array([0, 1, 2])  # Computers / Laptops, Home / Sofas, Computers / Bags
    x = dict(zip(FEATURES, candidate_features(content_words("gaming laptop"), np.array([0.1, 0.8, 0.1]), True,
                                              False, scores, titles, roots, roots, paths).T))
    np.testing.assert_allclose(x["text_cos"], [0.9, 0.2, 0.5])
    np.testing.assert_allclose(x["bm25_share"], [1.0, 0.0, 0.5])
    assert x["title_overlap"].tolist() == [1.0, 0.0, 0.5]
    assert x["category_agreement"][0] > 0 > x["category_agreement"][1]
    assert x["has_text"].tolist() == [1, 1, 1] and x["has_image"].tolist() == [0, 0, 0]
    assert not x["image_cos"].any()
    # the two Computers listings vote for each other's root; the sofa has no other vote
    assert x["root_vote"][0] > 0 and x["root_vote"][2] > 0 and x["root_vote"][1] == 0
    assert not x["path_vote"].any()  # three paths: nobody shares one


def test_rrf_by_hand():
    scores = {TEXT: np.array([0.9, 0.5, -np.inf]), IMAGE: np.array([0.1, -np.inf, 0.8])}
    got = rrf(scores, [TEXT, IMAGE], 3)
    expect = [1 / 61 + 1 / 62, 1 / 62, 1 / 61]
    np.testing.assert_allclose(got, expect)


def votes_by_labels(groups: list, weights: np.ndarray, voters: int = VOTERS) -> np.ndarray:
    """The votes by hand, a loop over hashable labels (the reference the numpy counting must equal)."""
    weights = np.asarray(weights, np.float64)
    top = np.argsort(-weights, kind="stable")[:voters]
    total = float(weights[top].sum())
    mass: dict[object, float] = {}
    for j in top:
        mass[groups[j]] = mass.get(groups[j], 0.0) + float(weights[j])
    out = np.zeros(len(groups), np.float32)
    in_top = set(top.tolist())
    for i, g in enumerate(groups):
        own = float(weights[i]) if i in in_top else 0.0
        rest = total - own
        out[i] = (mass.get(g, 0.0) - own) / rest if rest > 0 else 0.0
    return out


def test_votes_exclude_the_candidate_itself():
    w = np.array([3.0, 2.0, 1.0])
    got = votes_by_labels(["a", "a", "b"], w)
    np.testing.assert_allclose(got, [2 / 3, 3 / 4, 0.0])
    np.testing.assert_array_equal(votes(np.array([7, 7, 9]), w), got)  # integer codes: counted in numpy


def test_votes_over_integer_codes_equal_the_loop_over_labels():
    rng = np.random.default_rng(3)
    for trial in range(3000):
        n = int(rng.integers(1, 300))
        codes = rng.integers(-1, [3, 40, 10_000, 10**9][trial % 4], n)  # small codes, and far apart
        w = rng.random(n) if trial % 3 else np.round(rng.random(n) * 4) / 4  # ties among the top
        if trial % 11 == 0:
            w[:] = 0.0  # no weight: every vote 0
        labels = [f"g{c}" for c in codes.tolist()]  # the same groups as labels, counted by hand
        np.testing.assert_array_equal(votes(codes, w), votes_by_labels(labels, w))
    np.testing.assert_array_equal(votes(np.array([2**64 - 2, 2**64 - 1, 2**64 - 2], np.uint64), np.ones(3)),
                                  votes_by_labels(["a", "b", "a"], np.ones(3)))  # codes at their dtype's end


def test_votes_refuse_groups_that_are_not_integer_codes():
    with pytest.raises(TypeError):
        votes(["a", "a", "b"], np.ones(3))
    with pytest.raises(TypeError):
        votes(np.array([[1, 2], [1, 2]]), np.ones(2))


def test_content_words_drop_stopwords_and_case():
    assert content_words("The NEW Sofa, for sale!") == frozenset({"sofa"})
