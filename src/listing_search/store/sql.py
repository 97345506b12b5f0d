"""The store of record in SQL: one implementation, two dialects (``sqlite.py``, ``postgres.py``).

Every write is one transaction holding its rows, vectors and change-log entries together, so the
log never names a change that did not commit and no committed change is missing from it. Writers
are serialised (SQLite ``BEGIN IMMEDIATE``; a PostgreSQL advisory lock), which makes the log's
sequence numbers grow in commit order: a follower that has applied ``seq`` has seen every change
up to it. Ids (listing keys, photo vector ids, log sequence numbers) are never reused.

SQL is written with ``?`` placeholders and ``{in}`` for a list membership test; the dialect turns
them into its own form. Storage failures surface as :mod:`listing_search.errors` exceptions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any

import numpy as np

from listing_search.errors import IdempotencyConflict, StoreVersionError
from listing_search.store.models import (
    DELETE, GEO_FIELDS, LISTING_FIELDS, ORIGIN_API, ORIGIN_DATASET, UPSERT, Change, Listing, ListingIn, ListingVectors, MergeReport,
    Models, PhotoIn,
)
from listing_search.store.saved import SavedSearchTables

log = logging.getLogger(__name__)

IDEMPOTENCY_TTL_S = 24 * 3600
BACKUP_LEASE = "backup-lease:"  # meta rows of backups in progress (never copied into a backup)
WRITE_FIELDS = [c for c in LISTING_FIELDS if c != "key"]
TEXT_FIELDS = {"listing_id", "title", "description", "location", "category_path", "root_category"}
# Python run after a migration file, in its transaction: what SQL alone cannot compute.
AFTER_MIGRATION = {4: "_fill_coordinates"}


class IdempotentReplay(Exception):
    """The same Idempotency-Key and body were seen before: ``listing_id`` is what they created."""

    def __init__(self, listing_id: str) -> None:
        super().__init__(listing_id)
        self.listing_id = listing_id


def vector_bytes(v: np.ndarray | None) -> bytes | None:
    return None if v is None else np.ascontiguousarray(v, dtype="<f4").ravel().tobytes()


def vector_of(b: bytes | memoryview | None) -> np.ndarray | None:
    return None if b is None else np.frombuffer(bytes(b), dtype="<f4")


def content_hash(item: ListingIn, models: Models) -> str:
    """What a batch load compares to decide whether a listing changed (fields, photos, vectors, encoders)."""
    payload = {"fields": {k: item.fields.get(k) for k in WRITE_FIELDS if k != "listing_id"},
               "photos": [(p.image_id, p.blob_key, _digest(p.vector)) for p in item.photos],
               "text": _digest(item.text_vector), "models": [models.image, models.text]}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _digest(v: np.ndarray | None) -> str | None:
    return None if v is None else hashlib.sha256(vector_bytes(v)).hexdigest()[:16]


class SqlStore(SavedSearchTables):
    """Listings, photos, vectors, the change log and idempotency keys (and saved searches with their
    alerts: ``store.saved``); safe across threads and processes."""

    dialect = "sql"
    migrations_package = ""

    def __init__(self, url: str) -> None:
        self.url = url
        self._local = threading.local()
        self.migrate()

    # ------------------------------------------------------------- dialect hooks
    def _connect(self) -> Any:
        raise NotImplementedError

    @contextmanager
    def _transaction(self, con: Any) -> Iterator[None]:
        raise NotImplementedError
        yield

    def _translate(self, exc: Exception) -> Exception | None:
        """The storage error for a driver exception (None: not a storage problem, re-raise as is)."""
        raise NotImplementedError

    def _sql(self, sql: str, n_in: int = 0) -> str:
        raise NotImplementedError

    def _in_args(self, values: list) -> list:
        raise NotImplementedError

    def _insert_returning(self, con: Any, sql: str, args: list, column: str) -> int:
        return int(con.execute(self._sql(f"{sql} RETURNING {column}"), args).fetchone()[0])

    # ------------------------------------------------------------- connections
    def _con(self) -> Any:
        con = getattr(self._local, "con", None)
        if con is None:
            con = self._local.con = self._connect()
        return con

    def _drop_con(self) -> None:
        con = getattr(self._local, "con", None)
        self._local.con = None
        if con is not None:
            try:
                con.close()
            except Exception:  # already broken: nothing more to release
                pass

    def close(self) -> None:
        self._drop_con()

    @contextmanager
    def write(self) -> Iterator[Any]:
        """One serialised transaction; storage failures become ``StorageError``s, nothing half-written."""
        con = self._con()
        try:
            with self._transaction(con):
                yield con
        except Exception as exc:
            self._raise_storage(exc)
            raise

    def _raise_storage(self, exc: Exception) -> None:
        mapped = self._translate(exc)
        if mapped is not None:
            self._drop_con()
            raise mapped from exc

    def _rows(self, sql: str, args: Iterable = ()) -> list[tuple]:
        """A read; a dropped connection is reopened once before giving up."""
        for attempt in (0, 1):
            try:
                return self._con().execute(self._sql(sql), list(args)).fetchall()
            except Exception as exc:
                mapped = self._translate(exc)
                if mapped is None:
                    raise
                self._drop_con()
                if attempt:
                    raise mapped from exc
        return []

    def _rows_in(self, sql: str, values: list, extra: list | None = None, chunk: int = 900) -> list[tuple]:
        """``sql`` with ``{in}`` tested against ``values`` (chunked for SQLite's parameter limit)."""
        out: list[tuple] = []
        for start in range(0, len(values), chunk):
            part = values[start : start + chunk]
            out += self._rows(self._sql_in(sql, len(part)), [*(extra or []), *self._in_args(part)])
        return out

    def _sql_in(self, sql: str, n: int) -> str:
        return sql.replace("{in}", self._in_fragment(n))

    def _in_fragment(self, n: int) -> str:
        raise NotImplementedError

    # ------------------------------------------------------------- schema
    def migrate(self) -> int:
        """Apply the numbered SQL files this database has not had yet, in number order; returns the
        schema version (the highest applied).

        Each applied number is a row of ``schema_version``, so a file numbered below one already applied
        (branches that each added a migration, merged in either order: 0005 applied before 0004
        arrived) is still applied; only a store holding a number above every file here is refused."""
        files = sorted(f for f in resources.files(self.migrations_package).iterdir() if f.name.endswith(".sql"))
        known = {int(f.name.split("_", 1)[0]): f for f in files}
        latest = max(known, default=0)
        applied = self._applied_versions()
        if applied is not None and set(known) <= applied and max(applied, default=0) <= latest:
            return latest  # nothing to do: no write (read-only storage still serves)
        with self.write() as con:
            con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            applied = {int(r[0]) for r in con.execute("SELECT version FROM schema_version").fetchall()}
            current = max(applied, default=0)
            if current > latest:
                raise StoreVersionError(f"the store's schema is version {current}, newer than this code's {latest}: "
                                        "upgrade listing-search before serving from it")
            for version, f in sorted(known.items()):
                if version not in applied:
                    for statement in _statements(f.read_text()):
                        con.execute(statement)
                    if version in AFTER_MIGRATION:
                        getattr(self, AFTER_MIGRATION[version])(con)
                    con.execute(self._sql("INSERT INTO schema_version (version) VALUES (?)"), [version])
                    log.info("store: applied migration %s", f.name)
        return max(current, latest)

    def schema_version(self) -> int:
        return int(self._rows("SELECT MAX(version) FROM schema_version")[0][0] or 0)

    def _applied_versions(self) -> set[int] | None:
        """The migration numbers applied, or None before the first migration (no table yet)."""
        try:
            return {int(r[0]) for r in self._rows("SELECT version FROM schema_version")}
        except Exception as exc:
            if self._translate(exc) is not None and "schema_version" not in str(exc):
                raise
            self._drop_con()
            return None

    def store_id(self) -> str:
        """This store's identity (a new one after a restore): snapshots record it, so ids of another
        store are never taken for this one's."""
        ident = self.get_meta("store_id")
        if ident is None:
            ident = os.urandom(8).hex()
            with self.write() as con:
                if con.execute(self._sql("SELECT 1 FROM meta WHERE name = 'store_id'")).fetchone() is None:
                    con.execute(self._sql("INSERT INTO meta (name, value) VALUES ('store_id', ?)"), [json.dumps(ident)])
            ident = self.get_meta("store_id")
        return str(ident)

    # ------------------------------------------------------------- change log
    def head(self) -> int:
        """The newest committed log sequence (0 for an empty log)."""
        return int(self._rows("SELECT COALESCE(MAX(seq), 0) FROM changes")[0][0])

    def changes_since(self, seq: int, limit: int = 5000) -> list[Change]:
        rows = self._rows("SELECT seq, op, listing_key, listing_id, at FROM changes WHERE seq > ? ORDER BY seq "
                          "LIMIT ?", [int(seq), int(limit)])
        return [Change(int(s), op, int(k), lid, float(at)) for s, op, k, lid, at in rows]

    def _log(self, con: Any, op: str, key: int, listing_id: str) -> int:
        seq = self._insert_returning(con, "INSERT INTO changes (op, listing_key, listing_id, at) VALUES (?, ?, ?, ?)",
                                     [op, key, listing_id, time.time()], "seq")
        self._announce(con)
        return seq

    def _announce(self, con: Any) -> None:
        """Tell followers, on commit, that the log grew (PostgreSQL NOTIFY); SQLite's followers see
        the file change by themselves."""

    def change_waiter(self) -> "ChangeWaiter":
        """What a follower waits on between polls of the log (``ChangeWaiter.wait``)."""
        return ChangeWaiter()

    # ------------------------------------------------------------- reads
    def counts(self) -> dict[str, int]:
        return {"listings": int(self._rows("SELECT COUNT(*) FROM listings")[0][0]),
                "photos": int(self._rows("SELECT COUNT(*) FROM photos")[0][0])}

    def listing(self, listing_id: str) -> Listing | None:
        rows = self._rows(f"SELECT {', '.join(LISTING_FIELDS)} FROM listings WHERE listing_id = ?", [listing_id])
        return self._with_photos([_listing(rows[0])])[0] if rows else None

    def listings_by_key(self, keys: Iterable[int]) -> dict[int, Listing]:
        keys = list(dict.fromkeys(int(k) for k in keys))
        rows = self._rows_in(f"SELECT {', '.join(LISTING_FIELDS)} FROM listings WHERE key {{in}}", keys)
        return {x.key: x for x in self._with_photos([_listing(r) for r in rows])}

    def listing_ids(self, origin: str | None = None) -> dict[str, int]:
        """listing id -> key, of every listing (or those of one origin)."""
        if origin is None:
            return {lid: int(k) for lid, k in self._rows("SELECT listing_id, key FROM listings")}
        return {lid: int(k) for lid, k in self._rows("SELECT listing_id, key FROM listings WHERE origin = ?", [origin])}

    def image_ids(self, vector_ids: Iterable[int]) -> dict[int, tuple[str, str]]:
        """vector id -> (image id, listing id)."""
        rows = self._rows_in("SELECT p.vector_id, p.image_id, l.listing_id FROM photos p JOIN listings l "
                             "ON l.key = p.listing_key WHERE p.vector_id {in}", [int(v) for v in vector_ids])
        return {int(r[0]): (r[1], r[2]) for r in rows}

    def photo_blob_key(self, image_id: str) -> str | None:
        rows = self._rows("SELECT blob_key FROM photos WHERE image_id = ?", [image_id])
        return rows[0][0] if rows else None

    def photo_blob_keys(self) -> list[str]:
        return [r[0] for r in self._rows("SELECT blob_key FROM photos")]

    def photo_vector_ids_many(self, listing_keys: Iterable[int]) -> dict[int, list[int]]:
        rows = self._rows_in("SELECT listing_key, vector_id FROM photos WHERE listing_key {in} ORDER BY vector_id",
                             [int(k) for k in listing_keys])
        out: dict[int, list[int]] = {}
        for key, vid in rows:
            out.setdefault(int(key), []).append(int(vid))
        return out

    def _with_photos(self, listings: list[Listing]) -> list[Listing]:
        by_key = {x.key: x for x in listings}
        rows = self._rows_in("SELECT listing_key, image_id, vector_id FROM photos WHERE listing_key {in} "
                             "ORDER BY vector_id", list(by_key))
        for key, image_id, vid in rows:
            by_key[int(key)].image_ids.append(image_id)
            by_key[int(key)].vector_ids.append(int(vid))
        return listings

    # ------------------------------------------------------------- vectors
    def listing_vectors(self, keys: Iterable[int], models: Models) -> dict[int, ListingVectors]:
        """Current vectors of the listings that exist, made by ``models`` (other versions are ignored)."""
        keys = list(dict.fromkeys(int(k) for k in keys))
        present = [int(r[0]) for r in self._rows_in("SELECT key FROM listings WHERE key {in}", keys)]
        photos = self._rows_in("SELECT p.listing_key, p.vector_id, v.vector FROM photos p JOIN photo_vectors v "
                               "ON v.vector_id = p.vector_id AND v.model = ? WHERE p.listing_key {in} "
                               "ORDER BY p.vector_id", present, [models.image])
        texts = {} if models.text is None else {int(k): vector_of(v) for k, v in self._rows_in(
            "SELECT listing_key, vector FROM text_vectors WHERE model = ? AND listing_key {in}", present, [models.text])}
        by_key: dict[int, list[tuple[int, np.ndarray]]] = {}
        for key, vid, vec in photos:
            by_key.setdefault(int(key), []).append((int(vid), vector_of(vec)))
        out = {}
        for key in present:
            mine = by_key.get(key, [])
            out[key] = ListingVectors(key, np.array([v for v, _ in mine], np.int64),
                                      np.stack([x for _, x in mine]) if mine else np.empty((0, 0), np.float32),
                                      texts.get(key))
        return out

    def iter_photo_vectors(self, model: str, batch: int = 20_000) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(vector ids, listing keys, vectors) of every photo embedded by ``model``, in id order."""
        last = 0
        while True:
            rows = self._rows("SELECT v.vector_id, p.listing_key, v.vector FROM photo_vectors v JOIN photos p "
                              "ON p.vector_id = v.vector_id WHERE v.model = ? AND v.vector_id > ? "
                              "ORDER BY v.vector_id LIMIT ?", [model, last, batch])
            if not rows:
                return
            last = int(rows[-1][0])
            yield (np.array([r[0] for r in rows], np.int64), np.array([r[1] for r in rows], np.int64),
                   np.stack([vector_of(r[2]) for r in rows]))

    def iter_text_vectors(self, model: str, batch: int = 20_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(listing keys, vectors) of every listing text embedded by ``model``, in key order."""
        last = 0
        while True:
            rows = self._rows("SELECT listing_key, vector FROM text_vectors WHERE model = ? AND listing_key > ? "
                              "ORDER BY listing_key LIMIT ?", [model, last, batch])
            if not rows:
                return
            last = int(rows[-1][0])
            yield np.array([r[0] for r in rows], np.int64), np.stack([vector_of(r[1]) for r in rows])

    def iter_listings(self, batch: int = 20_000) -> Iterator[list[Listing]]:
        """Batches of every listing with its photos' ids, in key order (what replicas derive their
        in-memory catalogue and lexical index from)."""
        last = 0
        while True:
            rows = self._rows(f"SELECT {', '.join(LISTING_FIELDS)} FROM listings WHERE key > ? ORDER BY key LIMIT ?",
                              [last, batch])
            if not rows:
                return
            listings = self._with_photos([_listing(r) for r in rows])
            last = listings[-1].key
            yield listings

    def vector_models(self) -> dict[str, dict[str, int]]:
        """How many photo and text vectors each encoder version made."""
        photos = self._rows("SELECT model, COUNT(*) FROM photo_vectors GROUP BY model")
        texts = self._rows("SELECT model, COUNT(*) FROM text_vectors GROUP BY model")
        return {"image": {m: int(n) for m, n in photos}, "text": {m: int(n) for m, n in texts}}

    def stale_photos(self, model: str, limit: int = 256, after: int = 0) -> list[tuple[int, int, str]]:
        """(vector id, listing key, blob key) of photos with no vector made by ``model``."""
        rows = self._rows("SELECT p.vector_id, p.listing_key, p.blob_key FROM photos p WHERE p.vector_id > ? AND "
                          "NOT EXISTS (SELECT 1 FROM photo_vectors v WHERE v.vector_id = p.vector_id AND v.model = ?) "
                          "ORDER BY p.vector_id LIMIT ?", [after, model, limit])
        return [(int(v), int(k), b) for v, k, b in rows]

    def stale_texts(self, model: str, limit: int = 256, after: int = 0) -> list[tuple[int, str, str]]:
        """(key, title, description) of listings with no text vector made by ``model``."""
        rows = self._rows("SELECT l.key, l.title, l.description FROM listings l WHERE l.key > ? AND NOT EXISTS "
                          "(SELECT 1 FROM text_vectors t WHERE t.listing_key = l.key AND t.model = ?) "
                          "ORDER BY l.key LIMIT ?", [after, model, limit])
        return [(int(k), t, d) for k, t, d in rows]

    def drop_other_models(self, models: Models) -> int:
        """Delete vectors made by any other encoder version (after a re-embed); returns how many."""
        with self.write() as con:
            n = con.execute(self._sql("DELETE FROM photo_vectors WHERE model <> ?"), [models.image]).rowcount
            if models.text is not None:  # without a text model, text vectors are kept, not dropped
                n += con.execute(self._sql("DELETE FROM text_vectors WHERE model <> ?"), [models.text]).rowcount
        return int(n)

    # ------------------------------------------------------------- coordinates
    def fill_coordinates(self) -> int:
        """Place every listing stored without coordinates (``geo_precision`` NULL: rows of a store older
        than migration 0004, which places them itself, or written since by a replica on older code) in
        one transaction with a log entry each, so replicas follow; returns how many were placed."""
        if not self._rows("SELECT 1 FROM listings WHERE geo_precision IS NULL LIMIT 1"):
            return 0
        with self.write() as con:
            return self._fill_coordinates(con)

    def _fill_coordinates(self, con: Any) -> int:
        """``fill_coordinates`` inside the caller's transaction: the town, else the area (``core.places``),
        else the centroid of the area's listings placed by town, those already stored included."""
        from listing_search.core import places

        pending = con.execute(self._sql("SELECT key, listing_id, location FROM listings WHERE geo_precision IS NULL "
                                        "ORDER BY key")).fetchall()
        if not pending:
            return 0
        gazetteer = places.gazetteer()
        found = {loc: gazetteer.place(loc) for loc in dict.fromkeys(r[2] for r in pending)}
        towns = con.execute(self._sql("SELECT location, lat, lon FROM listings WHERE geo_precision = ?"),
                            [places.TOWN]).fetchall()
        centroids = places.area_centroids([r[0] for r in towns] + [r[2] for r in pending],
                                          [places.Place(float(la), float(lo), places.TOWN) for _, la, lo in towns]
                                          + [found[r[2]] for r in pending])
        placed = [places.with_centroid(loc, found[loc], centroids) for _, _, loc in pending]
        cur = con.cursor()
        try:
            cur.executemany(self._sql("UPDATE listings SET lat = ?, lon = ?, geo_precision = ? WHERE key = ?"),
                            [[p.lat, p.lon, p.precision, int(k)] for (k, _, _), p in zip(pending, placed)])
        finally:
            cur.close()
        now = time.time()
        seqs = self._reserve_ids(con, "changes", "seq", len(pending))
        self._insert_rows(con, "changes", BULK_COLUMNS["changes"],
                          [[seq, UPSERT, int(k), lid, now] for seq, (k, lid, _) in zip(seqs, pending)])
        self._announce(con)
        log.info("store: %d listings placed (%s)", len(pending), places.precision_table(placed))
        return len(pending)

    # ------------------------------------------------------------- meta
    def get_meta(self, name: str) -> Any:
        rows = self._rows("SELECT value FROM meta WHERE name = ?", [name])
        return json.loads(rows[0][0]) if rows else None

    def set_meta(self, name: str, value: Any) -> None:
        with self.write() as con:
            con.execute(self._sql("DELETE FROM meta WHERE name = ?"), [name])
            con.execute(self._sql("INSERT INTO meta (name, value) VALUES (?, ?)"), [name, json.dumps(value)])

    # ------------------------------------------------------------- backups in progress
    def hold_backup(self, lease: str, ttl_s: float) -> None:
        """Record (or renew) backup ``lease`` as in progress for ``ttl_s`` more seconds: while any is,
        deleted photos keep their bytes (the backup's snapshot may name them). A lease expires by itself,
        so a killed backup holds deletes back for ``ttl_s`` at most."""
        self.set_meta(BACKUP_LEASE + lease, {"until": time.time() + ttl_s})

    def release_backup(self, lease: str) -> None:
        with self.write() as con:
            con.execute(self._sql("DELETE FROM meta WHERE name = ?"), [BACKUP_LEASE + lease])

    def backup_in_progress(self) -> bool:
        """Whether any backup holds an unexpired lease (read fresh: a delete checks it after its commit)."""
        now = time.time()
        rows = self._rows("SELECT value FROM meta WHERE name LIKE ?", [BACKUP_LEASE + "%"])
        return any(json.loads(value).get("until", 0) > now for (value,) in rows)

    # ------------------------------------------------------------- writes
    def add_listing(self, item: ListingIn, models: Models, idempotency: tuple[str, str] | None = None
                    ) -> tuple[int, int]:
        """Insert one listing with its photos, vectors and log entry; returns (key, seq).

        With ``idempotency=(key, body hash)``, a key seen in the last 24 h raises ``IdempotentReplay``
        (same body) or ``IdempotencyConflict`` (another body) and writes nothing.
        """
        with self.write() as con:
            if idempotency is not None:
                self._check_idempotency(con, *idempotency)
            key = self._insert_listing(con, item, models)
            seq = self._log(con, UPSERT, key, item.listing_id)
            if idempotency is not None:
                con.execute(self._sql("INSERT INTO idempotency (key, body_hash, listing_id, at) VALUES (?, ?, ?, ?)"),
                            [idempotency[0], idempotency[1], item.listing_id, time.time()])
        return key, seq

    def _check_idempotency(self, con: Any, key: str, body_hash: str) -> None:
        row = con.execute(self._sql("SELECT body_hash, listing_id, at FROM idempotency WHERE key = ?"), [key]).fetchone()
        if row is None:
            return
        if time.time() - float(row[2]) > IDEMPOTENCY_TTL_S:
            con.execute(self._sql("DELETE FROM idempotency WHERE key = ?"), [key])
            return
        if row[0] != body_hash:
            raise IdempotencyConflict(f"Idempotency-Key {key!r} was already used with a different request body")
        raise IdempotentReplay(row[1])

    def idempotent_listing(self, key: str, body_hash: str) -> str | None:
        """The listing an earlier request with this key and body created (None: not seen, or expired)."""
        rows = self._rows("SELECT body_hash, listing_id, at FROM idempotency WHERE key = ?", [key])
        if not rows or time.time() - float(rows[0][2]) > IDEMPOTENCY_TTL_S:
            return None
        if rows[0][0] != body_hash:
            raise IdempotencyConflict(f"Idempotency-Key {key!r} was already used with a different request body")
        return rows[0][1]

    def _insert_listing(self, con: Any, item: ListingIn, models: Models) -> int:
        fields = _with_posted_at({**item.fields, "listing_id": item.listing_id}, time.time())
        values = [_column_value(c, fields.get(c)) for c in WRITE_FIELDS]
        cols = [*WRITE_FIELDS, "origin", "content_hash"]
        values += [item.origin, content_hash(item, models)]
        key = self._insert_returning(
            con, f"INSERT INTO listings ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", values, "key")
        self._put_text_vector(con, key, item.text_vector, models)
        for photo in item.photos:
            self._insert_photo(con, key, photo, models)
        return key

    def _insert_photo(self, con: Any, key: int, photo: PhotoIn, models: Models) -> None:
        vid = self._insert_returning(con, "INSERT INTO photos (image_id, listing_key, blob_key) VALUES (?, ?, ?)",
                                     [photo.image_id, key, photo.blob_key], "vector_id")
        if photo.vector is not None:
            self._put_photo_vector(con, vid, photo.vector, models)

    def _put_photo_vector(self, con: Any, vid: int, vector: np.ndarray, models: Models) -> None:
        con.execute(self._sql("DELETE FROM photo_vectors WHERE vector_id = ? AND model = ?"), [vid, models.image])
        con.execute(self._sql("INSERT INTO photo_vectors (vector_id, model, vector) VALUES (?, ?, ?)"),
                    [vid, models.image, vector_bytes(vector)])

    def _put_text_vector(self, con: Any, key: int, vector: np.ndarray | None, models: Models) -> None:
        if vector is None or models.text is None:
            return
        con.execute(self._sql("DELETE FROM text_vectors WHERE listing_key = ? AND model = ?"), [key, models.text])
        con.execute(self._sql("INSERT INTO text_vectors (listing_key, model, vector) VALUES (?, ?, ?)"),
                    [key, models.text, vector_bytes(vector)])

    def delete_listing(self, listing_id: str, dataset_load: bool = False) -> tuple[int, list[str], int] | None:
        """Delete a listing and its photos with a log entry; (key, blob keys, seq), or None if unknown.

        A delete that is not the dataset load's own prune is remembered, so the listing is not loaded again."""
        with self.write() as con:
            row = con.execute(self._sql("SELECT key FROM listings WHERE listing_id = ?"), [listing_id]).fetchone()
            if row is None:
                return None
            key = int(row[0])
            blobs = [r[0] for r in con.execute(self._sql("SELECT blob_key FROM photos WHERE listing_key = ?"), [key])]
            con.execute(self._sql("DELETE FROM photos WHERE listing_key = ?"), [key])
            con.execute(self._sql("DELETE FROM listings WHERE key = ?"), [key])
            if not dataset_load:  # a deleted dataset listing stays deleted when the dataset is loaded again
                con.execute(self._sql("DELETE FROM deleted_listings WHERE listing_id = ?"), [listing_id])
                con.execute(self._sql("INSERT INTO deleted_listings (listing_id, at) VALUES (?, ?)"),
                            [listing_id, time.time()])
            seq = self._log(con, DELETE, key, listing_id)
        return key, blobs, seq

    def merge(self, items: list[ListingIn], models: Models, prune: bool = False, chunk: int = 500) -> MergeReport:
        """Insert or update dataset listings by listing id, one transaction per chunk with its log entries.

        Listings added through the API are never touched. Dataset listings missing from ``items``
        are deleted only with ``prune``; otherwise they are reported in ``would_delete``.
        """
        report = MergeReport()
        _check_unique(items)
        existing = dict(self._rows("SELECT listing_id, content_hash FROM listings"))
        api = set(self.listing_ids(ORIGIN_API))
        deleted = {r[0] for r in self._rows("SELECT listing_id FROM deleted_listings")}
        items = [it for it in items if it.listing_id not in deleted]
        report.skipped_deleted = len(deleted)
        incoming = {it.listing_id for it in items}
        for start in range(0, len(items), chunk):
            with self.write() as con:
                self._merge_chunk(con, items[start : start + chunk], models, existing, api, report)
        gone = sorted(set(self.listing_ids(ORIGIN_DATASET)) - incoming)  # API listings are never "gone"
        report.kept_api = len(self.listing_ids(ORIGIN_API))
        if prune:
            for listing_id in gone:
                report.deleted += self.delete_listing(listing_id, dataset_load=True) is not None
        else:
            report.would_delete = gone
        report.last_seq = self.head()
        return report

    def _merge_chunk(self, con: Any, items: list[ListingIn], models: Models, existing: dict[str, str],
                     api: set[str], report: MergeReport) -> None:
        """New listings in bulk (``insert_many``), changed ones one by one; API listings never touched."""
        fresh = [it for it in items if it.listing_id not in api and it.listing_id not in existing]
        for item in items:
            if item.listing_id not in api and item.listing_id in existing:
                self._merge_one(con, item, models, existing, report)
        self.insert_many(con, fresh, models)
        report.inserted += len(fresh)

    def insert_many(self, con: Any, items: list[ListingIn], models: Models) -> list[int]:
        """New listings with their photos, vectors and one log entry each, inside the caller's write
        transaction, as a few bulk statements (PostgreSQL ``COPY``, SQLite ``executemany``); returns their seqs.

        Keys, vector ids and log sequence numbers are reserved from the same generators as single
        inserts, under the write lock: never reused, and the log still grows in commit order.
        """
        if not items:
            return []
        keys = self._reserve_ids(con, "listings", "key", len(items))
        vids = iter(self._reserve_ids(con, "photos", "vector_id", sum(len(it.photos) for it in items)))
        seqs = self._reserve_ids(con, "changes", "seq", len(items))
        rows: dict[str, list[list]] = {t: [] for t in BULK_COLUMNS}
        now = time.time()
        for item, key, seq in zip(items, keys, seqs):
            fields = _with_posted_at({**item.fields, "listing_id": item.listing_id}, now)
            rows["listings"].append([key, *(_column_value(c, fields.get(c)) for c in WRITE_FIELDS), item.origin,
                                     content_hash(item, models)])
            if item.text_vector is not None and models.text is not None:
                rows["text_vectors"].append([key, models.text, vector_bytes(item.text_vector)])
            for photo in item.photos:
                vid = next(vids)
                rows["photos"].append([vid, photo.image_id, key, photo.blob_key])
                if photo.vector is not None:
                    rows["photo_vectors"].append([vid, models.image, vector_bytes(photo.vector)])
            rows["changes"].append([seq, UPSERT, key, item.listing_id, now])
        for table, cols in BULK_COLUMNS.items():  # parents before children (foreign keys)
            if rows[table]:
                self._insert_rows(con, table, cols, rows[table])
        self._announce(con)
        return seqs

    def _reserve_ids(self, con: Any, table: str, column: str, n: int) -> list[int]:
        """``n`` fresh ids of ``table.column``'s generator, taken under the write lock."""
        raise NotImplementedError

    def _insert_rows(self, con: Any, table: str, cols: list[str], rows: list[list]) -> None:
        sql = self._sql(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})")
        con.executemany(sql, rows)

    def _merge_one(self, con: Any, item: ListingIn, models: Models, existing: dict[str, str],
                   report: MergeReport) -> None:
        """A dataset listing already in the store: updated when its content changed."""
        digest = content_hash(item, models)
        if existing[item.listing_id] == digest:
            report.unchanged += 1
            return
        key = self._update_listing(con, item, models, digest)
        report.updated += 1
        self._log(con, UPSERT, key, item.listing_id)

    def _update_listing(self, con: Any, item: ListingIn, models: Models, digest: str) -> int:
        key = int(con.execute(self._sql("SELECT key FROM listings WHERE listing_id = ?"), [item.listing_id]).fetchone()[0])
        sets = [c for c in WRITE_FIELDS if c != "listing_id"]
        values = [_column_value(c, item.fields.get(c)) for c in sets]
        assign = ["posted_at = COALESCE(?, posted_at)" if c == "posted_at" else f"{c} = ?" for c in sets]
        if item.fields.get("geo_precision") is None:  # a load without coordinates (an older table): the stored
            location = _column_value("location", item.fields.get("location"))  # ones stay while the location
            for i, c in enumerate(sets):  # does; else NULL, and fill_coordinates places it again
                if c in GEO_FIELDS:
                    assign[i], values[i] = f"{c} = CASE WHEN location = ? THEN {c} END", location
        con.execute(self._sql(f"UPDATE listings SET {', '.join(assign)}, content_hash = ? WHERE key = ?"),
                    [*values, digest, key])
        self._put_text_vector(con, key, item.text_vector, models)
        old = {r[0]: (int(r[1]), r[2]) for r in con.execute(
            self._sql("SELECT image_id, vector_id, blob_key FROM photos WHERE listing_key = ?"), [key])}
        for photo in item.photos:
            if photo.image_id in old and not self._photo_changed(con, old[photo.image_id], photo, models):
                old.pop(photo.image_id)
                continue
            if photo.image_id in old:  # changed: a new vector id, so no index ever sees an id change meaning
                con.execute(self._sql("DELETE FROM photos WHERE vector_id = ?"), [old.pop(photo.image_id)[0]])
            self._insert_photo(con, key, photo, models)
        for vid, _ in old.values():  # photos the listing no longer has
            con.execute(self._sql("DELETE FROM photos WHERE vector_id = ?"), [vid])
        return key

    def _photo_changed(self, con: Any, old: tuple[int, str], photo: PhotoIn, models: Models) -> bool:
        """True when the stored photo differs; a missing vector of this version is filled in place."""
        vid, blob_key = old
        if blob_key != photo.blob_key:
            return True
        if photo.vector is None:
            return False
        row = con.execute(self._sql("SELECT vector FROM photo_vectors WHERE vector_id = ? AND model = ?"),
                          [vid, models.image]).fetchone()
        if row is None:
            self._put_photo_vector(con, vid, photo.vector, models)
            return False
        return bytes(row[0]) != vector_bytes(photo.vector)

    def set_vectors(self, photos: dict[int, np.ndarray], texts: dict[int, np.ndarray], models: Models) -> int:
        """Vectors of another encoder version (a re-embed), logged per listing; returns the last seq."""
        with self.write() as con:
            keys = {int(k) for k in texts}
            for vid, vec in photos.items():
                row = con.execute(self._sql("SELECT listing_key FROM photos WHERE vector_id = ?"), [vid]).fetchone()
                if row is not None:
                    self._put_photo_vector(con, int(vid), vec, models)
                    keys.add(int(row[0]))
            ids = dict(con.execute(self._sql(self._sql_in("SELECT key, listing_id FROM listings WHERE key {in}",
                                                          len(keys))), self._in_args(sorted(keys))).fetchall()) \
                if keys else {}
            seq = 0
            for key in sorted(ids):
                self._put_text_vector(con, int(key), texts.get(key), models)
                seq = self._log(con, UPSERT, int(key), ids[key])
        return seq
    # ------------------------------------------------------------- whole-store copies (backup / restore)
    def read_all(self) -> tuple[int, dict[str, tuple[list[str], list[tuple]]]]:
        """Every row of every table, read in one snapshot: (log sequence, table -> (columns, rows))."""
        con = self._con()
        out: dict[str, tuple[list[str], list[tuple]]] = {}
        try:
            with self._read_snapshot(con):
                for table in TABLES:
                    cur = con.execute(f"SELECT * FROM {table}")
                    out[table] = ([d[0] for d in cur.description], [tuple(r) for r in cur.fetchall()])
        except Exception as exc:
            self._raise_storage(exc)
            raise
        seqs = [r[out["changes"][0].index("seq")] for r in out["changes"][1]]
        return max(seqs, default=0), out

    @contextmanager
    def _read_snapshot(self, con: Any) -> Iterator[None]:
        raise NotImplementedError
        yield

    def is_empty(self) -> bool:
        """No listings, photos, log, idempotency keys or saved searches (meta, e.g. a health probe's row, and
        the matcher's lease may exist)."""
        return all(int(self._rows(f"SELECT COUNT(*) FROM {t}")[0][0]) == 0
                   for t in TABLES if t not in ("meta", "matcher")) and self.head() == 0

    def insert_all(self, tables: dict[str, tuple[list[str], list[tuple]]]) -> None:
        """Rows as ``read_all`` gives them, ids kept, in one transaction; id sequences moved past them."""
        with self.write() as con:
            con.execute("DELETE FROM meta")  # the backup's meta replaces this store's (probe rows, ids)
            con.execute("DELETE FROM matcher")  # so does the alert cursor, consistent with its alerts
            for table in TABLES:
                cols, rows = tables[table]
                sql = self._sql(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})")
                for row in rows:
                    con.execute(sql, [bytes(v) if isinstance(v, memoryview) else v for v in row])
            con.execute("UPDATE matcher SET holder = NULL, expires_at = 0")  # no replica of this store holds it
            self._after_bulk_insert(con)

    def _after_bulk_insert(self, con: Any) -> None:
        """Dialects whose id generators do not follow explicit ids move them here."""


class ChangeWaiter:
    """Blocks a follower until the change log may have grown, or ``timeout`` passes, or ``stop`` is set.

    This one only sleeps (a plain poll); the dialects wake up as soon as another writer commits:
    SQLite by its file's change counter, PostgreSQL by LISTEN/NOTIFY. A wake-up without new entries
    is harmless (the follower finds nothing to apply), a missed one costs at most ``timeout``.
    """

    def wait(self, timeout: float, stop: threading.Event) -> None:
        stop.wait(timeout)

    def close(self) -> None:
        """Release what the waiter holds (a connection)."""


TABLES = ("listings", "photos", "photo_vectors", "text_vectors", "changes", "idempotency", "meta", "deleted_listings",
          "saved_searches", "alerts", "matcher")  # parents before children (foreign keys)
BULK_COLUMNS = {  # what ``insert_many`` writes, in foreign-key order
    "listings": ["key", *WRITE_FIELDS, "origin", "content_hash"],
    "photos": ["vector_id", "image_id", "listing_key", "blob_key"],
    "photo_vectors": ["vector_id", "model", "vector"],
    "text_vectors": ["listing_key", "model", "vector"],
    "changes": ["seq", "op", "listing_key", "listing_id", "at"],
}


def _check_unique(items: list[ListingIn]) -> None:
    """A batch naming a listing or a photo twice is refused before anything is written."""
    for what, values in (("listing id", [it.listing_id for it in items]),
                         ("photo id", [p.image_id for it in items for p in it.photos])):
        seen: set[str] = set()
        for value in values:
            if value in seen:
                raise ValueError(f"the batch names {what} {value!r} twice: nothing was loaded")
            seen.add(value)


def _statements(script: str) -> list[str]:
    """A migration file's statements (no semicolons inside literals in these files)."""
    lines = [ln for ln in script.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def _listing(row: tuple) -> Listing:
    values = dict(zip(LISTING_FIELDS, row))
    values["key"] = int(values["key"])
    values["price"] = None if values["price"] is None else float(values["price"])
    values["label"] = None if values["label"] is None else int(values["label"])
    return Listing(**values)


def _with_posted_at(fields: dict, now: float) -> dict:
    """A new listing's fields with ``posted_at`` set: the one given (a dataset's photo time), else now."""
    value = fields.get("posted_at")
    missing = value is None or (isinstance(value, float) and value != value)
    return {**fields, "posted_at": now} if missing else fields


def _column_value(column: str, value: object) -> object:
    """Text columns are NOT NULL: a missing one is stored empty; NaN prices, labels and coordinates
    become NULL, and so does a missing precision (the listing is placed later: ``fill_coordinates``)."""
    if column == "geo_precision":
        return None if value is None or (isinstance(value, float) and value != value) else str(value)
    if column in TEXT_FIELDS:
        return "" if value is None or (isinstance(value, float) and value != value) else str(value)
    if value is None or (isinstance(value, float) and value != value):
        return None
    return int(value) if column == "label" else float(value)
