"""The catalogue in SQLite (stdlib ``sqlite3``, WAL): listings and their photos, keyed by vector ids.

``listings.key`` is the int64 id of listing-level vectors (text embeddings); ``photos.vector_id`` is
the int64 id of a photo's vector in the image index. Both are AUTOINCREMENT, so an id removed from
an index is never reused. The database is the source of truth: at start-up the engine drops index
vectors with no photo row (a crash between a database commit and an index write).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from listing_search import schema as S

log = logging.getLogger(__name__)

DDL = """
CREATE TABLE IF NOT EXISTS listings (
    key INTEGER PRIMARY KEY AUTOINCREMENT,
    listing_id TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    price REAL,
    location TEXT NOT NULL DEFAULT '',
    category_path TEXT NOT NULL DEFAULT '',
    root_category TEXT NOT NULL DEFAULT '',
    label INTEGER
);
CREATE INDEX IF NOT EXISTS listings_root ON listings(root_category);
CREATE TABLE IF NOT EXISTS photos (
    vector_id INTEGER PRIMARY KEY AUTOINCREMENT,
    image_id TEXT NOT NULL UNIQUE,
    listing_key INTEGER NOT NULL REFERENCES listings(key) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS photos_listing ON photos(listing_key);
"""

LISTING_FIELDS = ("key", "listing_id", "title", "description", "price", "location", "category_path",
                  "root_category", "label")


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


@dataclass(frozen=True)
class Filters:
    """Structured filters of a search; ``None`` means no constraint."""

    root_category: str | None = None
    min_price: float | None = None
    max_price: float | None = None
    location: str | None = None

    def active(self) -> bool:
        return any(v is not None for v in (self.root_category, self.min_price, self.max_price, self.location))


class Catalog:
    """Thread-safe access: one connection per thread for reads, writes serialised by a lock."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no catalogue database at {self.path}")
        self._local = threading.local()
        self._write_lock = threading.Lock()

    # ----------------------------------------------------------------- connections
    def conn(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = connect(self.path)
            self._local.con = con
        return con

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One transaction, committed on success, rolled back on error."""
        with self._write_lock:
            con = self.conn()
            try:
                con.execute("BEGIN IMMEDIATE")
                yield con
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    # ----------------------------------------------------------------- reads
    def counts(self) -> dict[str, int]:
        con = self.conn()
        return {
            "listings": con.execute("SELECT COUNT(*) FROM listings").fetchone()[0],
            "photos": con.execute("SELECT COUNT(*) FROM photos").fetchone()[0],
        }

    def listing(self, listing_id: str) -> Listing | None:
        row = self.conn().execute(
            f"SELECT {', '.join(LISTING_FIELDS)} FROM listings WHERE listing_id = ?", (listing_id,)
        ).fetchone()
        return self._with_photos([Listing(*row)])[0] if row else None

    def listings_by_key(self, keys: Iterable[int]) -> dict[int, Listing]:
        keys = list(dict.fromkeys(int(k) for k in keys))
        if not keys:
            return {}
        rows = self._in_query(f"SELECT {', '.join(LISTING_FIELDS)} FROM listings WHERE key IN ({{}})", keys)
        return {x.key: x for x in self._with_photos([Listing(*r) for r in rows])}

    def photo_listing_keys(self, vector_ids: Iterable[int]) -> dict[int, int]:
        """vector id -> listing key, for the ids that exist."""
        ids = [int(v) for v in vector_ids]
        rows = self._in_query("SELECT vector_id, listing_key FROM photos WHERE vector_id IN ({})", ids)
        return dict(rows)

    def image_ids(self, vector_ids: Iterable[int]) -> dict[int, tuple[str, str]]:
        """vector id -> (image id, listing id)."""
        ids = [int(v) for v in vector_ids]
        rows = self._in_query(
            "SELECT p.vector_id, p.image_id, l.listing_id FROM photos p JOIN listings l ON l.key = p.listing_key "
            "WHERE p.vector_id IN ({})", ids)
        return {r[0]: (r[1], r[2]) for r in rows}

    def photo_exists(self, image_id: str) -> bool:
        return self.conn().execute("SELECT 1 FROM photos WHERE image_id = ?", (image_id,)).fetchone() is not None

    def photo_vector_ids(self, listing_key: int) -> list[int]:
        rows = self.conn().execute("SELECT vector_id FROM photos WHERE listing_key = ?", (listing_key,))
        return [r[0] for r in rows]

    def photo_vector_ids_many(self, listing_keys: Iterable[int]) -> dict[int, list[int]]:
        """listing key -> its photos' vector ids, in one query."""
        rows = self._in_query("SELECT listing_key, vector_id FROM photos WHERE listing_key IN ({})",
                              [int(k) for k in listing_keys])
        out: dict[int, list[int]] = {}
        for key, vid in rows:
            out.setdefault(key, []).append(vid)
        return out

    def all_vector_ids(self) -> list[int]:
        return [r[0] for r in self.conn().execute("SELECT vector_id FROM photos")]

    def matching_vector_ids(self, filters: Filters) -> list[int]:
        """Photo vector ids of listings passing ``filters`` (the candidate set of a filtered search)."""
        where, args = filters_sql(filters)
        sql = f"SELECT p.vector_id FROM photos p JOIN listings l ON l.key = p.listing_key WHERE {where}"
        return [r[0] for r in self.conn().execute(sql, args)]

    def matching_listing_keys(self, filters: Filters) -> list[int]:
        """Listing keys passing ``filters`` (for listing-level vectors such as text)."""
        where, args = filters_sql(filters)
        return [r[0] for r in self.conn().execute(f"SELECT l.key FROM listings l WHERE {where}", args)]

    def root_categories(self) -> list[str]:
        rows = self.conn().execute("SELECT DISTINCT root_category FROM listings ORDER BY root_category")
        return [r[0] for r in rows]

    def _with_photos(self, listings: list[Listing]) -> list[Listing]:
        by_key = {x.key: x for x in listings}
        rows = self._in_query(
            "SELECT listing_key, image_id FROM photos WHERE listing_key IN ({}) ORDER BY vector_id", list(by_key))
        for key, image_id in rows:
            by_key[key].image_ids.append(image_id)
        return listings

    def _in_query(self, sql: str, values: list, chunk: int = 900) -> list[tuple]:
        out: list[tuple] = []
        con = self.conn()
        for start in range(0, len(values), chunk):
            part = values[start : start + chunk]
            out += con.execute(sql.format(", ".join("?" * len(part))), part).fetchall()
        return out

    # ----------------------------------------------------------------- writes
    def insert_listing(self, con: sqlite3.Connection, listing: dict, image_ids: list[str]) -> tuple[int, list[int]]:
        """Insert inside ``write()``; returns the listing key and the new photos' vector ids."""
        cols = [c for c in LISTING_FIELDS if c != "key"]
        cur = con.execute(
            f"INSERT INTO listings ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
            [_default(c, listing.get(c)) for c in cols])
        key = int(cur.lastrowid)
        vector_ids = [
            int(con.execute("INSERT INTO photos (image_id, listing_key) VALUES (?, ?)", (i, key)).lastrowid)
            for i in image_ids
        ]
        return key, vector_ids

    def delete_listing(self, con: sqlite3.Connection, listing_id: str) -> tuple[int, list[int]] | None:
        """Delete inside ``write()``; returns (listing key, photo vector ids) or None if unknown."""
        row = con.execute("SELECT key FROM listings WHERE listing_id = ?", (listing_id,)).fetchone()
        if row is None:
            return None
        key = int(row[0])
        vector_ids = [r[0] for r in con.execute("SELECT vector_id FROM photos WHERE listing_key = ?", (key,))]
        con.execute("DELETE FROM photos WHERE listing_key = ?", (key,))
        con.execute("DELETE FROM listings WHERE key = ?", (key,))
        return key, vector_ids


def connect(path: Path) -> sqlite3.Connection:
    """Autocommit connection (transactions are explicit), WAL, foreign keys on."""
    con = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute("PRAGMA foreign_keys=ON")
    return con


def filters_sql(filters: Filters) -> tuple[str, list]:
    clauses, args = ["1 = 1"], []
    if filters.root_category is not None:
        clauses.append("l.root_category = ?")
        args.append(filters.root_category)
    if filters.min_price is not None:
        clauses.append("l.price >= ?")
        args.append(filters.min_price)
    if filters.max_price is not None:
        clauses.append("l.price <= ?")
        args.append(filters.max_price)
    if filters.location:
        escaped = filters.location.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        clauses.append("l.location LIKE ? ESCAPE '\\'")
        args.append(f"%{escaped}%")
    return " AND ".join(clauses), args


def build_catalog(path: Path, listings: pd.DataFrame, photos: pd.DataFrame) -> dict[str, int]:
    """Write a fresh database from the cleaned tables; ``photos`` carries a ``vector_id`` column.

    Built beside the target and renamed into place, so readers never see half a catalogue.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.building")
    for p in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        p.unlink(missing_ok=True)
    con = connect(tmp)
    try:
        con.executescript(DDL)
        _insert_tables(con, listings, photos)
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        counts = {t: con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("listings", "photos")}
    finally:
        con.close()
    for p in (Path(f"{path}-wal"), Path(f"{path}-shm")):
        p.unlink(missing_ok=True)
    tmp.replace(path)
    return counts


def _insert_tables(con: sqlite3.Connection, listings: pd.DataFrame, photos: pd.DataFrame) -> None:
    con.execute("BEGIN")
    rows = [
        (r[S.LISTING_ID], _s(r[S.TITLE]), _s(r[S.DESCRIPTION]), _f(r[S.PRICE]), _s(r[S.LOCATION]),
         _s(r[S.CATEGORY_PATH]), _s(r[S.ROOT_CATEGORY]), _i(r[S.LABEL]))
        for r in listings.to_dict("records")
    ]
    con.executemany(
        "INSERT INTO listings (listing_id, title, description, price, location, category_path, root_category, label)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    keys = dict(con.execute("SELECT listing_id, key FROM listings").fetchall())
    con.executemany(
        "INSERT INTO photos (vector_id, image_id, listing_key) VALUES (?, ?, ?)",
        [(int(v), i, keys[lid]) for v, i, lid in zip(photos["vector_id"], photos[S.IMAGE_ID], photos[S.LISTING_ID])])
    con.execute("COMMIT")


def _default(column: str, value: object) -> object:
    """Text columns are NOT NULL: a missing one is stored empty."""
    return "" if value is None and column not in ("price", "label") else value


def _s(v: object) -> str:
    return "" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v)


def _f(v: object) -> float | None:
    return None if v is None or pd.isna(v) else float(v)


def _i(v: object) -> int | None:
    return None if v is None or pd.isna(v) else int(v)
