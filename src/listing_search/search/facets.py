"""Counts beside the results: how the match set spreads over categories, price bands and ad kinds.

Each facet is counted over M under the *other* filters: the category facet over the match set of
the search without its category filter, the price facet without its price filters, the ad-kind
facet without its ``buying`` filter, so choosing a value does not zero its siblings. Facets count
results, as ``total`` does: a group of near-duplicate listings (``search.collapse``) counts once
under each value one of its listings holds. Categories: each root with its next level
(``children``: a value is a category path prefix the ``category`` filter accepts); with no category
chosen the roots' counts sum to ``total`` unless a group spans two roots. Price: fixed bands a buyer
thinks in (``PRICE_BANDS``, pounds, lower bound included); listings without a price are in no band.
Ad kind (``buying``): sale ads (``false``) and buying ads (``true``), the values the ``buying``
filter takes. Distance (a search ``near`` a point): how many results are within 5, 10, 25, 50 and
100 miles (``DISTANCE_BANDS_MILES``: UK buyers think in miles; each band also says its km), a group
counted in a band when one of its listings is inside it, counted over M without the radius, so a
buyer sees what widening it would add, and M itself: a search's candidates are fetched inside the
radius, so M can hold listings the same search without the radius did not reach, and a band wider
than the radius must count at least the search's total. Listings without coordinates are in no
band. No band under 5 miles: listings are placed at their town, or at their area's principal
settlement up to ~10 km off (docs/geocoding-check.md).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from listing_search.core.near import KM_PER_MILE, Near
from listing_search.index.catalog import CatalogView
from listing_search.search.collapse import distinct_per_value

PRICE_BANDS = ((0, 10), (10, 25), (25, 50), (50, 100), (100, 250), (250, 500), (500, 1000), (1000, None))
DISTANCE_BANDS_MILES = (5, 10, 25, 50, 100)
SEP = " / "


@dataclass(frozen=True)
class Facets:
    category: list[dict]
    price: list[dict]
    buying: list[dict] = field(default_factory=list)
    distance: list[dict] = field(default_factory=list)  # only near a point


def category_facet(catalog: CatalogView, rows: np.ndarray, labels: np.ndarray | None = None) -> list[dict]:
    """Roots (most results first), each with its next level of category path. ``labels``: the rows'
    ``CatalogView.group_of``, when the caller has them."""
    rows = np.asarray(rows, np.int64)
    labels = catalog.group_of(rows) if labels is None else labels
    names, at_level = _path_levels(catalog)
    codes = catalog.path[rows]
    counts: Counter = Counter()
    for depth in (0, 1):  # the root, then "Root / Sub"
        ids = at_level[depth][codes]
        for v, n in zip(*distinct_per_value(labels[ids >= 0], ids[ids >= 0])):
            counts[names[int(v)]] = int(n)
    roots = Counter({name: n for name, n in counts.items() if SEP not in name})
    subs: dict[str, Counter] = {}
    for name, n in counts.items():
        if SEP in name:
            subs.setdefault(name.split(SEP)[0], Counter())[name] = n
    return [{"value": root, "count": n,
             "children": [{"value": sub, "count": m} for sub, m in _ranked(subs.get(root, Counter()))]}
            for root, n in _ranked(roots)]


def _path_levels(catalog: CatalogView) -> tuple[list[str], tuple[np.ndarray, np.ndarray]]:
    """Facet value names, and per category path code the index of its root's and its "Root / Sub"
    name (-1 for none): worked out once per path, kept while the catalogue's paths stay as many."""
    return catalog.paths.kept("facet levels", _levels_of)


def _levels_of(values: list[str]) -> tuple[list[str], tuple[np.ndarray, np.ndarray]]:
    at: dict[str, int] = {}  # facet value name -> its index, in order of first sight
    levels = (np.full(len(values) + 1, -1, np.int64), np.full(len(values) + 1, -1, np.int64))
    for code, path in enumerate(values):
        for depth, name in enumerate(_levels(path)):
            levels[depth][code] = at.setdefault(name, len(at))
    return list(at), levels


def price_facet(catalog: CatalogView, rows: np.ndarray, labels: np.ndarray | None = None) -> list[dict]:
    rows = np.asarray(rows, np.int64)
    prices, labels = catalog.price[rows], catalog.group_of(rows) if labels is None else labels
    priced = ~np.isnan(prices) & (np.nan_to_num(prices, nan=-1.0) >= 0)
    prices, labels = prices[priced], labels[priced]
    edges = np.array([lo for lo, _ in PRICE_BANDS[1:]], np.float64)
    band = np.searchsorted(edges, prices, side="right")  # band i holds PRICE_BANDS[i][0] <= price < next
    counts = dict(zip(*(a.tolist() for a in distinct_per_value(labels, band))))
    return [{"min": lo, "max": hi, "count": int(counts.get(i, 0))} for i, (lo, hi) in enumerate(PRICE_BANDS)]


def buying_facet(catalog: CatalogView, rows: np.ndarray, labels: np.ndarray | None = None) -> list[dict]:
    """Results that are sale ads (``value`` false) and buying ads (true)."""
    rows = np.asarray(rows, np.int64)
    labels = catalog.group_of(rows) if labels is None else labels
    counts = dict(zip(*(a.tolist() for a in distinct_per_value(labels, catalog.buying[rows]))))
    return [{"value": flag, "count": int(counts.get(int(flag), 0))} for flag in (False, True)]


@lru_cache(maxsize=1 << 14)
def _levels(path: str) -> tuple[str, ...]:
    """A path's root and its first two segments, as facet values: ["Root", "Root / Sub"]."""
    segments = [s.strip() for s in path.split("/") if s.strip()]
    return tuple(SEP.join(segments[:i + 1]) for i in range(min(2, len(segments))))


def distance_facet(catalog: CatalogView, rows: np.ndarray, near: Near | None) -> list[dict]:
    """Cumulative bands: how many results of ``rows`` are within each of ``DISTANCE_BANDS_MILES`` of
    ``near``; a group of near-duplicates counts once, at its nearest listing."""
    if near is None:
        return []
    rows = np.asarray(rows, np.int64)
    widest = DISTANCE_BANDS_MILES[-1] * KM_PER_MILE
    km = catalog.distances(rows, Near(near.lat, near.lon, widest))  # +inf past the widest band
    labels = catalog.group_of(rows)
    grouped = labels >= 0
    if grouped.any():  # each group's nearest listing stands for it
        gl, gk = labels[grouped], km[grouped]
        order = np.lexsort((gk, gl))
        gl, gk = gl[order], gk[order]
        first = np.concatenate([[True], gl[1:] != gl[:-1]])
        km = np.concatenate([km[~grouped], gk[first]])
    return [{"max_miles": miles, "max_km": round(miles * KM_PER_MILE, 3),
             "count": int((km <= miles * KM_PER_MILE).sum())} for miles in DISTANCE_BANDS_MILES]


def _ranked(counts: Counter) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
