"""Every structure the selector can choose follows live adds and deletes without losing recall, and
filtered search keeps recall@10 >= 0.95 against exact filtered search, through either path."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest

from listing_search.index import select
from listing_search.index.select import FLAT, HNSW, IVF_PQ, IVF_SQ8
from listing_search.index.vector_index import VectorIndex, exact_top_k, recall_at
from tests.index.test_selector_scale import clustered

N, DIM, Q, K = 20_000, 64, 200, 10
ROUNDS, BATCH = 10, 500


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return clustered(N + ROUNDS * BATCH + Q, DIM, seed=3, rank=32)


@pytest.mark.parametrize("kind", [FLAT, HNSW, IVF_SQ8, IVF_PQ])
def test_recall_after_a_stream_of_adds_and_deletes_matches_a_fresh_build(data: np.ndarray, kind: str) -> None:
    x, queries = data[: N + ROUNDS * BATCH], data[-Q:]
    index = VectorIndex.build(x[:N], np.arange(N), kind=kind, seed=0)
    live = np.arange(N)
    rng = np.random.default_rng(11)
    for r in range(ROUNDS):  # 5,000 deletes and 5,000 adds, as the log follower applies them
        gone = rng.choice(live, size=BATCH, replace=False)
        assert index.remove(gone, persist=False) == BATCH
        new = np.arange(N + r * BATCH, N + (r + 1) * BATCH)
        index.add(x[new], new, persist=False)
        live = np.concatenate([np.setdiff1d(live, gone), new])
    assert index.size == N and set(index.all_ids().tolist()) == set(live.tolist())

    truth = exact_top_k(x[live], live, queries, K)
    after_changes = recall_at(index.search(queries, K).ids, truth)
    fresh = VectorIndex.build(x[live], live, choice=index.choice, search_params=index.infos["search_params"])
    assert after_changes >= recall_at(fresh.search(queries, K).ids, truth) - 0.01
    assert not set(np.concatenate(index.search(queries, 50).ids).tolist()) - set(live.tolist())


@pytest.fixture(scope="module")
def index_path_tuned(data: np.ndarray) -> VectorIndex:
    """IVF-SQ8 built as if exact scans were never cheaper: the build tunes the filtered index path."""
    cost = dataclasses.replace(select.CALIBRATED, filtered_index_ms=0.0)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(select, "CALIBRATED", cost)
        return VectorIndex.build(data[:N], np.arange(N), kind=IVF_SQ8, seed=0)


@pytest.mark.parametrize("share", [0.01, 0.1])
@pytest.mark.parametrize("path", ["index", "exact scan"])
def test_filtered_recall_at_1_and_10_percent(data: np.ndarray, index_path_tuned: VectorIndex, share: float,
                                             path: str) -> None:
    index, queries = index_path_tuned, data[-Q:]
    assert index.infos["search_params"]["subset_exact_max"] == 0
    assert index.infos["filtered"][str(share)]["path"] == "index + ID selector"
    allowed = np.sort(np.random.default_rng(5).choice(N, size=int(share * N), replace=False))
    if path == "exact scan":
        index = VectorIndex(index.index, index.kind, {**index.infos, "search_params": {
            **index.infos["search_params"], "subset_exact_max": N}})
    truth = exact_top_k(data[allowed], allowed, queries, K)
    found = index.search(queries, K, allowed).ids
    assert all(set(f.tolist()) <= set(allowed.tolist()) for f in found)
    assert recall_at(found, truth) >= 0.95


def test_filtered_knob_grows_as_the_allowed_share_shrinks(index_path_tuned: VectorIndex) -> None:
    index = index_path_tuned
    knobs = [index.knob("nprobe", 8, share) for share in (1.0, 0.1, 0.05, 0.01, 0.001)]
    assert knobs == sorted(knobs) and knobs[0] >= index.infos["search_params"]["nprobe"]
    assert knobs[-1] <= index.infos["choice"]["nlist"]


def test_build_records_held_out_measurements_and_warns_when_the_budget_is_missed(
        data: np.ndarray, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="listing_search.index.tune"):
        index = VectorIndex.build(data[:5000], np.arange(5000), latency_budget_ms=1e-6, seed=0)
    measured, budget = index.infos["measured"], index.infos["budget"]
    assert measured["recall_at_10"] >= 0.95 and 0 < measured["p50_ms"] <= measured["p99_ms"]
    assert index.infos["recall_sample"] == 200 and index.size == 5000  # held-out queries added back
    assert budget["met"] is False and any("p50" in m for m in budget["misses"])
    assert "misses its budget" in caplog.text
    assert set(index.infos["filtered"]) == {"0.1", "0.01"}


def test_filters_over_ids_too_large_for_a_bitmap_use_a_hash_set(data: np.ndarray) -> None:
    ids = np.arange(2000, dtype=np.int64) * 10**12  # a bitmap up to the largest id would not fit
    index = VectorIndex.build(data[:2000], ids, kind=FLAT)
    allowed = ids[::50]
    truth = exact_top_k(data[:2000:50], allowed, data[-5:], K)
    assert [r.tolist() for r in index.search(data[-5:], K, allowed).ids] == [t.tolist() for t in truth]
