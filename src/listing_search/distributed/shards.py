"""A stage as a list of shard jobs whose workers share nothing but a work area (``s3://`` or a folder).

A shard job reads its inputs by key from the work area (or the source), computes, and hands back its
outputs as bytes; :func:`run_shard`, on the worker, puts each output under the shard's final key (a
PUT is atomic per object, a local put is a rename) and then, last, a marker JSON with the sha-256 of
every output. The marker is the commit point: a shard without one is redone, a shard with one whose
outputs are all present is skipped by a rerun (resume). The driver merges the markers' small
manifests and publishes the stage's manifest only when every shard is done, so a stage interrupted
halfway never publishes half an output.

Layout under the work area, per stage run (``run`` is the stage's input fingerprint)::

    stages/<stage>/<run>/shards/<00007>/<output files>
    stages/<stage>/<run>/shards/<00007>.done.json     marker, written last
    stages/<stage>/<run>/manifest.json                 the stage's merged manifest, written after all shards
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from listing_search.errors import BlobNotFound
from listing_search.store.blobs import BlobStore, open_blobstore

log = logging.getLogger(__name__)

ShardOutputs = tuple[dict[str, bytes], dict[str, Any]]  # output name -> bytes, small JSON-able facts
ShardFn = Callable[["Shard", BlobStore], ShardOutputs]


class ShardCorrupt(RuntimeError):
    """A shard's output does not match the sha-256 its marker recorded."""


@dataclass(frozen=True)
class WorkArea:
    """Where workers read and write: ``s3://bucket/prefix`` or a folder every worker can reach."""

    url: str
    endpoint_url: str | None = None

    def store(self) -> BlobStore:
        return open_store(self.url, self.endpoint_url)


@functools.lru_cache(maxsize=8)
def open_store(url: str, endpoint_url: str | None) -> BlobStore:
    """One store (one boto3 client) per work area per process: workers run many shards."""
    return open_blobstore(url, endpoint_url)


@dataclass(frozen=True)
class Shard:
    """One unit of a stage's work; ``params`` are small (ids, keys, settings), never data."""

    stage: str
    run: str
    index: int
    work: WorkArea
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        return stage_prefix(self.stage, self.run)

    @property
    def marker_key(self) -> str:
        return f"{self.prefix}/shards/{self.index:05d}.done.json"

    def key(self, name: str) -> str:
        return f"{self.prefix}/shards/{self.index:05d}/{name}"


def stage_prefix(stage: str, run: str) -> str:
    return f"stages/{stage}/{run[:16]}"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def run_shard(fn: ShardFn, shard: Shard) -> dict[str, Any]:
    """On a worker: compute the shard, put its outputs, then its marker (last); returns the marker."""
    t0, cpu0 = time.perf_counter(), time.process_time()
    store = shard.work.store()
    outputs, meta = fn(shard, store)
    files = {}
    for name, data in outputs.items():
        store.put(shard.key(name), data)
        files[name] = {"key": shard.key(name), "sha256": sha256(data), "bytes": len(data)}
    marker = {
        "stage": shard.stage, "run": shard.run, "shard": shard.index, "files": files, "meta": meta,
        "host": socket.gethostname(), "pid": os.getpid(), "seconds": round(time.perf_counter() - t0, 3),
        "cpu_seconds": round(time.process_time() - cpu0, 3),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    store.put(shard.marker_key, json.dumps(marker, sort_keys=True).encode())
    return marker


def finished(store: BlobStore, shard: Shard) -> dict[str, Any] | None:
    """The shard's marker when it and every output it names exist (a resumable shard), else None."""
    try:
        marker = json.loads(store.get(shard.marker_key))
    except (BlobNotFound, json.JSONDecodeError):
        return None
    if marker.get("run") != shard.run or not all(store.exists(f["key"]) for f in marker["files"].values()):
        return None
    return marker


def run_stage(runner: Any, shards: Sequence[Shard], fn: ShardFn, progress: bool = False) -> list[dict[str, Any]]:
    """Every shard's marker, in shard order; shards finished by an earlier (interrupted) run are skipped.

    Raises whatever a shard raised (or the cluster's KilledWorker); the finished shards keep their
    markers, so the next call does only the rest.
    """
    if not shards:
        return []
    store = shards[0].work.store()
    done = {s.index: m for s in shards if (m := finished(store, s)) is not None}
    todo = [s for s in shards if s.index not in done]
    log.info("%s: %d shards, %d already done, %d to run", shards[0].stage, len(shards), len(done), len(todo))
    for marker in runner.map(functools.partial(run_shard, fn), todo, progress, desc=f"{shards[0].stage} shards",
                             unit="shard"):
        done[marker["shard"]] = marker
    return [done[s.index] for s in shards]


def publish(work: WorkArea, stage: str, run: str, markers: list[dict[str, Any]], facts: dict[str, Any]) -> dict:
    """The stage's manifest (every shard's files, plus ``facts``), written once all shards are done."""
    manifest = {"stage": stage, "run": run, "shards": markers, **facts,
                "published_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    work.store().put(f"{stage_prefix(stage, run)}/manifest.json", json.dumps(manifest, sort_keys=True).encode())
    return manifest


def published(work: WorkArea, stage: str, run: str) -> dict[str, Any] | None:
    try:
        return json.loads(work.store().get(f"{stage_prefix(stage, run)}/manifest.json"))
    except (BlobNotFound, json.JSONDecodeError):
        return None


def read_output(store: BlobStore, marker: dict[str, Any], name: str) -> bytes:
    """A shard's output, checked against the sha-256 in its marker; a bad one loses its marker (so the
    next run redoes that shard) and raises."""
    info = marker["files"][name]
    try:
        data = store.get(info["key"])
    except BlobNotFound:
        data = None
    if data is None or sha256(data) != info["sha256"]:
        store.delete(f"{stage_prefix(marker['stage'], marker['run'])}/shards/{marker['shard']:05d}.done.json")
        why = "missing, though its marker names it" if data is None else "sha-256 differs from its marker's"
        raise ShardCorrupt(f"{info['key']}: {why}; the shard will be redone")
    return data


def chunks(items: Sequence[Any], size: int) -> list[list[Any]]:
    return [list(items[i:i + size]) for i in range(0, len(items), max(1, size))]


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def npy_load(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def merge_vectors(work: WorkArea, markers: list[dict[str, Any]], dim: int) -> tuple[np.ndarray, list[str]]:
    """Concatenate the shards' ``vectors.npy`` and ``ids.json`` in shard order (checked by sha-256)."""
    store = work.store()
    parts, ids = [], []
    for marker in markers:
        parts.append(npy_load(read_output(store, marker, "vectors.npy")))
        ids += json.loads(read_output(store, marker, "ids.json"))
    vectors = np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, dim), np.float32)
    if len(vectors) != len(ids):
        raise ShardCorrupt(f"{len(ids)} ids for {len(vectors)} vectors in the merged shards")
    return vectors, ids
