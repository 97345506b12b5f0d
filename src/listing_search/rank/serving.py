"""Ranking work plugged into the serving engine: learned re-ranking, category prediction from photo
and/or words, and personalisation (history in a search, and the feed of ``/v1/recommend``).

The engine retrieves candidates per channel; :class:`RankingService` turns each candidate into the
same pair features the ranker was fit on (``rank.features.FEATURES``) and orders them. A history
becomes a profile (recency-decayed mean text and photo vectors, category preferences) scored with
the same ranker, blended into searches and used alone for the feed. numpy only: no torch, no sklearn.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from listing_search import schema as S
from listing_search.store.models import Filters, Listing
from listing_search.rank.candidates import IMAGE, TEXT, Candidate, ListingHit, SearchQuery, weighted_mean
from listing_search.rank.category import CategoryPredictor
from listing_search.rank.engine import TextSearchUnavailable
from listing_search.rank.features import FEATURES, log_agreement, stack_features, word_overlap
from listing_search.rank.personalise import PRIOR_STRENGTH, HistoryEvent, event_weight
from listing_search.rank.ranker import Ranker
from listing_search.rank.vectors import tokens, unit_rows

if TYPE_CHECKING:
    from listing_search.rank.engine import SearchEngine

log = logging.getLogger(__name__)


@dataclass
class ServingProfile:
    """A history resolved against the live catalogue."""

    text_vec: np.ndarray | None
    image_vec: np.ndarray | None
    category_prefs: np.ndarray
    seen_keys: frozenset[int]
    used: int
    unknown_ids: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.used == 0


@dataclass
class Feed:
    hits: list[ListingHit]
    used: int
    unknown_ids: list[str]
    notes: list[str]


class RankingService:
    """Loaded once with the engine; every method is safe for concurrent requests (read-only state)."""

    def __init__(self, engine: "SearchEngine", ranker: Ranker, predictor: CategoryPredictor | None,
                 fitted: bool) -> None:
        self.engine, self.ranker, self.predictor, self.fitted = engine, ranker, predictor, fitted
        rs = engine.settings.rank
        self.history_weight, self.half_life_days = rs.history_weight, rs.half_life_days

    @classmethod
    def load(cls, engine: "SearchEngine") -> "RankingService":
        """The fitted ranker and predictor when ``tune-ranker`` has run; hand weights otherwise."""
        art = engine.artifacts
        fitted = (art / S.RANKER_JSON).is_file()
        ranker = Ranker.load(art / S.RANKER_JSON) if fitted else Ranker.default(list(FEATURES))
        if list(ranker.features) != list(FEATURES):
            log.warning("ranker.json features %s differ from %s: using hand weights", ranker.features, FEATURES)
            ranker, fitted = Ranker.default(list(FEATURES)), False
        predictor = None
        if (art / S.CATEGORY_PREDICTOR_JSON).is_file():
            predictor = CategoryPredictor.load(art / S.CATEGORY_PREDICTOR_JSON)
            if predictor.image_dim not in (0, engine.encoder.dim):
                log.warning("category predictor expects %d-d photos, model gives %d: photo part unused",
                            predictor.image_dim, engine.encoder.dim)
        log.info("ranking: %s ranker, category predictor %s", "fitted" if fitted else "hand-weighted",
                 "loaded" if predictor else "absent")
        return cls(engine, ranker, predictor, fitted)

    # ------------------------------------------------------------- category
    def category_probs(self, text_vec: np.ndarray | None, image_vec: np.ndarray | None,
                       text: str | None = None) -> np.ndarray | None:
        """P(root category | words and/or photo) from the fused predictor; None without one."""
        if self.predictor is None or (text_vec is None and image_vec is None):
            return None
        if image_vec is not None and self.predictor.image_dim != len(image_vec):
            image_vec = None
            if text_vec is None:
                return None
        return self.predictor.predict_proba(None if text_vec is None else text_vec[None],
                                            None if image_vec is None else image_vec[None],
                                            None if text is None else [text])[0]

    def predict_category(self, image: bytes | None, text: str | None, top: int) -> list[tuple[str, float]]:
        """Root categories for a seller's photo and/or title; the vision head alone when no predictor."""
        text_vec = self._text_vec(text) if text else None
        image_vec, vision_probs = (self.engine.embed_photo(image) if image else (None, None))
        probs = self.category_probs(text_vec, image_vec, text)
        names = self.predictor.categories if probs is not None else (self.engine.encoder.categories
                                                                      or self.engine.categories)
        if probs is None:
            if vision_probs is None:
                raise TextSearchUnavailable("category from words needs `tune-ranker` (category_predictor.json)")
            probs = vision_probs
        order = np.argsort(-probs)[:top]
        return [(names[i], float(probs[i])) for i in order]

    def _text_vec(self, text: str) -> np.ndarray | None:
        if self.engine.text_encoder is None:
            return None
        return self.engine.text_encoder.encode([text])[0]

    # ------------------------------------------------------------- re-ranking
    def rescore(self, query: SearchQuery, candidates: list[Candidate]) -> list[Candidate]:
        """The engine's ``Rescorer``: learned ranker on pair features, blended with the history profile."""
        if not candidates:
            return []
        if not self.fitted and not query.history:
            return weighted_mean(query, candidates)
        listings = self.engine.store.listings_by_key(c.listing_key for c in candidates)
        scores = self.ranker.score(self._query_features(query, candidates, listings))
        if query.history:
            profile = query.profile if query.profile is not None else self.profile(query.history)
            if not profile.empty:
                p = self.ranker.score(self.profile_features(profile, candidates, listings))
                scores = (1.0 - self.history_weight) * scores + self.history_weight * p
        for cand, s in zip(candidates, scores):
            cand.score = float(s)
        return sorted(candidates, key=lambda c: (-c.score, c.listing_key))

    def _query_features(self, query: SearchQuery, cands: list[Candidate], listings: dict[int, Listing]) -> np.ndarray:
        """The engine embedded the query once (``query.text_vec`` / ``image_vec``); a search carries no price."""
        probs = self.category_probs(query.text_vec, query.image_vec, query.text)
        words = tokens(query.text or "")
        return stack_features(
            len(cands),  # the engine scores a channel only when the query used it
            text_cos=[c.scores.get(TEXT, 0.0) for c in cands],
            image_cos=[c.scores.get(IMAGE, 0.0) for c in cands],
            category_agreement=[self._agreement(probs, listings.get(c.listing_key)) for c in cands],
            title_overlap=[word_overlap(words, tokens(listings[c.listing_key].title))
                           if c.listing_key in listings else 0.0 for c in cands],
        )

    def _agreement(self, probs: np.ndarray | None, listing: Listing | None) -> float:
        if probs is None or listing is None:
            return 0.0
        label = self._label(listing)
        if label is None or label >= len(probs):
            return 0.0
        return float(log_agreement(probs, np.array([label]))[0])

    def _label(self, listing: Listing) -> int | None:
        if listing.label is not None:
            return int(listing.label)
        cats = self.engine.categories
        return cats.index(listing.root_category) if listing.root_category in cats else None

    # ------------------------------------------------------------- personalisation
    def profile(self, history: list[HistoryEvent] | tuple[HistoryEvent, ...], now: float | None = None
                ) -> ServingProfile:
        """Resolve a history against the live catalogue; unknown ids are listed, never an error."""
        now = time.time() if now is None else now
        keys, weights, labels, unknown = [], [], [], []
        for e in history:
            listing = self.engine.store.listing(str(e.listing_id))
            if listing is None:
                unknown.append(str(e.listing_id))
                continue
            keys.append(listing.key)
            weights.append(event_weight(e, now, self.half_life_days))
            labels.append(self._label(listing))
        n_cat = len(self.engine.categories)
        prefs = np.full(n_cat, 1.0 / n_cat)
        if not keys:
            return ServingProfile(None, None, prefs, frozenset(), 0, unknown)
        w = np.asarray(weights, np.float64)
        known = np.array([lab is not None for lab in labels])
        if known.any():
            counts = np.bincount(np.array([lab for lab in labels if lab is not None]), weights=w[known],
                                 minlength=n_cat)[:n_cat]
            prefs = counts + PRIOR_STRENGTH * w.sum() / (n_cat * len(w))
            prefs = prefs / prefs.sum()
        return ServingProfile(self._profile_text(keys, w), self._profile_image(keys, w), prefs,
                              frozenset(keys), len(keys), unknown)

    def _profile_text(self, keys: list[int], w: np.ndarray) -> np.ndarray | None:
        index = self.engine.text_index
        if index is None:
            return None
        with self.engine.locked():
            present, vectors = index.reconstruct_present(np.array(keys, np.int64))
        if not len(present):
            return None
        weight = dict(zip(keys, w))
        return unit_rows((np.array([weight[int(k)] for k in present])[:, None] * unit_rows(vectors)).sum(0))

    def _profile_image(self, keys: list[int], w: np.ndarray) -> np.ndarray | None:
        photos = self._photo_vectors(keys)
        rows = [(wi, unit_rows(photos[k].mean(0))) for k, wi in zip(keys, w) if k in photos]
        if not rows:
            return None
        return unit_rows(sum(wi * v for wi, v in rows))

    def _photo_vectors(self, keys: list[int]) -> dict[int, np.ndarray]:
        """Unit photo vectors of each listing that has any in the image index."""
        by_listing = {k: self.engine.live.photos_of.get(k, []) for k in keys}
        owner = {vid: key for key, vids in by_listing.items() for vid in vids}
        with self.engine.locked():
            present, vectors = self.engine.image_index.reconstruct_present(np.array(list(owner), np.int64))
        out: dict[int, list[np.ndarray]] = {}
        for vid, vec in zip(present.tolist(), unit_rows(vectors)):
            out.setdefault(owner[vid], []).append(vec)
        return {k: np.stack(v) for k, v in out.items()}

    def profile_features(self, profile: ServingProfile, cands: list[Candidate],
                         listings: dict[int, Listing]) -> np.ndarray:
        """The profile as a query: cosines to its text and photo vectors, category preference."""
        keys = [c.listing_key for c in cands]
        text = np.zeros(len(cands), np.float32)
        if profile.text_vec is not None and self.engine.text_index is not None:
            with self.engine.locked():
                present, vectors = self.engine.text_index.reconstruct_present(np.array(keys, np.int64))
            sims = dict(zip(present.tolist(), (unit_rows(vectors) @ profile.text_vec).tolist()))
            text = np.array([sims.get(k, 0.0) for k in keys], np.float32)
        image = np.zeros(len(cands), np.float32)
        if profile.image_vec is not None:
            photos = self._photo_vectors(keys)
            image = np.array([float((photos[k] @ profile.image_vec).max()) if k in photos else 0.0 for k in keys],
                             np.float32)
        agree = [self._agreement(profile.category_prefs, listings.get(k)) for k in keys]
        return stack_features(len(cands), text_cos=text, image_cos=image, category_agreement=agree)

    def recommend(self, history: list[HistoryEvent], k: int, text: str | None = None, image: bytes | None = None,
                  filters: Filters | None = None) -> Feed:
        """A feed favouring the history, never containing a listing it names; a query is blended in."""
        filters = filters or Filters()
        profile = self.profile(history)
        notes = [f"{len(profile.unknown_ids)} history listing id(s) not in the catalogue were ignored"] \
            if profile.unknown_ids else []
        if text or image:
            query = SearchQuery(image=image, text=text, k=k, filters=filters,
                                exclude_listing_keys=profile.seen_keys)
            query.history, query.profile = tuple(history), profile
            return Feed(self.engine.search(query), profile.used, profile.unknown_ids, notes)
        if profile.empty:
            notes.append("no usable history: nothing to recommend")
            return Feed([], 0, profile.unknown_ids, notes)
        cands = self._profile_candidates(profile, k, filters)
        listings = self.engine.store.listings_by_key(c.listing_key for c in cands)
        scores = self.ranker.score(self.profile_features(profile, cands, listings)) if cands else []
        for cand, s in zip(cands, scores):
            cand.score = float(s)
        ranked = sorted(cands, key=lambda c: (-c.score, c.listing_key))[:k]
        return Feed(self.engine._hits(ranked), profile.used, profile.unknown_ids, notes)

    def _profile_candidates(self, profile: ServingProfile, k: int, filters: Filters) -> list[Candidate]:
        engine = self.engine
        engine.check_filters(filters)
        cands: dict[int, Candidate] = {}
        if profile.image_vec is not None:
            cands = engine._image_candidates(profile.image_vec[None], k, filters, profile.seen_keys)
        if profile.text_vec is not None and engine.text_index is not None:
            engine._merge_text(cands, profile.text_vec, k, filters, profile.seen_keys)
        return list(cands.values())
