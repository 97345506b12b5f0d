"""prepare -> embed -> embed-text -> index on a real Dask cluster whose workers share nothing but S3.

The scheduler and two worker processes run on loopback; the workers run in their own mount namespace
with the test's temp root (every artifacts folder of the driver) hidden under an empty tmpfs, and S3 is
moto's standalone server. The artifacts must equal those of the local run on the same data.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from listing_search import schema as S
from listing_search.data.prepare import prepare
from listing_search.distributed import shards as sh
from listing_search.distributed.runner import DaskRunner
from listing_search.index.select import IVF_SQ8
from listing_search.index.sharded import list_assignment
from listing_search.cli import app
from listing_search.index.build import build_index
from listing_search.pipeline import read_stamp
from listing_search.settings import Settings
from listing_search.text.embed import embed_text
from listing_search.vision.embed import embed
from tests.index.test_sharded import assert_replica_follows_the_log, assert_same_index, sharded_and_single
from tests.index.tiny_artifacts import make_artifacts
from tests.realparts import dask_cluster_hiding, need_module
from tests.vision.fixtures import tiny_settings, trained_artifacts  # noqa: F401  (fixture)

boto3 = need_module("boto3")
distributed = need_module("distributed", "dask[distributed] is not installed")

AWS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
TEXT = {"batch_size": 8, "max_length": 64}


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Two isolated workers for the module: they cannot see anything under pytest's temp root."""
    hidden = tmp_path_factory.getbasetemp()
    with dask_cluster_hiding(hidden, workers=2, env=AWS) as address:
        with distributed.Client(address) as client:
            client.wait_for_workers(2, timeout=60)
        yield address


def on_cluster(base: Settings, address: str, work: str, endpoint: str, shard_size: int = 5) -> Settings:
    data = base.data.model_copy(update={"runner": "dask", "dask_address": address, "work_url": work,
                                        "shard_size": shard_size, "s3_endpoint_url": endpoint})
    return base.model_copy(update={"data": data, "text": base.text.model_copy(update=TEXT)})


def upload(folder: Path, endpoint: str, bucket: str, prefix: str) -> None:
    client = boto3.client("s3", endpoint_url=endpoint)
    for path in folder.rglob("*"):
        if path.is_file():
            client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder).as_posix()}")


def test_workers_cannot_see_the_drivers_files(dask_cluster: str, tmp_path: Path) -> None:
    secret = tmp_path / "artifact.txt"
    secret.write_text("driver only")
    with distributed.Client(dask_cluster) as client:
        seen = client.run(os.path.exists, str(secret))
        pids = client.run(os.getpid)
    assert secret.exists() and len(seen) == 2 and not any(seen.values())
    assert os.getpid() not in pids.values()


@pytest.mark.slow
def test_pipeline_on_isolated_dask_workers_matches_local(
    trained_artifacts: Path, dask_cluster: str, s3_bucket: str, s3_endpoint: str, tmp_path: Path  # noqa: F811
) -> None:
    base = tiny_settings()
    local = tmp_path / "local"
    shutil.copytree(trained_artifacts, local)  # prepare + train + embed, run locally
    local_settings = base.model_copy(update={"text": base.text.model_copy(update=TEXT)})
    embed_text(local_settings, local)
    local_infos = build_index(local_settings, local)

    upload(trained_artifacts.parent / "raw", s3_endpoint, s3_bucket, "raw")
    settings = on_cluster(base, dask_cluster, f"s3://{s3_bucket}/work", s3_endpoint)
    art = tmp_path / "dask"
    report = prepare(settings, f"s3://{s3_bucket}/raw", art)
    assert not (art / S.CLEAN_IMAGES_DIR).exists() and not (art / S.SOURCE_CACHE_DIR).exists()  # no mirror
    (art / S.MODEL_DIR).mkdir()
    for name in S.TRAINED_MODEL_FILES:  # training is a driver stage: its outputs are reused
        shutil.copyfile(local / name, art / name)
    embed(settings, art)
    embed_text(settings, art)
    infos = build_index(settings, art)

    assert report.photos == {"ok": 24}
    for name in (S.LISTINGS_CSV, S.TRAINING_CSV, S.CATEGORIES_JSON):
        assert (art / name).read_bytes() == (local / name).read_bytes(), name
    for npy, ids in ((S.IMAGE_EMBEDDINGS_NPY, S.IMAGE_EMBEDDING_IDS), (S.TEXT_EMBEDDINGS_NPY, S.TEXT_EMBEDDING_IDS)):
        assert json.loads((art / ids).read_text()) == json.loads((local / ids).read_text())
        np.testing.assert_allclose(np.load(art / npy), np.load(local / npy), atol=1e-5)
    assert (infos["factory"], infos["size"], infos["catalog"]) == \
        (local_infos["factory"], local_infos["size"], local_infos["catalog"])
    _assert_done_by_workers(dask_cluster, s3_endpoint, s3_bucket)


def _assert_done_by_workers(address: str, endpoint: str, bucket: str) -> None:
    """Every stage published a manifest, and every shard ran in a worker process, not the driver."""
    with distributed.Client(address) as client:
        worker_pids = set(client.run(os.getpid).values())
    work = sh.WorkArea(f"s3://{bucket}/work", endpoint).store()
    manifests = [json.loads(work.get(k)) for k in work.keys("stages/") if k.endswith("/manifest.json")]
    assert {m["stage"] for m in manifests} >= {"prepare", "embed", "embed_text"}
    pids = {shard["pid"] for m in manifests for shard in m["shards"]}
    assert pids <= worker_pids and os.getpid() not in pids


def test_ivf_filled_by_isolated_workers_equals_single_machine(dask_cluster: str, s3_bucket: str,
                                                              s3_endpoint: str, tmp_path: Path) -> None:
    runner = DaskRunner(dask_cluster, batch=1)
    work = sh.WorkArea(f"s3://{s3_bucket}/work", s3_endpoint)
    single, sharded, _ = sharded_and_single(IVF_SQ8, tmp_path, runner, work)
    assert list_assignment(sharded.index) == list_assignment(single.index)
    queries = np.random.default_rng(1).normal(size=(20, 32)).astype(np.float32)
    a, b = single.search(queries, 10), sharded.search(queries, 10)
    assert all(set(x.tolist()) == set(y.tolist()) for x, y in zip(a.ids, b.ids))


def test_index_verb_fills_ivf_on_isolated_workers_and_replicas_follow_its_snapshot(
    dask_cluster: str, s3_bucket: str, s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``listing-search index --runner dask --dask-address ... --work-url s3://...``: same index as one machine,
    published as a snapshot at the store's log sequence, from which a new replica follows the log."""
    one, art = _tiny(tmp_path / "one"), _tiny(tmp_path / "dask")
    single_infos = build_index(Settings(artifacts_dir=one, index={"kind": IVF_SQ8}), one)
    monkeypatch.setenv("LISTING_SEARCH_DATA__S3_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("LISTING_SEARCH_STORE__PUBLISH_SNAPSHOTS", "true")
    result = CliRunner().invoke(app, ["index", "--artifacts", str(art), "--kind", IVF_SQ8, "--runner", "dask",
                                      "--dask-address", dask_cluster, "--work-url", f"s3://{s3_bucket}/work",
                                      "--shard-size", "64"])
    assert result.exit_code == 0, result.output
    infos = read_stamp(art, "index")["infos"]
    assert_same_index(single_infos, infos, one, art)
    with distributed.Client(dask_cluster) as client:
        worker_pids = set(client.run(os.getpid).values())
    work = sh.WorkArea(f"s3://{s3_bucket}/work", s3_endpoint).store()
    (manifest,) = [json.loads(work.get(k)) for k in work.keys("stages/index/") if k.endswith("/manifest.json")]
    assert len(manifest["shards"]) == 4 and {s["pid"] for s in manifest["shards"]} <= worker_pids
    assert_replica_follows_the_log(art, Settings(artifacts_dir=art), infos, tmp_path / "replica")


def _tiny(root: Path) -> Path:
    return make_artifacts(root, n_listings=120, photos_per_listing=2, n_rare=0)
