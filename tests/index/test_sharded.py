"""The IVF index filled by shard workers equals the single-machine build with the same trained quantizer."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from listing_search.distributed import shards as sh
from listing_search.distributed.runner import LocalRunner
from listing_search.index.select import IVF_PQ, IVF_SQ8
from listing_search.index.sharded import add_on_shards, list_assignment
from listing_search.index.vector_index import VectorIndex


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(64, dim))
    return (centres[rng.integers(0, 64, n)] + 0.4 * rng.normal(size=(n, dim))).astype(np.float32)


def recall_at_10(index: VectorIndex, x: np.ndarray, ids: np.ndarray, queries: np.ndarray) -> float:
    """Against brute force over the raw vectors."""
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    truth = ids[np.argsort(-(q @ unit.T), axis=1)[:, :10]]
    got = index.search(queries, 10).ids
    return float(np.mean([len(set(g.tolist()) & set(t.tolist())) / 10 for g, t in zip(got, truth)]))


IDS = np.arange(6000, dtype=np.int64) * 7 + 3


def sharded_and_single(kind: str, tmp_path: Path, runner=None,
                       work: sh.WorkArea | None = None) -> tuple[VectorIndex, VectorIndex, np.ndarray]:
    x, ids = clustered(6000, 32), IDS
    single = VectorIndex.build(x, ids, kind=kind, search_params={"nprobe": 8})
    trained = faiss.clone_index(single.index)
    trained.reset()  # the same trained quantizer (and codebooks), no vectors
    merged = add_on_shards(runner or LocalRunner(1), work or sh.WorkArea(str(tmp_path / "work")), trained, x, ids,
                           1500)
    sharded = VectorIndex(merged, single.kind, dict(single.infos))
    return single, sharded, x


@pytest.mark.parametrize("kind", [IVF_SQ8, pytest.param(IVF_PQ, marks=pytest.mark.slow)])
def test_shard_built_ivf_has_the_same_lists_and_recall(kind: str, tmp_path: Path) -> None:
    single, sharded, x = sharded_and_single(kind, tmp_path)
    assert sharded.size == single.size == len(x)
    assert list_assignment(sharded.index) == list_assignment(single.index)
    queries = x[::60] + 0.05
    recall = round(recall_at_10(single, x, IDS, queries), 3)
    assert recall == round(recall_at_10(sharded, x, IDS, queries), 3) and recall > 0.5
    some = IDS[[0, 1, 5999]]
    np.testing.assert_array_equal(sharded.reconstruct(some), single.reconstruct(some))
