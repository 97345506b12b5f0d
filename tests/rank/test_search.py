"""Retrieval + re-ranking: filters respected, one result per listing, order as the ranker says."""

from __future__ import annotations

import numpy as np

from listing_search.rank.features import FEATURES, Query
from listing_search.rank.ranker import Ranker
from listing_search.rank.search import rank, top_rows
from tests.rank.fixtures import make_vectors


def test_top_rows_is_a_sorted_brute_force_top_n():
    s = np.array([0.1, 0.9, 0.5, 0.9, -1.0])
    assert top_rows(s, 3).tolist() == [1, 3, 2]
    assert top_rows(s, 3, allowed=np.array([1, 0, 1, 0, 1], bool)).tolist() == [2, 0, 4]
    assert top_rows(s, 10, allowed=np.zeros(5, bool)).tolist() == []


def test_default_ranker_orders_by_text_plus_image_cosine():
    v = make_vectors(n=30)
    q = Query(text_vec=v.text[4], image_vecs=v.photos_of(4))
    got = rank(q, v, Ranker.default(list(FEATURES)), k=10, candidates=30)
    image = np.array([(v.photos_of(r) @ v.photos_of(4).T).max() for r in range(len(v))])
    expected = np.argsort(-(v.text @ v.text[4] + image), kind="stable")[:10]
    assert got.rows.tolist() == expected.tolist()


def test_one_result_per_listing_and_filters_respected():
    v = make_vectors(n=30, photos_per_listing=4)
    allowed = v.labels == 1
    got = rank(Query(image_vecs=v.photos_of(0)), v, Ranker.default(list(FEATURES)), k=20, candidates=50,
               allowed=allowed)
    assert len(set(got.rows.tolist())) == len(got.rows) == int(allowed.sum())
    assert (v.labels[got.rows] == 1).all()
    assert np.all(np.diff(got.scores) <= 1e-9)
