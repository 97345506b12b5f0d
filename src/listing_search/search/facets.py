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
filter takes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from listing_search.index.catalog import CatalogView
from listing_search.search.collapse import distinct_per_value

PRICE_BANDS = ((0, 10), (10, 25), (25, 50), (50, 100), (100, 250), (250, 500), (500, 1000), (1000, None))
SEP = " / "


@dataclass(frozen=True)
class Facets:
    category: list[dict]
    price: list[dict]
    buying: list[dict] = field(default_factory=list)


def category_facet(catalog: CatalogView, rows: np.ndarray) -> list[dict]:
    """Roots (most results first), each with its next level of category path."""
    rows = np.asarray(rows, np.int64)
    labels, codes = catalog.group_of(rows), catalog.path[rows]
    levels = {int(c): _levels(catalog.paths.values[c]) for c in np.unique(codes)}
    names = sorted({name for segs in levels.values() for name in segs})
    at = {name: i for i, name in enumerate(names)}
    counts: Counter = Counter()
    for depth in (0, 1):  # the root, then "Root / Sub"
        lookup = np.full(max(levels, default=0) + 1, -1, np.int64)
        for code, segs in levels.items():
            if len(segs) > depth:
                lookup[code] = at[segs[depth]]
        ids = lookup[codes]
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


def price_facet(catalog: CatalogView, rows: np.ndarray) -> list[dict]:
    rows = np.asarray(rows, np.int64)
    prices, labels = catalog.price[rows], catalog.group_of(rows)
    priced = ~np.isnan(prices) & (np.nan_to_num(prices, nan=-1.0) >= 0)
    prices, labels = prices[priced], labels[priced]
    edges = np.array([lo for lo, _ in PRICE_BANDS[1:]], np.float64)
    band = np.searchsorted(edges, prices, side="right")  # band i holds PRICE_BANDS[i][0] <= price < next
    counts = dict(zip(*(a.tolist() for a in distinct_per_value(labels, band))))
    return [{"min": lo, "max": hi, "count": int(counts.get(i, 0))} for i, (lo, hi) in enumerate(PRICE_BANDS)]


def buying_facet(catalog: CatalogView, rows: np.ndarray) -> list[dict]:
    """Results that are sale ads (``value`` false) and buying ads (true)."""
    rows = np.asarray(rows, np.int64)
    counts = dict(zip(*(a.tolist() for a in distinct_per_value(catalog.group_of(rows), catalog.buying[rows]))))
    return [{"value": flag, "count": int(counts.get(int(flag), 0))} for flag in (False, True)]


def _levels(path: str) -> list[str]:
    """A path's root and its first two segments, as facet values: ["Root", "Root / Sub"]."""
    segments = [s.strip() for s in path.split("/") if s.strip()]
    return [SEP.join(segments[:i + 1]) for i in range(min(2, len(segments)))]


def _ranked(counts: Counter) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
