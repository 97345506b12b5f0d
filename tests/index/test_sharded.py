"""The IVF index filled by shard workers equals the single-machine build with the same trained quantizer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import faiss
import numpy as np
import pytest

from listing_search import schema as S
from listing_search.distributed import shards as sh
from listing_search.distributed.runner import LocalRunner
from listing_search.index import snapshot
from listing_search.index.build import build_index
from listing_search.index.live import IMAGE, TEXT, LiveIndexes
from listing_search.index.select import IVF_PQ, IVF_SQ8
from listing_search.index.sharded import add_on_shards, list_assignment
from listing_search.index.vector_index import VectorIndex
from listing_search.settings import Settings
from listing_search.store import open_storage
from listing_search.store.models import ORIGIN_API, ListingIn, PhotoIn, model_versions
from tests.index.tiny_artifacts import DIM, make_artifacts


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


# --- the index stage with a work area: IVF filled as shards, snapshot at the log sequence -----------------


def index_stage_both_ways(root: Path, data: dict, n_listings: int = 120) -> tuple[dict, dict, Path, Settings]:
    """``build_index`` on the same artifacts on one machine and with ``data`` (a work area, a runner)."""
    art = make_artifacts(root / "one", n_listings=n_listings, photos_per_listing=2, n_rare=0)
    cluster_art = Path(shutil.copytree(art, root / "sharded"))
    index = {"kind": IVF_SQ8, "recall_sample": 40}
    one = Settings(artifacts_dir=art, index=index)
    single = build_index(one, art)
    on_shards = Settings(artifacts_dir=cluster_art, index=index, data={**data, "shard_size": 64},
                         store={"publish_snapshots": True})
    return single, build_index(on_shards, cluster_art), cluster_art, on_shards


def assert_same_index(single: dict, sharded: dict, single_art: Path, sharded_art: Path) -> None:
    """Same structure, same id -> list assignment (ids are the store's vector ids: same load order) and recall."""
    assert sharded["filled_by"].endswith("shards of 64 vectors") and single["filled_by"] == "driver"
    for key in ("factory", "size", "catalog", "log_seq", "search_params"):
        assert sharded[key] == single[key], key
    assert round(sharded["recall_at_10"], 3) == round(single["recall_at_10"], 3)
    a, b = (latest_image_index(p) for p in (single_art, sharded_art))
    assert list_assignment(b.index) == list_assignment(a.index) and len(list_assignment(a.index)) == single["size"]


def assert_replica_follows_the_log(art: Path, settings: Settings, infos: dict, folder: Path) -> None:
    """A new replica (empty disk) loads the published snapshot at the build's log sequence, then the log."""
    store, blobs = open_storage(settings, art)
    models = model_versions(art, with_text=False)
    vector = np.random.default_rng(5).normal(size=DIM).astype(np.float32)
    key, seq = store.add_listing(ListingIn("api-1", {"title": "new"}, [PhotoIn("api-p", "photos/api-p.jpg", vector)],
                                           origin=ORIGIN_API), models)
    replica = LiveIndexes.open(store, models, {IMAGE: DIM, TEXT: None}, folder, settings.index, blobs)
    assert replica.snapshot_seq == infos["log_seq"] and replica.seq == seq > infos["log_seq"]
    assert replica.image.infos["factory"] == infos["factory"] and replica.image.size == infos["size"] + 1
    (vid,) = store.photo_vector_ids_many([key])[key]
    assert replica.image.search(vector[None], 1).ids[0].tolist() == [vid]


def latest_image_index(art: Path) -> VectorIndex:
    data = snapshot.load_latest(art / S.SNAPSHOTS_DIR, model_versions(art, with_text=False))
    assert data is not None
    return VectorIndex.from_bytes(*data.image)


def test_index_stage_with_a_work_area_fills_ivf_on_shards_and_snapshots_at_the_log_seq(tmp_path: Path) -> None:
    single, sharded, art, settings = index_stage_both_ways(tmp_path, {"work_url": str(tmp_path / "work"),
                                                                      "workers": 1})
    assert_same_index(single, sharded, tmp_path / "one", art)
    manifests = list((tmp_path / "work" / "stages" / "index").glob("*/manifest.json"))
    assert len(manifests) == 1 and len(json.loads(manifests[0].read_text())["shards"]) == -(-sharded["size"] // 64)
    assert_replica_follows_the_log(art, settings, sharded, tmp_path / "replica")


def test_flat_choice_with_a_work_area_is_filled_on_the_driver(tmp_path: Path) -> None:
    art = make_artifacts(tmp_path / "art", n_listings=12)
    infos = build_index(Settings(artifacts_dir=art, data={"work_url": str(tmp_path / "work")}), art)
    assert (infos["kind"], infos["filled_by"], infos["size"]) == ("flat", "driver", 24)
    assert not (tmp_path / "work").exists()
