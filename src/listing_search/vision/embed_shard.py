"""The photo-embedding shard job, free of torch so that cluster workers never import it.

A worker reads the exported graph from the work area once per process, then each photo of its shard,
and returns the vectors of the photos that loaded with their ids (see ``vision.embed``).
"""

from __future__ import annotations

import functools
import json
import logging

import numpy as np

from listing_search.distributed import shards as sh
from listing_search.store.blobs import BlobStore
from listing_search.vision.preprocess import PreprocessConfig, load_image

log = logging.getLogger(__name__)


def embed_photos_shard(shard: sh.Shard, work: BlobStore) -> sh.ShardOutputs:
    """On a worker: this shard's photos, read from the work area, through the graph the driver put there."""
    p = shard.params
    session = _session(work, p["model"])
    photos = sh.open_store(p["photos"], p["endpoint_url"])
    cfg = PreprocessConfig.from_json(p["cfg"])
    read = 0

    def load(image_id: str) -> np.ndarray | None:
        nonlocal read
        try:
            data = photos.get(f"{p['images']}/{image_id}.jpg")
            read += len(data)
            return load_image(data, cfg)
        except (OSError, ValueError) as exc:
            log.warning("embed: photo %s skipped: %s", image_id, exc)
            return None

    rows, kept = [], []
    for start in range(0, len(p["ids"]), p["batch"]):
        chunk = p["ids"][start:start + p["batch"]]
        loaded = [(i, a) for i, a in zip(chunk, map(load, chunk)) if a is not None]
        if loaded:
            rows.append(session.run(["embedding"], {"image": np.stack([a for _, a in loaded])})[0])
            kept += [i for i, _ in loaded]
    dim = session.get_outputs()[0].shape[1]
    vectors = np.concatenate(rows).astype(np.float32) if rows else np.zeros((0, dim), np.float32)
    return ({"vectors.npy": sh.npy_bytes(vectors), "ids.json": json.dumps(kept).encode()},
            {"photos": len(kept), "bytes_read": read})


@functools.lru_cache(maxsize=2)
def _session(work: BlobStore, key: str):
    """The graph read from the work area once per worker process (it is the same for every shard)."""
    import onnxruntime as ort

    return ort.InferenceSession(work.get(key), providers=["CPUExecutionProvider"])
