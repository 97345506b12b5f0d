"""Counts beside the results: how the match set spreads over categories and price bands.

Each facet is counted over M under the *other* filters: the category facet over the match set of
the search without its category filter, the price facet without its price filters, so choosing a
category does not zero its siblings. Categories: each root with its next level (``children``: a
value is a category path prefix the ``category`` filter accepts); with no category chosen the
roots' counts sum to ``total``. Price: fixed bands a buyer thinks in (``PRICE_BANDS``, pounds,
lower bound included); listings without a price are in no band.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from listing_search.index.catalog import CatalogView

PRICE_BANDS = ((0, 10), (10, 25), (25, 50), (50, 100), (100, 250), (250, 500), (500, 1000), (1000, None))
SEP = " / "


@dataclass(frozen=True)
class Facets:
    category: list[dict]
    price: list[dict]


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


def _ranked(counts: Counter) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
