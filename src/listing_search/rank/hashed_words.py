"""Hashed bag of words (unigrams + bigrams): exact words the sentence embedding blurs.

Listing descriptions often name their category verbatim ("Posted by ... in Dining, Living Room
Furniture ..."), brand and model names decide the category, and MiniLM truncates long text. Words
are hashed (crc32, stable across processes) into a fixed number of buckets, so no vocabulary
needs storing and serving computes the same features with the standard library and numpy.
"""

from __future__ import annotations

import re
import zlib

import numpy as np

N_BUCKETS = 1 << 15
_TOKEN = re.compile(r"[a-z0-9]+")


def hashed_words(text: str, n_buckets: int = N_BUCKETS) -> tuple[np.ndarray, np.ndarray]:
    """(bucket indices, weights) of one text: log(1 + count), rows of unit length."""
    toks = _TOKEN.findall((text or "").lower())
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


def sparse_dot(texts: list[str], weights: np.ndarray) -> np.ndarray:
    """[N, C]: each text's hashed words times ``weights`` [C, B], without building the [N, B] matrix."""
    out = np.zeros((len(texts), weights.shape[0]), np.float32)
    for i, text in enumerate(texts):
        idx, val = hashed_words(text, weights.shape[1])
        if len(idx):
            out[i] = weights[:, idx] @ val
    return out


def hashed_matrix(texts: list[str], n_buckets: int = N_BUCKETS):
    """scipy CSR [N, B] of the texts (build time only: fitting needs the whole matrix)."""
    import scipy.sparse as sp

    rows, cols, vals = [], [], []
    for i, text in enumerate(texts):
        idx, val = hashed_words(text, n_buckets)
        rows.append(np.full(len(idx), i))
        cols.append(idx)
        vals.append(val)
    cat = (lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt))
    return sp.csr_matrix((cat(vals, np.float32), (cat(rows, np.int64), cat(cols, np.int64))),
                         shape=(len(texts), n_buckets))
