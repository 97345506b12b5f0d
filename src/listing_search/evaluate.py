"""Honest evaluation on listings never used in training: a raw dataset folder (Products.csv, Images.csv, images/).

Runs the served ONNX graph with onnxruntime (no torch), preprocessing photos exactly as serving does.
Metrics are small functions registered by name in :data:`METRICS`, each taking the shared
:class:`EvalContext`; the context computes what metrics need (vision outputs, the catalogue) lazily
and once, so text or ranking metrics can be added as further functions (and context properties)
without touching the vision ones. Unknown categories and bad photos are counted, never fatal.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from listing_search import schema as S
from listing_search.data.images import ImageRejected
from listing_search.data.prepare import load_training
from listing_search.data.tables import Dropped, clean_images, clean_products, read_csv_strict
from listing_search.rank.category import softmax
from listing_search.rank.vectors import unit_rows
from listing_search.settings import Settings
from listing_search.vision.preprocess import PreprocessConfig, load_image

log = logging.getLogger(__name__)
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


@dataclass
class EvalContext:
    settings: Settings
    artifacts: Path
    data: Path
    counts: Counter = field(default_factory=Counter)

    @cached_property
    def card(self) -> dict:
        path = self.artifacts / S.MODEL_CARD
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: run `listing-search train` and `embed` first")
        return json.loads(path.read_text())

    @cached_property
    def categories(self) -> list[str]:
        return list(self.card["categories"])

    @cached_property
    def tables(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(listings with a known root category, their photo rows), dropping and counting the rest."""
        return read_eval_tables(self.data, self.categories, self.counts)

    @cached_property
    def vision(self) -> VisionOutputs:
        listings, photos = self.tables
        return run_vision(self.artifacts / self.card.get("onnx", S.VISION_ONNX), self.data / S.IMAGES_DIR,
                          photos, listings, self.categories, PreprocessConfig.from_json(self.card["preprocess"]),
                          self.settings.vision.embed_batch_size, self.counts)

    @cached_property
    def catalogue(self) -> Catalogue:
        return load_catalogue(self.artifacts)


Metric = Callable[[EvalContext], Any]
METRICS: dict[str, Metric] = {}


def metric(name: str) -> Callable[[Metric], Metric]:
    """Register a metric under the key it will have in the result."""

    def wrap(fn: Metric) -> Metric:
        METRICS[name] = fn
        return fn

    return wrap


def evaluate(settings: Settings, artifacts: Path, data: Path, metrics: list[str] | None = None) -> dict:
    """Every registered metric (or the named ones) on the never-seen listings of ``data``."""
    data = Path(data)
    for required in (data / S.PRODUCTS_CSV, data / S.IMAGES_CSV):
        if not required.is_file():
            raise FileNotFoundError(f"{required} not found: --data must be a raw dataset folder")
    ctx = EvalContext(settings, Path(artifacts), data)
    names = metrics or list(METRICS)
    unknown = set(names) - set(METRICS)
    if unknown:
        raise KeyError(f"unknown metrics {sorted(unknown)}; known: {sorted(METRICS)}")
    result = {name: METRICS[name](ctx) for name in names}
    result["skipped"] = dict(ctx.counts)
    return result


# --- readers ------------------------------------------------------------------------------------

def read_eval_tables(data: Path, categories: list[str], counts: Counter) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Listings whose root category the model knows, and the photo rows of those listings."""
    dropped = Dropped()
    raw_products = read_csv_strict(data / S.PRODUCTS_CSV, S.PRODUCTS_CSV, S.PRODUCTS_COLUMNS)
    raw_images = read_csv_strict(data / S.IMAGES_CSV, S.IMAGES_CSV, S.IMAGES_COLUMNS)
    listings = clean_products(raw_products, dropped)
    known = listings[S.ROOT_CATEGORY].isin(categories)
    if (~known).any():
        log.warning("evaluate: %d listings of unknown categories %s left out", int((~known).sum()),
                    sorted(set(listings.loc[~known, S.ROOT_CATEGORY])))
    counts["listings_unknown_category"] += int((~known).sum())
    all_photos = clean_images(raw_images, set(listings[S.LISTING_ID]), dropped)
    photos = all_photos[all_photos[S.LISTING_ID].isin(set(listings.loc[known, S.LISTING_ID]))]
    counts["photos_unknown_category"] += len(all_photos) - len(photos)
    for reason, n in dropped.counts.items():
        counts[reason] += n
    return listings[known].reset_index(drop=True), photos.reset_index(drop=True)


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
    return len(ctx.vision.image_ids)


@metric("n_listings")
def _n_listings(ctx: EvalContext) -> int:
    return int(len(set(ctx.vision.listing_ids)))


@metric("vision_photo_accuracy")
def _image_accuracy(ctx: EvalContext) -> float:
    return round(accuracy(ctx.vision.logits, ctx.vision.labels), 4)


@metric("vision_listing_accuracy")
def _listing_accuracy(ctx: EvalContext) -> float:
    v = ctx.vision
    return round(listing_accuracy_of(v.logits, v.labels, v.listing_ids), 4)


@metric("vision_photo_precision_at_10")
def _image_precision_at_10(ctx: EvalContext) -> float:
    v, cat = ctx.vision, ctx.catalogue
    roots = np.array(ctx.categories, dtype=object)[v.labels] if len(v.labels) else np.array([], dtype=object)
    return round(precision_at_k(v.embeddings, roots, cat.embeddings, cat.roots, K), 4)


@metric("vision_photo_path_precision_at_10")
def _image_path_precision_at_10(ctx: EvalContext) -> float:
    """The same neighbours, a hit only when it has the query's full category path (2 nDCG grades of search)."""
    v, cat = ctx.vision, ctx.catalogue
    path_of = ctx.tables[0].set_index(S.LISTING_ID)[S.CATEGORY_PATH]
    queries = path_of.reindex(v.listing_ids).to_numpy(dtype=object)
    return round(precision_at_k(v.embeddings, queries, cat.embeddings, cat.paths, K), 4)


@metric("per_category")
def _per_category(ctx: EvalContext) -> dict[str, dict]:
    return per_category_accuracy(ctx.vision.logits, ctx.vision.labels, ctx.categories)


@metric("embed_layer")
def _embed_layer(ctx: EvalContext) -> str:
    return str(ctx.card.get("embed_layer"))


@metric("vision_head")
def _vision_head(ctx: EvalContext) -> str:
    return str(ctx.card.get("head", "imagenet"))  # models trained before the choice existed had that one


# Search metrics through the serving engine (search_title_precision_at_10, own_photo_at_1, ...) live
# with the ranker; importing the module registers them here.
import listing_search.rank.metrics  # noqa: E402,F401
