"""Near-duplicates collapsed: the match set's listings -> one result per group of copies.

A group (``index.duplicates``: copies of one ad, by a near-identical photo or title) is one result.
Its **representative** is the group's first listing in the asked order (the best ranked for
relevance, the cheapest for ``price_asc``, the newest for ``newest``, the nearest for ``distance``),
and it carries the group's other listings in M as its ``duplicates``. ``total``, pages and facets
count results, so a page of 10 shows 10 different ads and ``total`` is what paging to the end shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from listing_search.core.near import Near
from listing_search.index.catalog import CatalogView


@dataclass(frozen=True)
class Collapsed:
    """The results: one catalogue row per group (in the order given), and each representative's others."""

    rows: np.ndarray
    others: dict[int, np.ndarray] = field(default_factory=dict)  # representative row -> its group's other rows

    @property
    def total(self) -> int:
        return len(self.rows)


def collapse(catalog: CatalogView, rows: np.ndarray, order: str | None = None,
             near: Near | None = None) -> Collapsed:
    """One row per group, the rest of ``rows`` kept in their order. ``order`` None: ``rows`` are ranked
    and the first of a group represents it; a stored order (``newest``, ``price_asc``, ``price_desc``,
    ``distance`` from ``near``): the first of the group by that order does."""
    rows = np.asarray(rows, np.int64)
    labels = catalog.group_of(rows)
    at = np.flatnonzero(labels >= 0)  # positions of listings in a group: few, so the loop below is short
    if not len(at):
        return Collapsed(rows)
    if order is not None:
        key = catalog.sort_key(rows[at], order, near)
        at = at[np.lexsort((key.secondary, np.where(np.isnan(key.primary), np.inf, key.primary)))]
    first: dict[int, int] = {}
    others: dict[int, list[int]] = {}
    keep = np.ones(len(rows), bool)
    for pos in at.tolist():
        label = int(labels[pos])
        if label in first:
            others[first[label]].append(int(rows[pos]))
            keep[pos] = False
        else:
            first[label] = pos
            others[pos] = []
    return Collapsed(rows[keep], {int(rows[pos]): np.array(more, np.int64) for pos, more in others.items() if more})


def distinct_per_value(labels: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(value, count) with each group counted once per value its listings hold: facets count results.
    ``labels``: ``CatalogView.group_of`` (negative for a listing in no group, counted as it is)."""
    labels, values = np.asarray(labels, np.int64), np.asarray(values, np.int64)
    grouped = labels >= 0
    if not grouped.any():
        return np.unique(values, return_counts=True)
    gl, gv = labels[grouped], values[grouped]
    low = int(gv.min())
    span = int(gv.max()) - low + 1
    pairs = np.unique(gl * span + (gv - low))  # one number per (group, value): each pair once
    return np.unique(np.concatenate([values[~grouped], pairs % span + low]), return_counts=True)
