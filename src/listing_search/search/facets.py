"""Counts beside the results: how the match set spreads over categories and price bands.

Each facet is counted over M under the *other* filters: the category facet over the match set of
the search without its category filter, the price facet without its price filters, so choosing a
category does not zero its siblings. Categories: each root with its next level (``children``: a
value is a category path prefix the ``category`` filter accepts); with no category chosen the
roots' counts sum to ``total``. Price: fixed bands a buyer thinks in (``PRICE_BANDS``, pounds,
lower bound included); listings without a price are in no band. Distance (a search ``near`` a point):
how many are within 5, 10, 25, 50 and 100 miles (``DISTANCE_BANDS_MILES``: UK buyers think in miles;
each band also says its km), counted over M without the radius, so a buyer sees what widening it
would add, and M itself: a search's candidates are fetched inside the radius, so M can hold listings
the same search without the radius did not reach, and a band wider than the radius must count at
least the search's total. Listings without coordinates are in no band. No band under 5 miles: listings are placed
at their town, or at their area's principal settlement up to ~10 km off (docs/geocoding-check.md).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from listing_search.core.near import KM_PER_MILE, Near
from listing_search.index.catalog import CatalogView

PRICE_BANDS = ((0, 10), (10, 25), (25, 50), (50, 100), (100, 250), (250, 500), (500, 1000), (1000, None))
DISTANCE_BANDS_MILES = (5, 10, 25, 50, 100)
SEP = " / "


@dataclass(frozen=True)
class Facets:
    category: list[dict]
    price: list[dict]
    distance: list[dict] = field(default_factory=list)  # only near a point


def category_facet(catalog: CatalogView, rows: np.ndarray) -> list[dict]:
    """Roots (most listings first), each with its next level of category path."""
    roots: Counter = Counter()
    subs: dict[str, Counter] = {}
    for code, n in zip(*np.unique(catalog.path[rows], return_counts=True)):
        segments = [s.strip() for s in catalog.paths.values[code].split("/") if s.strip()]
        if not segments:
            continue
        roots[segments[0]] += int(n)
        if len(segments) > 1:
            subs.setdefault(segments[0], Counter())[SEP.join(segments[:2])] += int(n)
    return [{"value": root, "count": n,
             "children": [{"value": sub, "count": m} for sub, m in _ranked(subs.get(root, Counter()))]}
            for root, n in _ranked(roots)]


def price_facet(catalog: CatalogView, rows: np.ndarray) -> list[dict]:
    prices = catalog.price[rows]
    prices = prices[~np.isnan(prices)]
    return [{"min": lo, "max": hi, "count": int(((prices >= lo) & (prices < (np.inf if hi is None else hi))).sum())}
            for lo, hi in PRICE_BANDS]


def distance_facet(catalog: CatalogView, rows: np.ndarray, near: Near | None) -> list[dict]:
    """Cumulative bands: how many of ``rows`` are within each of ``DISTANCE_BANDS_MILES`` of ``near``."""
    if near is None:
        return []
    widest = DISTANCE_BANDS_MILES[-1] * KM_PER_MILE
    km = catalog.distances(rows, Near(near.lat, near.lon, widest))  # +inf past the widest band
    return [{"max_miles": miles, "max_km": round(miles * KM_PER_MILE, 3),
             "count": int((km <= miles * KM_PER_MILE).sum())} for miles in DISTANCE_BANDS_MILES]


def _ranked(counts: Counter) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
