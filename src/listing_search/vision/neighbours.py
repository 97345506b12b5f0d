"""Photo -> photo neighbour precision by cosine, the measure the retrieval head is trained and chosen for."""

from __future__ import annotations

import numpy as np


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def top_k(queries: np.ndarray, catalogue: np.ndarray, k: int, block: int = 1024) -> np.ndarray:
    """Row indices of each query's ``k`` most cosine-similar catalogue rows, best first (exact search)."""
    q, c = unit(queries), unit(catalogue)
    k = min(k, len(c))
    out = np.empty((len(q), k), np.int64)
    for start in range(0, len(q), block):
        sims = q[start:start + block] @ c.T
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, part, 1), axis=1, kind="stable")
        out[start:start + block] = np.take_along_axis(part, order, 1)
    return out


def precision_at_k(queries: np.ndarray, query_labels: np.ndarray, catalogue: np.ndarray,
                   catalogue_labels: np.ndarray, k: int = 10) -> float:
    """Mean share of each query's ``k`` nearest catalogue rows that carry the query's label."""
    if not len(queries) or not len(catalogue):
        return float("nan")
    hits = np.asarray(catalogue_labels)[top_k(queries, catalogue, k)] == np.asarray(query_labels)[:, None]
    return float(hits.mean())
