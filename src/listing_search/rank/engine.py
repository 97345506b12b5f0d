"""The search engine: everything serving needs, loaded once from the artifacts into one object.

Retrieval per channel (photo vectors in the image index, listing text vectors in the optional text
index), candidates merged per listing, missing channel scores filled exactly from stored vectors,
then one ``Rescorer`` orders them. Plug points for text and ranking work:

* ``text_encoder`` / ``text_index``: loaded by :func:`load_text` when ``ART/index/text.faiss`` and
  the text model exist (ids of the text index are ``listings.key`` of the catalogue);
* ``rescorer``: any callable ``(SearchQuery, list[Candidate]) -> list[Candidate]`` (re-ranker,
  personalisation); the default is a weighted mean of channel scores.

Writes (add / remove a listing) are serialised by one lock; the catalogue is the source of truth.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from listing_search import schema as S
from listing_search.data.images import encode_jpeg, standardise
from listing_search.index.catalog import Catalog, Filters, Listing
from listing_search.index.vector_index import VectorIndex
from listing_search.pipeline import atomic_write_bytes
from listing_search.rank.candidates import (
    IMAGE, TEXT, Candidate, ListingHit, Rescorer, SearchQuery, TextQueryEncoder, group_by_listing, weighted_mean,
)
from listing_search.rank.image_encoder import ImageEncoder
from listing_search.settings import Settings

log = logging.getLogger(__name__)

WIDEN = 4  # candidate pool growth per round when too few distinct listings came back
# One query scans ~10k vectors in a few ms on one thread; FAISS's OpenMP threads only add spin-wait
# on a busy machine (measured 48 ms with 2 threads vs 4 ms with 1 on 2 shared cores). Requests run in
# parallel instead. Override with LISTING_SEARCH_FAISS_THREADS for big batch-heavy indexes.
FAISS_THREADS_ENV = "LISTING_SEARCH_FAISS_THREADS"


class UnknownCategory(ValueError):
    """A listing or filter names a root category the catalogue does not have."""


class TextSearchUnavailable(RuntimeError):
    """A text query reached an engine without a text model and text index."""


@dataclass
class ImageHit:
    vector_id: int
    image_id: str
    listing_id: str
    score: float


class SearchEngine:
    """Model, indexes and catalogue, loaded once; thread-safe for concurrent requests."""

    def __init__(self, settings: Settings, artifacts: Path, catalog: Catalog, image_index: VectorIndex,
                 encoder: ImageEncoder, categories: list[str], text_encoder: TextQueryEncoder | None = None,
                 text_index: VectorIndex | None = None, rescorer: Rescorer = weighted_mean) -> None:
        self.settings, self.artifacts = settings, Path(artifacts)
        self.catalog, self.image_index, self.encoder = catalog, image_index, encoder
        self.categories = list(categories)
        self.text_encoder, self.text_index, self.rescorer = text_encoder, text_index, rescorer
        self.images_dir = self.artifacts / S.CLEAN_IMAGES_DIR
        self._lock = threading.RLock()  # FAISS indexes are not safe to read while being written
        self.ranking = None  # rank.serving.RankingService, set by attach_ranking()

    @classmethod
    def load(cls, settings: Settings, artifacts: Path | None = None) -> "SearchEngine":
        """Everything from ``artifacts``: catalogue, image index, ONNX model, and text if built."""
        artifacts = Path(artifacts or settings.artifacts_dir)
        faiss.omp_set_num_threads(int(os.environ.get(FAISS_THREADS_ENV, "1")))
        catalog = Catalog(artifacts / S.CATALOG_DB)
        index = VectorIndex.load(artifacts / S.IMAGE_INDEX)
        encoder = ImageEncoder.from_artifacts(artifacts, settings.data.max_image_pixels,
                                              quantized=settings.serve.quantized)
        if encoder.dim != index.dim:
            raise ValueError(f"model embeds {encoder.dim} dims but the index holds {index.dim}: rebuild the index")
        categories = json.loads((artifacts / S.CATEGORIES_JSON).read_text())["categories"]
        text_encoder, text_index = load_text(artifacts, settings)
        engine = cls(settings, artifacts, catalog, index, encoder, categories, text_encoder, text_index)
        engine.reconcile()
        engine.attach_ranking()
        return engine

    def attach_ranking(self) -> None:
        """Learned re-ranking, fused category prediction and personalisation (``rank.serving``)."""
        from listing_search.rank.serving import RankingService

        self.ranking = RankingService.load(self)
        self.rescorer = self.ranking.rescore

    @contextmanager
    def locked(self) -> Iterator[None]:
        with self._lock:
            yield

    @property
    def has_text(self) -> bool:
        return self.text_encoder is not None and self.text_index is not None

    # ----------------------------------------------------------------- model
    def embed_image(self, data: bytes) -> np.ndarray:
        """The model's embedding of a photo (not normalised); raises ``ImageRejected``."""
        return self.encoder.embed(data)[0]

    def predict_category(self, data: bytes, top: int = 3) -> list[tuple[str, float]]:
        """Most likely root categories of a photo with their probabilities."""
        _, probs = self.encoder.embed(data)
        if probs is None:
            raise RuntimeError("the vision model has no category output")
        names = self.encoder.categories or self.categories
        order = np.argsort(-probs)[:top]
        return [(names[i] if i < len(names) else str(i), float(probs[i])) for i in order]

    # ----------------------------------------------------------------- retrieval
    def similar_images(self, data: bytes, k: int) -> list[ImageHit]:
        """Nearest catalogue photos to a photo, photo by photo (no grouping)."""
        vec = self.embed_image(data)
        with self._lock:
            res = self.image_index.search(vec[None], k)
        names = self.catalog.image_ids(res.ids[0].tolist())
        return [ImageHit(int(v), *names[int(v)], float(s)) for s, v in zip(res.scores[0], res.ids[0])
                if int(v) in names]

    def search(self, query: SearchQuery) -> list[ListingHit]:
        """Ranked listings for a photo and/or words, filtered, one result per listing."""
        if query.text and not self.has_text:
            raise TextSearchUnavailable("text search is not available: no text model or text index is loaded")
        self.check_filters(query.filters)
        candidates: dict[int, Candidate] = {}
        image_vec = self.embed_image(query.image) if query.image else None
        text_vec = self.text_encoder.encode([query.text])[0] if query.text and self.text_encoder else None
        query.image_vec, query.text_vec = image_vec, text_vec  # for the rescorer (no second embedding)
        if image_vec is not None:
            candidates = self._image_candidates(image_vec[None], query.k, query.filters, query.exclude_listing_keys)
        if text_vec is not None:
            self._merge_text(candidates, text_vec, query.k, query.filters, query.exclude_listing_keys)
        if image_vec is not None and text_vec is not None:  # each channel scores the other's finds exactly
            self._score_images([c for c in candidates.values() if IMAGE not in c.scores], image_vec)
            self._score_texts([c for c in candidates.values() if TEXT not in c.scores], text_vec)
        ranked = self.rescorer(query, list(candidates.values()))[: query.k]
        return self._hits(ranked)

    def similar_listings(self, listing_id: str, k: int) -> list[ListingHit] | None:
        """Listings whose photos look like this one's; None when the listing is unknown."""
        listing = self.catalog.listing(listing_id)
        if listing is None:
            return None
        with self._lock:
            _, vectors = self.image_index.reconstruct_present(np.array(self.catalog.photo_vector_ids(listing.key)))
        if len(vectors) == 0:
            return []
        query = SearchQuery(k=k, exclude_listing_keys=frozenset({listing.key}))
        cands = self._image_candidates(vectors, k, Filters(), query.exclude_listing_keys)
        return self._hits(self.rescorer(query, list(cands.values()))[:k])

    def _image_candidates(self, vectors: np.ndarray, k: int, filters: Filters,
                          exclude: frozenset[int]) -> dict[int, Candidate]:
        """At least ``k`` distinct listings when that many match: widen the photo pool until they do."""
        allowed = np.array(self.catalog.matching_vector_ids(filters), np.int64) if filters.active() else None
        pool = self.image_index.size if allowed is None else len(allowed)
        fetch = min(pool, max(k * WIDEN, self.settings.rank.candidates))
        while True:
            with self._lock:
                res = self.image_index.search(vectors, fetch, allowed)
            listing_of = self.catalog.photo_listing_keys(np.concatenate(res.ids).tolist() if res.ids else [])
            cands = group_by_listing(res.scores, res.ids, listing_of, exclude)
            if len(cands) >= k or fetch >= pool:
                return cands
            fetch = min(pool, fetch * WIDEN)

    def _merge_text(self, candidates: dict[int, Candidate], text_vec: np.ndarray, k: int, filters: Filters,
                    exclude: frozenset[int]) -> None:
        """Listings nearest to ``text_vec`` (words or a profile), merged into ``candidates``."""
        assert self.text_index is not None
        allowed = np.array(self.catalog.matching_listing_keys(filters), np.int64) if filters.active() else None
        fetch = max(k * WIDEN, self.settings.rank.candidates)
        with self._lock:
            res = self.text_index.search(text_vec[None], fetch, allowed)
        for score, key in zip(res.scores[0], res.ids[0]):
            if int(key) in exclude:
                continue
            candidates.setdefault(int(key), Candidate(int(key))).scores[TEXT] = float(score)

    def _score_images(self, cands: list[Candidate], vec: np.ndarray) -> None:
        """Best-photo cosine of each candidate, from its stored photo vectors (one lookup for all)."""
        if not cands:
            return
        q = vec / (np.linalg.norm(vec) or 1.0)
        by_listing = self.catalog.photo_vector_ids_many(c.listing_key for c in cands)
        with self._lock:
            vids, vectors = self.image_index.reconstruct_present(
                np.array([v for c in cands for v in by_listing.get(c.listing_key, [])], np.int64))
        sim_of = dict(zip(vids.tolist(), (vectors @ q).tolist()))
        for cand in cands:
            mine = sorted((v for v in by_listing.get(cand.listing_key, []) if v in sim_of), key=lambda v: -sim_of[v])
            cand.scores[IMAGE] = float(sim_of[mine[0]]) if mine else 0.0
            cand.matched_vector_ids = mine

    def _score_texts(self, cands: list[Candidate], vec: np.ndarray) -> None:
        """Text cosine of each candidate, from its stored listing text vector."""
        assert self.text_index is not None
        q = vec / (np.linalg.norm(vec) or 1.0)
        with self._lock:
            keys, vectors = self.text_index.reconstruct_present(np.array([c.listing_key for c in cands], np.int64))
        sims = dict(zip(keys.tolist(), (vectors @ q).tolist()))
        for cand in cands:
            cand.scores[TEXT] = float(sims.get(cand.listing_key, 0.0))

    def _hits(self, ranked: list[Candidate]) -> list[ListingHit]:
        listings = self.catalog.listings_by_key(c.listing_key for c in ranked)
        names = self.catalog.image_ids(v for c in ranked for v in c.matched_vector_ids)
        return [
            ListingHit(listings[c.listing_key], c.score, dict(c.scores),
                       [names[v][0] for v in c.matched_vector_ids if v in names])
            for c in ranked if c.listing_key in listings
        ]

    # ----------------------------------------------------------------- catalogue
    def get_listing(self, listing_id: str) -> Listing | None:
        return self.catalog.listing(listing_id)

    def image_path(self, image_id: str) -> Path | None:
        """The photo file of a catalogue photo; None for unknown ids (never a client-built path)."""
        if not self.catalog.photo_exists(image_id):
            return None
        path = self.images_dir / f"{image_id}.jpg"
        return path if path.is_file() and path.parent == self.images_dir else None

    def check_filters(self, filters: Filters) -> None:
        if filters.root_category is not None and filters.root_category not in self.categories:
            raise UnknownCategory(f"unknown category {filters.root_category!r}; expected one of {self.categories}")

    def add_listing(self, fields: dict, photos: list[bytes]) -> Listing:
        """Standardise, embed and store the photos, then insert the listing; index and DB persisted.

        Photos are all checked before anything is written; raises ``ImageRejected`` / ``UnknownCategory``.
        """
        root = fields.get("root_category") or ""
        if root not in self.categories:
            raise UnknownCategory(f"unknown category {root!r}; expected one of {self.categories}")
        jpegs = [self._standardised_jpeg(p) for p in photos]
        vectors = np.stack([self.embed_image(j) for j in jpegs])
        image_ids = [uuid.uuid4().hex for _ in jpegs]
        for image_id, jpeg in zip(image_ids, jpegs):
            atomic_write_bytes(self.images_dir / f"{image_id}.jpg", jpeg)
        record = {**fields, "listing_id": fields.get("listing_id") or uuid.uuid4().hex,
                  "category_path": fields.get("category_path") or root, "label": self.categories.index(root)}
        with self._lock:
            self._insert(record, image_ids, vectors)
        log.info("added listing %s with %d photos", record["listing_id"], len(image_ids))
        listing = self.catalog.listing(record["listing_id"])
        assert listing is not None
        return listing

    def _standardised_jpeg(self, data: bytes) -> bytes:
        d = self.settings.data
        return encode_jpeg(standardise(data, d.image_size, d.max_image_pixels, d.letterbox_rgb), d.jpeg_quality)

    def _insert(self, record: dict, image_ids: list[str], vectors: np.ndarray) -> None:
        """Catalogue rows and index vectors together: if either fails, neither stays."""
        added: list[np.ndarray] = []
        try:
            with self.catalog.write() as con:
                key, vector_ids = self.catalog.insert_listing(con, record, image_ids)
                added.append(np.array(vector_ids, np.int64))
                self.image_index.add(vectors, added[0])
                if self.has_text:
                    added.append(np.array([key], np.int64))
                    self.text_index.add(self._listing_text_vector(record), added[1])
        except BaseException:
            # ids roll back with the transaction and will be reused: take their vectors out again.
            if added:
                self.image_index.remove(added[0])
            if len(added) > 1 and self.text_index is not None:
                self.text_index.remove(added[1])
            raise

    def _listing_text_vector(self, record: dict) -> np.ndarray:
        from listing_search.text.encoder import listing_text

        assert self.text_encoder is not None
        return self.text_encoder.encode([listing_text(record.get("title", ""), record.get("description", ""))])

    def remove_listing(self, listing_id: str) -> bool:
        """Delete from the catalogue (committed first: the source of truth), then from the indexes."""
        with self._lock:
            with self.catalog.write() as con:
                deleted = self.catalog.delete_listing(con, listing_id)
            if deleted is None:
                return False
            key, vector_ids = deleted
            self.image_index.remove(np.array(vector_ids, np.int64))
            if self.text_index is not None:
                self.text_index.remove(np.array([key], np.int64))
        log.info("removed listing %s (%d photos)", listing_id, len(vector_ids))
        return True

    def reconcile(self) -> None:
        """Drop index vectors without a catalogue row (a crash between the two writes)."""
        with self._lock:
            known = np.array(self.catalog.all_vector_ids(), np.int64)
            ids = self.image_index.all_ids()
            orphans = ids[~np.isin(ids, known)]
            if len(orphans):
                log.warning("index: removing %d vectors with no catalogue photo", len(orphans))
                self.image_index.remove(orphans)
            missing = int((~np.isin(known, ids)).sum())
            if missing:
                log.warning("index: %d catalogue photos have no vector (not searchable by photo)", missing)

    def health(self) -> dict:
        counts = self.catalog.counts()
        return {"model": True, "index": self.image_index.size, "index_type": self.image_index.infos.get("factory"),
                "listings": counts["listings"], "photos": counts["photos"], "text": self.has_text}


def load_text(artifacts: Path, settings: Settings) -> tuple[TextQueryEncoder | None, VectorIndex | None]:
    """The text encoder and text index when both were built; (None, None) otherwise."""
    index_path = artifacts / S.TEXT_INDEX
    if not index_path.is_file():
        return None, None
    try:
        from listing_search.text.encoder import TextEncoder

        return TextEncoder.from_artifacts(artifacts), VectorIndex.load(index_path)
    except (ImportError, FileNotFoundError, KeyError, ValueError) as exc:
        log.warning("text search disabled: %s", exc)
        return None, None
