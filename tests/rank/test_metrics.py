"""Evaluation helpers: nDCG against a hand computation, the personalisation simulation's users."""

from __future__ import annotations

import math

import numpy as np
import pytest

from listing_search.rank.metrics import (concat_vectors, graded, ndcg_at_k, ndcg_at_k_groups, precision_at_k_groups,
                                         simulated_users)
from tests.rank.fixtures import make_vectors


def test_ndcg_hand_computed():
    assert ndcg_at_k(np.array([2, 1, 0]), np.array([0, 1, 2])) == 1.0
    got = ndcg_at_k(np.array([0, 2]), np.array([2, 0, 0]), k=2)
    assert abs(got - (3 / math.log2(3)) / 3) < 1e-12
    assert ndcg_at_k(np.array([0, 0]), np.array([0, 0])) == 0.0


def test_graded_relevance():
    v = make_vectors(n=9)
    assert graded(v, np.arange(9), v.labels[0], v.paths[0]).tolist() == [2, 0, 0, 1, 0, 0, 2, 0, 0]


def test_simulated_users_history_is_catalogue_listings_of_the_target_path():
    catalogue, queries = make_vectors(n=60, seed=0), make_vectors(n=9, seed=1)
    users = simulated_users(catalogue, queries, seed=0, n_users=5)
    assert len(users) == 5
    for target, history in users:
        rows = [catalogue.row_of(e.listing_id) for e in history]
        assert len(set(rows)) == 3 and all(catalogue.paths[r] == queries.paths[target] for r in rows)


def test_pool_keeps_rows_and_photos_aligned():
    a, b = make_vectors(n=6, seed=0), make_vectors(n=4, seed=1)
    pool = concat_vectors(a, b)
    assert len(pool) == 10 and np.allclose(pool.photos_of(7), b.photos_of(1))
    assert pool.texts[7] == b.texts[1]


def test_group_metrics_match_per_query_reference():
    scores = np.array([0.1, 0.9, 0.5, 0.3, 0.2])
    grades = np.array([2, 0, 1, 0, 1])
    groups = np.array([3, 2])
    first = ndcg_at_k(np.array([0, 1, 2]), grades[:3])
    second = ndcg_at_k(np.array([0, 1]), grades[3:])
    assert ndcg_at_k_groups(scores, grades, groups) == pytest.approx((first + second) / 2)
    assert precision_at_k_groups(scores, grades, groups, k=2) == pytest.approx((0.5 + 0.5) / 2)
    assert ndcg_at_k_groups(np.zeros(2), np.zeros(2, int), np.array([2])) == 0.0  # nothing relevant counts 0
    with pytest.raises(ValueError, match="query sizes"):
        ndcg_at_k_groups(scores, grades, np.array([2, 2]))
