"""What the store holds and hands out: listings, filters, log entries, vectors to write."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

UPSERT, DELETE = "upsert", "delete"
ORIGIN_DATASET, ORIGIN_API = "dataset", "api"


@dataclass
class Listing:
    key: int
    listing_id: str
    title: str
    description: str
    price: float | None
    location: str
    category_path: str
    root_category: str
    label: int | None
    image_ids: list[str] = field(default_factory=list)
    posted_at: float | None = None  # seconds since the epoch (store migration 0003)
    vector_ids: list[int] = field(default_factory=list)  # of the photos, aligned with image_ids
    lat: float | None = None  # from the location (core.places; store migration 0004)
    lon: float | None = None
    geo_precision: str | None = None  # town, area, area_centroid, none; None: not placed yet


LISTING_FIELDS = ("key", "listing_id", "title", "description", "price", "location", "category_path",
                  "root_category", "label", "posted_at", "lat", "lon", "geo_precision")
GEO_FIELDS = ("lat", "lon", "geo_precision")


@dataclass(frozen=True)
class Change:
    """One entry of the append-only change log: ``seq`` grows with commit order."""

    seq: int
    op: str
    listing_key: int
    listing_id: str
    at: float


@dataclass
class PhotoIn:
    """A photo to store: its id, where its bytes are in the blob store, and its vector."""

    image_id: str
    blob_key: str
    vector: np.ndarray | None


@dataclass
class ListingIn:
    """A listing to insert or update, with its photos and its text vector."""

    listing_id: str
    fields: dict
    photos: list[PhotoIn]
    text_vector: np.ndarray | None = None
    origin: str = ORIGIN_DATASET


@dataclass(frozen=True)
class Models:
    """The encoder versions that made the vectors being written (content hashes of the ONNX graphs)."""

    image: str
    text: str | None = None


@dataclass
class ListingVectors:
    """A listing's current derived-index input: its photo vector ids and vectors, and its text vector."""

    key: int
    photo_ids: np.ndarray
    photo_vectors: np.ndarray
    text_vector: np.ndarray | None


@dataclass
class MergeReport:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    kept_api: int = 0
    skipped_deleted: int = 0  # dataset listings deleted through the API, not loaded again
    orphan_photos_removed: int = 0
    would_delete: list[str] = field(default_factory=list)
    last_seq: int = 0


def file_version(*paths: Path) -> str:
    """An encoder's version: a content hash of the files that define it (never their paths or dates)."""
    import hashlib

    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def model_versions(artifacts: Path, with_text: bool = True) -> Models:
    """The versions of the encoders in an artifacts folder (the vectors they made are tagged with these).

    Text: the exported graph and tokenizer, or the ``version`` a stand-in's model card declares.
    """
    import json

    from listing_search import schema as S

    art = Path(artifacts)
    image = file_version(art / S.VISION_ONNX)
    if not with_text:
        return Models(image)
    if (art / S.TEXT_ONNX).is_file() and (art / S.TEXT_TOKENIZER).is_file():
        return Models(image, file_version(art / S.TEXT_ONNX, art / S.TEXT_TOKENIZER))
    card = art / S.TEXT_MODEL_CARD
    version = json.loads(card.read_text()).get("version") if card.is_file() else None
    return Models(image, version)
