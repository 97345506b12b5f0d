"""Catalogue listings asked as buyers' queries, through the search pipeline, for fitting.

A listing becomes a query the way people search: its title as words, one of its photos, both, the
title with one letter dropped (``text.typos``), or the one to three words a buyer types for it
(``fit.buyer_queries``: the head noun, modifier + head, first word + head, the two rarest words, the
head noun misspelt). Each runs through ``SearchPipeline.scored``
(the serving stages up to the ranker's features) with the other split's listings and the listing
itself left out, so the ranker is fit on exactly the candidates and features it scores when serving.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from listing_search.core.grading import grade
from listing_search.core.query import BOTH, IMAGE, TEXT, TEXT_SHORT, Page, Query
from listing_search.core.text import match_terms
from listing_search.fit.buyer_queries import (
    BRAND_HEAD, HEAD, HEAD_TYPO, MODIFIER_HEAD, RARE_PAIR, SHORT_KINDS, buyer_query, document_frequency,
)
from listing_search.fit.vectors import ListingVectors
from listing_search.search.pipeline import Scored, SearchPipeline
from listing_search.search.rank import MAX_TIERED_TERMS, calibration_mode
from listing_search.text.typos import drop_letter

TYPO = "typo"  # words with a letter dropped: a text query, made another way
SELLER_KINDS = (TEXT, IMAGE, BOTH, TYPO)  # a listing asked by its title and photos, in turn
BUYER_KINDS = (HEAD, MODIFIER_HEAD, BRAND_HEAD, RARE_PAIR, HEAD_TYPO)  # ... and as a buyer's few words
KINDS = (*SELLER_KINDS, *BUYER_KINDS)
K = 60  # the page a training query asks for (retrieval never depends on it)


@dataclass
class QuerySet:
    """Pair features of many queries, grouped by query (LightGBM's ``group``), with their calibration modes."""

    x: np.ndarray
    grades: np.ndarray
    groups: np.ndarray
    modes: list[str]

    def __add__(self, other: "QuerySet") -> "QuerySet":
        if not len(other.groups) or not len(self.groups):  # an empty set has no feature width to stack
            return self if len(self.groups) else other
        return QuerySet(np.vstack([self.x, other.x]), np.concatenate([self.grades, other.grades]),
                        np.concatenate([self.groups, other.groups]), self.modes + other.modes)

    def split(self, pick: np.ndarray) -> "QuerySet":
        starts = np.r_[0, np.cumsum(self.groups)]
        rows = np.concatenate([np.arange(starts[q], starts[q + 1]) for q in np.flatnonzero(pick)]) \
            if pick.any() else np.zeros(0, np.int64)
        return QuerySet(self.x[rows], self.grades[rows], self.groups[pick], [m for m, p in zip(self.modes, pick) if p])


def calibration_mode_of(query: Query) -> str | None:
    """The mode a query's relevance is calibrated for, from its words as typed (``search.rank.calibration_mode``
    decides the same from the words searched)."""
    short = bool(query.text) and 1 <= len(match_terms(query.text)) <= MAX_TIERED_TERMS and not query.has_image
    return TEXT_SHORT if short else query.mode


class QueryMaker:
    """Catalogue listings as queries through the pipeline, with the features and grades of their candidates."""

    def __init__(self, pipeline: SearchPipeline, vectors: ListingVectors, seed: int) -> None:
        self.pipeline, self.vectors = pipeline, vectors
        self.rng = np.random.default_rng(seed + 1)
        self.df = document_frequency(vectors.texts or vectors.titles)
        catalog = pipeline.live.catalog
        self.key_of = {catalog.listing_id[r]: int(catalog.key[r]) for r in catalog.live_rows()}
        self.split_keys = {s: frozenset(self.key_of[str(i)] for i, sp in zip(vectors.ids, vectors.splits)
                                        if sp == s and str(i) in self.key_of) for s in ("train", "val")}

    def query(self, row: int, kind: str, exclude_split: str, k: int = K) -> Query | None:
        """Listing ``row`` asked as ``kind``; None when it cannot be (no photo, no long word)."""
        v = self.vectors
        title = v.titles[row]
        photos = v.photos_of(row)
        own = self.key_of.get(str(v.ids[row]))
        exclude = self.split_keys[exclude_split] | ({own} if own is not None else set())
        if kind in (IMAGE, BOTH) and not len(photos):
            return None
        if kind in SHORT_KINDS:
            text = buyer_query(title, kind, self.df, self.rng)
        else:
            text = drop_letter(title, self.rng) if kind == TYPO else (title if kind != IMAGE else None)
        if kind not in (IMAGE, BOTH) and text is None:
            return None
        image = photos[self.rng.integers(len(photos))][None] if kind in (IMAGE, BOTH) else None
        return Query(text=text, image_vecs=image, page=Page(k), exclude=frozenset(exclude))

    def scored(self, query: Query, pipeline: SearchPipeline | None = None) -> Scored:
        """The query through the serving stages up to the ranker (``pipeline``: other models)."""
        return (pipeline or self.pipeline).scored(query, show=False)  # the ranker reads its belief, not what is shown

    def grades(self, row: int, scored: Scored) -> np.ndarray:
        """2 = same category path, 1 = same root category, 0 = otherwise (``core.grading.grade``)."""
        root, path = self.vectors.categories[self.vectors.labels[row]], self.vectors.paths[row]
        catalog = scored.catalog
        return np.array([grade(root, path, catalog.root_name(r), catalog.path_name(r))
                         for r in scored.candidates.rows], np.int64)

    def pairs(self, rows: np.ndarray, pipelines: list[SearchPipeline], exclude_split: str, progress: bool = False,
              desc: str = "queries", kinds: tuple[str, ...] = SELLER_KINDS, required: bool = True) -> QuerySet:
        """Each listing of ``rows`` asked in turn as each of ``kinds`` (``pipelines``: the models each is
        asked through); each query's mode is the one its relevance is calibrated for. ``required``: no usable
        query is an error (else an empty set: a tiny catalogue may have no buyer's words that find anything)."""
        from tqdm import tqdm

        xs, gs, groups, modes = [], [], [], []
        for j, (row, pipeline) in enumerate(tqdm(list(zip(rows, pipelines)), disable=not progress, desc=desc,
                                                 unit="query")):
            kind = kinds[j % len(kinds)]
            query = self.query(int(row), kind, exclude_split)
            if query is None:
                continue
            scored = self.scored(query, pipeline)
            if not len(scored.candidates):
                continue
            xs.append(scored.ranked.features)
            gs.append(self.grades(int(row), scored))
            groups.append(len(scored.candidates))
            modes.append(calibration_mode(scored.understanding))
        if not xs:
            if required:
                raise ValueError("no usable ranker queries: is the catalogue indexed (`listing-search index`)?")
            return QuerySet(np.zeros((0, 0)), np.zeros(0, np.int64), np.zeros(0, np.int64), [])
        return QuerySet(np.vstack(xs), np.concatenate(gs), np.array(groups, np.int64), modes)
