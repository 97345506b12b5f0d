"""The index stage: the dataset's listings, photos and vectors merged into the store of record, then
the derived indexes built from the store and written as a snapshot that serving starts from.

A merge inserts or updates by listing id and never touches listings added through the API; a
dataset listing that disappeared from the tables is deleted only with ``prune`` (otherwise it is
reported). Skipped when up to date (same content, settings and store).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from listing_search import schema as S
from listing_search.data.prepare import clean_photos_at
from listing_search.distributed.shards import WorkArea
from listing_search.errors import BlobNotFound, StorageError
from listing_search.index.live import IMAGE, TEXT, LiveIndexes
from listing_search.index.sharded import shard_fill
from listing_search.pipeline import atomic_write_text, fingerprint, is_up_to_date, read_stamp, write_stamp
from listing_search.settings import Settings
from listing_search.store import open_storage, photo_blob_key
from listing_search.store.blobs import BlobStore, LocalBlobStore
from listing_search.store.gc import sweep_orphan_photos
from listing_search.store.models import ListingIn, MergeReport, Models, PhotoIn, model_versions
from listing_search.store.sql import SqlStore

log = logging.getLogger(__name__)
STAGE = "index"
LISTING_COLUMNS = ("title", "description", "price", "location", "category_path", "root_category", "label",
                   "posted_at", *S.GEO_COLUMNS)  # posted_at, coordinates: optional (an older prepare's has none)


def index_inputs(artifacts: Path) -> list[Path]:
    return [artifacts / n for n in (S.IMAGE_EMBEDDINGS_NPY, S.IMAGE_EMBEDDING_IDS, S.LISTINGS_CSV, S.TRAINING_CSV)]


def text_inputs(artifacts: Path) -> list[Path]:
    """Listing text embeddings (optional: the text index is built when they exist)."""
    return [artifacts / S.TEXT_EMBEDDINGS_NPY, artifacts / S.TEXT_EMBEDDING_IDS]


def model_inputs(artifacts: Path) -> list[Path]:
    return [artifacts / n for n in (S.VISION_ONNX, S.TEXT_ONNX, S.TEXT_TOKENIZER, S.TEXT_MODEL_CARD)]


def build_index(settings: Settings, artifacts: Path, force: bool = False, kind: str | None = None,
                prune: bool = False) -> dict:
    """Merge the dataset into the store, rebuild the indexes from it and snapshot them; returns the infos."""
    artifacts = Path(artifacts)
    for p in index_inputs(artifacts):
        if not p.exists():
            raise FileNotFoundError(f"index needs {p} (run the prepare and embed stages first)")
    store, blobs = open_storage(settings, artifacts)
    fp = fingerprint(index_inputs(artifacts) + text_inputs(artifacts) + model_inputs(artifacts),
                     json.dumps([settings.section_json("index"), kind, prune, _store_identity(store)]))
    stamp = read_stamp(artifacts, STAGE)
    if not force and is_up_to_date(artifacts, STAGE, [], fp) and stamp and "infos" in stamp:
        log.info("index: up to date in %s", artifacts)
        return {**stamp["infos"], "up_to_date": True}
    t0 = time.perf_counter()
    models = model_versions(artifacts, with_text=(artifacts / S.TEXT_EMBEDDINGS_NPY).is_file())
    report = load_dataset(store, blobs, artifacts, models, prune,
                          clean_photos_at(artifacts, settings.data.s3_endpoint_url))
    infos = build_snapshot(settings, artifacts, store, blobs, models, kind)
    infos |= {"merge": report.__dict__ | {"would_delete": report.would_delete[:20],
                                          "would_delete_count": len(report.would_delete)},
              "catalog": store.counts(), "seconds": round(time.perf_counter() - t0, 2)}
    atomic_write_text(artifacts / S.INDEX_SETTINGS, settings.section_json("index"))
    write_stamp(artifacts, STAGE, fp, {"infos": infos})
    # the CLI prints the summary
    log.debug("index: %s, store %s, in %.1fs", infos["factory"], infos["catalog"], infos["seconds"])
    return infos


def load_dataset(store: SqlStore, blobs: BlobStore, artifacts: Path, models: Models, prune: bool,
                 photos_at: tuple[WorkArea, str] | None = None) -> MergeReport:
    """The prepared tables, photos and embeddings merged into the store (photo bytes into the blob store).

    ``photos_at``: the work area and prefix where a sharded ``prepare`` left the clean photos.
    """
    vectors, photos, listings = load_inputs(artifacts)
    texts = load_text_vectors(artifacts) if models.text is not None else {}
    by_listing: dict[str, list[PhotoIn]] = {}
    for row, (image_id, listing_id) in enumerate(zip(photos[S.IMAGE_ID], photos[S.LISTING_ID])):
        by_listing.setdefault(listing_id, []).append(PhotoIn(image_id, photo_blob_key(image_id), vectors[row]))
    wanted = [p for ps in by_listing.values() for p in ps]
    if photos_at is None:
        copy_photos(blobs, artifacts / S.CLEAN_IMAGES_DIR, wanted)
    else:
        copy_photos_from(blobs, photos_at[0].store(), photos_at[1], wanted)
    items = [ListingIn(r[S.LISTING_ID], {c: r.get(c) for c in LISTING_COLUMNS}, by_listing.get(r[S.LISTING_ID], []),
                       texts.get(r[S.LISTING_ID]))
             for r in listings.to_dict("records")]
    report = store.merge(items, models, prune=prune)
    placed = store.fill_coordinates()  # listings loaded or written without coordinates (older tables, replicas)
    if placed:
        log.info("index: %d listings without coordinates placed from their location", placed)
    report.orphan_photos_removed = sweep_orphan_photos(store, blobs)
    if report.would_delete:
        log.warning("index: %d listings of an earlier build are not in the dataset any more and were KEPT "
                    "(e.g. %s); rebuild with --prune to delete them", len(report.would_delete), report.would_delete[:5])
    log.info("index: merged into the store: %d inserted, %d updated, %d unchanged, %d deleted, %d API listings kept",
             report.inserted, report.updated, report.unchanged, report.deleted, report.kept_api)
    return report


def build_snapshot(settings: Settings, artifacts: Path, store: SqlStore, blobs: BlobStore, models: Models,
                   kind: str | None = None) -> dict:
    """The indexes from the store, type chosen by size and budget (and recorded for replicas), snapshotted
    at the store's log sequence read before the vectors (replicas follow the log from there).

    With ``data.work_url`` set, IVF indexes are filled as shards by the runner's workers (``index.sharded``);
    flat and HNSW indexes are filled here.
    """
    dims = {IMAGE: _onnx_dim(artifacts), TEXT: _text_dim(store, models)}
    live = LiveIndexes.rebuild(store, models, dims, settings.index, fresh_choice=True, kind=kind,
                               fill=shard_fill(settings))
    st = settings.store
    live.write_snapshot(st.resolved_snapshot_dir(artifacts), st.snapshot_keep,
                        blobs if st.publish_snapshots else None)
    infos = dict(live.image.infos)
    infos["text_index"] = live.text.infos.get("factory") if live.text is not None else None
    infos["text_filled_by"] = live.text.infos.get("filled_by") if live.text is not None else None
    infos["log_seq"] = live.seq
    return infos


def load_inputs(artifacts: Path) -> tuple[np.ndarray, pd.DataFrame, pd.DataFrame]:
    """Embeddings of catalogue photos, photos with their ``vector_id`` (row in the embeddings), listings."""
    vectors = np.load(artifacts / S.IMAGE_EMBEDDINGS_NPY, mmap_mode="r")
    ids = json.loads((artifacts / S.IMAGE_EMBEDDING_IDS).read_text())
    if len(ids) != len(vectors):
        raise S.DataFormatError(S.IMAGE_EMBEDDING_IDS, f"{len(ids)} ids for {len(vectors)} embeddings")
    listings = pd.read_csv(artifacts / S.LISTINGS_CSV, dtype={S.LISTING_ID: str})
    S.check_columns(listings, [c for c in S.LISTING_COLUMNS if c != S.SPLIT], S.LISTINGS_CSV)
    listings = listings.astype(object).where(listings.notna(), None)
    training = pd.read_csv(artifacts / S.TRAINING_CSV, usecols=[S.IMAGE_ID, S.LISTING_ID], dtype=str)
    training = training[training[S.LISTING_ID].isin(set(listings[S.LISTING_ID]))].drop_duplicates(S.IMAGE_ID)
    row_of = {image_id: row for row, image_id in enumerate(ids)}
    known = training[S.IMAGE_ID].map(row_of)
    photos = training[known.notna()].assign(vector_id=known[known.notna()].astype(np.int64))
    photos.attrs["missing"] = int(known.isna().sum())
    if photos.attrs["missing"]:
        log.warning("index: %d catalogue photos have no embedding", photos.attrs["missing"])
    return np.asarray(vectors[photos["vector_id"].to_numpy()], dtype=np.float32), photos, listings


def load_text_vectors(artifacts: Path) -> dict[str, np.ndarray]:
    """listing id -> its text vector, from the embed-text stage."""
    npy, ids_json = text_inputs(artifacts)
    if not (npy.is_file() and ids_json.is_file()):
        return {}
    vectors = np.load(npy)
    listing_ids = json.loads(ids_json.read_text())
    if len(listing_ids) != len(vectors):
        raise S.DataFormatError(S.TEXT_EMBEDDING_IDS, f"{len(listing_ids)} ids for {len(vectors)} text embeddings")
    return {lid: np.asarray(vectors[r], np.float32) for r, lid in enumerate(listing_ids)}


def copy_photos(blobs: BlobStore, folder: Path, photos: list[PhotoIn]) -> int:
    """Put every prepared photo the blob store lacks (hard links within one local disk); returns how many."""
    have = set(blobs.keys("photos/"))
    todo = [p for p in photos if p.blob_key not in have and (folder / f"{p.image_id}.jpg").is_file()]
    for photo in todo:
        src = folder / f"{photo.image_id}.jpg"
        if isinstance(blobs, LocalBlobStore) and _link(src, blobs.root / photo.blob_key):
            continue
        blobs.put(photo.blob_key, src.read_bytes())
    if todo:
        log.info("index: %d photos copied to the blob store %s", len(todo), blobs.url)
    return len(todo)


def copy_photos_from(blobs: BlobStore, source: BlobStore, prefix: str, photos: list[PhotoIn]) -> int:
    """Put every photo the blob store lacks, read from ``prefix`` of another store (a work area)."""
    have = set(blobs.keys("photos/"))
    todo = [p for p in photos if p.blob_key not in have]
    for photo in todo:
        try:
            blobs.put(photo.blob_key, source.get(f"{prefix}/{photo.image_id}.jpg"))
        except BlobNotFound:
            log.warning("index: photo %s not in %s", photo.image_id, source.url)
    if todo:
        log.info("index: %d photos copied from %s to the blob store %s", len(todo), source.url, blobs.url)
    return len(todo)


def _link(src: Path, dst: Path) -> bool:
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.link(src, dst)
        return True
    except FileExistsError:
        return True
    except OSError:
        return False


def _store_identity(store: SqlStore) -> str:
    """Which store a stamp was made against: a different store (or a lost one) means rebuilding."""
    try:
        return store.store_id()
    except StorageError as exc:
        raise RuntimeError(f"the store cannot be written: {exc.reason}") from exc


def _onnx_dim(artifacts: Path) -> int:
    card = json.loads((artifacts / S.MODEL_CARD).read_text())
    if "embedding_dim" in card:
        return int(card["embedding_dim"])
    return int(np.load(artifacts / S.IMAGE_EMBEDDINGS_NPY, mmap_mode="r").shape[1])


def _text_dim(store: SqlStore, models: Models) -> int | None:
    if models.text is None:
        return None
    for _, vectors in store.iter_text_vectors(models.text, batch=1):
        return int(vectors.shape[1])
    return None
