"""Search requests, candidates, results and the fallback fusion of per-channel scores.

Retrieval gives each candidate listing one score per channel ("image", "text", "lexical"); a
``Rescorer`` turns those into the final order. The engine's is the learned ranker
(``rank.serving``); the weighted mean below is only the fallback before ``tune-ranker`` has run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from listing_search.store.models import Filters, Listing

IMAGE, TEXT, LEXICAL = "image", "text", "lexical"
SORTS = ("relevance", "newest", "price_asc", "price_desc")
DEFAULT_WEIGHTS = {IMAGE: 0.5, TEXT: 0.5, LEXICAL: 0.0}


@dataclass
class SearchQuery:
    """One search: a photo and/or words, how many listings, and structured filters."""

    image: bytes | None = None
    text: str | None = None
    k: int = 10
    filters: Filters = field(default_factory=Filters)
    exclude_listing_keys: frozenset[int] = frozenset()
    history: tuple = ()  # rank.personalise.HistoryEvent items; blended in by rank.serving's rescorer
    profile: object | None = None  # rank.serving.ServingProfile of ``history``, when the caller built it
    image_vec: np.ndarray | None = None  # set by the engine: the photo's embedding, computed once
    text_vec: np.ndarray | None = None  # set by the engine: the words' embedding, computed once
    sort: str = "relevance"  # or newest, price_asc, price_desc (SORTS)
    offset: int = 0  # results to skip (paging)
    category_probs: np.ndarray | None = None  # set by the engine (or, when fitting, by a cross-fitted predictor)
    shown_probs: np.ndarray | None = None  # set by the engine: the category a photo search shows (rank.serving)
    spelling: bool = True  # correct misspelt words against the catalogue's vocabulary
    searched_text: str | None = None  # set by the engine: the words after spelling correction
    vision_probs: np.ndarray | None = None  # set by the engine: the vision head's categories for the photo
    image_pool: tuple[int, dict] | None = None  # set by the engine: (k asked, photo candidates), found once

    @property
    def shown_belief(self) -> np.ndarray | None:
        """The category belief a photo search shows: the photo-voted one when the engine made it."""
        return self.category_probs if self.shown_probs is None else self.shown_probs

    @property
    def has_image(self) -> bool:
        return self.image is not None or self.image_vec is not None

    def channels(self) -> list[str]:
        return [c for c, v in ((IMAGE, self.has_image), (TEXT, bool(self.text))) if v]


@dataclass
class Candidate:
    """A listing found by retrieval: per-channel cosine scores and the photos that matched."""

    listing_key: int
    scores: dict[str, float] = field(default_factory=dict)
    matched_vector_ids: list[int] = field(default_factory=list)
    score: float = 0.0
    relevance: float | None = None  # calibrated, set by the ranking service


@dataclass
class ListingHit:
    """A ranked result: the listing record, its final score and how it was reached."""

    listing: Listing
    score: float
    scores: dict[str, float]
    matched_image_ids: list[str]
    relevance: float | None = None  # calibrated P(shares the query's root category), when calibrated


@dataclass
class SearchResult:
    """A search's hits and what the engine made of the query."""

    hits: list[ListingHit]
    searched_text: str | None = None  # the words searched, after spelling correction
    corrections: list[tuple[str, str]] = field(default_factory=list)  # (typed, searched) word pairs
    predicted_categories: list[tuple[str, float]] = field(default_factory=list)  # for a photo: best first
    no_match: bool = False  # nothing reached the calibrated "good match" threshold, or no word is known
    unknown_words: bool = False  # words only, and the catalogue uses none of them (after correction)
    best_relevance: float | None = None


class Rescorer(Protocol):
    """Sets ``Candidate.score`` for every candidate and returns them best first."""

    def __call__(self, query: SearchQuery, candidates: list[Candidate]) -> list[Candidate]: ...


class TextQueryEncoder(Protocol):
    """What the engine needs from a text model (``listing_search.text.encoder.TextEncoder`` fits)."""

    def encode(self, texts: list[str]) -> np.ndarray: ...


def weighted_mean(query: SearchQuery, candidates: list[Candidate],
                  weights: dict[str, float] = DEFAULT_WEIGHTS) -> list[Candidate]:
    """Default rescorer: weighted mean of the query's channels (a missing channel scores 0)."""
    channels = query.channels() or [IMAGE]
    if TEXT in channels:
        channels = channels + [LEXICAL]
    total = sum(weights.get(c, 1.0) for c in channels) or 1.0
    for cand in candidates:
        cand.score = sum(weights.get(c, 1.0) * cand.scores.get(c, 0.0) for c in channels) / total
    return sorted(candidates, key=lambda c: (-c.score, c.listing_key))


def group_by_listing(scores: list[np.ndarray], ids: list[np.ndarray], listing_of: dict[int, int],
                     exclude: frozenset[int] = frozenset()) -> dict[int, Candidate]:
    """Photo hits of one or more query vectors -> one candidate per listing (its best photo's score).

    Vector ids missing from ``listing_of`` (deleted photos not yet compacted away) are dropped.
    """
    best: dict[int, Candidate] = {}
    pairs = sorted(
        ((float(s), int(v)) for row_s, row_i in zip(scores, ids) for s, v in zip(row_s, row_i)),
        key=lambda p: -p[0])
    for score, vid in pairs:
        key = listing_of.get(vid)
        if key is None or key in exclude:
            continue
        cand = best.setdefault(key, Candidate(key, {IMAGE: score}))
        if vid not in cand.matched_vector_ids:
            cand.matched_vector_ids.append(vid)
    return best
