"""A serving process's search engine: encoders, the store's derived state and the fitted models,
loaded once from the artifacts; the search pipeline's doors over them.

The store (``store/``) is the one place listings live. Everything a search reads is derived from it
and held in memory (``index.live``: vector indexes, the catalogue view, BM25, the vocabulary) and
kept current by following its change log, so searches answer while the store is unreachable.
Writes are ``serve.writes``'s; the store serves them, derivation and the listing page.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import faiss
import numpy as np

from listing_search import schema as S
from listing_search.core.near import Near
from listing_search.core.query import Filters, HistoryEvent, Query
from listing_search.errors import TextSearchUnavailable
from listing_search.index.live import IMAGE, TEXT, Follower, LiveIndexes
from listing_search.index.vector_index import VectorIndex
from listing_search.models.bundle import ModelBundle
from listing_search.search.candidates import Allowed
from listing_search.search.features import FEATURES
from listing_search.search.pipeline import Feed, SearchPipeline
from listing_search.search.types import Hit, Result
from listing_search.search.understand import Encoders
from listing_search.settings import Settings
from listing_search.store import open_storage
from listing_search.store.blobs import BlobStore
from listing_search.store.models import Listing, model_versions
from listing_search.store.sql import SqlStore
from listing_search.vision.batcher import PhotoQueue, QueueLimits
from listing_search.vision.encoder import ImageEncoder

log = logging.getLogger(__name__)

WIDEN = 4  # spare photos fetched for the original API: a photo deleted in the store may still await the log
# One query scans ~10k vectors in a few ms on one thread; FAISS's OpenMP threads only add spin-wait
# on a busy machine (measured 48 ms with 2 threads vs 4 ms with 1 on 2 shared cores). Requests run in
# parallel instead. Override with LISTING_SEARCH_FAISS_THREADS for big batch-heavy indexes.
FAISS_THREADS_ENV = "LISTING_SEARCH_FAISS_THREADS"


class SearchEngine:
    """Encoders, store, derived indexes and models, loaded once; thread-safe for concurrent requests."""

    def __init__(self, settings: Settings, artifacts: Path, store: SqlStore, blobs: BlobStore, live: LiveIndexes,
                 encoder: ImageEncoder, categories: list[str], text_encoder=None, hand_weighted: bool = False) -> None:
        self.settings, self.artifacts = settings, Path(artifacts)
        self.store, self.blobs, self.live, self.encoder = store, blobs, live, encoder
        self.categories = list(categories)
        self.text_encoder = text_encoder
        self.photos = PhotoQueue(encoder, QueueLimits.of(settings.serve))  # all photo work goes through it
        self.follower: Follower | None = None
        self.encoders = Encoders(self.embed_photo, text_encoder, tuple(encoder.categories or categories))
        self.models = ModelBundle.load(self.artifacts, FEATURES, self.categories, encoder.dim, hand_weighted)
        self.pipeline = SearchPipeline(live, self.encoders, self.models, settings.rank, self.categories)

    @classmethod
    def load(cls, settings: Settings, artifacts: Path | None = None, text_encoder=None,
             hand_weighted: bool = False) -> "SearchEngine":
        """Model and encoders from ``artifacts``; the indexes from a snapshot + the log, the catalogue
        view from the store. ``hand_weighted``: rank with hand weights whatever ``ranker.json`` holds
        (``tune-ranker`` fits through the engine without touching the files a server starts from)."""
        artifacts = Path(artifacts or settings.artifacts_dir)
        faiss.omp_set_num_threads(int(os.environ.get(FAISS_THREADS_ENV, "1")))
        encoder = ImageEncoder.from_artifacts(artifacts, settings.data.max_image_pixels,
                                              quantized=settings.serve.quantized)
        categories = json.loads((artifacts / S.CATEGORIES_JSON).read_text())["categories"]
        text_encoder = text_encoder or load_text_encoder(artifacts, settings.serve.text_spinning)
        models = model_versions(artifacts, with_text=text_encoder is not None)
        store, blobs = open_storage(settings, artifacts)
        dims = {IMAGE: encoder.dim, TEXT: getattr(text_encoder, "dim", None)}
        live = LiveIndexes.open(store, models, dims, settings.store.resolved_snapshot_dir(artifacts), settings.index,
                                blobs)
        if live.image.size and live.image.dim != encoder.dim:
            raise ValueError(f"model embeds {encoder.dim} dims but the index holds {live.image.dim}: re-embed")
        live.attach_catalog(spelling=settings.rank.spelling)
        return cls(settings, artifacts, store, blobs, live, encoder, categories, text_encoder, hand_weighted)

    def use_models(self, models: ModelBundle) -> None:
        """Rank with these models (``tune-ranker``: what it fit, held in memory before it is written)."""
        self.models = models
        self.pipeline = self.pipeline.with_models(models)

    def start_following(self) -> None:
        """Apply other replicas' writes in the background and snapshot now and then (the server does this)."""
        st = self.settings.store
        publish = self.blobs if st.publish_snapshots else None
        self.follower = Follower(self.live, st.resolved_snapshot_dir(self.artifacts), st.follow_interval_s,
                                 st.snapshot_interval_s, st.snapshot_keep, publish)
        self.follower.start()

    def close(self) -> None:
        """Stop following and write a last snapshot."""
        if self.follower is not None:
            self.follower.stop()
            self.follower = None
        self.photos.close()

    @property
    def image_index(self) -> VectorIndex:
        return self.live.image

    @property
    def text_index(self) -> VectorIndex | None:
        return self.live.text

    @property
    def has_text(self) -> bool:
        return self.text_encoder is not None and self.text_index is not None

    def versions(self) -> dict[str, str | None]:
        """Which models answer: every response and the query log carry these."""
        return {"ranker": self.models.version, "image_encoder": self.live.models.image,
                "text_encoder": self.live.models.text}

    # ------------------------------------------------------------- the doors
    def search(self, query: Query) -> Result:
        return self.pipeline.search(query)

    def similar_listings(self, listing_id: str, k: int, filters: Filters = Filters()) -> list[Hit] | None:
        return self.pipeline.similar(listing_id, k, filters)

    def resolve_near(self, text: str, within_km: float | None = None) -> Near:
        return self.pipeline.resolve_near(text, within_km)

    def places(self, prefix: str, k: int) -> list[tuple[str, int]]:
        return self.pipeline.places(prefix, k)

    def recommend(self, history: tuple[HistoryEvent, ...], k: int, text: str | None = None,
                  filters: Filters = Filters()) -> Feed:
        return self.pipeline.recommend(history, k, text=text, filters=filters)

    # ------------------------------------------------------------- photos
    def embed_image(self, data: bytes) -> np.ndarray:
        """The model's embedding of a photo (not normalised); raises ``ImageRejected``."""
        return self.embed_photo(data)[0]

    def embed_photo(self, data: bytes) -> tuple[np.ndarray, np.ndarray | None]:
        """(embedding, category probabilities) through the photo queue: the header is checked first, then
        the decode and the model run when admitted; raises ``ImageRejected`` or ``PhotoQueueFull``."""
        photo = self.encoder.peek(data)
        return self.photos.embed(lambda: self.encoder.prepare_photo(photo), photo.cost)

    def similar_images(self, data: bytes, k: int) -> list[tuple[int, str, str, float]]:
        """Nearest catalogue photos to a photo, photo by photo: (vector id, image id, listing id, cosine)."""
        vec = self.embed_image(data)
        catalog = self.live.catalog
        with self.live.lock:
            res = self.image_index.search(vec[None], k + WIDEN)
        vids = np.asarray(res.ids[0], np.int64)
        rows = catalog.rows_of_keys(catalog.keys_of_vectors(vids))
        out = []
        for vid, row, score in zip(vids.tolist(), rows.tolist(), res.scores[0].tolist()):
            if row < 0:
                continue  # deleted in the store, not yet applied here
            image_id = dict(zip(catalog.vector_ids[row], catalog.image_ids[row])).get(vid)
            if image_id is not None:
                out.append((vid, image_id, catalog.listing_id[row], float(score)))
        return out[:k]

    def predict_category(self, image: bytes | None, text: str | None, top: int) -> list[tuple[str, float]]:
        """Root categories for a seller's photo and/or title; the vision head alone without a predictor."""
        catalog = self.live.catalog
        understand = self.pipeline.understander
        text_vec = self.text_encoder.encode([text])[0] if text and self.text_encoder is not None else None
        image_vec, vision_probs = self.embed_photo(image) if image else (None, None)
        if image_vec is not None:
            image_vec = np.asarray(image_vec, np.float32) / (float(np.linalg.norm(image_vec)) or 1.0)
        probs = understand.category_probs(catalog, text_vec, image_vec, text)
        predictor = self.models.predictor
        if probs is not None and image_vec is not None and understand.votes_on_photos(image_vec):
            pool = self.pipeline.retriever.photo_pool(image_vec[None], Allowed.of(catalog, Filters(), frozenset()))
            probs = understand.shown_probs(catalog, probs, pool)
        names = list(self.models.categories)
        if probs is not None:  # the mode of what the belief used (a photo of another model's size is left out)
            used_image = image_vec is not None and predictor.image_dim == len(image_vec)
            mode = "both" if text_vec is not None and used_image else "text" if text_vec is not None else "image"
            probs = predictor.calibrated(probs, mode)
        else:
            if vision_probs is None:
                raise TextSearchUnavailable("category from words needs `tune-ranker` (category_predictor.json)")
            probs, names = vision_probs, list(self.encoder.categories or self.categories)
        order = np.argsort(-probs)[:top]
        return [(names[i], float(probs[i])) for i in order]

    # ------------------------------------------------------------- catalogue (store reads: not searches)
    def get_listing(self, listing_id: str) -> Listing | None:
        return self.store.listing(listing_id)

    def photo(self, image_id: str) -> tuple[Path | None, bytes | None]:
        """A catalogue photo: its local file when the blob store is a folder, else its bytes; (None, None)
        for unknown ids (never a client-built path)."""
        blob_key = self.store.photo_blob_key(image_id)
        if blob_key is None:
            return None, None
        path = self.blobs.local_path(blob_key)
        if path is not None:
            return path, None
        try:
            return None, self.blobs.get(blob_key)
        except KeyError:
            return None, None

    def health(self) -> dict:
        counts = self.store.counts()
        lag = self.live.lag()
        return {"model": True, "index": self.image_index.size, "index_type": self.image_index.infos.get("factory"),
                "listings": counts["listings"], "photos": counts["photos"], "text": self.has_text,
                "log_seq": self.live.seq, "lag_entries": lag["entries"], "lag_seconds": round(lag["seconds"], 3),
                "snapshot_seq": self.live.snapshot_seq,
                "snapshot_age_seconds": round(time.time() - self.live.snapshot_at, 1) if self.live.snapshot_at else None,
                "follower_error": self.follower.error if self.follower else None}


def load_text_encoder(artifacts: Path, spinning: bool = True):
    """The text encoder when ``embed-text`` has run; None otherwise (text search is then off)."""
    if not (artifacts / S.TEXT_ONNX).is_file():
        return None
    try:
        from listing_search.text.encoder import TextEncoder

        return TextEncoder.from_artifacts(artifacts, spinning=spinning)
    except (ImportError, FileNotFoundError, KeyError, ValueError) as exc:
        log.warning("text search disabled: %s", exc)
        return None
