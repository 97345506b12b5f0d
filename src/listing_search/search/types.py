"""What each stage of the search path returns: understand -> retrieve -> rank -> match -> present.

Every type is frozen: a stage reads its inputs and returns a new value; nothing writes into the
query or into another stage's result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from listing_search.core.query import Query, mode_of
from listing_search.store.models import Listing

IMAGE, TEXT, LEXICAL = "image", "text", "lexical"  # retrieval channels: photo vectors, dense text, BM25
CHANNELS = (IMAGE, TEXT, LEXICAL)


@dataclass(frozen=True, eq=False)
class Understanding:
    """What the engine made of a query (or of a buyer's history, for a feed)."""

    query: Query
    words: str | None = None  # the words searched, after spelling correction
    corrections: tuple[tuple[str, str], ...] = ()  # (typed, searched) word pairs
    terms: tuple[str, ...] = ()  # core.text.match_terms of ``words``: what "holds the words" asks for
    unknown_words: bool = False  # words only, and no listing uses any of them
    text_vec: np.ndarray | None = None  # unit vector of the words (or of a history)
    image_vecs: np.ndarray | None = None  # [n, d] the query's photo vectors
    vision_probs: np.ndarray | None = None  # the vision head's categories for an uploaded photo
    category_probs: np.ndarray | None = None  # the root-category belief the ranker's features read
    shown_probs: np.ndarray | None = None  # the belief a photo search shows (photo-voted), before tempering
    photo_pool: Candidates | None = None  # unfiltered photo candidates found for the vote, reused by retrieve
    text_pool: Candidates | None = None  # unfiltered text candidates found for the words' vote, reused so too
    holders: np.ndarray | None = None  # keys of every listing holding ``terms``, most BM25 first (unfiltered)

    @property
    def has_text(self) -> bool:
        return self.text_vec is not None or bool(self.words)

    @property
    def has_image(self) -> bool:
        return self.image_vecs is not None

    @property
    def mode(self) -> str | None:
        return mode_of(self.has_text, self.has_image)

    @property
    def shown_belief(self) -> np.ndarray | None:
        """The category belief a photo search shows: the photo-voted one when there is one."""
        return self.category_probs if self.shown_probs is None else self.shown_probs

    @property
    def image_vec(self) -> np.ndarray | None:
        """One vector for the query's photos: their normalised mean (the photo itself for one)."""
        if self.image_vecs is None:
            return None
        mean = np.asarray(self.image_vecs, np.float32).mean(0)
        return mean / (float(np.linalg.norm(mean)) or 1.0)


@dataclass(frozen=True, eq=False)
class Candidates:
    """Listings retrieved for a query, row-aligned: catalogue row, key and one score per channel the
    query used (every candidate scored in every such channel)."""

    rows: np.ndarray  # int64 catalogue rows
    keys: np.ndarray  # int64 listing keys
    scores: dict[str, np.ndarray] = field(default_factory=dict)  # channel -> float32 [n]

    def __len__(self) -> int:
        return len(self.rows)

    def score(self, channel: str) -> np.ndarray:
        """The channel's scores (zeros for a channel the query did not use)."""
        return self.scores.get(channel, np.zeros(len(self.rows), np.float32))

    def take(self, picks: np.ndarray) -> Candidates:
        return Candidates(self.rows[picks], self.keys[picks], {c: s[picks] for c, s in self.scores.items()})


@dataclass(frozen=True, eq=False)
class Ranked:
    """Candidates scored and ordered: ``order`` lists candidate positions best first."""

    candidates: Candidates
    features: np.ndarray  # [n, F], the ranker's inputs
    score: np.ndarray  # the final score (the query's, blended with a history's)
    relevance: np.ndarray | None  # calibrated P(same root category as the query), from the query alone
    order: np.ndarray
    held: np.ndarray | None = None  # whether each candidate holds the query's words
    tiered: bool = False  # a buyer's query: holders first, the rest only related
    same_path: np.ndarray | None = None  # calibrated P(same full category path as the query)

    @property
    def best_relevance(self) -> float | None:
        return None if self.relevance is None or not len(self.relevance) else float(self.relevance.max())


@dataclass(frozen=True, eq=False)
class MatchSet:
    """M: the listings a search matches, as catalogue rows in relevance order. Relevance orders it and
    the other sorts re-order all of it; ``total`` = |M| whatever the page, sort or pool."""

    rows: np.ndarray
    position: dict[int, int]  # catalogue row -> position among the ranked candidates (when ranked)
    no_match: bool = False

    @property
    def total(self) -> int:
        return len(self.rows)


@dataclass(frozen=True)
class Hit:
    """A result as presented: the listing's fields, how it scored, and which of its photos matched."""

    listing: Listing
    score: float
    scores: dict[str, float]
    matched_image_ids: list[str]
    relevance: float | None = None
    related: bool = False  # a buyer's query whose words the listing does not hold: shown after those that do
    highlight: object | None = None  # search.highlight.Highlight: the spans that hold the words
    same_path: float | None = None  # calibrated P(same full category path as the query)
    match: str | None = None  # the label a buyer reads (search.present.match_label)
    distance_km: float | None = None  # from the search's ``near`` point (None without one, or unplaced)
    duplicates: tuple[str, ...] = ()  # listing ids of the other copies of this ad in the match set (search.collapse)
    buying: bool = False  # a buying ad ("wanted", "cash for your ..."): core.ads


@dataclass(frozen=True)
class Result:
    """One answer: a page of hits and what the engine made of the query."""

    hits: list[Hit]
    total: int = 0  # results in M: each group of near-duplicate listings counts once (search.collapse)
    next_cursor: str | None = None  # where the next page starts; None on the last page
    searched: str | None = None
    corrections: tuple[tuple[str, str], ...] = ()
    predicted_categories: list[tuple[str, float]] = field(default_factory=list)
    no_match: bool = False
    unknown_words: bool = False
    best_relevance: float | None = None
    facets: object | None = None  # search.facets.Facets: M's counts by category, price band and ad kind
    best_match: str | None = None  # the label of M's best listing: "weak match" says the search found nothing close
    filters: object | None = None  # core.query.Filters as searched: with a price or place read from the words
    read: tuple = ()  # search.asks.Read: the phrases read from the words into ``filters``
