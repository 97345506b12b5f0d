"""The selector's pick at scale keeps recall@10 >= 0.95 against exact search (bench_index_scale, scaled down).

At 1M x 1000-d with the default 1.5 GB budget the selector picks IVF-SQ8 (HNSW with float vectors
does not fit). Here the same pick is forced by scaling the budget with the catalogue: 20k seeded,
clustered vectors, a budget that HNSW exceeds and 8-bit codes fit.
"""

from __future__ import annotations

import numpy as np

from listing_search.index.select import IVF_SQ8, choose_index, hnsw_bytes, ivf_sq8_bytes
from listing_search.index.vector_index import RECALL_TARGET, VectorIndex, exact_top_k, recall_at

N, DIM, QUERIES, K = 20_000, 1000, 200, 10


def clustered(n: int, dim: int, seed: int, rank: int = 64, clusters: int = 80) -> np.ndarray:
    """A seeded Gaussian mixture in a random ``rank``-dim subspace (1/i spectrum) plus a weak floor."""
    rng = np.random.default_rng(seed)
    scale = 1.0 / np.sqrt(np.arange(1, rank + 1))
    basis = np.linalg.qr(rng.standard_normal((dim, rank)))[0].T
    centres = rng.standard_normal((clusters, rank)) * scale
    coeffs = centres[rng.integers(0, clusters, n)] + 0.6 * rng.standard_normal((n, rank)) * scale
    x = coeffs @ basis + 0.05 * np.sqrt((scale**2).sum() / dim) * rng.standard_normal((n, dim))
    x = x.astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_one_million_by_1000_picks_ivf_sq8_within_the_default_budget() -> None:
    choice = choose_index(1_000_000, 1000, memory_budget_mb=1536, exact_max=200_000)
    assert choice.kind == IVF_SQ8 and choice.factory == "IVF4000_HNSW32,SQ8"
    assert choice.estimated_bytes <= 1536 * 1024 * 1024 < hnsw_bytes(1_000_000, 1000)


def test_selected_type_recall_against_exact_on_seeded_sample() -> None:
    data = clustered(N + QUERIES, DIM, seed=7)
    x, queries = data[:N], data[N:]
    budget_mb = (ivf_sq8_bytes(N, DIM) + hnsw_bytes(N, DIM)) // 2 // 2**20  # SQ8 fits, HNSW does not
    index = VectorIndex.build(x, np.arange(N), memory_budget_mb=budget_mb, exact_max=N // 2, seed=0)
    assert index.kind == IVF_SQ8

    found = index.search(queries, K).ids
    truth = exact_top_k(x, np.arange(N, dtype=np.int64), queries, K)
    assert recall_at(found, truth) >= RECALL_TARGET
