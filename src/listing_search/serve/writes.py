"""The catalogue writer: listings added and deleted through the API, as one transaction each.

A write checks, standardises and embeds the photos, stores their bytes, then commits the listing
with its vectors and its change-log entry in one store transaction; this replica then applies the
log (read-your-writes) and every other replica follows within its poll. Searches never write.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from listing_search.core import places
from listing_search.data.images import encode_jpeg, peek, standardise_photo
from listing_search.errors import StorageError, UnknownCategory
from listing_search.search.engine import SearchEngine
from listing_search.store import photo_blob_key
from listing_search.store.gc import delete_photo_bytes
from listing_search.store.models import ORIGIN_API, Listing, ListingIn, PhotoIn
from listing_search.store.sql import IdempotentReplay

log = logging.getLogger(__name__)


@dataclass
class Written:
    """What a write did: the listing, whether it was created now (False: an idempotent replay), its log seq."""

    listing: Listing
    created: bool
    seq: int


class CatalogWriter:
    """Writes through the store of record for one serving process (its engine applies them at once)."""

    def __init__(self, engine: SearchEngine) -> None:
        self.engine, self.store, self.blobs = engine, engine.store, engine.blobs
        self._probe: tuple[float, str | None] = (0.0, None)

    def add_listing(self, fields: dict, photos: list[bytes], idempotency_key: str | None = None) -> "Written":
        """Check, standardise and embed the photos, store their bytes, then commit the listing with its
        vectors and log entry in one transaction. Returns (listing, created): a retry with the same
        ``idempotency_key`` and body returns the first listing and ``created=False``; ``seq`` is the log
        sequence a replica must have applied to find the listing (``/health``'s ``log_seq``).

        Raises ``ImageRejected`` / ``UnknownCategory`` before anything is written, ``IdempotencyConflict``
        for a reused key with another body, ``StorageError`` when storage refuses the write (nothing kept).
        """
        root = fields.get("root_category") or ""
        if root not in self.engine.categories:
            raise UnknownCategory(f"unknown category {root!r}; expected one of {self.engine.categories}")
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
            _, seq = self.store.add_listing(item, self.engine.live.models,
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
                  "label": self.engine.categories.index(root), **self._coordinates(fields.get("location") or "")}
        image_ids = [uuid.uuid4().hex for _ in jpegs]
        photos = [PhotoIn(i, photo_blob_key(i), v) for i, v in zip(image_ids, vectors)]
        text_vec = self._listing_text_vector(record)[0] if self.engine.has_text else None
        return ListingIn(fields.get("listing_id") or uuid.uuid4().hex, record, photos, text_vec, ORIGIN_API)

    def _coordinates(self, location: str) -> dict:
        """``lat``, ``lon``, ``geo_precision`` of a new listing: the town, else the area (``core.places``),
        else the centroid of the area's listings placed by town in this replica's catalogue (in memory;
        a listing another replica added a moment ago may not count yet, which moves a centroid little)."""
        lat, lon, precision = places.place(location)
        if precision == places.NONE:
            catalog = self.engine.live.catalog
            area = places.area_key(location)
            codes = [c for c, loc in enumerate(catalog.locations.values) if places.area_key(loc) == area]
            centre = catalog.centroid(codes, places.TOWN) if area and codes else None
            if centre is not None:
                (lat, lon), precision = centre, places.AREA_CENTROID
        return {"lat": lat, "lon": lon, "geo_precision": precision}

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
            self.engine.live.catch_up()
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
                       f.get("label"), [p.image_id for p in item.photos], lat=f.get("lat"), lon=f.get("lon"),
                       geo_precision=f.get("geo_precision"))

    def _replayed(self, listing_id: str) -> Listing:
        listing = self.store.listing(listing_id)
        if listing is None:  # created, then deleted since: the retry still must not add it again
            return Listing(0, listing_id, "", "", None, "", "", "", None, [])
        return listing

    def _standardised_and_embedded(self, data: bytes) -> tuple[bytes, np.ndarray]:
        """The stored JPEG of an uploaded photo and its embedding, made in one photo-queue job (both decodes
        are photo work); the vector is the stored JPEG's, as a re-embed would compute it."""
        d = self.engine.settings.data
        photo, stored = peek(data, d.max_image_pixels, draft_to=d.image_size), []

        def prepare() -> np.ndarray:
            stored.append(encode_jpeg(standardise_photo(photo, d.image_size, d.letterbox_rgb, enlarge=False),
                                      d.jpeg_quality))
            return self.engine.encoder.prepare(stored[0])

        vector, _ = self.engine.photos.embed(prepare, photo.cost)
        return stored[0], vector

    def _listing_text_vector(self, record: dict) -> np.ndarray:
        from listing_search.text.encoder import listing_text

        assert self.engine.text_encoder is not None
        return self.engine.text_encoder.encode([listing_text(record.get("title", ""), record.get("description", ""))])

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
        need = self.engine.settings.serve.max_upload_bytes
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



def request_hash(fields: dict, photos: list[bytes]) -> str:
    """What an Idempotency-Key is bound to: the listing's fields and the photos' bytes."""
    h = hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode())
    for data in photos:
        h.update(hashlib.sha256(data).digest())
    return h.hexdigest()
