"""A serving process's derived state: FAISS photo and text indexes, the in-memory catalogue
(``index.catalog``), the lexical (BM25) index and its spelling vocabulary, built from the store and
kept current by following its change log.

Start-up: the newest local snapshot made by the serving encoders, else the published one, else a
rebuild from the store (which then writes a snapshot); then every log entry after the snapshot's
sequence. Applying an entry re-reads that listing's current rows, so applying one twice, or
applying entries whose effect a snapshot already holds, changes nothing. A ``Follower`` thread
polls the log and writes snapshots in the background and at shutdown; never one per write.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np

from listing_search.errors import StorageError
from listing_search.index import snapshot as snap
from listing_search.index.select import IndexChoice
from listing_search.index.vector_index import Fill, VectorIndex
from listing_search.settings import IndexSettings
from listing_search.store.blobs import BlobStore
from listing_search.store.models import Change, Models
from listing_search.store.sql import SqlStore
from listing_search.index.catalog import CatalogView
from listing_search.index.duplicates import PHOTO_NEIGHBOURS, PHOTO_SAME
from listing_search.index.lexical import LexicalIndex
from listing_search.index.spelling import Speller
from listing_search.index.suggest import PhraseTable

log = logging.getLogger(__name__)

IMAGE, TEXT = "image", "text"
COMPACT_AFTER = 10_000  # retired catalogue rows kept before the view is rebuilt without them


class LiveIndexes:
    """Photo index (ids = photo vector ids) and text index (ids = listing keys) at log sequence ``seq``."""

    def __init__(self, store: SqlStore, models: Models, image: VectorIndex, text: VectorIndex | None,
                 owners: np.ndarray, seq: int) -> None:
        self.store, self.models, self.image, self.text = store, models, image, text
        self.seq = int(seq)
        self.lock = threading.RLock()  # FAISS indexes are not safe to read while being written
        # One applier at a time (the follower thread and request threads after their own writes): a
        # listing's state read from the store must not be applied after a newer one.
        self._applying = threading.Lock()
        self.listing_of: dict[int, int] = dict(zip(owners[0].tolist(), owners[1].tolist()))
        self.photos_of: dict[int, list[int]] = {}
        for vid, key in self.listing_of.items():
            self.photos_of.setdefault(key, []).append(vid)
        self.head_seen, self.oldest_pending_at = self.seq, None
        self.snapshot_seq, self.snapshot_at = -1, 0.0
        # Set by attach_catalog(): what searches read besides the vector indexes.
        self.catalog: CatalogView = CatalogView()
        self.lexical: LexicalIndex | None = None
        self.speller: Speller | None = None
        self.phrases: PhraseTable = PhraseTable()  # title phrases for suggestions (index.suggest)

    def attach_catalog(self, spelling: bool = True) -> None:
        """The in-memory catalogue (``index.catalog``), the BM25 index and the spelling vocabulary of
        every listing, read from the store in one pass; kept current by every log entry applied after.

        Held under the applier lock, so no log entry is applied halfway through the build."""
        t0 = time.perf_counter()
        with self._applying:
            catalog, lexical, phrases = CatalogView(), LexicalIndex(), PhraseTable()
            for batch in self.store.iter_listings():
                catalog.upsert(batch)
                lexical.upsert([(x.key, x.title, x.description) for x in batch])
                for x in batch:
                    phrases.add(x.title)
            rows = catalog.live_rows()
            self.speller = Speller.from_texts(_text(catalog, int(r)) for r in rows) if spelling else None
            t1 = time.perf_counter()
            with self.lock:
                self._link_photo_duplicates(catalog, catalog.key[rows].tolist())
            self.catalog, self.lexical, self.phrases = catalog, lexical, phrases
        log.info("catalogue: %d listings in memory in %.1fs (near-duplicate photos %.1fs: %d groups)", len(catalog),
                 time.perf_counter() - t0, time.perf_counter() - t1, len(catalog.duplicates))

    def _link_photo_duplicates(self, catalog: CatalogView, keys: list[int], batch: int = 4096) -> None:
        """The photo links of these listings' near-duplicate groups (``index.duplicates``): each photo's
        nearest photos in the index at cosine >= ``PHOTO_SAME``. Called under ``self.lock``."""
        vids = np.array([v for k in keys for v in self.photos_of.get(k, ())], np.int64)
        for start in range(0, len(vids), batch):
            present, x = self.image.reconstruct_present(vids[start:start + batch])
            if not len(present):
                continue
            res = self.image.search(x, PHOTO_NEIGHBOURS + 1)
            near: dict[int, set[int]] = {}
            for vid, scores, ids in zip(present.tolist(), res.scores, res.ids):
                owner = self.listing_of.get(vid)
                found = {self.listing_of.get(int(i)) for i, s in zip(ids, scores) if s >= PHOTO_SAME}
                near.setdefault(owner, set()).update(k for k in found if k is not None and k != owner)
            for key, others in near.items():
                if others:
                    catalog.duplicates.link_photos(key, others)

    # ------------------------------------------------------------- opening
    @classmethod
    def open(cls, store: SqlStore, models: Models, dims: dict[str, int | None], folder: Path,
             settings: IndexSettings, blobs: BlobStore | None = None) -> "LiveIndexes":
        """From a snapshot (local, then published) plus the log, or rebuilt from the store."""
        snap.sweep_temp(folder)
        ident = snap.StoreIdentity(store.store_id(), store.head())
        data = snap.load_latest(folder, models, ident)
        if data is None and blobs is not None:
            data = snap.fetch_published(blobs, folder, models, ident)
        if data is None:
            live = cls.rebuild(store, models, dims, settings)
            live.write_snapshot(folder)
        else:
            live = cls.from_snapshot(store, data)
            log.info("indexes: snapshot at seq %d loaded", data.seq)
        applied = live.catch_up()
        log.info("indexes: %d log entries applied after the snapshot; now at seq %d", applied, live.seq)
        return live

    @classmethod
    def from_snapshot(cls, store: SqlStore, data: snap.SnapshotData) -> "LiveIndexes":
        text = VectorIndex.from_bytes(*data.text) if data.text is not None else None
        live = cls(store, data.models, VectorIndex.from_bytes(*data.image), text, data.owners, data.seq)
        live.snapshot_seq, live.snapshot_at = data.seq, data.created_at
        return live

    @classmethod
    def rebuild(cls, store: SqlStore, models: Models, dims: dict[str, int | None], settings: IndexSettings,
                fresh_choice: bool = False, kind: str | None = None, fill: Fill | None = None) -> "LiveIndexes":
        """Every current vector of the store; the structure recorded by the builder is reused.

        ``fresh_choice`` (the batch builder) picks the type by size and budget, tunes it, and records it.
        ``fill`` adds the vectors to IVF indexes elsewhere (cluster workers; see ``VectorIndex.build``).
        """
        seq = store.head()  # read first: entries committed meanwhile are applied again, harmlessly
        t0 = time.perf_counter()
        ids, owners, vectors = _collect(store.iter_photo_vectors(models.image), dims[IMAGE] or 0, with_owner=True)
        image = _build(store, IMAGE, vectors, ids, settings, fresh_choice, kind, fill)
        text = None
        if models.text is not None and dims.get(TEXT):
            keys, _, tvecs = _collect(((k, k, v) for k, v in store.iter_text_vectors(models.text)), dims[TEXT] or 0)
            text = _build(store, TEXT, tvecs, keys, settings, fresh_choice, fill=fill)
        log.info("indexes rebuilt from the store at seq %d: %d photos, %s listing texts in %.1fs", seq, image.size,
                 text.size if text else 0, time.perf_counter() - t0)
        return cls(store, models, image, text, np.stack([ids, owners]), seq)

    # ------------------------------------------------------------- following the log
    def catch_up(self, batch: int = 5000) -> int:
        """Apply every committed log entry after ``seq``; returns how many were applied."""
        total = 0
        with self._applying:
            while True:
                changes = self.store.changes_since(self.seq, batch)
                if not changes:
                    self.head_seen, self.oldest_pending_at = self.seq, None
                    return total
                self.oldest_pending_at = changes[0].at
                self._apply(changes)
                total += len(changes)

    def apply(self, changes: list[Change]) -> None:
        """Apply these entries (idempotent); serialised with every other applier."""
        with self._applying:
            self._apply(changes)

    def _apply(self, changes: list[Change]) -> None:
        """Bring each named listing to its current state in the store (idempotent).

        Photo vectors never change under an id (the store gives a changed photo a new id), so only
        the difference is removed and added; a text vector is replaced only when it changed.
        """
        keys = list(dict.fromkeys(c.listing_key for c in changes))
        state = self.store.listing_vectors(keys, self.models)
        records = self.store.listings_by_key(keys) if self.lexical is not None else {}
        with self.lock:
            self._apply_photos(keys, state)
            if self.text is not None:
                self._apply_texts(keys, state)
            if self.lexical is not None:
                self._apply_catalog(keys, records)
            self.seq = max(self.seq, changes[-1].seq)

    def _apply_catalog(self, keys: list[int], records: dict) -> None:
        """The catalogue, BM25 index and vocabulary to each listing's current record (None: deleted)."""
        assert self.lexical is not None
        catalog = self.catalog
        for key in keys:  # uncount what was counted for the listing before
            row = catalog.row_of_key(key)
            if row >= 0:
                self.phrases.remove(catalog.title[row])
                if self.speller is not None:
                    self.speller.remove(_text(catalog, row))
        gone = [k for k in keys if k not in records]
        present = [records[k] for k in keys if k in records]
        catalog.remove(gone)
        catalog.upsert(present)
        if gone:
            self.lexical.remove(gone)
        if present:
            self.lexical.upsert([(x.key, x.title or "", x.description or "") for x in present])
        for rec in present:
            self.phrases.add(rec.title or "")
            if self.speller is not None:
                self.speller.add(f"{rec.title} {rec.description}")
        self._link_photo_duplicates(catalog, [rec.key for rec in present])
        if catalog.retired > max(COMPACT_AFTER, len(catalog)):  # retired rows outnumber live ones
            self.catalog = catalog.compacted()

    def _apply_photos(self, keys: list[int], state: dict) -> None:
        gone, new_ids, new_vecs = [], [], []
        for key in keys:
            had = set(self.photos_of.pop(key, []))
            lv = state.get(key)
            now = lv.photo_ids.tolist() if lv is not None else []
            gone += sorted(had - set(now))
            fresh = [i for i, v in enumerate(now) if v not in had]
            if fresh:
                new_ids.append(lv.photo_ids[fresh])
                new_vecs.append(lv.photo_vectors[fresh])
            if now:
                self.photos_of[key] = now
                self.listing_of.update(dict.fromkeys(now, key))
        if gone:
            self.image.remove(np.array(gone, np.int64), persist=False)
            for vid in gone:
                self.listing_of.pop(vid, None)
        if new_ids:
            self.image.add(np.concatenate(new_vecs), np.concatenate(new_ids), persist=False)

    def _apply_texts(self, keys: list[int], state: dict) -> None:
        assert self.text is not None
        present, current = self.text.reconstruct_present(np.array(keys, np.int64))
        have = dict(zip(present.tolist(), current))
        drop, add_keys, add_vecs = [], [], []
        for key in keys:
            lv = state.get(key)
            vec = None if lv is None else lv.text_vector
            if vec is not None and key in have and np.allclose(have[key], _unit(vec), atol=1e-6):
                continue
            if key in have:
                drop.append(key)
            if vec is not None:
                add_keys.append(key)
                add_vecs.append(vec)
        if drop:
            self.text.remove(np.array(drop, np.int64), persist=False)
        if add_keys:
            self.text.add(np.stack(add_vecs), np.array(add_keys, np.int64), persist=False)

    def lag(self) -> dict[str, float]:
        """How far behind the log this replica is: entries (at the last poll) and seconds."""
        pending = self.oldest_pending_at
        return {"entries": max(0, self.head_seen - self.seq),
                "seconds": 0.0 if pending is None else max(0.0, time.time() - pending)}

    def poll(self) -> int:
        """One follower step: note the head, then catch up."""
        self.head_seen = self.store.head()
        return self.catch_up() if self.head_seen > self.seq else 0  # catch_up notes the oldest pending entry

    # ------------------------------------------------------------- snapshots
    def snapshot_data(self) -> snap.SnapshotData:
        """A consistent copy at ``seq``, taken under the lock (files are written outside it)."""
        with self.lock:
            owners = np.array([list(self.listing_of), list(self.listing_of.values())], np.int64).reshape(2, -1)
            return snap.SnapshotData(self.seq, self.models, self.image.to_bytes(),
                                     self.text.to_bytes() if self.text is not None else None, owners, time.time(),
                                     self.store.store_id())

    def write_snapshot(self, folder: Path, keep: int = 2, publish_to: BlobStore | None = None) -> Path:
        data = self.snapshot_data()
        path = snap.write_snapshot(folder, data, keep)
        self.snapshot_seq, self.snapshot_at = data.seq, data.created_at
        if publish_to is not None:
            snap.publish(path, publish_to)
        log.info("indexes: snapshot at seq %d written to %s", data.seq, path)
        return path


class Follower:
    """Background thread: apply the log as soon as the store says it grew (``SqlStore.change_waiter``),
    and every ``interval`` s in any case; snapshot every ``snapshot_every`` s and at stop."""

    def __init__(self, live: LiveIndexes, folder: Path, interval: float, snapshot_every: float, keep: int = 2,
                 publish_to: BlobStore | None = None) -> None:
        self.live, self.folder, self.interval, self.snapshot_every = live, folder, interval, snapshot_every
        self.keep, self.publish_to = keep, publish_to
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-follower", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop following, then write a last snapshot if the indexes moved since the previous one."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        self._snapshot_if_due(force=True)

    def _run(self) -> None:
        waiter = self.live.store.change_waiter()
        try:
            while True:
                waiter.wait(self.interval, self._stop)
                if self._stop.is_set():
                    return
                self._poll()
                self._snapshot_if_due()
        finally:
            waiter.close()

    def _poll(self) -> None:
        try:
            self.live.poll()
            self.error = None
        except StorageError as exc:
            self.error = exc.reason
            log.warning("log follower: %s", exc.reason)
        except Exception as exc:  # keep following: one bad poll must not stop replication for good
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("log follower failed")

    def _snapshot_if_due(self, force: bool = False) -> None:
        live = self.live
        if live.seq <= live.snapshot_seq:
            return
        if force or time.time() - live.snapshot_at >= self.snapshot_every:
            try:
                live.write_snapshot(self.folder, self.keep, self.publish_to)
            except (OSError, StorageError) as exc:  # a full disk delays snapshots; serving goes on
                log.warning("snapshot not written: %s", exc)


def _text(catalog: CatalogView, row: int) -> str:
    """A listing's words as the speller counts them: title and description."""
    return f"{catalog.title[row]} {catalog.description[row]}"


def _unit(v: np.ndarray) -> np.ndarray:
    return v / (np.linalg.norm(v) or 1.0)


def _collect(batches, dim: int, with_owner: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ids, owners, vecs = [], [], []
    for i, o, v in batches:
        ids.append(np.atleast_1d(np.asarray(i, np.int64)))
        owners.append(np.atleast_1d(np.asarray(o, np.int64)))
        vecs.append(np.atleast_2d(np.asarray(v, np.float32)))
    if not ids:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty((0, dim), np.float32)
    return np.concatenate(ids), np.concatenate(owners), np.concatenate(vecs)


def _build(store: SqlStore, name: str, vectors: np.ndarray, ids: np.ndarray, settings: IndexSettings,
           fresh_choice: bool, kind: str | None = None, fill: Fill | None = None) -> VectorIndex:
    """Build with the recorded structure (or choose and record one); an empty index skips tuning."""
    recorded = None if fresh_choice else store.get_meta(f"index:{name}")
    choice = IndexChoice(**recorded["choice"]) if recorded else None
    params = recorded["search_params"] if recorded else ({} if len(ids) == 0 else None)
    index = VectorIndex.build(vectors, ids, settings.memory_budget_mb, settings.latency_budget_ms,
                              settings.recall_sample, kind=kind or settings.kind, choice=choice, search_params=params,
                              fill=fill)
    if recorded is None and len(ids) and (fresh_choice or not store.get_meta(f"index:{name}")):
        store.set_meta(f"index:{name}", {"choice": index.infos["choice"],
                                          "search_params": index.infos.get("search_params", {}),
                                          "recall_at_10": index.infos.get("recall_at_10"),
                                          "measured": index.infos.get("measured"),
                                          "budget": index.infos.get("budget")})
    return index
