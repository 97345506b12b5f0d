"""Hashed bags of words (unigrams + bigrams) and of character n-grams: what the sentence embedding blurs.

Listing descriptions often name their category verbatim ("Posted by ... in Dining, Living Room
Furniture ..."), brand and model names decide the category, and MiniLM truncates long text. Words
are hashed (crc32, stable across processes) into a fixed number of buckets, so no vocabulary
needs storing and serving computes the same features with the standard library and numpy.

Character n-grams (3 to 5 letters of each word padded with spaces, TF-IDF weighted) match what
whole words miss: plurals and word forms ("lawnmowers", "mower"), joined words and the typo the
speller did not correct. Their inverse document frequencies, one per bucket, are fit with the model
that uses them and travel with it. Measured on the held-out catalogue's validation titles (category
predictor, 1,096 titles): 0.782 -> 0.794 accuracy, 0.683 -> 0.723 on titles with a letter dropped.
"""

from __future__ import annotations

import zlib
from functools import lru_cache

import numpy as np

from listing_search.core.text import words

N_BUCKETS = 1 << 15
N_CHAR_BUCKETS = 1 << 16
CHAR_GRAMS = (3, 5)  # shortest and longest n-gram


def hashed_words(text: str, n_buckets: int = N_BUCKETS) -> tuple[np.ndarray, np.ndarray]:
    """(bucket indices, weights) of one text: log(1 + count), rows of unit length."""
    toks = words(text)
    grams = toks + [f"{a} {b}" for a, b in zip(toks, toks[1:])]
    counts: dict[int, int] = {}
    for g in grams:
        h = zlib.crc32(g.encode()) % n_buckets
        counts[h] = counts.get(h, 0) + 1
    if not counts:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    idx = np.fromiter(counts.keys(), np.int64, len(counts))
    val = np.log1p(np.fromiter(counts.values(), np.float64, len(counts)))
    return idx, (val / np.linalg.norm(val)).astype(np.float32)


@lru_cache(maxsize=1 << 16)
def _word_char_grams(word: str, n_buckets: int) -> np.ndarray:
    padded = f" {word} "
    lo, hi = CHAR_GRAMS
    grams = [padded[i:i + n] for n in range(lo, hi + 1) for i in range(max(1, len(padded) - n + 1))]
    return np.array([zlib.crc32(b"c" + g.encode()) % n_buckets for g in grams], np.int64)


def char_gram_counts(text: str, n_buckets: int = N_CHAR_BUCKETS) -> tuple[np.ndarray, np.ndarray]:
    """(bucket indices, counts) of the character n-grams of each word of ``text``."""
    toks = words(text)
    if not toks:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    idx, counts = np.unique(np.concatenate([_word_char_grams(t, n_buckets) for t in toks]), return_counts=True)
    return idx, counts.astype(np.float32)


def hashed_chars(text: str, idf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bucket indices, weights) of one text's character n-grams: log(1 + count) * idf, unit length."""
    idx, counts = char_gram_counts(text, len(idf))
    if not len(idx):
        return idx, counts
    val = np.log1p(counts) * idf[idx]  # > 0: every count is >= 1 and every idf >= 1
    return idx, (val / np.linalg.norm(val)).astype(np.float32)


def char_idf(texts: list[str], n_buckets: int = N_CHAR_BUCKETS) -> np.ndarray:
    """[B] smoothed inverse document frequency of each bucket over ``texts``: log((1 + N) / (1 + df)) + 1."""
    df = np.zeros(n_buckets, np.int64)
    for text in texts:
        df[char_gram_counts(text, n_buckets)[0]] += 1
    return (np.log((1.0 + len(texts)) / (1.0 + df)) + 1.0).astype(np.float32)


def _featurise(text: str, n_buckets: int, idf: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    return hashed_words(text, n_buckets) if idf is None else hashed_chars(text, idf)


def sparse_dot(texts: list[str], weights: np.ndarray, idf: np.ndarray | None = None) -> np.ndarray:
    """[N, C]: each text's hashed words (character n-grams with ``idf``) times ``weights`` [C, B],
    without building the [N, B] matrix."""
    out = np.zeros((len(texts), weights.shape[0]), np.float32)
    for i, text in enumerate(texts):
        idx, val = _featurise(text, weights.shape[1], idf)
        if len(idx):
            out[i] = weights[:, idx] @ val
    return out


def hashed_matrix(texts: list[str], n_buckets: int = N_BUCKETS, idf: np.ndarray | None = None):
    """scipy CSR [N, B] of the texts' hashed words, or of their character n-grams with ``idf``
    (then B = len(idf)); build time only: fitting needs the whole matrix."""
    import scipy.sparse as sp

    n_buckets = n_buckets if idf is None else len(idf)
    rows, cols, vals = [], [], []
    for i, text in enumerate(texts):
        idx, val = _featurise(text, n_buckets, idf)
        rows.append(np.full(len(idx), i))
        cols.append(idx)
        vals.append(val)
    cat = (lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt))
    return sp.csr_matrix((cat(vals, np.float32), (cat(rows, np.int64), cat(cols, np.int64))),
                         shape=(len(texts), n_buckets))
