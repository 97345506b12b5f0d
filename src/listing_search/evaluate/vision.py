"""The vision model alone on never-seen photos: accuracy, and photo -> photos precision.

Runs the served ONNX graph with onnxruntime (no torch), preprocessing photos exactly as serving does.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from listing_search import schema as S
from listing_search.core.maths import softmax, unit_rows
from listing_search.data.images import ImageRejected
from listing_search.data.prepare import load_training
from listing_search.evaluate.registry import EvalContext, metric
from listing_search.vision.preprocess import PreprocessConfig, load_image

K = 10


@dataclass
class VisionOutputs:
    """The ONNX graph's outputs for every usable photo of the evaluated folder, row-aligned."""

    image_ids: list[str]
    listing_ids: np.ndarray
    labels: np.ndarray  # true category index (categories of the model card)
    embeddings: np.ndarray
    logits: np.ndarray


@dataclass
class Catalogue:
    """The searchable photos: ART/image_embeddings.npy with their categories from training_data.csv."""

    embeddings: np.ndarray
    roots: np.ndarray  # root category name per row
    paths: np.ndarray | None = None  # full category path per row


def vision_outputs(ctx: EvalContext) -> VisionOutputs:
    """The ONNX graph's outputs for the evaluated folder's photos, computed once per context."""
    if "_vision" not in ctx.__dict__:
        listings, photos = ctx.tables
        ctx.__dict__["_vision"] = run_vision(
            ctx.artifacts / ctx.card.get("onnx", S.VISION_ONNX), ctx.data / S.IMAGES_DIR, photos, listings,
            ctx.categories, PreprocessConfig.from_json(ctx.card["preprocess"]), ctx.settings.vision.embed_batch_size,
            ctx.counts)
    return ctx.__dict__["_vision"]


def catalogue_of(ctx: EvalContext) -> Catalogue:
    if "_catalogue" not in ctx.__dict__:
        ctx.__dict__["_catalogue"] = load_catalogue(ctx.artifacts)
    return ctx.__dict__["_catalogue"]


def load_catalogue(artifacts: Path) -> Catalogue:
    ids = json.loads((artifacts / S.IMAGE_EMBEDDING_IDS).read_text())
    vectors = np.load(artifacts / S.IMAGE_EMBEDDINGS_NPY)
    training = load_training(artifacts)
    by_id = training.set_index(S.IMAGE_ID)
    roots = by_id[S.ROOT_CATEGORY].reindex(ids)
    if roots.isna().any():
        raise ValueError(f"{int(roots.isna().sum())} embedded photos are missing from {S.TRAINING_CSV}: "
                         "re-run `listing-search embed`")
    paths = by_id[S.CATEGORY_PATH].reindex(ids).to_numpy(dtype=object)
    return Catalogue(vectors.astype(np.float32), roots.to_numpy(dtype=object), paths)


def _load_photos(folder: Path, ids: list[str], cfg: PreprocessConfig,
                 counts: Counter) -> tuple[list[int], list[np.ndarray]]:
    kept, arrays = [], []
    for row, image_id in enumerate(ids):
        path = folder / f"{image_id}.jpg"
        if not path.is_file():
            counts["photo_file_missing"] += 1
            continue
        try:
            arrays.append(load_image(path, cfg))
            kept.append(row)
        except ImageRejected as exc:
            counts[f"photo_{exc.reason}"] += 1
    return kept, arrays


def run_vision(onnx_path: Path, folder: Path, photos: pd.DataFrame, listings: pd.DataFrame,
               categories: list[str], cfg: PreprocessConfig, batch: int, counts: Counter) -> VisionOutputs:
    """Embeddings and logits of every photo that loads, with its listing and true category."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    ids = photos[S.IMAGE_ID].tolist()
    kept: list[int] = []
    embeddings, logits = [], []
    for start in range(0, len(ids), batch):  # streamed: never more than one batch of pixels in memory
        rows, arrays = _load_photos(folder, ids[start:start + batch], cfg, counts)
        if arrays:
            emb, lg = session.run(["embedding", "logits"], {"image": np.stack(arrays)})
            embeddings.append(emb)
            logits.append(lg)
            kept.extend(start + r for r in rows)
    root_of = listings.set_index(S.LISTING_ID)[S.ROOT_CATEGORY]
    listing_ids = photos[S.LISTING_ID].to_numpy()[kept]
    index = {c: i for i, c in enumerate(categories)}
    n_out = session.get_outputs()
    return VisionOutputs(
        image_ids=[ids[i] for i in kept],
        listing_ids=listing_ids,
        labels=np.array([index[root_of[lid]] for lid in listing_ids], np.int64),
        embeddings=np.concatenate(embeddings) if embeddings else np.zeros((0, n_out[0].shape[1]), np.float32),
        logits=np.concatenate(logits) if logits else np.zeros((0, len(categories)), np.float32),
    )


# --- pure metric functions (tested on hand-made arrays) ------------------------------------------

def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(1) == labels).mean()) if len(labels) else float("nan")


def listing_accuracy_of(logits: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> float:
    """A listing's prediction is the argmax of its photos' mean softmax."""
    if not len(labels):
        return float("nan")
    frame = pd.DataFrame(softmax(logits)).assign(_g=groups, _y=labels)
    mean = frame.groupby("_g", sort=False).mean()
    return float((mean.drop(columns="_y").to_numpy().argmax(1) == mean["_y"].to_numpy()).mean())


def precision_at_k(queries: np.ndarray, query_roots: np.ndarray, catalogue: np.ndarray,
                   catalogue_roots: np.ndarray, k: int = K) -> float:
    """Mean share of each query's k most cosine-similar catalogue photos with the query's root category."""
    if not len(queries) or not len(catalogue):
        return float("nan")
    import faiss

    k = min(k, len(catalogue))
    index = faiss.IndexFlatIP(catalogue.shape[1])
    index.add(unit_rows(catalogue))
    _, neighbours = index.search(unit_rows(queries), k)
    hits = catalogue_roots[neighbours] == np.asarray(query_roots)[:, None]
    return float(hits.mean())


def per_category_accuracy(logits: np.ndarray, labels: np.ndarray, categories: list[str]) -> dict[str, dict]:
    pred = logits.argmax(1) if len(labels) else np.zeros(0, np.int64)
    out = {}
    for i, name in enumerate(categories):
        mask = labels == i
        if mask.any():
            out[name] = {"n_images": int(mask.sum()), "image_accuracy": round(float((pred[mask] == i).mean()), 4)}
    return out


# --- registered metrics ----------------------------------------------------------------------------

@metric("n_images")
def _n_images(ctx: EvalContext) -> int:
    return len(vision_outputs(ctx).image_ids)


@metric("n_listings")
def _n_listings(ctx: EvalContext) -> int:
    return int(len(set(vision_outputs(ctx).listing_ids)))


@metric("vision_photo_accuracy")
def _image_accuracy(ctx: EvalContext) -> float:
    return round(accuracy(vision_outputs(ctx).logits, vision_outputs(ctx).labels), 4)


@metric("vision_listing_accuracy")
def _listing_accuracy(ctx: EvalContext) -> float:
    v = vision_outputs(ctx)
    return round(listing_accuracy_of(v.logits, v.labels, v.listing_ids), 4)


@metric("vision_photo_precision_at_10")
def _image_precision_at_10(ctx: EvalContext) -> float:
    v, cat = vision_outputs(ctx), catalogue_of(ctx)
    roots = np.array(ctx.categories, dtype=object)[v.labels] if len(v.labels) else np.array([], dtype=object)
    return round(precision_at_k(v.embeddings, roots, cat.embeddings, cat.roots, K), 4)


@metric("vision_photo_path_precision_at_10")
def _image_path_precision_at_10(ctx: EvalContext) -> float:
    """The same neighbours, a hit only when it has the query's full category path (2 nDCG grades of search)."""
    v, cat = vision_outputs(ctx), catalogue_of(ctx)
    path_of = ctx.tables[0].set_index(S.LISTING_ID)[S.CATEGORY_PATH]
    queries = path_of.reindex(v.listing_ids).to_numpy(dtype=object)
    return round(precision_at_k(v.embeddings, queries, cat.embeddings, cat.paths, K), 4)


@metric("per_category")
def _per_category(ctx: EvalContext) -> dict[str, dict]:
    return per_category_accuracy(vision_outputs(ctx).logits, vision_outputs(ctx).labels, ctx.categories)


@metric("embed_layer")
def _embed_layer(ctx: EvalContext) -> str:
    return str(ctx.card.get("embed_layer"))


@metric("vision_head")
def _vision_head(ctx: EvalContext) -> str:
    return str(ctx.card.get("head", "imagenet"))  # models trained before the choice existed had that one

