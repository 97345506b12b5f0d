"""Hashed words: stable, unit rows, and the sparse product equals the dense one."""

from __future__ import annotations

import numpy as np

from listing_search.models.hashed_words import hashed_matrix, hashed_words, sparse_dot


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


def test_char_grams_are_stable_weighted_by_idf_and_survive_a_dropped_letter():
    from listing_search.models.hashed_words import char_idf, hashed_chars

    texts = ["lawnmower for the garden", "gaming laptop", "garden lawnmower", "laptop bag"]
    idf = char_idf(texts, 4096)
    assert idf.shape == (4096,) and idf.min() >= 1.0
    idx, val = hashed_chars("Lawnmower!", idf)
    idx2, val2 = hashed_chars("lawnmower", idf)
    assert idx.tolist() == idx2.tolist() and np.allclose(val, val2)
    assert abs(float(np.linalg.norm(val)) - 1.0) < 1e-6
    assert len(hashed_chars("", idf)[0]) == 0

    def cosine(a: str, b: str) -> float:
        (ia, va), (ib, vb) = hashed_chars(a, idf), hashed_chars(b, idf)
        shared = {i: v for i, v in zip(ia.tolist(), va)}
        return float(sum(shared.get(i, 0.0) * v for i, v in zip(ib.tolist(), vb)))

    # a word with one letter dropped still shares most of its n-grams; another word shares none
    assert cosine("lawnmower", "lawnmwer") > 0.3
    assert cosine("lawnmower", "laptop") < 0.1
    # rarer n-grams weigh more: "laptop" is in two of the texts, "bag" in one
    from listing_search.models.hashed_words import char_gram_counts

    assert idf[char_gram_counts("bag", 4096)[0]].min() > idf[char_gram_counts("laptop", 4096)[0]].max()


def test_char_sparse_dot_matches_dense_matrix_product():
    from listing_search.models.hashed_words import char_idf

    texts = ["pine bed frame", "gaming laptop 16gb", "", "bed bed bed"]
    idf = char_idf(texts, 512)
    w = np.random.default_rng(0).normal(size=(3, 512)).astype(np.float32)
    dense = hashed_matrix(texts, idf=idf).toarray()
    assert dense.shape == (4, 512)
    np.testing.assert_allclose(sparse_dot(texts, w, idf), dense @ w.T, atol=1e-5)
