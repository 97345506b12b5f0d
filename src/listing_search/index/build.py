"""The index stage: photo embeddings + cleaned tables -> image index (FAISS) + catalogue (SQLite).

Skipped when up to date (same embeddings, tables and index settings). A forced rebuild replaces
listings added or removed through the API since the last build.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from listing_search import schema as S
from listing_search.index.catalog import build_catalog
from listing_search.index.vector_index import VectorIndex, infos_path
from listing_search.pipeline import atomic_write_text, fingerprint, is_up_to_date, write_stamp
from listing_search.settings import Settings

log = logging.getLogger(__name__)
STAGE = "index"


def index_inputs(artifacts: Path) -> list[Path]:
    return [artifacts / n for n in (S.IMAGE_EMBEDDINGS_NPY, S.IMAGE_EMBEDDING_IDS, S.LISTINGS_CSV, S.TRAINING_CSV)]


def text_inputs(artifacts: Path) -> list[Path]:
    """Listing text embeddings (optional: the text index is built when they exist)."""
    return [artifacts / S.TEXT_EMBEDDINGS_NPY, artifacts / S.TEXT_EMBEDDING_IDS]


def index_outputs(artifacts: Path) -> list[Path]:
    return [artifacts / S.CATALOG_DB, artifacts / S.IMAGE_INDEX, infos_path(artifacts / S.IMAGE_INDEX)]


def build_index(settings: Settings, artifacts: Path, force: bool = False, kind: str | None = None) -> dict:
    """Build the image index and catalogue in ``artifacts``; returns the index infos."""
    artifacts = Path(artifacts)
    for p in index_inputs(artifacts):
        if not p.exists():
            raise FileNotFoundError(f"index needs {p} (run the prepare and embed stages first)")
    fp = fingerprint(index_inputs(artifacts) + text_inputs(artifacts), settings.section_json("index") + str(kind))
    if not force and is_up_to_date(artifacts, STAGE, index_outputs(artifacts), fp):
        log.info("index: up to date in %s", artifacts)
        return {**json.loads(infos_path(artifacts / S.IMAGE_INDEX).read_text()), "up_to_date": True}
    t0 = time.perf_counter()
    vectors, photos, listings = load_inputs(artifacts)
    cfg = settings.index
    index = VectorIndex.build(vectors, photos["vector_id"].to_numpy(), cfg.memory_budget_mb, cfg.exact_max,
                              cfg.recall_sample, kind)
    index.infos["photos_without_embedding"] = int(photos.attrs.get("missing", 0))
    counts = build_catalog(artifacts / S.CATALOG_DB, listings, photos)
    index.infos["catalog"] = counts
    index.save(artifacts / S.IMAGE_INDEX)
    build_text_index(settings, artifacts)
    atomic_write_text(artifacts / S.INDEX_SETTINGS, settings.section_json("index"))
    write_stamp(artifacts, STAGE, fp, {"seconds": round(time.perf_counter() - t0, 2)})
    log.info("index: %s, catalogue %s, in %.1fs", index.infos["factory"], counts, time.perf_counter() - t0)
    return index.infos


def load_inputs(artifacts: Path) -> tuple[np.ndarray, pd.DataFrame, pd.DataFrame]:
    """Embeddings of catalogue photos, photos with their ``vector_id`` (row in the embeddings), listings."""
    vectors = np.load(artifacts / S.IMAGE_EMBEDDINGS_NPY, mmap_mode="r")
    ids = json.loads((artifacts / S.IMAGE_EMBEDDING_IDS).read_text())
    if len(ids) != len(vectors):
        raise S.DataFormatError(S.IMAGE_EMBEDDING_IDS, f"{len(ids)} ids for {len(vectors)} embeddings")
    listings = pd.read_csv(artifacts / S.LISTINGS_CSV, dtype={S.LISTING_ID: str})
    S.check_columns(listings, [c for c in S.LISTING_COLUMNS if c != S.SPLIT], S.LISTINGS_CSV)
    training = pd.read_csv(artifacts / S.TRAINING_CSV, usecols=[S.IMAGE_ID, S.LISTING_ID], dtype=str)
    training = training[training[S.LISTING_ID].isin(set(listings[S.LISTING_ID]))].drop_duplicates(S.IMAGE_ID)
    row_of = {image_id: row for row, image_id in enumerate(ids)}
    known = training[S.IMAGE_ID].map(row_of)
    photos = training[known.notna()].assign(vector_id=known[known.notna()].astype(np.int64))
    photos.attrs["missing"] = int(known.isna().sum())
    if photos.attrs["missing"]:
        log.warning("index: %d catalogue photos have no embedding", photos.attrs["missing"])
    return np.asarray(vectors[photos["vector_id"].to_numpy()], dtype=np.float32), photos, listings


def build_text_index(settings: Settings, artifacts: Path) -> dict | None:
    """``index/text.faiss`` over listing text vectors, ids = catalogue listing keys; None without them."""
    npy, ids_json = text_inputs(artifacts)
    if not (npy.is_file() and ids_json.is_file()):
        (artifacts / S.TEXT_INDEX).unlink(missing_ok=True)  # a stale text index must not outlive its data
        return None
    import sqlite3

    vectors = np.load(npy, mmap_mode="r")
    listing_ids = json.loads(ids_json.read_text())
    with sqlite3.connect(artifacts / S.CATALOG_DB) as con:
        key_of = dict(con.execute("SELECT listing_id, key FROM listings").fetchall())
    rows = [r for r, lid in enumerate(listing_ids) if lid in key_of]
    keys = np.array([key_of[listing_ids[r]] for r in rows], np.int64)
    cfg = settings.index
    index = VectorIndex.build(np.asarray(vectors[rows], np.float32), keys, cfg.memory_budget_mb, cfg.exact_max,
                              cfg.recall_sample)
    index.save(artifacts / S.TEXT_INDEX)
    log.info("text index: %s over %d listings", index.infos["factory"], len(keys))
    return index.infos
