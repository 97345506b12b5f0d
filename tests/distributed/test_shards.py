"""Shard jobs on a work area: resume after an interruption, no half-published stage, checked outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from listing_search.data.prepare import fetch_clean_photos, prepare
from listing_search.distributed import shards as sh
from listing_search.distributed.runner import LocalRunner
from listing_search.settings import Settings
from listing_search.store.blobs import BlobStore


class WorkerKilled(RuntimeError):
    pass


def square_shard(shard: sh.Shard, work: BlobStore) -> sh.ShardOutputs:
    """Squares of the shard's numbers; dies on the shard named by ``die_on`` (a worker killed mid-stage)."""
    if shard.index == shard.params.get("die_on"):
        raise WorkerKilled(f"shard {shard.index}")
    runs = f"runs/{shard.index}"
    work.put(runs, str(int(work.get(runs)) + 1 if work.exists(runs) else 1).encode())
    x = np.array(shard.params["x"], np.float32)[:, None]
    return {"vectors.npy": sh.npy_bytes(x * x), "ids.json": json.dumps(shard.params["x"]).encode()}, {}


def shards(work: sh.WorkArea, die_on: int | None = None) -> list[sh.Shard]:
    return [sh.Shard("square", "run1", i, work, {"x": xs, "die_on": die_on})
            for i, xs in enumerate(sh.chunks(list(range(10)), 3))]


def test_interrupted_stage_resumes_without_redoing_finished_shards(tmp_path: Path) -> None:
    work = sh.WorkArea(str(tmp_path / "work"))
    with pytest.raises(WorkerKilled):
        sh.run_stage(LocalRunner(1), shards(work, die_on=2), square_shard)
    store = work.store()
    assert [store.exists(s.marker_key) for s in shards(work)] == [True, True, False, False]
    assert sh.published(work, "square", "run1") is None  # nothing half published
    before = {s.index: json.loads(store.get(s.marker_key)) for s in shards(work)[:2]}

    markers = sh.run_stage(LocalRunner(1), shards(work), square_shard)
    sh.publish(work, "square", "run1", markers, {})

    assert [int(store.get(f"runs/{i}")) for i in range(4)] == [1, 1, 1, 1]  # each shard computed once
    assert markers[:2] == [before[0], before[1]]
    vectors, ids = sh.merge_vectors(work, markers, 1)
    assert ids == list(range(10)) and vectors[:, 0].tolist() == [float(i * i) for i in range(10)]
    assert sh.published(work, "square", "run1")["shards"] == markers


def test_a_shard_whose_output_is_lost_or_changed_is_not_trusted(tmp_path: Path) -> None:
    work = sh.WorkArea(str(tmp_path / "work"))
    markers = sh.run_stage(LocalRunner(1), shards(work), square_shard)
    store = work.store()
    store.delete(markers[1]["files"]["ids.json"]["key"])
    store.put(markers[2]["files"]["vectors.npy"]["key"], sh.npy_bytes(np.zeros((3, 1), np.float32)))
    assert sh.finished(store, shards(work)[1]) is None  # redone by the next run
    with pytest.raises(sh.ShardCorrupt, match="missing, though its marker names it"):
        sh.merge_vectors(work, markers, 1)
    with pytest.raises(sh.ShardCorrupt, match="sha-256 differs from its marker's"):
        sh.merge_vectors(work, markers[2:], 1)
    again = sh.run_stage(LocalRunner(1), shards(work), square_shard)
    assert [int(store.get(f"runs/{i}")) for i in range(4)] == [1, 2, 2, 1]  # only the two bad shards redone
    assert sh.merge_vectors(work, again, 1)[0][:, 0].tolist() == [float(i * i) for i in range(10)]


def test_prepare_on_shards_from_a_folder_matches_local(tiny_dataset: Path, tmp_path: Path) -> None:
    (tiny_dataset / "images" / "img-003-1.jpg").write_bytes(b"corrupt")
    (tiny_dataset / "images" / "img-005-0.jpg").unlink()
    base = Settings()
    local = base.model_copy(update={"data": base.data.model_copy(update={"image_size": 32, "workers": 1})})
    sharded = local.model_copy(update={"data": local.data.model_copy(
        update={"work_url": str(tmp_path / "work"), "shard_size": 5})})
    a = prepare(local, str(tiny_dataset), tmp_path / "local")
    b = prepare(sharded, str(tiny_dataset), tmp_path / "sharded")
    assert a.summary() | {"seconds": 0} == b.summary() | {"seconds": 0}
    assert a.dropped == {"photo_not_an_image": 1, "photo_file_missing": 1}
    for name in ("listings.csv", "training_data.csv", "categories.json"):
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "sharded" / name).read_bytes()
    assert not (tmp_path / "sharded/images").exists()
    assert len(list((tmp_path / "work").rglob("*.jpg"))) == 22
    assert prepare(sharded, str(tiny_dataset), tmp_path / "sharded").up_to_date


class Stop(Exception):
    pass


def test_train_fetches_the_clean_photos_it_reads_after_a_sharded_prepare(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from listing_search.vision import train as train_stage

    settings = Settings(data={"image_size": 32, "workers": 1, "work_url": str(tmp_path / "work"), "shard_size": 5},
                        vision={"subset": 6})
    art = tmp_path / "art"
    prepare(settings, str(tiny_dataset), art)
    assert not (art / "images").exists()

    def stop(*args: object, **kwargs: object) -> None:
        raise Stop  # the photos are fetched before the model is built: nothing to train for this test

    monkeypatch.setattr(train_stage, "build_model", stop)
    with pytest.raises(Stop):
        train_stage.train(settings, art)
    fetched = sorted((art / "images").iterdir())
    in_work = {p.name: p.read_bytes() for p in (tmp_path / "work").rglob("*.jpg")}
    assert len(fetched) == 6 and all(p.read_bytes() == in_work[p.name] for p in fetched)
    assert fetch_clean_photos(art, [p.stem for p in fetched]) == 0  # kept, not fetched again
