"""Approximate indexes against brute force, filtered search, live changes surviving a reload."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from listing_search.index.select import FLAT, HNSW, IVF_PQ
from listing_search.index.vector_index import COMPACT_RATIO, VectorIndex, exact_top_k, normalise, recall_at


def clustered(n: int, dim: int, seed: int = 0, centres: int = 20) -> np.ndarray:
    """Seeded vectors around a few centres, like embeddings of a few kinds of things."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, dim)).astype(np.float32)
    return c[rng.integers(0, centres, n)] + 0.3 * rng.standard_normal((n, dim)).astype(np.float32)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return clustered(2000, 16), np.arange(2000, dtype=np.int64) * 3 + 7  # ids unrelated to rows


@pytest.mark.parametrize(("kind", "min_recall"), [(FLAT, 1.0), (HNSW, 0.9), (IVF_PQ, 0.5)])
def test_recall_against_brute_force(data, kind: str, min_recall: float) -> None:
    x, ids = data
    if kind == IVF_PQ:  # PQ training is the slow part: fewer, shorter vectors
        x, ids = x[:1000, :8].copy(), ids[:1000]
    index = VectorIndex.build(x, ids, kind=kind, recall_sample=100)
    noise = np.random.default_rng(1).standard_normal((50, x.shape[1])).astype(np.float32)
    q = normalise(x[:50] + 0.3 * noise)  # new points from the same distribution
    truth = exact_top_k(normalise(x), ids, q, 10)
    assert recall_at(index.search(q, 10).ids, truth) >= min_recall
    assert index.infos["recall_at_10"] >= min_recall
    assert index.infos["kind"] == kind and index.infos["size"] == len(x) and index.infos["dimension"] == x.shape[1]


def test_scores_are_cosine(data) -> None:
    x, ids = data
    index = VectorIndex.build(x[:100], ids[:100])
    res = index.search(x[:1] * 5.0, 3)  # scale does not matter
    assert res.ids[0][0] == ids[0] and res.scores[0][0] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("kind", [FLAT, HNSW])
def test_filtered_search_is_exact_on_the_subset(data, kind: str) -> None:
    x, ids = data
    index = VectorIndex.build(x, ids, kind=kind, recall_sample=20)
    allowed = ids[::97]  # 21 ids scattered over every cluster
    q = normalise(x[5:8])
    truth = exact_top_k(normalise(x[::97]), allowed, q, 10)
    res = index.search(q, 10, allowed)
    assert [r.tolist() for r in res.ids] == [t.tolist() for t in truth]
    assert all(len(r) == 10 for r in res.ids)
    assert len(index.search(q, 50, allowed).ids[0]) == len(allowed)  # k beyond the subset: all of it


@pytest.mark.parametrize("kind", [FLAT, HNSW, IVF_PQ])
def test_add_remove_then_reload(tmp_path: Path, data, kind: str) -> None:
    x, ids = data
    path = tmp_path / "index" / "image.faiss"
    index = VectorIndex.build(x[:1000], ids[:1000], kind=kind, recall_sample=20)  # IVF: nlist 25, PQ8x4
    index.save(path)
    new = clustered(3, 16, seed=9)
    index.add(new, np.array([10**9, 10**9 + 1, 10**9 + 2]))
    assert index.remove(ids[:5]) == 5 and index.remove(np.array([123456789])) == 0
    reloaded = VectorIndex.load(path)
    live = set(reloaded.all_ids().tolist())
    assert reloaded.size == 1000 - 5 + 3 and not live & set(ids[:5].tolist()) and 10**9 + 1 in live
    hit = reloaded.search(new[1:2], 1)
    assert hit.ids[0][0] == 10**9 + 1
    found = np.concatenate(reloaded.search(normalise(x[:5]), 20).ids)
    assert not set(found.tolist()) & set(ids[:5].tolist())
    infos = json.loads(path.with_suffix(".infos.json").read_text())
    assert infos["size"] == reloaded.size and infos["kind"] == kind and "recall_at_10" in infos


def test_hnsw_tombstones_then_compaction(tmp_path: Path, data) -> None:
    x, ids = data
    path = tmp_path / "hnsw.faiss"
    index = VectorIndex.build(x[:200], ids[:200], kind=HNSW, recall_sample=20)
    index.save(path)
    index.remove(ids[:10])
    assert index.index.ntotal == 200 and len(index.tombstones) == 10  # still in the graph, masked
    assert json.loads(path.with_suffix(".tombstones.json").read_text())[:2] == sorted(ids[:10].tolist())[:2]
    index.remove(ids[10 : 10 + int(COMPACT_RATIO * 200)])
    assert not index.tombstones and index.index.ntotal == index.size == 200 - 10 - 40  # compacted
    reloaded = VectorIndex.load(path)
    assert reloaded.size == 150 and not reloaded.tombstones


def test_build_refuses_duplicate_ids() -> None:
    with pytest.raises(ValueError, match="unique"):
        VectorIndex.build(np.ones((2, 4)), np.array([1, 1]))


def test_filtered_search_skips_allowed_ids_the_index_lacks(data) -> None:
    """After a crash the catalogue may name photos the index never got: skip them, never raise."""
    x, ids = data
    index = VectorIndex.build(x[:300], ids[:300], kind=HNSW, recall_sample=10)
    allowed = np.concatenate([ids[:5], [10**9, 10**9 + 1]])
    res = index.search(x[:1], 10, allowed=allowed)
    assert res.ids[0][0] == ids[0]
    assert set(res.ids[0].tolist()) == set(ids[:5].tolist())
    assert len(index.search(x[:1], 3, allowed=np.array([10**9])).ids[0]) == 0
