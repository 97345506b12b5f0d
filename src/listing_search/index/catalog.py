"""The catalogue a serving process holds in memory: every listing's fields as columns.

Derived from the store of record and kept current from its change log, like the vector indexes
(``index.live``), so a search reads no store: results are presented, filters applied, listings
sorted and counted from here. The store serves writes, derivation and the listing page.

Rows are append-only: a listing's row never changes once written. An update writes a new row and
retires the old one; a delete retires it. A search that read a row number keeps reading the
same listing's fields however the view moves on meanwhile; arrays grow by copying, and a reader
holding the old arrays still finds every row it knew. :meth:`compacted` builds a fresh view
without retired rows (``index.live`` swaps it in when they outnumber the live ones).

Memory per listing: its id and title as Python strings, its description compressed (``Texts``), its
photos' image ids and vector ids flat (``FlatRows``), nine numeric columns, a flag, and a place in two
lookups (key -> row, listing id -> row); category paths, roots and locations are stored once each and
referenced by a code (``docs/performance.md``).
Coordinates (``lat``, ``lon``: NaN when not placed) and their precision (``geo``: an index into
``core.places.PRECISIONS``, ``NONE`` while the store has not placed the listing) are columns too, so
a search near a place reads them from here: each distinct position is numbered once
(``index.points``) and a row holds its code, so a radius filter, a sort by distance and the distance
facets look distances up by code rather than computing one per row.

Two things are derived per listing as it arrives: whether it is a buying ad (``core.ads``, the
``buying`` column and filter) and its near-duplicate group (``index.duplicates``: the view keeps
the title links; ``index.live`` adds the photo links).
"""

from __future__ import annotations

import math
import threading
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from listing_search.core.ads import is_buying_ad
from listing_search.core.near import Near, haversine_km
from listing_search.core.places import PRECISIONS
from listing_search.core.query import DISTANCE, NEWEST, PRICE_ASC, PRICE_DESC, Filters, path_segments
from listing_search.index.duplicates import Ad, DuplicateGroups
from listing_search.index.points import Points
from listing_search.store.models import Listing

_GROW = 1.5
NONE = -1  # "no row" in the key -> row lookup
MAX_KEPT = 4096  # what Codes.kept holds at most (its keys may come from requests: category prefixes)
PRECISION_CODE = {p: i for i, p in enumerate(PRECISIONS)}  # geo_precision -> the ``geo`` column's code
_COLUMNS = ("key", "price", "posted_at", "root", "path", "location", "label", "alive", "lat", "lon", "geo",
            "buying", "point")


class Codes:
    """Distinct strings (category paths, roots, locations) numbered in order of first sight."""

    def __init__(self) -> None:
        self.values: list[str] = []
        self._code: dict[str, int] = {}
        self._kept: dict[object, tuple[int, Any]] = {}  # key -> (values seen, what was derived)

    def code(self, value: str) -> int:
        c = self._code.get(value)
        if c is None:
            c = self._code[value] = len(self.values)
            self.values.append(value)
        return c

    def find(self, value: str) -> int | None:
        return self._code.get(value)

    def kept(self, key: object, derive: Callable[[list[str]], Any]) -> Any:
        """``derive(values)``, kept under ``key`` until a value is added (values are only ever appended):
        what is worked out from every path (facet levels, a category prefix's codes) is worked out once."""
        n = len(self.values)
        held = self._kept.get(key)
        if held is not None and held[0] == n:
            return held[1]
        derived = derive(self.values[:n])
        if len(self._kept) >= MAX_KEPT:
            self._kept.clear()
        self._kept[key] = (n, derived)
        return derived

    def __len__(self) -> int:
        return len(self.values)


class FlatRows:
    """Per row, a short sequence (a listing's photos' vector ids or image ids), stored flat: the values
    of every row in one array (int64) or one list (strings), a row's between two offsets. A tuple per
    row cost ~180 bytes a listing; this ~40. Append-only like the view's rows: a reader holding the old
    arrays still finds every row it knew (values are written before the offset that shows them)."""

    def __init__(self, ints: bool) -> None:
        self._offsets = np.zeros(1025, np.int64)
        self._values: np.ndarray | list = np.zeros(2048, np.int64) if ints else []
        self._ints = ints
        self.rows = 0

    def append(self, values: Iterable) -> None:
        values = list(values)
        start, r = int(self._offsets[self.rows]), self.rows
        if self._ints:
            end = start + len(values)
            if end > len(self._values):
                grown = np.zeros(max(end, 2 * len(self._values)), np.int64)
                grown[:start] = self._values[:start]
                self._values = grown
            self._values[start:end] = values
        else:
            self._values.extend(values)
            end = start + len(values)
        if r + 2 > len(self._offsets):
            grown = np.zeros(2 * len(self._offsets), np.int64)
            grown[:r + 1] = self._offsets[:r + 1]
            self._offsets = grown
        self._offsets[r + 1] = end
        self.rows += 1

    def __getitem__(self, row: int) -> tuple:
        row = int(row)
        if not 0 <= row < self.rows:
            raise IndexError(f"row {row} of {self.rows}")
        offsets, values = self._offsets, self._values
        a, b = int(offsets[row]), int(offsets[row + 1])
        return tuple(values[a:b].tolist()) if self._ints else tuple(values[a:b])

    def owners(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(position in ``rows``, value) of every value of those rows, row by row (ints only): one numpy
        gather rather than a tuple per row."""
        offsets, values = self._offsets, self._values
        rows = np.asarray(rows, np.int64)
        start = offsets[rows]
        counts = offsets[rows + 1] - start
        total = int(counts.sum())
        if not total:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        before = np.cumsum(counts) - counts  # values of the earlier rows
        at = np.arange(total) + np.repeat(start - before, counts)
        return np.repeat(np.arange(len(rows)), counts), np.asarray(values)[at]

    def __len__(self) -> int:
        return self.rows


class Texts:
    """Long texts (descriptions) kept zlib-compressed, one per row; ``texts[row]`` gives the string."""

    COMPRESS_FROM = 64  # characters: shorter texts stay strings (compressing them saves nothing)

    def __init__(self) -> None:
        self._items: list[str | bytes] = []

    def append(self, text: str) -> None:
        self._items.append(zlib.compress(text.encode("utf-8"), 6) if len(text) >= self.COMPRESS_FROM else text)

    def __getitem__(self, row: int) -> str:
        item = self._items[row]
        return zlib.decompress(item).decode("utf-8") if isinstance(item, bytes) else item

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True)
class SortKey:
    """A total order over rows: ascending ``primary`` (NaN = +inf: listings without the value come
    last), then ascending ``secondary`` (from the listing key, unique). Keyset cursors hold the pair."""

    primary: np.ndarray
    secondary: np.ndarray


class CatalogView:
    """Listings as row-aligned columns; rows only appended, so readers never see a row change."""

    def __init__(self, capacity: int = 1024, duplicates: DuplicateGroups | None = None) -> None:
        self.n = 0
        self.live = 0
        self.paths, self.roots, self.locations = Codes(), Codes(), Codes()
        self.points = Points()
        self._lock = threading.Lock()  # one writer at a time (the log applier holds its own lock too)
        self._alloc(capacity)
        self.listing_id: list[str] = []
        self.title: list[str] = []
        self.description = Texts()
        self.image_ids = FlatRows(ints=False)
        self.vector_ids = FlatRows(ints=True)
        self._row_of_key = np.full(1024, NONE, np.int64)
        self._row_of_id: dict[str, int] = {}
        self._key_of_vector = np.full(1024, NONE, np.int64)
        # Near-duplicate groups by listing key: handed on to a compacted view, which keeps every key.
        self.duplicates = DuplicateGroups() if duplicates is None else duplicates
        self._grouping = duplicates is None

    def _alloc(self, capacity: int) -> None:
        self.key = np.zeros(capacity, np.int64)
        self.price = np.full(capacity, np.nan)
        self.posted_at = np.full(capacity, np.nan)
        self.root = np.full(capacity, NONE, np.int32)
        self.path = np.full(capacity, NONE, np.int32)
        self.location = np.full(capacity, NONE, np.int32)
        self.label = np.full(capacity, NONE, np.int32)
        self.alive = np.zeros(capacity, bool)
        self.buying = np.zeros(capacity, bool)  # a buying ad ("wanted", "cash for your ..."): core.ads
        self.lat = np.full(capacity, np.nan)
        self.lon = np.full(capacity, np.nan)
        self.geo = np.full(capacity, NONE, np.int8)
        self.point = np.full(capacity, NONE, np.int32)  # code of the position in ``points``

    # ------------------------------------------------------------- writes
    @classmethod
    def build(cls, batches: Iterable[list[Listing]]) -> "CatalogView":
        view = cls()
        for batch in batches:
            view.upsert(batch)
        return view

    def upsert(self, listings: list[Listing]) -> None:
        """Each listing's current fields: a new row, the listing's old row (if any) retired."""
        with self._lock:
            self._reserve(self.n + len(listings))
            for rec in listings:
                self._retire(rec.key)
                self._append(rec)
                if self._grouping:
                    self.duplicates.add(rec.key, Ad.of(rec.title, rec.location, rec.price))

    def remove(self, keys: Iterable[int]) -> None:
        with self._lock:
            for key in keys:
                self._retire(int(key))
                if self._grouping:
                    self.duplicates.remove(int(key))

    def _append(self, rec: Listing) -> None:
        r = self.n
        self.key[r] = rec.key
        self.price[r] = np.nan if rec.price is None else float(rec.price)
        self.posted_at[r] = np.nan if rec.posted_at is None else float(rec.posted_at)
        self.root[r] = self.roots.code(rec.root_category or "")
        self.path[r] = self.paths.code(rec.category_path or "")
        self.location[r] = self.locations.code(rec.location or "")
        self.label[r] = NONE if rec.label is None else int(rec.label)
        self.buying[r] = is_buying_ad(rec.title, rec.description)
        self.lat[r] = np.nan if rec.lat is None else float(rec.lat)
        self.lon[r] = np.nan if rec.lon is None else float(rec.lon)
        self.geo[r] = PRECISION_CODE.get(rec.geo_precision or "", NONE)
        self.point[r] = self.points.code(rec.lat, rec.lon)
        self.listing_id.append(rec.listing_id)
        self.title.append(rec.title or "")
        self.description.append(rec.description or "")
        self.image_ids.append(rec.image_ids)
        self.vector_ids.append(int(v) for v in rec.vector_ids)
        self.alive[r] = True
        self._row_of_key = _set_at(self._row_of_key, rec.key, r)
        self._row_of_id[rec.listing_id] = r
        for vid in rec.vector_ids:
            self._key_of_vector = _set_at(self._key_of_vector, int(vid), rec.key)
        self.n += 1
        self.live += 1

    def _retire(self, key: int) -> None:
        r = self.row_of_key(key)
        if r == NONE:
            return
        self.alive[r] = False
        self.live -= 1
        self._row_of_key[key] = NONE
        if self._row_of_id.get(self.listing_id[r]) == r:
            del self._row_of_id[self.listing_id[r]]
        for vid in self.vector_ids[r]:
            if vid < len(self._key_of_vector) and self._key_of_vector[vid] == key:
                self._key_of_vector[vid] = NONE

    def _reserve(self, rows: int) -> None:
        """Room for ``rows``: new arrays, filled, then published (readers of the old ones are unharmed)."""
        if rows <= len(self.key):
            return
        old = {name: getattr(self, name) for name in _COLUMNS}
        self._alloc(max(rows, int(len(self.key) * _GROW) + 1))
        for name, arr in old.items():
            getattr(self, name)[:len(arr)] = arr

    def compacted(self) -> "CatalogView":
        """A new view of the live rows only (retired rows dropped), with the same near-duplicate groups."""
        rows = self.live_rows()
        view = CatalogView(max(1024, len(rows)), duplicates=self.duplicates)
        view.upsert([self.listing(int(r)) for r in rows])
        view._grouping = True
        return view

    # ------------------------------------------------------------- reads
    def __len__(self) -> int:
        return self.live

    @property
    def retired(self) -> int:
        return self.n - self.live

    def live_rows(self) -> np.ndarray:
        return np.flatnonzero(self.alive[:self.n])

    def row_of_key(self, key: int) -> int:
        table = self._row_of_key
        return int(table[key]) if 0 <= key < len(table) else NONE

    def rows_of_keys(self, keys: np.ndarray) -> np.ndarray:
        """Row of each listing key (``NONE`` for keys the view does not hold)."""
        keys = np.asarray(keys, np.int64)
        table = self._row_of_key
        inside = (keys >= 0) & (keys < len(table))
        return np.where(inside, table[np.where(inside, keys, 0)], NONE)

    def row_of_id(self, listing_id: str) -> int:
        return self._row_of_id.get(str(listing_id), NONE)

    def keys_of_vectors(self, vector_ids: np.ndarray) -> np.ndarray:
        """Listing key of each photo vector id (``NONE`` for photos the view does not hold)."""
        vids = np.asarray(vector_ids, np.int64)
        table = self._key_of_vector
        inside = (vids >= 0) & (vids < len(table))
        return np.where(inside, table[np.where(inside, vids, 0)], NONE)

    def listing(self, row: int) -> Listing:
        """The row as the store's record type (what results and the listing page are made from)."""
        price, posted = float(self.price[row]), float(self.posted_at[row])
        label, lat, lon, geo = int(self.label[row]), float(self.lat[row]), float(self.lon[row]), int(self.geo[row])
        return Listing(int(self.key[row]), self.listing_id[row], self.title[row], self.description[row],
                       None if math.isnan(price) else price, self.locations.values[self.location[row]],
                       self.paths.values[self.path[row]], self.roots.values[self.root[row]],
                       None if label == NONE else label, list(self.image_ids[row]),
                       None if math.isnan(posted) else posted, list(self.vector_ids[row]),
                       None if math.isnan(lat) else lat, None if math.isnan(lon) else lon,
                       None if geo == NONE else PRECISIONS[geo])

    def centroid(self, location_codes: Iterable[int], precision: str) -> tuple[float, float] | None:
        """The mean position of the live listings at these locations placed with ``precision`` (None: none
        is): an area's centroid for a new listing the gazetteer cannot place (``core.places``)."""
        n = self.n
        codes = np.fromiter((int(c) for c in location_codes), np.int32)
        rows = self.alive[:n] & np.isin(self.location[:n], codes) & (self.geo[:n] == PRECISION_CODE[precision])
        if not rows.any():
            return None
        return float(self.lat[:n][rows].mean()), float(self.lon[:n][rows].mean())

    def group_of(self, rows: np.ndarray) -> np.ndarray:
        """A near-duplicate group label per row (``DuplicateGroups.group_of``: equal within a group,
        distinct for listings in none)."""
        return self.duplicates.group_of(self.key[np.asarray(rows, np.int64)])

    def root_name(self, row: int) -> str:
        return self.roots.values[self.root[row]]

    def path_name(self, row: int) -> str:
        return self.paths.values[self.path[row]]

    # ------------------------------------------------------------- filters, orders, counts
    def allowed(self, filters: Filters) -> np.ndarray:
        """Boolean mask over rows ``[0, n)``: live and passing every filter."""
        n = self.n
        mask = self.alive[:n].copy()
        if filters.category is not None:
            mask &= np.isin(self.path[:n], self.paths_under(filters.category))
        if filters.min_price is not None:
            mask &= self.price[:n] >= filters.min_price  # NaN prices fail every comparison
        if filters.max_price is not None:
            mask &= self.price[:n] <= filters.max_price
        if filters.buying is not None:
            mask &= self.buying[:n] == filters.buying
        if filters.location:
            needle = filters.location.casefold()
            codes = [c for c, place in enumerate(self.locations.values) if needle in place.casefold()]
            mask &= np.isin(self.location[:n], np.array(codes, np.int32))
        if filters.near is not None and filters.near.within_km is not None:
            mask &= self._distances(self.point[:n], filters.near) <= filters.near.within_km
        return mask

    def distances(self, rows: np.ndarray, near: Near) -> np.ndarray:
        """Km from ``near``'s point to each row's listing; +inf beyond ``near.within_km`` (when set) and
        for listings without coordinates. What the radius filter, the distance sort and facets read."""
        return self._distances(self.point[np.asarray(rows, np.int64)], near)

    def _distances(self, codes: np.ndarray, near: Near) -> np.ndarray:
        # ``codes`` first, then the points' distances: every code a row already holds is covered
        return self.points.distances(near.lat, near.lon, near.within_km)[codes]

    def distance_to(self, rows: np.ndarray, near: Near) -> np.ndarray:
        """Km from ``near``'s point to each row's listing whatever the radius (NaN without coordinates):
        the distance a result shows, computed for a page's rows only."""
        rows = np.asarray(rows, np.int64)
        return haversine_km(near.lat, near.lon, self.lat[rows], self.lon[rows])

    def paths_under(self, prefix: str) -> np.ndarray:
        """Codes of the category paths that start with ``prefix``'s whole segments (case folded); kept
        per prefix until a new path is seen: a category filter asks for every search, and the facets'
        re-runs ask again (~1.5 ms each over 400 paths)."""
        want = path_segments(prefix)

        def under(values: list[str]) -> np.ndarray:
            codes = np.array([c for c, p in enumerate(values) if want and path_segments(p)[:len(want)] == want],
                             np.int32)
            codes.flags.writeable = False  # shared by every caller
            return codes

        return self.paths.kept(("under", prefix), under)

    def allowed_count(self, prefix: str) -> int:
        """How many live listings are in the category path ``prefix``."""
        n = self.n
        return int((self.alive[:n] & np.isin(self.path[:n], self.paths_under(prefix))).sum())

    def knows_category(self, prefix: str) -> bool:
        return len(self.paths_under(prefix)) > 0

    def sort_key(self, rows: np.ndarray, sort: str, near: Near | None = None) -> SortKey:
        """The order ``sort`` puts ``rows`` in: newest = latest ``posted_at`` first, then the latest
        added; price_asc / price_desc = by price, then the earliest added; no price or date: last;
        distance = nearest ``near`` first, then the earliest added (beyond the radius or unplaced: last)."""
        keys = self.key[rows]
        if sort == DISTANCE:
            if near is None:
                raise ValueError("sort by distance needs a point (near)")
            return SortKey(self.distances(rows, near), keys)
        if sort == NEWEST:
            return SortKey(-self.posted_at[rows], -keys)
        if sort == PRICE_ASC:
            return SortKey(self.price[rows], keys)
        if sort == PRICE_DESC:
            return SortKey(-self.price[rows], keys)
        raise ValueError(f"no stored order for sort {sort!r}")

    def counts(self, rows: np.ndarray, column: str) -> dict[str, int]:
        """How many of ``rows`` hold each value of a coded column (``root``, ``path``, ``location``)."""
        codes = {"root": (self.root, self.roots), "path": (self.path, self.paths),
                 "location": (self.location, self.locations)}[column]
        counted = np.bincount(codes[0][rows], minlength=len(codes[1]))
        return {codes[1].values[c]: int(n) for c, n in enumerate(counted) if n}


def _set_at(table: np.ndarray, index: int, value: int) -> np.ndarray:
    """``table[index] = value``, growing the lookup (filled with ``NONE``) when the index is past its end."""
    if index >= len(table):
        grown = np.full(max(index + 1, int(len(table) * 2)), NONE, np.int64)
        grown[:len(table)] = table
        table = grown
    table[index] = value
    return table
