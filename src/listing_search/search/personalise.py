"""A buyer's history as a profile: what the feed ranks by, and what leans a personalised search.

A profile is a weighted, recency-decayed mean of the listings the buyer touched (liked counts more
than searched, which counts more than viewed), in text space and photo space, plus smoothed
root-category preferences. It is read from memory only: listing ids resolve through the catalogue
view, vectors come from the live indexes. Unknown ids are listed, never an error.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from listing_search.core.maths import unit_rows
from listing_search.core.query import HistoryEvent
from listing_search.index.catalog import NONE, CatalogView
from listing_search.index.live import LiveIndexes
from listing_search.models.bundle import ModelBundle

EVENT_WEIGHTS = {"viewed": 1.0, "searched": 1.5, "liked": 3.0}
EVENT_STRENGTH = {"searched": 0, "viewed": 1, "liked": 2}  # which event names a "because" line
PRIOR_STRENGTH = 1.0  # pseudo-events spread evenly over categories


def event_weight(event: HistoryEvent, now: float, half_life_days: float) -> float:
    """Kind weight times 2^(-age / half-life); events without a time count fully."""
    base = EVENT_WEIGHTS.get(event.event, 1.0)
    if event.timestamp is None:
        return base
    age_days = max(0.0, now - float(event.timestamp)) / 86400.0
    return base * math.pow(0.5, age_days / half_life_days)


@dataclass(frozen=True, eq=False)
class Profile:
    """A history resolved against the live catalogue."""

    text_vec: np.ndarray | None
    image_vec: np.ndarray | None
    category_prefs: np.ndarray
    seen_keys: frozenset[int]
    used: int
    unknown_ids: tuple[str, ...] = ()
    strongest: dict[int, tuple[int, str]] = field(default_factory=dict)  # key -> (catalogue row, event)
    path_prefs: dict[str, float] = field(default_factory=dict)  # full category path -> share of the history

    @property
    def empty(self) -> bool:
        return self.used == 0


class Personaliser:
    """Profiles from histories, and listing-to-listing likeness for "because you viewed ..."."""

    def __init__(self, live: LiveIndexes, models: ModelBundle, half_life_days: float) -> None:
        self.live, self.models, self.half_life_days = live, models, half_life_days

    def profile(self, catalog: CatalogView, history: tuple[HistoryEvent, ...], now: float | None = None) -> Profile:
        now = time.time() if now is None else now
        keys, weights, labels, paths, unknown = [], [], [], [], []
        strongest: dict[int, tuple[int, str]] = {}
        for e in history:
            row = catalog.row_of_id(str(e.listing_id))
            if row == NONE:
                unknown.append(str(e.listing_id))
                continue
            key = int(catalog.key[row])
            keys.append(key)
            weights.append(event_weight(e, now, self.half_life_days))
            labels.append(self.models.label_of(catalog.root_name(row)))
            paths.append(catalog.path_name(row))
            old = strongest.get(key)
            if old is None or EVENT_STRENGTH.get(e.event, 0) > EVENT_STRENGTH.get(old[1], 0):
                strongest[key] = (row, e.event)
        n_cat = len(self.models.categories)
        prefs = np.full(n_cat, 1.0 / n_cat)
        if not keys:
            return Profile(None, None, prefs, frozenset(), 0, tuple(unknown))
        w = np.asarray(weights, np.float64)
        w = w / w.sum() if w.sum() > 0 else np.full(len(w), 1.0 / len(w))  # old events alone still count, in ratio
        known = np.array([lab is not None for lab in labels])
        if known.any():
            counts = np.bincount(np.array([lab for lab in labels if lab is not None]), weights=w[known],
                                 minlength=n_cat)[:n_cat]
            prefs = counts + PRIOR_STRENGTH * w.sum() / (n_cat * len(w))
            prefs = prefs / prefs.sum()
        path_prefs: dict[str, float] = {}
        for path, wi in zip(paths, w.tolist()):
            path_prefs[path] = path_prefs.get(path, 0.0) + wi
        return Profile(self._text(keys, w), self._image(catalog, keys, w), prefs, frozenset(keys), len(keys),
                       tuple(unknown), strongest, path_prefs)

    def _text(self, keys: list[int], w: np.ndarray) -> np.ndarray | None:
        vectors = self.text_vectors(keys)
        rows = [(wi, vectors[k]) for k, wi in zip(keys, w) if k in vectors]
        return unit_rows(sum(wi * v for wi, v in rows)) if rows else None

    def _image(self, catalog: CatalogView, keys: list[int], w: np.ndarray) -> np.ndarray | None:
        means = self.photo_means(catalog, keys)
        rows = [(wi, means[k]) for k, wi in zip(keys, w) if k in means]
        return unit_rows(sum(wi * v for wi, v in rows)) if rows else None

    def text_vectors(self, keys: list[int]) -> dict[int, np.ndarray]:
        """Unit text vector of each listing the text index holds."""
        index = self.live.text
        if index is None or not keys:
            return {}
        with self.live.lock:
            present, vectors = index.reconstruct_present(np.array(keys, np.int64))
        return dict(zip(present.tolist(), unit_rows(vectors)))

    def photo_means(self, catalog: CatalogView, keys: list[int]) -> dict[int, np.ndarray]:
        """Unit mean of each listing's photo vectors (listings with photos in the index only)."""
        owner = {int(v): k for k in keys for v in catalog.vector_ids[catalog.row_of_key(k)]
                 if catalog.row_of_key(k) != NONE}
        if not owner:
            return {}
        with self.live.lock:
            present, vectors = self.live.image.reconstruct_present(np.array(list(owner), np.int64))
        grouped: dict[int, list[np.ndarray]] = {}
        for vid, vec in zip(present.tolist(), unit_rows(vectors)):
            grouped.setdefault(owner[vid], []).append(vec)
        return {k: unit_rows(np.mean(v, 0)) for k, v in grouped.items()}

    def likeness(self, catalog: CatalogView, a: list[int], b: list[int]) -> np.ndarray:
        """Listing-to-listing similarity [len(a), len(b)]: the mean over channels (photos as each listing's
        mean unit photo vector, words as its text vector) of the cosines, NaN where no channel has both."""
        keys = list(dict.fromkeys(a + b))
        total, count = np.zeros((len(a), len(b))), np.zeros((len(a), len(b)))
        for vectors in (self.photo_means(catalog, keys), self.text_vectors(keys)):
            rows = [i for i, k in enumerate(a) if k in vectors]
            cols = [j for j, k in enumerate(b) if k in vectors]
            if not rows or not cols:
                continue
            cosines = np.stack([vectors[a[i]] for i in rows]) @ np.stack([vectors[b[j]] for j in cols]).T
            total[np.ix_(rows, cols)] += cosines
            count[np.ix_(rows, cols)] += 1
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)

    def reasons(self, catalog: CatalogView, profile: Profile, hit_keys: list[int]) -> dict[int, tuple[int, str]]:
        """For each hit key, the (catalogue row, event) of the history listing it is most like; a hit
        with nothing in common with any is left out."""
        if not profile.strongest or not hit_keys:
            return {}
        past = list(profile.strongest)
        sims = self.likeness(catalog, hit_keys, past)
        return {k: profile.strongest[past[int(np.nanargmax(row))]] for k, row in zip(hit_keys, sims)
                if np.isfinite(row).any()}
