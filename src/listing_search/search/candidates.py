"""Retrieval: the listings worth ranking for a query, each scored in every channel the query used.

Channels: the photo index (vector ids are photos; a listing scores its best photo against any of
the query's photos), the dense text index (ids are listing keys) and BM25. Each channel fetches a
fixed number of candidates (``rank.candidates``, ``rank.lexical_candidates``): never more for a
deeper page, so what a search matches and how it is ordered do not depend on the page asked.
Listings that hold the words (``search.match``) join as candidates too. Missing channel scores
are filled exactly from the stored vectors and the BM25 index.

Everything read here is in memory (``LiveIndexes``): the vector indexes, the BM25 index and the
catalogue view; nothing asks the store.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from listing_search.core.maths import unit_rows
from listing_search.core.query import Filters
from listing_search.index.catalog import NONE, CatalogView
from listing_search.index.live import LiveIndexes
from listing_search.search.types import IMAGE, LEXICAL, TEXT, Candidates, Understanding
from listing_search.settings import RankSettings

WIDEN = 4  # photo pool growth per round when too few distinct listings came back
LEXICAL_AHEAD = 500  # BM25 scores read with the lexical pool, for the candidates the other channels find


@dataclass(frozen=True)
class Allowed:
    """Which catalogue rows a search may return: the filters' mask, less the excluded listings."""

    catalog: CatalogView  # the view the rows refer to (a search reads one view throughout)
    mask: np.ndarray  # bool over catalogue rows [0, n)
    filtered: bool  # whether filters or exclusions narrowed it (else every live listing)

    @classmethod
    def of(cls, catalog: CatalogView, filters: Filters, exclude: frozenset[int]) -> "Allowed":
        mask = catalog.allowed(filters)
        if exclude:
            rows = catalog.rows_of_keys(np.fromiter(exclude, np.int64, len(exclude)))
            mask[rows[(rows >= 0) & (rows < len(mask))]] = False
        return cls(catalog, mask, filters.active() or bool(exclude))

    def rows(self) -> np.ndarray:
        return np.flatnonzero(self.mask)

    def admits(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, np.int64)
        inside = (rows >= 0) & (rows < len(self.mask))
        return inside & self.mask[np.where(inside, rows, 0)]


class Retriever:
    """The channels over one replica's live indexes; safe for concurrent searches."""

    def __init__(self, live: LiveIndexes, settings: RankSettings) -> None:
        self.live, self.settings = live, settings

    # ------------------------------------------------------------- channels
    def photo_pool(self, vectors: np.ndarray, allowed: Allowed) -> Candidates:
        """Listings with the nearest photos to any of ``vectors`` (best photo score each): a fixed
        ``rank.candidates`` photos (all of them when the filters leave at most twice that many),
        widened while fewer than a quarter as many different ads came back (copies of one ad are one
        result: a listing with many photos, copied, must not fill the pool alone)."""
        live, catalog = self.live, allowed.catalog
        index = live.image
        ids = _photo_owners(catalog, allowed.rows())[1] if allowed.filtered else None
        pool = index.size if ids is None else len(ids)
        # a filter leaving few photos is searched whole: a rare category yields every listing it has
        fetch = pool if pool <= 2 * self.settings.candidates else self.settings.candidates
        enough = max(1, self.settings.candidates // WIDEN)
        while True:
            with live.lock:
                res = index.search(np.atleast_2d(vectors), fetch, ids)
            found = _best_per_listing(res.scores, res.ids, catalog, allowed)
            if distinct_ads(catalog, found.rows) >= enough or fetch >= pool:
                return found
            fetch = min(pool, fetch * WIDEN)

    def text_pool(self, vec: np.ndarray, allowed: Allowed) -> Candidates:
        """Listings whose text vectors are nearest ``vec`` (words or a history), ``rank.candidates`` of them."""
        live, catalog = self.live, allowed.catalog
        if live.text is None:
            return _empty()
        keys = catalog.key[allowed.rows()] if allowed.filtered else None
        with live.lock:
            res = live.text.search(np.asarray(vec, np.float32)[None], self.settings.candidates, keys)
        keys, scores = np.asarray(res.ids[0], np.int64), np.asarray(res.scores[0], np.float32)
        rows = catalog.rows_of_keys(keys)
        keep = allowed.admits(rows)
        return Candidates(rows[keep], keys[keep], {TEXT: scores[keep]})

    def lexical_pool(self, words: str, allowed: Allowed) -> tuple[Candidates, dict[int, float], bool]:
        """Listings matching the words best by BM25 (``rank.lexical_candidates`` of them), the BM25 of the
        best ``LEXICAL_AHEAD`` allowed matches (one search: the scores the other channels' candidates need
        are mostly among them), and whether those are every allowed match (then a listing not among them
        scores 0)."""
        live, catalog = self.live, allowed.catalog
        if live.lexical is None or not self.settings.lexical:
            return _empty(), {}, False
        keys = set(catalog.key[allowed.rows()].tolist()) if allowed.filtered else None
        fetch = max(self.settings.lexical_candidates, LEXICAL_AHEAD)
        found = live.lexical.search(words, fetch, keys)
        known = dict(found)
        found = found[:self.settings.lexical_candidates]
        keys_arr = np.array([k for k, _ in found], np.int64)
        rows = catalog.rows_of_keys(keys_arr)
        keep = allowed.admits(rows)
        pool = Candidates(rows[keep], keys_arr[keep], {LEXICAL: np.array([s for _, s in found], np.float32)[keep]})
        return pool, known, len(known) < fetch

    def nearest_texts(self, catalog: CatalogView, vec: np.ndarray, n: int, exclude: frozenset[int]
                      ) -> list[tuple[float, int]]:
        """(cosine, catalogue row) of the ``n`` listings whose text is nearest ``vec``, ``exclude`` left out."""
        live = self.live
        if live.text is None or live.text.size == 0:
            return []
        with live.lock:
            res = live.text.search(np.asarray(vec, np.float32)[None], n * 4 + len(exclude))
        rows = catalog.rows_of_keys(np.asarray(res.ids[0], np.int64))
        pairs = [(float(s), int(r)) for s, k, r in zip(res.scores[0], res.ids[0], rows)
                 if int(k) not in exclude and r != NONE]
        return pairs[:n]

    # ------------------------------------------------------------- one query
    def retrieve(self, u: Understanding, allowed: Allowed, extra_rows: np.ndarray) -> Candidates:
        """Every channel's candidates for ``u`` plus ``extra_rows`` (listings holding the words),
        merged per listing and scored in every channel the query used."""
        pools = []
        if u.has_image:
            pooled = u.photo_pool if u.photo_pool is not None and not allowed.filtered else None
            pools.append(pooled if pooled is not None else self.photo_pool(u.image_vecs, allowed))
        if u.text_vec is not None:
            pooled = u.text_pool if u.text_pool is not None and not allowed.filtered else None
            pools.append(pooled if pooled is not None else self.text_pool(u.text_vec, allowed))
        bm25, every_match = {}, False
        if u.words:
            pool, bm25, every_match = self.lexical_pool(u.words, allowed)
            pools.append(pool)
        extra_rows = np.asarray(extra_rows, np.int64)
        pools.append(Candidates(extra_rows, allowed.catalog.key[extra_rows], {}))
        return self.fill(u, allowed.catalog, _merge(pools), bm25, every_match)

    def fill(self, u: Understanding, catalog: CatalogView, cands: Candidates, bm25: dict[int, float] | None = None,
             every_match: bool = False) -> Candidates:
        """``cands`` with every channel ``u`` uses scored for every candidate (NaN = not yet). ``bm25``:
        scores already read (``lexical_pool``); ``every_match``: a listing not in it matches no word."""
        scores = dict(cands.scores)
        if u.has_image:
            scores[IMAGE] = self._filled(scores.get(IMAGE), cands,
                                         lambda c: self.photo_scores(catalog, u.image_vecs, c))
        if u.text_vec is not None:
            scores[TEXT] = self._filled(scores.get(TEXT), cands, lambda c: self.text_scores(u.text_vec, c))
        if u.words and self.live.lexical is not None and self.settings.lexical:
            scores[LEXICAL] = self._filled(scores.get(LEXICAL), cands,
                                           lambda c: self.lexical_scores(u.words, c.keys, bm25, every_match))
        return Candidates(cands.rows, cands.keys, scores)

    def lexical_scores(self, words: str, keys: np.ndarray, bm25: dict[int, float] | None = None,
                       every_match: bool = False) -> np.ndarray:
        """BM25 of each key: from ``bm25`` where it holds the key, else asked of the index (0 without
        asking when ``every_match``)."""
        bm25 = bm25 or {}
        out = np.array([bm25.get(k, np.nan) for k in keys.tolist()], np.float32)
        ask = np.flatnonzero(np.isnan(out))
        if every_match:
            out[ask] = 0.0
        elif len(ask):
            out[ask] = self.live.lexical.scores(words, keys[ask].tolist())
        return out

    @staticmethod
    def _filled(have: np.ndarray | None, cands: Candidates, score) -> np.ndarray:
        out = np.full(len(cands), np.nan, np.float32) if have is None else np.array(have, np.float32)
        missing = np.flatnonzero(np.isnan(out))
        if len(missing):
            out[missing] = score(cands.take(missing))
        return out

    def photo_scores(self, catalog: CatalogView, vectors: np.ndarray, cands: Candidates) -> np.ndarray:
        """Best cosine between any of the query's photos and any of each candidate's (0 without photos)."""
        at, _, sims = self._photo_similarities(catalog, vectors, cands.rows)
        best = np.full(len(cands), -np.inf, np.float32)
        np.maximum.at(best, at, sims.astype(np.float32))
        return np.where(np.isfinite(best), best, 0.0).astype(np.float32)

    def _photo_similarities(self, catalog: CatalogView, vectors: np.ndarray, rows: np.ndarray
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(position in ``rows``, vector id, best cosine to any of the query's photos) of every photo of
        those rows the index still holds, in stored order: one reconstruction and one product."""
        owners, vids = _photo_owners(catalog, np.asarray(rows, np.int64))
        if not len(vids):
            return np.zeros(0, np.int64), vids, np.zeros(0, np.float32)
        with self.live.lock:
            present, x = self.live.image.reconstruct_present(vids)
        if not len(present):
            return np.zeros(0, np.int64), present, np.zeros(0, np.float32)
        sims = (unit_rows(x) @ unit_rows(np.atleast_2d(vectors)).T).max(axis=1)
        owner = dict(zip(vids.tolist(), owners.tolist()))
        return np.array([owner[v] for v in present.tolist()], np.int64), present, sims

    def text_scores(self, vec: np.ndarray, cands: Candidates) -> np.ndarray:
        """Text cosine of each candidate's stored listing vector (0 without one)."""
        live = self.live
        if live.text is None or not len(cands):
            return np.zeros(len(cands), np.float32)
        q = np.asarray(vec, np.float32) / (float(np.linalg.norm(vec)) or 1.0)
        with live.lock:
            keys, x = live.text.reconstruct_present(cands.keys)
        sims = dict(zip(keys.tolist(), (x @ q).tolist()))
        return np.array([sims.get(int(k), 0.0) for k in cands.keys], np.float32)

    def matched_photos(self, catalog: CatalogView, vectors: np.ndarray, rows: np.ndarray) -> dict[int, list[int]]:
        """Per catalogue row, its listing's photo vector ids, the most like the query's photos first
        (one reconstruction and one product for a page)."""
        at, present, sims = self._photo_similarities(catalog, vectors, rows)
        out: dict[int, list[int]] = {int(r): [] for r in rows}
        order = np.lexsort((np.arange(len(present)), -sims, at))  # by owner, then most alike, ties as stored
        for i in order.tolist():
            out[int(rows[at[i]])].append(int(present[i]))
        return out


def _photo_owners(catalog: CatalogView, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position in ``rows``, vector id) of every photo of those catalogue rows."""
    return catalog.vector_ids.owners(rows)


def _best_per_listing(scores: list[np.ndarray], ids: list[np.ndarray], catalog: CatalogView,
                      allowed: Allowed) -> Candidates:
    """Photo hits of one or more query vectors -> one candidate per listing, its best photo's score.
    Photos the catalogue no longer holds (deleted, not yet compacted away) are dropped."""
    s = np.concatenate([np.asarray(x, np.float32) for x in scores]) if scores else np.zeros(0, np.float32)
    v = np.concatenate([np.asarray(x, np.int64) for x in ids]) if ids else np.zeros(0, np.int64)
    keys = catalog.keys_of_vectors(v)
    rows = catalog.rows_of_keys(keys)
    keep = (keys != NONE) & (rows != NONE) & allowed.admits(rows)
    s, keys, rows = s[keep], keys[keep], rows[keep]
    order = np.lexsort((keys, -s))  # best photo first; one candidate per listing
    _, first = np.unique(keys[order], return_index=True)
    pick = order[np.sort(first)]
    return Candidates(rows[pick], keys[pick], {IMAGE: s[pick]})


def _merge(pools: list[Candidates]) -> Candidates:
    """One candidate per listing, in order of first appearance; a channel's score where it found it,
    NaN where another channel found the listing (filled afterwards)."""
    rows = np.concatenate([p.rows for p in pools]) if pools else np.zeros(0, np.int64)
    keys = np.concatenate([p.keys for p in pools]) if pools else np.zeros(0, np.int64)
    _, first = np.unique(keys, return_index=True)
    pick = np.sort(first)
    out_keys, out_rows = keys[pick], rows[pick]
    position = {int(k): i for i, k in enumerate(out_keys)}
    scores: dict[str, np.ndarray] = {}
    for pool in pools:
        for channel, values in pool.scores.items():
            col = scores.setdefault(channel, np.full(len(out_keys), np.nan, np.float32))
            at = np.fromiter((position[int(k)] for k in pool.keys), np.int64, len(pool.keys))
            col[at] = values
    return Candidates(out_rows, out_keys, scores)


def _empty() -> Candidates:
    return Candidates(np.zeros(0, np.int64), np.zeros(0, np.int64), {})


def distinct_ads(catalog: CatalogView, rows: np.ndarray) -> int:
    """How many results ``rows`` make: listings, with each group of copies (``index.duplicates``) one."""
    return int(len(np.unique(catalog.group_of(rows))))  # a listing in no group has a label of its own
