"""Ordering the match set and cutting pages from it, by ``offset`` or by an opaque cursor.

Every order is total, so the pages of one search, laid end to end, are exactly one larger request:
no result twice, none skipped, and a sorted order never goes back across a page boundary.

Every sort pages M's *results* (``search.collapse``: a group of near-duplicate listings is one, led
by its first listing in that order), so pages, ``total`` and the facets count the same things.

* ``relevance``: M's results as ranked (``search.match``, ``search.collapse``). Its cursor remembers the
  results already shown (with the other copies of each group shown), so none comes again even when a
  listing added meanwhile moves the ranking, becomes the first copy of a group already shown, or the
  shown copy goes.
* ``newest``, ``price_asc``, ``price_desc``: the catalogue's stored orders (``CatalogView.sort_key``:
  the value, then the listing key; listings without a price or date last). Their cursor is a keyset,
  the last result's (value, key): a listing added between two pages neither shifts nor repeats
  what follows.
* ``distance`` (a search near a point): the same keyset, (km from the point, key). Distances are
  looked up, never recomputed differently, so a page boundary's (km, key) compares exactly. Browsing
  near a point (no words, no photo) "by relevance" is this order: the nearest first.

A keyset alone would show a group again if its shown copy went between two pages (the next copy,
farther or dearer, would lead it past the keyset): so the stored orders' cursors also remember the
groups shown, as the keys of their listings (only listings in a group of two or more: few), and a
later page leaves those groups out.

A cursor is bound to its search (words, photo, filters, sort): handed to another, it is refused.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zlib
from dataclasses import dataclass

import numpy as np

from listing_search.core.query import DISTANCE, NEWEST, RELEVANCE, Page, Query
from listing_search.core.near import Near
from listing_search.errors import BadCursor
from listing_search.index.catalog import CatalogView

VERSION = 1
MAX_CURSOR_CHARS = 65_536


@dataclass(frozen=True)
class Cursor:
    sort: str
    search: str  # the fingerprint of the search it continues
    after: tuple[float, int] | None = None  # stored orders: the last listing shown, (value, key)
    seen: tuple[int, ...] = ()  # relevance: the listing keys shown so far; any sort: the groups' copies shown

    def encode(self) -> str:
        seen = sorted(set(self.seen))
        body = {"v": VERSION, "s": self.sort, "q": self.search,
                "a": None if self.after is None else [_num(self.after[0]), int(self.after[1])],
                "d": np.diff(seen, prepend=0).tolist() if seen else []}
        packed = zlib.compress(json.dumps(body, separators=(",", ":")).encode(), 9)
        return base64.urlsafe_b64encode(packed).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> "Cursor":
        try:
            if len(text) > MAX_CURSOR_CHARS:
                raise ValueError("too long")
            body = json.loads(zlib.decompress(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))))
            if body["v"] != VERSION:
                raise ValueError("version")
            after = body["a"]
            after = None if after is None else (_float(after[0]), int(after[1]))
            seen = tuple(int(k) for k in np.cumsum(np.asarray(body["d"], np.int64)))
            return cls(str(body["s"]), str(body["q"]), after, seen)
        except (ValueError, TypeError, KeyError, IndexError, zlib.error, json.JSONDecodeError) as exc:
            raise BadCursor("cursor: not a cursor this service gave (ask again without it)") from exc


def search_fingerprint(query: Query) -> str:
    """What a cursor is bound to: the words, the photo, the filters and the order."""
    h = hashlib.sha256(json.dumps([query.text, query.sort, query.spelling, list(_filters(query))]).encode())
    if query.image is not None:
        h.update(hashlib.sha256(query.image).digest())
    if query.image_vecs is not None:
        h.update(np.ascontiguousarray(query.image_vecs, np.float32).tobytes())
    return h.hexdigest()[:16]


def _filters(query: Query) -> tuple:
    """The filters as bound; the point and radius only when set, so cursors given before ``near``
    existed still continue their searches."""
    f = query.filters
    near = () if f.near is None else ((f.near.lat, f.near.lon, f.near.within_km),)
    buying = () if f.buying is None else (("buying", f.buying),)
    return (f.category, f.min_price, f.max_price, f.location, *near, *buying)


def stored_order(query: Query, sort: str) -> str:
    """The stored order a sort pages by when there is no ranking: "relevance" lists the nearest first
    near a point, else the newest."""
    if sort != RELEVANCE:
        return sort
    return DISTANCE if query.filters.near is not None else NEWEST


@dataclass(frozen=True)
class Slice:
    rows: np.ndarray  # catalogue rows of the page, in order
    next_cursor: str | None


def cut_page(catalog: CatalogView, ranked_rows: np.ndarray | None, all_rows: np.ndarray, query: Query,
             sort: str) -> Slice:
    """The page ``query.page`` asks for. ``ranked_rows``: M in relevance order (None when browsing);
    ``all_rows``: M in any order (the stored sorts order it themselves)."""
    page, fingerprint = query.page, search_fingerprint(query)
    cursor = _checked(page, fingerprint, sort)
    if sort == RELEVANCE and ranked_rows is not None:
        return _relevance_page(catalog, ranked_rows, page, cursor, fingerprint)
    return _stored_page(catalog, all_rows, page, cursor, fingerprint, stored_order(query, sort), sort,
                        query.filters.near)


def _checked(page: Page, fingerprint: str, sort: str) -> Cursor | None:
    if page.cursor is None:
        return None
    cursor = Cursor.decode(page.cursor)
    if cursor.sort != sort:
        raise BadCursor(f"cursor: it continues a search sorted by {cursor.sort}, not {sort}")
    if cursor.search != fingerprint:
        raise BadCursor("cursor: it continues another search (other words, photo or filters)")
    return cursor


def _relevance_page(catalog: CatalogView, rows: np.ndarray, page: Page, cursor: Cursor | None,
                    fingerprint: str) -> Slice:
    keys = catalog.key[rows]
    if cursor is not None:  # a group shown once is not shown again, though a copy added meanwhile now leads it
        left = _unseen(catalog, keys, cursor.seen)
        rows, keys = rows[left], keys[left]
        seen = cursor.seen
    else:
        seen = tuple(keys[:page.offset].tolist()) + _copies(catalog, keys[:page.offset])
        rows, keys = rows[page.offset:], keys[page.offset:]
    shown, more = rows[:page.k], len(rows) > page.k
    nxt = None
    if more:
        nxt = Cursor(RELEVANCE, fingerprint,
                     seen=seen + tuple(keys[:page.k].tolist()) + _copies(catalog, keys[:page.k])).encode()
    return Slice(shown, nxt)


def _stored_page(catalog: CatalogView, rows: np.ndarray, page: Page, cursor: Cursor | None, fingerprint: str,
                 order: str, sort: str, near: Near | None = None) -> Slice:
    rows = np.asarray(rows, np.int64)
    sk = catalog.sort_key(rows, order, near)
    primary = np.where(np.isnan(sk.primary), np.inf, sk.primary)
    secondary = sk.secondary
    skip, seen = page.offset, ()
    if cursor is not None:
        if cursor.after is None:
            raise BadCursor("cursor: not a cursor this service gave (ask again without it)")
        cp, cs = cursor.after
        later = (primary > cp) | ((primary == cp) & (secondary > cs))
        if cursor.seen:  # groups already shown stay shown, whichever copy now leads them
            later &= _unseen(catalog, catalog.key[rows], cursor.seen)
        rows, primary, secondary, skip, seen = rows[later], primary[later], secondary[later], 0, cursor.seen
    picked = _smallest(primary, secondary, skip + page.k + 1)
    shown = picked[skip:skip + page.k]
    more = len(picked) > skip + page.k
    nxt = None
    if more and len(shown):
        last = shown[-1]
        seen = seen + _copies(catalog, catalog.key[rows[picked[:skip + page.k]]])
        nxt = Cursor(sort, fingerprint, after=(float(primary[last]), int(secondary[last])), seen=seen).encode()
    return Slice(rows[shown], nxt)


def _copies(catalog: CatalogView, keys: np.ndarray) -> tuple[int, ...]:
    """The keys of every listing in the groups of near-duplicates ``keys`` lead (none for a listing in
    no group): what a cursor remembers so that no group comes again."""
    groups = catalog.duplicates
    labels = groups.group_of(np.asarray(keys, np.int64))
    return tuple(k for gid in np.unique(labels[labels >= 0]).tolist() for k in groups.members(gid))


def _unseen(catalog: CatalogView, keys: np.ndarray, seen: tuple[int, ...]) -> np.ndarray:
    """Per key: whether neither it nor a listing of its group is among ``seen``."""
    groups = catalog.duplicates
    return ~np.isin(groups.group_of(np.asarray(keys, np.int64)), groups.group_of(np.asarray(seen, np.int64)))


def _smallest(primary: np.ndarray, secondary: np.ndarray, n: int) -> np.ndarray:
    """Positions of the ``n`` smallest (primary, secondary) pairs, in order."""
    if n <= 0 or not len(primary):
        return np.zeros(0, np.int64)
    pool = np.arange(len(primary))
    if len(primary) > n:
        kth = np.partition(primary, n - 1)[n - 1]
        pool = np.flatnonzero(primary <= kth)
    return pool[np.lexsort((secondary[pool], primary[pool]))][:n]


def _num(x: float) -> float | None:
    return None if np.isinf(x) else float(x)


def _float(x) -> float:
    return np.inf if x is None else float(x)
