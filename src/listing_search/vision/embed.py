"""The embedding stage: export the trained network as ONE ONNX graph and embed every catalogue photo with it.

The graph maps a photo batch to (embedding, category logits); embedding here runs that very graph
in ONNX Runtime, the serving runtime, so catalogue and query embeddings come from the same code.
The export is checked against PyTorch (max abs difference below 1e-3) before anything is written.

When ``prepare`` ran on shards (the clean photos are in a work area) or ``data.work_url`` is set, the
photos are embedded as shards (``distributed.shards``): the driver exports the graph and puts it in the
work area; each worker reads the graph and its photos by key, and writes its vectors back; the driver
merges the shards into the same files as the local path.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from listing_search import schema as S
from listing_search.data.prepare import clean_photos_at, load_training
from listing_search.distributed import shards as sh
from listing_search.distributed.runner import get_runner
from listing_search.pipeline import atomic_path, atomic_write_text, fingerprint, is_up_to_date, read_stamp, write_stamp
from listing_search.settings import Settings
from listing_search.vision.embed_shard import embed_photos_shard
from listing_search.vision.export import PARITY_TOLERANCE, export_onnx, onnx_session, parity
from listing_search.vision.cache import CACHE_DIR, PREFIX_OUTPUT, load_cache
from listing_search.vision.model import VisionGraph, VisionTail, embedding_dim
from listing_search.vision.preprocess import PreprocessConfig, load_image
from listing_search.vision.train import load_model

log = logging.getLogger(__name__)
STAGE = "embed"


@dataclass
class EmbedReport:
    images: int
    embedding_dim: int
    embed_layer: str
    onnx_max_abs_diff: float
    failed: int = 0
    seconds: float = 0.0
    up_to_date: bool = False


def embed(settings: Settings, artifacts: Path, force: bool = False, progress: bool = False) -> EmbedReport:
    """Write ART/model/vision.onnx and the image embeddings (JSON, .npy + ids), or skip when up to date."""
    t0 = time.perf_counter()
    artifacts = Path(artifacts)
    vs = settings.vision
    inputs = [artifacts / S.MODEL_CHECKPOINT, artifacts / S.TRAINING_CSV]
    fp = fingerprint(inputs, json.dumps({"embed_layer": vs.embed_layer}))
    outputs = [artifacts / n for n in (S.VISION_ONNX, S.IMAGE_EMBEDDINGS_NPY, S.IMAGE_EMBEDDING_IDS,
                                       S.IMAGE_EMBEDDINGS_JSON)]
    if not force and is_up_to_date(artifacts, STAGE, outputs, fp):
        log.info("embed: up to date in %s", artifacts)
        report = EmbedReport(**read_stamp(artifacts, STAGE)["report"])
        report.up_to_date = True
        return report
    if not (artifacts / S.MODEL_CHECKPOINT).is_file():
        raise FileNotFoundError(f"{artifacts / S.MODEL_CHECKPOINT} not found: run `listing-search train` first")

    model, checkpoint = load_model(artifacts)
    cfg = PreprocessConfig.from_json(checkpoint["preprocess"])
    image_ids = load_training(artifacts)[S.IMAGE_ID].tolist()
    photos_at = clean_photos_at(artifacts, settings.data.s3_endpoint_url)
    if photos_at is None and not settings.data.work_url:
        samples: list = [artifacts / S.CLEAN_IMAGES_DIR / f"{i}.jpg" for i in image_ids[:4]]
        diff = export_vision_onnx(model, vs.embed_layer, artifacts, cfg, samples, checkpoint)
        vectors, ok_ids = _embed_locally(artifacts, model, checkpoint, vs, cfg, image_ids, progress)
    else:
        vectors, ok_ids, diff = _embed_on_shards(settings, artifacts, model, checkpoint, cfg, image_ids, photos_at,
                                                 progress)
    _write_embeddings(artifacts, vectors, ok_ids)
    _update_card(artifacts, vs.embed_layer, embedding_dim(model, vs.embed_layer), diff)

    report = EmbedReport(images=len(ok_ids), embedding_dim=int(vectors.shape[1]), embed_layer=vs.embed_layer,
                         onnx_max_abs_diff=diff, failed=len(image_ids) - len(ok_ids),
                         seconds=round(time.perf_counter() - t0, 1))
    write_stamp(artifacts, STAGE, fp, {"report": asdict(report)})
    log.debug("embed: %s", asdict(report))  # the CLI prints the summary
    return report


def export_vision_onnx(model, embed_layer: str, artifacts: Path, cfg: PreprocessConfig,
                       samples: list[Path | bytes], checkpoint: dict) -> float:
    """Export the single serving graph and check it on real photos; raises when ONNX disagrees.

    With an int8 backbone (``checkpoint["backbone_onnx"]``) the graph is that backbone followed by the
    trained tail, checked against the backbone run by ONNX Runtime and the tail by PyTorch."""
    path = artifacts / S.VISION_ONNX
    batch = np.stack([load_image(photo, cfg) for photo in samples]) \
        if samples else np.zeros((2, 3, cfg.input_size, cfg.input_size), np.float32)
    backbone = checkpoint.get("backbone_onnx")
    if backbone:
        diff = _export_int8_graph(model, embed_layer, artifacts / backbone, path, batch)
    else:
        graph = VisionGraph(model, embed_layer).eval()
        export_onnx(graph, path, cfg.input_size, ["image"], ["embedding", "logits"])
        diff = parity(graph, path, batch)
    if diff >= PARITY_TOLERANCE:
        path.unlink(missing_ok=True)
        raise RuntimeError(f"ONNX export disagrees with PyTorch: max abs diff {diff:.2e}")
    log.info("embed: %s written, ONNX vs PyTorch max abs diff %.1e", path, diff)
    return diff


def _export_int8_graph(model, embed_layer: str, backbone: Path, dest: Path, batch: np.ndarray) -> float:
    """int8 backbone + fp32 tail in one graph; the largest difference from backbone (ORT) + tail (torch)."""
    import tempfile

    import torch

    from listing_search.vision.quantize import append_tail

    if not backbone.is_file():
        raise FileNotFoundError(f"{backbone} not found: re-run `listing-search train`")
    tail = VisionTail(model, embed_layer).eval()
    pooled = onnx_session(backbone).run([PREFIX_OUTPUT], {"image": batch})[0]
    with tempfile.TemporaryDirectory() as tmp:
        tail_path = Path(tmp) / "tail.onnx"
        export_onnx(tail, tail_path, 0, ["pooled"], ["embedding", "logits"], sample=torch.from_numpy(pooled[:2]))
        append_tail(backbone, tail_path, dest, PREFIX_OUTPUT, "pooled")
    with torch.inference_mode():
        expected = tail(torch.from_numpy(pooled))
    got = onnx_session(dest).run(["embedding", "logits"], {"image": batch})
    return float(max(np.abs(e.numpy() - g).max() for e, g in zip(expected, got)))


def _embed_locally(artifacts: Path, model, checkpoint: dict, vs, cfg: PreprocessConfig, image_ids: list[str],
                   progress: bool) -> tuple[np.ndarray, list[str]]:
    """Every photo's embedding: the tail applied to the training cache's plain views where the cache holds
    the frozen backbone's features (the same numbers the served graph computes), the graph for the rest."""
    cached = _cached_features(artifacts, checkpoint)
    rest = [i for i in image_ids if i not in cached]
    vectors, ok_ids = embed_photos(artifacts / S.VISION_ONNX, artifacts / S.CLEAN_IMAGES_DIR, rest, cfg,
                                   vs.embed_batch_size, progress) if rest else (None, [])
    if not cached:
        return vectors, ok_ids
    import torch

    hits = [i for i in image_ids if i in cached]
    tail = VisionTail(model, vs.embed_layer).eval()
    with torch.inference_mode():
        from_cache = tail(torch.from_numpy(np.stack([cached[i] for i in hits]).astype(np.float32)))[0].numpy()
    log.info("embed: %d photos from the training cache's features, %d through the graph", len(hits), len(ok_ids))
    by_id = dict(zip(hits, from_cache))
    if vectors is not None:
        by_id.update(zip(ok_ids, vectors))
    kept = [i for i in image_ids if i in by_id]
    return np.stack([by_id[i] for i in kept]).astype(np.float32), kept


def _cached_features(artifacts: Path, checkpoint: dict) -> dict[str, np.ndarray]:
    """Image id -> cached pooled features of its plain view, when the model was trained on an int8-backbone
    cache that is still there; empty otherwise."""
    key = checkpoint.get("cache_key")
    folder = artifacts / CACHE_DIR / str(key)
    if not checkpoint.get("backbone_onnx") or not (folder / "meta.json").is_file():
        return {}
    return load_cache(folder).plain_views()


def _load_batches(folder: Path, ids: list[str], cfg: PreprocessConfig,
                  batch: int) -> Iterator[tuple[list[str], np.ndarray]]:
    """(ids, arrays) batches, decoding on a thread; photos that fail to load are left out and logged."""
    def load(image_id: str) -> np.ndarray | None:
        try:
            return load_image(folder / f"{image_id}.jpg", cfg)
        except (OSError, ValueError) as exc:
            log.warning("embed: photo %s skipped: %s", image_id, exc)
            return None

    with ThreadPoolExecutor(2) as pool:
        for start in range(0, len(ids), batch):
            chunk = ids[start:start + batch]
            arrays = list(pool.map(load, chunk))
            kept = [(i, a) for i, a in zip(chunk, arrays) if a is not None]
            if kept:
                yield [i for i, _ in kept], np.stack([a for _, a in kept])


def embed_photos(onnx_path: Path, folder: Path, ids: list[str], cfg: PreprocessConfig, batch: int,
                 progress: bool = False) -> tuple[np.ndarray, list[str]]:
    """Embeddings (float32, one row per photo that loaded) and the ids they belong to."""
    session = onnx_session(onnx_path)
    rows, kept = [], []
    with tqdm(total=len(ids), disable=not progress, desc="embed", unit="photo") as bar:
        for chunk_ids, arrays in _load_batches(folder, ids, cfg, batch):
            rows.append(session.run(["embedding"], {"image": arrays})[0])
            kept.extend(chunk_ids)
            bar.update(len(arrays))
    dim = session.get_outputs()[0].shape[1]
    vectors = np.concatenate(rows).astype(np.float32) if rows else np.zeros((0, dim), np.float32)
    return vectors, kept


def _embed_on_shards(settings: Settings, artifacts: Path, model, checkpoint: dict, cfg: PreprocessConfig,
                     image_ids: list[str], photos_at: tuple[sh.WorkArea, str] | None,
                     progress: bool) -> tuple[np.ndarray, list[str], float]:
    """Export here, put the graph in the work area, embed the photos as shards, merge them in order."""
    d, vs = settings.data, settings.vision
    if photos_at is None:
        raise FileNotFoundError("data.work_url is set but prepare did not run on shards: the workers cannot "
                                f"see {artifacts / S.CLEAN_IMAGES_DIR}; run prepare with the same work_url")
    photos, images = photos_at
    work = sh.WorkArea(d.work_url or photos.url, d.s3_endpoint_url)
    diff = export_vision_onnx(model, vs.embed_layer, artifacts, cfg,
                              [photos.store().get(f"{images}/{i}.jpg") for i in image_ids[:4]], checkpoint)
    graph = (artifacts / S.VISION_ONNX).read_bytes()
    model_key = f"models/vision-{sh.sha256(graph)[:16]}.onnx"
    store = work.store()
    if not store.exists(model_key):
        store.put(model_key, graph)
    params = {"model": model_key, "photos": photos.url, "endpoint_url": d.s3_endpoint_url, "images": images,
              "cfg": cfg.to_json(), "batch": vs.embed_batch_size}
    run = sh.sha256(json.dumps([params, image_ids, d.shard_size], sort_keys=True).encode())
    shards = [sh.Shard(STAGE, run, i, work, {**params, "ids": ids})
              for i, ids in enumerate(sh.chunks(image_ids, d.shard_size))]
    markers = sh.run_stage(get_runner(d.runner, d.workers, d.dask_address, batch=1), shards, embed_photos_shard,
                           progress)
    vectors, ids = sh.merge_vectors(work, markers, embedding_dim(model, vs.embed_layer))
    sh.publish(work, STAGE, run, markers, {"model": model_key, "images": len(ids)})
    return vectors, ids, diff


def _write_embeddings(artifacts: Path, vectors: np.ndarray, ids: list[str]) -> None:
    with atomic_path(artifacts / S.IMAGE_EMBEDDINGS_NPY) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, vectors)
    atomic_write_text(artifacts / S.IMAGE_EMBEDDING_IDS, json.dumps(ids))
    as_json = {i: [round(float(v), 6) for v in row] for i, row in zip(ids, vectors)}
    atomic_write_text(artifacts / S.IMAGE_EMBEDDINGS_JSON, json.dumps(as_json))


def _update_card(artifacts: Path, embed_layer: str, dim: int, diff: float) -> None:
    """The card describes the graph actually exported (the embed layer may differ from training's)."""
    path = artifacts / S.MODEL_CARD
    card = json.loads(path.read_text())
    card.update({"embed_layer": embed_layer, "embedding_dim": dim, "onnx": S.VISION_ONNX,
                 "onnx_max_abs_diff": diff})
    atomic_write_text(path, json.dumps(card, indent=2))
