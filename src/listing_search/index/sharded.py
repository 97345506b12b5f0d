"""An IVF index built on cluster workers: trained once on the driver, filled as shards, merged.

The driver trains the empty index on a sample (the same code and seed as the single-machine build) and
puts it in the work area; each shard job adds its slice of vectors (with their ids) to a copy of it and
writes that copy back: only its inverted lists are non-empty. The driver merges the lists in shard order
(``IndexIVF.merge_from``), so every vector lands in the list the shared quantizer assigns it, exactly
as in a single-machine build: same id -> list assignment, same search results.

Graphs (HNSW) cannot be merged and flat indexes gain nothing from it; only IVF kinds go through here
(``VectorIndex.build`` fills the others on the driver). The ``index`` stage uses :func:`shard_fill` when
``data.work_url`` is set.
"""

from __future__ import annotations

import functools
import io
import logging

import faiss
import numpy as np

from listing_search.distributed import shards as sh
from listing_search.distributed.runner import Runner, get_runner
from listing_search.index.vector_index import normalise
from listing_search.settings import Settings
from listing_search.store.blobs import BlobStore

log = logging.getLogger(__name__)
STAGE = "index"


class ShardFill:
    """A ``VectorIndex.build`` fill: the trained IVF index filled by the runner's workers, merged here."""

    def __init__(self, runner: Runner, work: sh.WorkArea, shard_size: int, name: str, progress: bool = False) -> None:
        self.runner, self.work, self.shard_size, self.progress = runner, work, shard_size, progress
        self.name = name  # recorded in the index infos as ``filled_by``

    def __call__(self, trained: faiss.Index, vectors: np.ndarray, ids: np.ndarray) -> faiss.Index:
        return add_on_shards(self.runner, self.work, trained, vectors, ids, self.shard_size, self.progress)


def shard_fill(settings: Settings, progress: bool = False) -> ShardFill | None:
    """The fill for the settings' runner and work area; None (fill on this machine) without a work area."""
    d = settings.data
    if not d.work_url:
        if d.runner != "local":
            log.warning("index: the %s runner needs a work area (--work-url) its workers share; filling the "
                        "indexes on this machine", d.runner)
        return None
    runner = get_runner(d.runner, d.workers, d.dask_address, batch=1)
    return ShardFill(runner, sh.WorkArea(d.work_url, d.s3_endpoint_url), d.shard_size,
                     f"{d.runner} workers, shards of {d.shard_size} vectors", progress)


def add_on_shards(runner, work: sh.WorkArea, trained: faiss.Index, vectors: np.ndarray, ids: np.ndarray,
                  shard_size: int, progress: bool = False) -> faiss.Index:
    """``trained`` (an empty IVF index, unchanged) filled with ``vectors`` by the runner's workers."""
    store = work.store()
    empty = _without_direct_map(trained)
    blob = faiss.serialize_index(empty).tobytes()
    run = sh.sha256(blob + sh.sha256(np.ascontiguousarray(ids).tobytes()).encode() + str(shard_size).encode())
    prefix = sh.stage_prefix(STAGE, run)
    if not store.exists(f"{prefix}/trained.faiss"):
        store.put(f"{prefix}/trained.faiss", blob)
    shards = []
    for i, start in enumerate(range(0, len(ids), shard_size)):
        key = f"{prefix}/inputs/{i:05d}.npz"
        if not store.exists(key):
            store.put(key, _npz(vectors[start:start + shard_size], ids[start:start + shard_size]))
        shards.append(sh.Shard(STAGE, run, i, work, {"trained": f"{prefix}/trained.faiss", "input": key}))
    markers = sh.run_stage(runner, shards, add_shard, progress)
    merged = _merge(empty, [sh.read_output(store, m, "part.faiss") for m in markers])
    sh.publish(work, STAGE, run, markers, {"vectors": int(merged.ntotal)})
    return merged


def add_shard(shard: sh.Shard, work: BlobStore) -> sh.ShardOutputs:
    """On a worker: a copy of the trained index holding only this shard's vectors."""
    part = faiss.deserialize_index(np.frombuffer(_trained(work, shard.params["trained"]), np.uint8))
    with np.load(io.BytesIO(work.get(shard.params["input"]))) as data:
        x, ids = data["vectors"], data["ids"]
    part.add_with_ids(normalise(x), np.ascontiguousarray(ids, np.int64))
    return {"part.faiss": faiss.serialize_index(part).tobytes()}, {"vectors": int(len(ids))}


def list_assignment(index: faiss.Index) -> dict[int, int]:
    """id -> the inverted list holding it."""
    ivf = faiss.extract_index_ivf(index)
    out: dict[int, int] = {}
    for lst in range(ivf.nlist):
        n = ivf.invlists.list_size(lst)
        if n:
            out.update(dict.fromkeys(faiss.rev_swig_ptr(ivf.invlists.get_ids(lst), n).tolist(), lst))
    return out


def _merge(empty: faiss.Index, parts: list[bytes]) -> faiss.Index:
    merged = faiss.clone_index(empty)
    target = faiss.extract_index_ivf(merged)
    for data in parts:
        part = faiss.deserialize_index(np.frombuffer(data, np.uint8))
        target.merge_from(faiss.extract_index_ivf(part), 0)
    merged.ntotal = target.ntotal
    target.set_direct_map_type(faiss.DirectMap.Hashtable)  # as the single-machine build keeps it
    return merged


def _without_direct_map(index: faiss.Index) -> faiss.Index:
    """A copy without the id hashtable: FAISS merges inverted lists only without one."""
    copy = faiss.clone_index(index)
    faiss.extract_index_ivf(copy).set_direct_map_type(faiss.DirectMap.NoMap)
    return copy


@functools.lru_cache(maxsize=2)
def _trained(work: BlobStore, key: str) -> bytes:
    return work.get(key)


def _npz(vectors: np.ndarray, ids: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, vectors=np.asarray(vectors, np.float32), ids=np.asarray(ids, np.int64))
    return buf.getvalue()

