"""A worker process SIGKILLed halfway through a stage on a real Dask cluster: the stage fails without
publishing its manifest, and the rerun does only the shards that had not committed (marker written).

The cluster is this module's own (scheduler + 2 isolated workers, S3 on moto), with
``allowed-failures 0`` so the first killed task fails the run instead of being retried elsewhere:
the driver sees a half-done stage, as after losing a machine for good.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from listing_search.distributed import shards as sh
from listing_search.distributed.runner import DaskRunner
from listing_search.store.blobs import BlobStore
from tests.realparts import dask_cluster_hiding, need_module

distributed = need_module("distributed", "dask[distributed] is not installed")

STAGE, SHARDS, SECONDS = "slow", 8, 1.0
ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
       "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"}


def slow_shard(shard: sh.Shard, work: BlobStore) -> sh.ShardOutputs:
    """Records each execution (a key per run), then takes SECONDS."""
    work.put(f"{shard.prefix}/runs/{shard.index:05d}-{uuid.uuid4().hex}", b"")
    time.sleep(SECONDS)
    return {"out.txt": f"shard {shard.index}".encode()}, {}


def slow_stage(runner: DaskRunner, shards: list[sh.Shard]) -> dict:
    """What every stage does: run the shards, then publish the manifest (only when all are done)."""
    markers = sh.run_stage(runner, shards, slow_shard)
    return sh.publish(shards[0].work, STAGE, shards[0].run, markers, {})


@pytest.fixture(scope="module")
def fragile_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with dask_cluster_hiding(tmp_path_factory.getbasetemp(), workers=2, env=ENV) as address:
        with distributed.Client(address) as client:
            client.wait_for_workers(2, timeout=60)
        yield address


def kill_a_worker_after(store: BlobStore, prefix: str, markers: int, pid: int) -> threading.Thread:
    """SIGKILL ``pid`` (a worker process, mid-shard) once ``markers`` shards have committed."""
    def watch() -> None:
        deadline = time.time() + 30
        while time.time() < deadline:
            if sum(k.endswith(".done.json") for k in store.keys(f"{prefix}/shards/")) >= markers:
                os.kill(pid, signal.SIGKILL)
                return
            time.sleep(0.05)
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_killed_worker_fails_the_stage_unpublished_and_the_rerun_skips_committed_shards(
    fragile_cluster: str, s3_bucket: str, s3_endpoint: str
) -> None:
    work = sh.WorkArea(f"s3://{s3_bucket}/work", s3_endpoint)
    store, run = work.store(), uuid.uuid4().hex
    shards = [sh.Shard(STAGE, run, i, work) for i in range(SHARDS)]
    prefix, runner = shards[0].prefix, DaskRunner(fragile_cluster, batch=1)
    with distributed.Client(fragile_cluster) as client:
        victim = next(iter(client.run(os.getpid).values()))

    killer = kill_a_worker_after(store, prefix, 2, victim)
    with pytest.raises(distributed.scheduler.KilledWorker):
        slow_stage(runner, shards)
    killer.join()
    time.sleep(SECONDS + 0.5)  # the other worker's shard in flight may still commit: let it
    committed = {k: store.get(k) for k in store.keys(f"{prefix}/shards/") if k.endswith(".done.json")}
    assert 2 <= len(committed) < SHARDS and sh.published(work, STAGE, run) is None

    ran_before = len(list(store.keys(f"{prefix}/runs/")))
    manifest = slow_stage(runner, shards)
    runs = [k.rsplit("/", 1)[1].split("-")[0] for k in store.keys(f"{prefix}/runs/")]
    for key, marker in committed.items():
        assert store.get(key) == marker, f"{key} was redone"
        assert runs.count(key.rsplit("/", 1)[1].split(".")[0]) == 1
    assert len(runs) - ran_before == SHARDS - len(committed)  # the rerun ran only the uncommitted shards
    assert len(manifest["shards"]) == SHARDS and sh.published(work, STAGE, run) == manifest
