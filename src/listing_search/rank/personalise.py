"""Personalisation: a user's history -> a profile -> a feed (or a search) favouring what it says.

A profile is a weighted, recency-decayed mean of the listings the user touched (liked counts more
than searched, which counts more than viewed), in text space and photo space, plus smoothed
root-category preferences. It is a :class:`Query` of the same shape as a search, so the learned
ranker scores the feed; with a query the two scores are blended. Seen listings are never returned.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np

from listing_search.rank.features import Query
from listing_search.rank.ranker import Ranker
from listing_search.rank.search import Ranked, rank, retrieve
from listing_search.rank.features import pair_features
from listing_search.rank.vectors import ListingVectors, unit_rows

log = logging.getLogger(__name__)

EVENT_WEIGHTS = {"viewed": 1.0, "searched": 1.5, "liked": 3.0}
HALF_LIFE_DAYS = 14.0
PRIOR_STRENGTH = 1.0  # pseudo-events spread evenly over categories


@dataclass(frozen=True)
class HistoryEvent:
    listing_id: str
    event: str = "viewed"
    timestamp: float | None = None  # seconds since the epoch


@dataclass
class Profile:
    text_vec: np.ndarray | None
    image_vec: np.ndarray | None
    category_prefs: np.ndarray  # [C], sums to 1
    seen_rows: np.ndarray  # listing rows the user already saw (never recommended)
    used: int = 0
    unknown_ids: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.used == 0

    def as_query(self) -> Query:
        images = None if self.image_vec is None else self.image_vec[None, :]
        return Query(text_vec=self.text_vec, image_vecs=images, category_probs=self.category_prefs)


def event_weight(event: HistoryEvent, now: float, half_life_days: float = HALF_LIFE_DAYS) -> float:
    """Kind weight times 2^(-age / half-life); events without a time count fully."""
    base = EVENT_WEIGHTS.get(event.event, 1.0)
    if event.timestamp is None:
        return base
    age_days = max(0.0, now - float(event.timestamp)) / 86400.0
    return base * math.pow(0.5, age_days / half_life_days)


def build_profile(events: list[HistoryEvent], vectors: ListingVectors, now: float | None = None,
                  half_life_days: float = HALF_LIFE_DAYS) -> Profile:
    """The profile of a history; ids not in the catalogue are counted and ignored."""
    now = time.time() if now is None else now
    rows, weights, unknown = [], [], []
    for e in events:
        row = vectors.row_of(e.listing_id)
        if row is None:
            unknown.append(str(e.listing_id))
            continue
        rows.append(row)
        weights.append(event_weight(e, now, half_life_days))
    n_cat = len(vectors.categories)
    if not rows:
        return Profile(None, None, np.full(n_cat, 1.0 / n_cat), np.zeros(0, np.int64), 0, unknown)
    r, w = np.asarray(rows, np.int64), np.asarray(weights, np.float64)
    prefs = np.bincount(vectors.labels[r], weights=w, minlength=n_cat) + PRIOR_STRENGTH * w.sum() / (n_cat * len(w))
    return Profile(
        text_vec=unit_rows((w[:, None] * vectors.text[r]).sum(0)),
        image_vec=_image_profile(vectors, r, w),
        category_prefs=prefs / prefs.sum(),
        seen_rows=np.unique(r), used=len(r), unknown_ids=unknown,
    )


def _image_profile(vectors: ListingVectors, rows: np.ndarray, w: np.ndarray) -> np.ndarray | None:
    if not vectors.photos.shape[1]:
        return None
    has = vectors.has_photo[rows]
    if not has.any():
        return None
    return unit_rows((w[has, None] * vectors.image_mean[rows[has]]).sum(0))


def not_seen(profile: Profile, vectors: ListingVectors, allowed: np.ndarray | None = None) -> np.ndarray:
    mask = np.ones(len(vectors), bool) if allowed is None else allowed.copy()
    mask[profile.seen_rows] = False
    return mask


def recommend(profile: Profile, vectors: ListingVectors, ranker: Ranker, k: int, query: Query | None = None,
              history_weight: float = 0.3, candidates: int = 200, allowed: np.ndarray | None = None) -> Ranked:
    """A feed from the profile alone, or a search blended with it: never listings already seen.

    With a query, score = (1 - w) * ranker(query) + w * ranker(profile); without one, ranker(profile).
    An empty profile leaves the search as it is.
    """
    mask = not_seen(profile, vectors, allowed)
    if query is None and profile.empty:
        return Ranked(np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros((0, 0), np.float32))
    if profile.empty:
        return rank(query, vectors, ranker, k, candidates, mask)
    p_query = profile.as_query()
    if query is None:
        return rank(p_query, vectors, ranker, k, candidates, mask)
    return _blend(query, p_query, vectors, ranker, k, history_weight, candidates, mask)


def _blend(query: Query, p_query: Query, vectors: ListingVectors, ranker: Ranker, k: int, w: float,
           candidates: int, mask: np.ndarray) -> Ranked:
    rows_q, t, i = retrieve(query, vectors, candidates, mask)
    rows_p, pt, pi = retrieve(p_query, vectors, candidates // 2, mask)
    rows = np.union1d(rows_q, rows_p)
    xq = pair_features(query, vectors, rows, t, i)
    xp = pair_features(p_query, vectors, rows, pt, pi)
    scores = (1.0 - w) * ranker.score(xq) + w * ranker.score(xp)
    order = np.lexsort((rows, -scores))[:k]
    return Ranked(rows[order], scores[order], xq[order])
