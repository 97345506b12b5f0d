"""Re-embed: give every listing in the store vectors made by the current encoders.

After the vision or text model changes, listings loaded from the dataset get new vectors from the
index stage's merge, but listings added through the API exist only in the store and the blob
store. This job finds every photo and listing text with no vector of the current version, embeds
it from the blob store's bytes (the same standardised JPEG the API stored), and writes the new
vectors beside the old ones in batches, one transaction and log entry per listing batch. Replicas
serving the old encoders keep reading the old vectors; replicas on the new ones read the new.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from listing_search import schema as S
from listing_search.errors import BlobNotFound
from listing_search.store import open_storage
from listing_search.store.blobs import BlobStore
from listing_search.store.models import Models, model_versions
from listing_search.store.sql import SqlStore
from listing_search.text.encoder import TextEncoder, listing_text
from listing_search.vision.encoder import ImageEncoder

log = logging.getLogger(__name__)
BATCH = 64


@dataclass
class ReembedReport:
    models: dict
    photos_embedded: int = 0
    photos_missing_bytes: int = 0
    texts_embedded: int = 0
    old_vectors_dropped: int = 0
    last_seq: int = 0

    def to_json(self) -> dict:
        return asdict(self)


def reembed(store: SqlStore, blobs: BlobStore, models: Models, image_encoder, text_encoder=None,
            drop_old: bool = False, batch: int = BATCH) -> ReembedReport:
    """Backfill vectors of ``models`` for every photo and listing text lacking one; returns counts."""
    report = ReembedReport({"image": models.image, "text": models.text})
    _photos(store, blobs, models, image_encoder, batch, report)
    if text_encoder is not None and models.text is not None:
        _texts(store, models, text_encoder, batch, report)
    if drop_old:
        report.old_vectors_dropped = store.drop_other_models(models)
    report.last_seq = store.head()
    log.debug("re-embed: %s", report.to_json())  # the CLI prints the summary
    return report


def _photos(store: SqlStore, blobs: BlobStore, models: Models, encoder, batch: int, report: ReembedReport) -> None:
    after = 0
    while rows := store.stale_photos(models.image, batch, after):
        after = rows[-1][0]
        inputs, ids = [], []
        for vid, _, blob_key in rows:
            try:
                inputs.append(encoder.prepare(blobs.get(blob_key)))
                ids.append(vid)
            except BlobNotFound:
                report.photos_missing_bytes += 1
                log.warning("re-embed: photo %d has no bytes at %s in the blob store", vid, blob_key)
        if ids:
            vectors, _ = encoder.run(np.stack(inputs))
            store.set_vectors(dict(zip(ids, vectors)), {}, models)
            report.photos_embedded += len(ids)


def _texts(store: SqlStore, models: Models, encoder, batch: int, report: ReembedReport) -> None:
    after = 0
    while rows := store.stale_texts(models.text, batch, after):
        after = rows[-1][0]
        vectors = encoder.encode([listing_text(title, description) for _, title, description in rows])
        store.set_vectors({}, {key: vec for (key, _, _), vec in zip(rows, vectors)}, models)
        report.texts_embedded += len(rows)


def reembed_artifacts(settings, artifacts: Path, drop_old: bool = False) -> ReembedReport:
    """The verb: the store and blob store of the settings, the encoders of ``artifacts``."""
    artifacts = Path(artifacts)
    image_encoder = ImageEncoder.from_artifacts(artifacts, settings.data.max_image_pixels)
    text_encoder = TextEncoder.from_artifacts(artifacts) if (artifacts / S.TEXT_ONNX).is_file() else None
    store, blobs = open_storage(settings, artifacts)
    return reembed(store, blobs, model_versions(artifacts, with_text=text_encoder is not None), image_encoder,
                   text_encoder, drop_old)
