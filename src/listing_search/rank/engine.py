"""The search engine: everything serving needs, loaded once from the artifacts into one object.

Retrieval per channel (photo vectors in the image index, listing text vectors in the optional text
index), candidates merged per listing, missing channel scores filled exactly from stored vectors,
then one ``Rescorer`` orders them. Plug points for text and ranking work:

* ``text_encoder`` / ``text_index``: loaded by :func:`load_text` when ``ART/index/text.faiss`` and
  the text model exist (ids of the text index are ``listings.key`` of the catalogue);
* ``rescorer``: any callable ``(SearchQuery, list[Candidate]) -> list[Candidate]`` (re-ranker,
  personalisation); the default is a weighted mean of channel scores.

The store (``store/``) is the one place listings live. The indexes are derived from it
(``index.live``): a write commits to the store with its change-log entry first, then this process
applies the log; every other replica applies the same entry within its poll interval.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from listing_search import schema as S
from listing_search.data.images import encode_jpeg, peek, standardise_photo
from listing_search.errors import StorageError
from listing_search.index.live import Follower, LiveIndexes
from listing_search.index.vector_index import VectorIndex
from listing_search.rank.candidates import (
    IMAGE, LEXICAL, TEXT, Candidate, ListingHit, Rescorer, SearchQuery, SearchResult, TextQueryEncoder,
    group_by_listing, weighted_mean,
)
from listing_search.rank.vectors import unit_rows
from listing_search.vision.batcher import PhotoQueue, QueueLimits
from listing_search.vision.encoder import ImageEncoder
from listing_search.settings import Settings
from listing_search.store import open_storage, photo_blob_key
from listing_search.store.blobs import BlobStore
from listing_search.store.gc import delete_photo_bytes
from listing_search.store.models import ORIGIN_API, Filters, Listing, ListingIn, Models, PhotoIn, model_versions
from listing_search.store.sql import IdempotentReplay, SqlStore

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
class Written:
    """What a write did: the listing, whether it was created now (False: an idempotent replay), its log seq."""

    listing: Listing
    created: bool
    seq: int


@dataclass
class ImageHit:
    vector_id: int
    image_id: str
    listing_id: str
    score: float


class SearchEngine:
    """Model, store and derived indexes, loaded once; thread-safe for concurrent requests."""

    def __init__(self, settings: Settings, artifacts: Path, store: SqlStore, blobs: BlobStore, live: LiveIndexes,
                 encoder: ImageEncoder, categories: list[str], text_encoder: TextQueryEncoder | None = None,
                 rescorer: Rescorer = weighted_mean) -> None:
        self.settings, self.artifacts = settings, Path(artifacts)
        self.store, self.blobs, self.live, self.encoder = store, blobs, live, encoder
        self.categories = list(categories)
        self.text_encoder, self.rescorer = text_encoder, rescorer
        self.ranking = None  # rank.serving.RankingService, set by attach_ranking()
        self.photos = PhotoQueue(encoder, QueueLimits.of(settings.serve))  # all photo work goes through it
        self.follower: Follower | None = None
        self._probe: tuple[float, str | None] = (0.0, None)

    @classmethod
    def load(cls, settings: Settings, artifacts: Path | None = None,
             text_encoder: TextQueryEncoder | None = None) -> "SearchEngine":
        """Model and encoders from ``artifacts``; listings from the store; indexes from a snapshot + the log."""
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
        if settings.rank.lexical or settings.rank.spelling:
            live.attach_lexical(spelling=settings.rank.spelling)
        engine = cls(settings, artifacts, store, blobs, live, encoder, categories, text_encoder)
        engine.attach_ranking()
        return engine

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
    def models(self) -> Models:
        return self.live.models

    @property
    def image_index(self) -> VectorIndex:
        return self.live.image

    @property
    def text_index(self) -> VectorIndex | None:
        return self.live.text

    def attach_ranking(self) -> None:
        """Learned re-ranking, fused category prediction and personalisation (``rank.serving``)."""
        from listing_search.rank.serving import RankingService

        self.ranking = RankingService.load(self)
        self.rescorer = self.ranking.rescore

    @contextmanager
    def locked(self) -> Iterator[None]:
        with self.live.lock:
            yield

    def versions(self) -> dict[str, str | None]:
        """Which models answer: every response and the query log carry these."""
        return {"ranker": self.ranking.version if self.ranking is not None else "hand-weighted",
                "image_encoder": self.models.image, "text_encoder": self.models.text}

    @property
    def has_text(self) -> bool:
        return self.text_encoder is not None and self.text_index is not None

    # ----------------------------------------------------------------- model
    def embed_image(self, data: bytes) -> np.ndarray:
        """The model's embedding of a photo (not normalised); raises ``ImageRejected``."""
        return self.embed_photo(data)[0]

    def embed_photo(self, data: bytes) -> tuple[np.ndarray, np.ndarray | None]:
        """(embedding, category probabilities) through the photo queue: the header is checked first, then
        the decode and the model run when admitted; raises ``ImageRejected`` or ``PhotoQueueFull``."""
        photo = self.encoder.peek(data)
        return self.photos.embed(lambda: self.encoder.prepare_photo(photo), photo.cost)

    def predict_category(self, data: bytes, top: int = 3) -> list[tuple[str, float]]:
        """Most likely root categories of a photo with their probabilities."""
        _, probs = self.embed_photo(data)
        if probs is None:
            raise RuntimeError("the vision model has no category output")
        names = self.encoder.categories or self.categories
        order = np.argsort(-probs)[:top]
        return [(names[i] if i < len(names) else str(i), float(probs[i])) for i in order]

    # ----------------------------------------------------------------- retrieval
    def similar_images(self, data: bytes, k: int) -> list[ImageHit]:
        """Nearest catalogue photos to a photo, photo by photo (no grouping)."""
        vec = self.embed_image(data)
        with self.live.lock:  # a few spare: a photo deleted in the store may still await this replica's log
            res = self.image_index.search(vec[None], k + WIDEN)
        names = self.store.image_ids(res.ids[0].tolist())
        return [ImageHit(int(v), *names[int(v)], float(s)) for s, v in zip(res.scores[0], res.ids[0])
                if int(v) in names][:k]

    def search(self, query: SearchQuery) -> list[ListingHit]:
        """Ranked listings for a photo and/or words (see :meth:`search_result`)."""
        return self.search_result(query).hits

    def search_result(self, query: SearchQuery) -> SearchResult:
        """Ranked listings for a photo and/or words, filtered, one result per listing; filters alone browse.

        The one ranking path: :meth:`understand` (spelling, embeddings, category), :meth:`retrieve`
        (photo, dense text and BM25 channels, each candidate scored in every channel), the rescorer
        (learned ranker + history), then a (nearly) identical catalogue photo first whatever the
        ranker prefers; ``sort`` re-orders the relevant pool; ``offset`` pages through it.
        """
        if query.text and not self.has_text:
            raise TextSearchUnavailable("text search is not available: no text model or text index is loaded")
        self.check_filters(query.filters)
        if not query.has_image and not query.text:
            return SearchResult(self.browse(query))
        want = query.k + query.offset
        corrections = self.understand(query)
        ranked = near_duplicates_first(self.rescorer(query, self.retrieve(query, want)))[:want]
        result = SearchResult(sort_hits(self._hits(ranked), query.sort)[query.offset:], query.searched_text,
                              corrections)
        if self.ranking is not None:
            self.ranking.annotate(query, ranked, result)
        return result

    def understand(self, query: SearchQuery, show: bool = True) -> list[tuple[str, str]]:
        """Correct the words, embed words and photo once, infer the category (and, with ``show``, the
        category a photo search shows); returns the corrections.

        Vectors (and category probabilities) a caller already set are kept: fitting passes stored
        photo vectors and cross-fitted predictions through the same path."""
        corrections: list[tuple[str, str]] = []
        query.searched_text = query.text
        speller = self.live.speller
        if query.text and query.spelling and speller is not None:
            lexical = self.live.lexical
            fixed = speller.correct(query.text, lexical.cooccurrence if lexical is not None else None)
            if fixed.changed:
                query.searched_text, corrections = fixed.corrected, list(fixed.replacements)
        if query.image is not None and query.image_vec is None:
            query.image_vec, query.vision_probs = self.embed_photo(query.image)
        if query.searched_text and query.text_vec is None and self.text_encoder is not None:
            # a corrected query keeps the words as typed: MiniLM still knows "reformer" and "lenova"
            vecs = self.text_encoder.encode([query.searched_text, query.text] if corrections else [query.searched_text])
            query.text_vec = unit_rows(vecs.sum(0)) if corrections else vecs[0]
        if query.category_probs is None and self.ranking is not None:
            query.category_probs = self.ranking.category_probs(query.text_vec, query.image_vec, query.searched_text,
                                                               query.exclude_listing_keys)
            if show and self.ranking.votes_on_photos(query.image_vec):
                # the photo channel's candidates, found once for retrieve; they are the shown category's
                # voters too unless filters narrowed them (shown_probs then finds its own, unfiltered)
                want = query.k + query.offset
                pool = self._image_candidates(np.asarray(query.image_vec)[None], want, query.filters,
                                              query.exclude_listing_keys)
                query.image_pool = (want, pool)
                query.shown_probs = self.ranking.shown_probs(
                    query.category_probs, query.image_vec, None if query.filters.active() else pool,
                    query.exclude_listing_keys)
        return corrections

    def retrieve(self, query: SearchQuery, want: int) -> list[Candidate]:
        """Candidates of every channel the query used, each scored in all of them (missing scores filled
        exactly from the stored vectors and the BM25 index)."""
        candidates: dict[int, Candidate] = {}
        image_vec, text_vec, words = query.image_vec, query.text_vec, query.searched_text
        if image_vec is not None:
            pooled, query.image_pool = query.image_pool, None  # used once: retrieval adds to it
            candidates = pooled[1] if pooled is not None and pooled[0] == want else self._image_candidates(
                np.asarray(image_vec)[None], want, query.filters, query.exclude_listing_keys)
        lexical = self.live.lexical if self.settings.rank.lexical else None
        keys = self.allowed_keys(query.filters) if text_vec is not None or (words and lexical) else None
        if text_vec is not None:
            self._merge_text(candidates, text_vec, want, keys, query.exclude_listing_keys)
        if words and lexical is not None:
            self._merge_lexical(candidates, words, want, keys, query.exclude_listing_keys)
        if image_vec is not None and (text_vec is not None or words):
            self._score_images([c for c in candidates.values() if IMAGE not in c.scores], image_vec)
        if text_vec is not None:
            self._score_texts([c for c in candidates.values() if TEXT not in c.scores], text_vec)
        if words and lexical is not None:
            missing = [c for c in candidates.values() if LEXICAL not in c.scores]
            if missing:
                scores = lexical.scores(words, [c.listing_key for c in missing])
                for cand, score in zip(missing, scores):
                    cand.scores[LEXICAL] = float(score)
        return list(candidates.values())

    def browse(self, query: SearchQuery) -> list[ListingHit]:
        """Listings passing the filters, in ``query.sort`` order (relevance means newest here), paged."""
        keys = self.store.browse(query.filters, query.sort, query.k, query.offset,
                                 exclude=sorted(query.exclude_listing_keys))
        return self._hits([Candidate(k) for k in keys])

    def similar_listings(self, listing_id: str, k: int) -> list[ListingHit] | None:
        """Listings whose photos look like this one's; None when the listing is unknown."""
        listing = self.store.listing(listing_id)
        if listing is None:
            return None
        with self.live.lock:
            _, vectors = self.image_index.reconstruct_present(np.array(self.live.photos_of.get(listing.key, []), np.int64))
        if len(vectors) == 0:
            return []
        mean = vectors.mean(0)
        query = SearchQuery(k=k, exclude_listing_keys=frozenset({listing.key}),
                            image_vec=mean / (np.linalg.norm(mean) or 1.0))
        self.understand(query, show=False)
        cands = self._image_candidates(vectors, k, Filters(), query.exclude_listing_keys)
        return self._hits(self.rescorer(query, list(cands.values()))[:k])

    def _image_candidates(self, vectors: np.ndarray, k: int, filters: Filters,
                          exclude: frozenset[int]) -> dict[int, Candidate]:
        """At least ``k`` distinct listings when that many match: widen the photo pool until they do."""
        allowed = np.array(self.store.matching_vector_ids(filters), np.int64) if filters.active() else None
        pool = self.image_index.size if allowed is None else len(allowed)
        fetch = min(pool, max(k * WIDEN, self.settings.rank.candidates))
        while True:
            with self.live.lock:
                res = self.image_index.search(vectors, fetch, allowed)
            listing_of = self.live.listing_of
            cands = group_by_listing(res.scores, res.ids, listing_of, exclude)
            if len(cands) >= k or fetch >= pool:
                return cands
            fetch = min(pool, fetch * WIDEN)

    def allowed_keys(self, filters: Filters) -> list[int] | None:
        """Listing keys passing the filters (one store query per search), None when nothing filters."""
        return self.store.matching_listing_keys(filters) if filters.active() else None

    def _merge_text(self, candidates: dict[int, Candidate], text_vec: np.ndarray, k: int,
                    allowed: list[int] | None, exclude: frozenset[int]) -> None:
        """Listings nearest to ``text_vec`` (words or a profile) among ``allowed`` keys, merged into ``candidates``."""
        assert self.text_index is not None
        fetch = max(k * WIDEN, self.settings.rank.candidates)
        with self.live.lock:
            res = self.text_index.search(text_vec[None], fetch,
                                         None if allowed is None else np.array(allowed, np.int64))
        for score, key in zip(res.scores[0], res.ids[0]):
            if int(key) in exclude:
                continue
            candidates.setdefault(int(key), Candidate(int(key))).scores[TEXT] = float(score)

    def _merge_lexical(self, candidates: dict[int, Candidate], words: str, k: int, allowed: list[int] | None,
                       exclude: frozenset[int]) -> None:
        """Listings whose title and description match the words best by BM25, merged into ``candidates``."""
        assert self.live.lexical is not None
        fetch = max(k * WIDEN, self.settings.rank.lexical_candidates)
        for key, score in self.live.lexical.search(words, fetch, None if allowed is None else set(allowed), exclude):
            candidates.setdefault(int(key), Candidate(int(key))).scores[LEXICAL] = float(score)

    def _score_images(self, cands: list[Candidate], vec: np.ndarray) -> None:
        """Best-photo cosine of each candidate, from its stored photo vectors (one lookup for all)."""
        if not cands:
            return
        q = vec / (np.linalg.norm(vec) or 1.0)
        by_listing = {c.listing_key: self.live.photos_of.get(c.listing_key, []) for c in cands}
        with self.live.lock:
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
        with self.live.lock:
            keys, vectors = self.text_index.reconstruct_present(np.array([c.listing_key for c in cands], np.int64))
        sims = dict(zip(keys.tolist(), (vectors @ q).tolist()))
        for cand in cands:
            cand.scores[TEXT] = float(sims.get(cand.listing_key, 0.0))

    def _hits(self, ranked: list[Candidate]) -> list[ListingHit]:
        listings = self.store.listings_by_key(c.listing_key for c in ranked)
        names = self.store.image_ids(v for c in ranked for v in c.matched_vector_ids)
        return [
            ListingHit(listings[c.listing_key], c.score, dict(c.scores),
                       [names[v][0] for v in c.matched_vector_ids if v in names], c.relevance)
            for c in ranked if c.listing_key in listings
        ]

    # ----------------------------------------------------------------- catalogue
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

    def check_filters(self, filters: Filters) -> None:
        if filters.root_category is not None and filters.root_category not in self.categories:
            raise UnknownCategory(f"unknown category {filters.root_category!r}; expected one of {self.categories}")

    def add_listing(self, fields: dict, photos: list[bytes], idempotency_key: str | None = None) -> "Written":
        """Check, standardise and embed the photos, store their bytes, then commit the listing with its
        vectors and log entry in one transaction. Returns (listing, created): a retry with the same
        ``idempotency_key`` and body returns the first listing and ``created=False``; ``seq`` is the log
        sequence a replica must have applied to find the listing (``/health``'s ``log_seq``).

        Raises ``ImageRejected`` / ``UnknownCategory`` before anything is written, ``IdempotencyConflict``
        for a reused key with another body, ``StorageError`` when storage refuses the write (nothing kept).
        """
        root = fields.get("root_category") or ""
        if root not in self.categories:
            raise UnknownCategory(f"unknown category {root!r}; expected one of {self.categories}")
        body_hash = request_hash(fields, photos)
        if idempotency_key:
            earlier = self.store.idempotent_listing(idempotency_key, body_hash)
            if earlier is not None:
                return Written(self._replayed(earlier), False, self.store.head())
        jpegs, vectors = zip(*(self._standardised_and_embedded(p) for p in photos))
        jpegs, vectors = list(jpegs), np.stack(vectors)
        item = self._listing_in(fields, root, jpegs, vectors)
        self._put_blobs(item, jpegs)
        try:
            _, seq = self.store.add_listing(item, self.models,
                                            (idempotency_key, body_hash) if idempotency_key else None)
        except IdempotentReplay as replay:  # a concurrent retry won the race
            self._delete_blobs(p.blob_key for p in item.photos)
            return Written(self._replayed(replay.listing_id), False, self.store.head())
        except StorageError:
            if self._committed_anyway(item.listing_id):  # the connection broke after the commit
                log.warning("listing %s committed although the store reported an error", item.listing_id)
                self._follow_own_write()
                return Written(self._committed(item), True, self.store.head())
            self._delete_blobs(p.blob_key for p in item.photos)
            raise
        except BaseException:
            self._delete_blobs(p.blob_key for p in item.photos)
            raise
        self._follow_own_write()
        log.info("added listing %s with %d photos at seq %d", item.listing_id, len(item.photos), seq)
        return Written(self._committed(item), True, seq)

    def _listing_in(self, fields: dict, root: str, jpegs: list[bytes], vectors: np.ndarray) -> ListingIn:
        record = {**fields, "category_path": fields.get("category_path") or root,
                  "label": self.categories.index(root)}
        image_ids = [uuid.uuid4().hex for _ in jpegs]
        photos = [PhotoIn(i, photo_blob_key(i), v) for i, v in zip(image_ids, vectors)]
        text_vec = self._listing_text_vector(record)[0] if self.has_text else None
        return ListingIn(fields.get("listing_id") or uuid.uuid4().hex, record, photos, text_vec, ORIGIN_API)

    def _put_blobs(self, item: ListingIn, jpegs: list[bytes]) -> None:
        done = []
        try:
            for photo, jpeg in zip(item.photos, jpegs):
                self.blobs.put(photo.blob_key, jpeg)
                done.append(photo.blob_key)
        except BaseException:
            self._delete_blobs(done)
            raise

    def _delete_blobs(self, keys) -> None:
        for key in keys:
            try:
                self.blobs.delete(key)
            except StorageError as exc:  # the start-up sweep and the orphan check catch what is left
                log.warning("blob %s not deleted: %s", key, exc)

    def _committed_anyway(self, listing_id: str) -> bool:
        """Whether a write whose commit reported an error is in the store after all (ids are unique)."""
        try:
            return self.store.listing(listing_id) is not None
        except StorageError:
            return False  # cannot tell: the client retries with its Idempotency-Key

    def _follow_own_write(self) -> None:
        """Read-your-writes on this replica; a failure here never hides the committed write."""
        try:
            self.live.catch_up()
        except Exception as exc:  # the follower thread retries
            log.warning("committed write not yet applied to the local indexes: %s", exc)

    def _committed(self, item: ListingIn) -> Listing:
        try:
            listing = self.store.listing(item.listing_id)
        except StorageError:
            listing = None
        if listing is not None:
            return listing
        f = item.fields  # committed, but the store cannot be read back right now: answer from the request
        return Listing(0, item.listing_id, f.get("title") or "", f.get("description") or "", f.get("price"),
                       f.get("location") or "", f.get("category_path") or "", f.get("root_category") or "",
                       f.get("label"), [p.image_id for p in item.photos])

    def _replayed(self, listing_id: str) -> Listing:
        listing = self.store.listing(listing_id)
        if listing is None:  # created, then deleted since: the retry still must not add it again
            return Listing(0, listing_id, "", "", None, "", "", "", None, [])
        return listing

    def _standardised_and_embedded(self, data: bytes) -> tuple[bytes, np.ndarray]:
        """The stored JPEG of an uploaded photo and its embedding, made in one photo-queue job (both decodes
        are photo work); the vector is the stored JPEG's, as a re-embed would compute it."""
        d = self.settings.data
        photo, stored = peek(data, d.max_image_pixels, draft_to=d.image_size), []

        def prepare() -> np.ndarray:
            stored.append(encode_jpeg(standardise_photo(photo, d.image_size, d.letterbox_rgb, enlarge=False),
                                      d.jpeg_quality))
            return self.encoder.prepare(stored[0])

        vector, _ = self.photos.embed(prepare, photo.cost)
        return stored[0], vector

    def _listing_text_vector(self, record: dict) -> np.ndarray:
        from listing_search.text.encoder import listing_text

        assert self.text_encoder is not None
        return self.text_encoder.encode([listing_text(record.get("title", ""), record.get("description", ""))])

    def remove_listing(self, listing_id: str) -> int | None:
        """Delete from the store (one transaction with its log entry), then its photos' bytes; the log
        sequence of the delete, or None for an unknown listing."""
        deleted = self.store.delete_listing(listing_id)
        if deleted is None:
            return None
        _, blob_keys, seq = deleted
        delete_photo_bytes(self.store, self.blobs, blob_keys)  # kept while a backup is in progress
        self._follow_own_write()
        log.info("removed listing %s (%d photos) at seq %d", listing_id, len(blob_keys), seq)
        return seq

    def write_problem(self, every_s: float = 2.0) -> str | None:
        """Why writes would fail now (None when they would succeed); probed at most every ``every_s``."""
        at, problem = self._probe
        if time.monotonic() - at < every_s:
            return problem
        problem = None
        try:
            store_problem = self.store.write_problem()  # read-only checks: a probe never queues behind writers
            problem = f"store: {store_problem}" if store_problem else None
        except StorageError as exc:
            problem = f"store: {exc.reason}"
        if problem is None:
            blob = self.blobs.probe()
            problem = f"blob store: {blob}" if blob else None
        problem = problem or self._low_disk()
        self._probe = (time.monotonic(), problem)
        return problem

    def _low_disk(self) -> str | None:
        """A local store or blob folder without room for one more upload (small probes may still fit)."""
        need = self.settings.serve.max_upload_bytes
        paths = [getattr(self.store, "path", None), getattr(self.blobs, "root", None)]  # SQLite file, folder
        for path in (Path(p) for p in paths if p is not None):
            folder = path if path.is_dir() else path.parent
            try:
                free = shutil.disk_usage(folder).free
            except OSError:
                continue
            if free < need:
                return f"disk full: {free} bytes free under {folder}, an upload may need {need}"
        return None

    def health(self) -> dict:
        counts = self.store.counts()
        lag = self.live.lag()
        return {"model": True, "index": self.image_index.size, "index_type": self.image_index.infos.get("factory"),
                "listings": counts["listings"], "photos": counts["photos"], "text": self.has_text,
                "log_seq": self.live.seq, "lag_entries": lag["entries"], "lag_seconds": round(lag["seconds"], 3),
                "snapshot_seq": self.live.snapshot_seq,
                "snapshot_age_seconds": round(time.time() - self.live.snapshot_at, 1) if self.live.snapshot_at else None,
                "follower_error": self.follower.error if self.follower else None}


# Photo cosine from which two photos are taken to show the same thing. Measured with the stand-in
# 1000-d model (bench/standin.py) on 2,000 catalogue photos: a copy resized to 300 px and re-saved
# at JPEG quality 70 keeps cosine >= 0.972 (p50 0.990); 1.9% of photos have another listing's
# photo at >= 0.98, nearly all byte-identical duplicates listed twice.
NEAR_DUPLICATE = 0.97


def near_duplicates_first(ranked: list[Candidate]) -> list[Candidate]:
    """Listings holding a (nearly) identical photo to the query's come first, closest first."""
    dupes = [c for c in ranked if c.scores.get(IMAGE, 0.0) >= NEAR_DUPLICATE]
    if not dupes:
        return ranked
    dupes.sort(key=lambda c: -c.scores[IMAGE])
    return dupes + [c for c in ranked if c.scores.get(IMAGE, 0.0) < NEAR_DUPLICATE]


def sort_hits(hits: list[ListingHit], sort: str) -> list[ListingHit]:
    """The relevant pool in another order; listings without a price go last."""
    if sort == "newest":
        return sorted(hits, key=lambda h: -h.listing.key)
    if sort in ("price_asc", "price_desc"):
        sign = 1 if sort == "price_asc" else -1
        return sorted(hits, key=lambda h: (h.listing.price is None, sign * (h.listing.price or 0.0)))
    return hits


def request_hash(fields: dict, photos: list[bytes]) -> str:
    """What an Idempotency-Key is bound to: the listing's fields and the photos' bytes."""
    h = hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode())
    for data in photos:
        h.update(hashlib.sha256(data).digest())
    return h.hexdigest()


def load_text_encoder(artifacts: Path, spinning: bool = True) -> TextQueryEncoder | None:
    """The text encoder when ``embed-text`` has run; None otherwise (text search is then off)."""
    if not (artifacts / S.TEXT_ONNX).is_file():
        return None
    try:
        from listing_search.text.encoder import TextEncoder

        return TextEncoder.from_artifacts(artifacts, spinning=spinning)
    except (ImportError, FileNotFoundError, KeyError, ValueError) as exc:
        log.warning("text search disabled: %s", exc)
        return None
