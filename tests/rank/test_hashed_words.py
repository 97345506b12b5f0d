"""Hashed words: stable, unit rows, and the sparse product equals the dense one."""

from __future__ import annotations

import numpy as np

from listing_search.rank.hashed_words import hashed_matrix, hashed_words, sparse_dot


def test_hashing_is_stable_and_unit_length():
    idx, val = hashed_words("Pine bed frame, pine", 1024)
    idx2, val2 = hashed_words("pine BED frame pine", 1024)  # same words: case and punctuation ignored
    assert idx.tolist() == idx2.tolist() and np.allclose(val, val2)
    assert len(idx) <= 6  # 3 distinct words + 3 distinct bigrams
    assert abs(float(np.linalg.norm(val)) - 1.0) < 1e-6
    assert len(hashed_words("", 1024)[0]) == 0


def test_sparse_dot_matches_dense_matrix_product():
    texts = ["pine bed frame", "gaming laptop 16gb", "", "bed bed bed"]
    w = np.random.default_rng(0).normal(size=(3, 512)).astype(np.float32)
    dense = hashed_matrix(texts, 512).toarray()
    np.testing.assert_allclose(sparse_dot(texts, w), dense @ w.T, atol=1e-5)
