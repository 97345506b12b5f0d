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
from listing_search.rank.relevance import Relevance
from listing_search.rank.candidates import IMAGE, Candidate, ListingHit, SearchQuery, SearchResult, weighted_mean
from listing_search.rank.category import CategoryPredictor, softmax
from listing_search.rank.engine import TextSearchUnavailable
from listing_search.rank.features import FEATURES, QueryContext, candidate_features, log_agreement, stack_features
from listing_search.rank.personalise import PRIOR_STRENGTH, HistoryEvent, event_weight
from listing_search.rank.ranker import Ranker, load_ranker
from listing_search.index.live import Card
from listing_search.pipeline import file_sha
from listing_search.rank.vectors import tokens, unit_rows

if TYPE_CHECKING:
    from listing_search.rank.engine import SearchEngine

log = logging.getLogger(__name__)
KNN_NEIGHBOURS, KNN_TEMPERATURE, KNN_SMOOTHING = 10, 0.05, 1e-3  # neighbour_vote, chosen on the val split
PHOTO_VOTERS, PHOTO_VOTE_TEMPERATURE = 20, 0.1  # photo_vote, chosen on the val split (docs/ranking.md)


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


@dataclass(frozen=True)
class Reason:
    """The history listing a recommendation is most like, and the strongest thing done with it."""

    listing_id: str
    title: str
    event: str  # liked, else viewed, else searched


@dataclass
class Feed:
    hits: list[ListingHit]
    used: int
    unknown_ids: list[str]
    notes: list[str]
    because: dict[str, Reason] = field(default_factory=dict)  # by the hit's listing id


class RankingService:
    """Loaded once with the engine; every method is safe for concurrent requests (read-only state)."""

    def __init__(self, engine: "SearchEngine", ranker, predictor: CategoryPredictor | None,
                 fitted: bool, calibration: Relevance | None = None, version: str = "hand-weighted") -> None:
        self.engine, self.ranker, self.predictor, self.fitted = engine, ranker, predictor, fitted
        self.calibration = calibration
        self.version = version  # which ranker answers: its kind and a hash of the ranker.json it was loaded from
        rs = engine.settings.rank
        self.history_weight, self.half_life_days = rs.history_weight, rs.half_life_days
        cats = predictor.categories if predictor is not None else engine.categories
        self._label_index = {c: i for i, c in enumerate(cats)}

    @classmethod
    def load(cls, engine: "SearchEngine", hand_weighted: bool = False) -> "RankingService":
        """The fitted ranker and predictor when ``tune-ranker`` has run; hand weights otherwise (or when asked)."""
        art = engine.artifacts
        fitted = not hand_weighted and (art / S.RANKER_JSON).is_file()
        ranker = load_ranker(art / S.RANKER_JSON) if fitted else Ranker.default(list(FEATURES))
        if list(ranker.features) != list(FEATURES):
            log.warning("ranker.json features %s differ from %s: using hand weights until `tune-ranker` runs",
                        ranker.features, FEATURES)
            ranker, fitted = Ranker.default(list(FEATURES)), False
        calibration = None
        version = f"{ranker_kind(ranker)}-{file_sha(art / S.RANKER_JSON)[:12]}" if fitted else "hand-weighted"
        if fitted and (art / S.RELEVANCE_JSON).is_file():
            calibration = Relevance.load(art / S.RELEVANCE_JSON)
            if calibration.ranker_sha and calibration.ranker_sha != file_sha(art / S.RANKER_JSON):
                log.warning("relevance.json was calibrated for another ranker.json: relevance not shown")
                calibration = None
        predictor = None
        if (art / S.CATEGORY_PREDICTOR_JSON).is_file():
            predictor = CategoryPredictor.load(art / S.CATEGORY_PREDICTOR_JSON)
            if predictor.image_dim not in (0, engine.encoder.dim):
                log.warning("category predictor expects %d-d photos, model gives %d: photo part unused",
                            predictor.image_dim, engine.encoder.dim)
        log.info("ranking: %s ranker, category predictor %s, relevance %s",
                 ranker_kind(ranker) if fitted else "hand-weighted",
                 "loaded" if predictor else "absent", "calibrated" if calibration else "uncalibrated")
        return cls(engine, ranker, predictor, fitted, calibration, version)

    # ------------------------------------------------------------- category
    def votes_on_photos(self, image_vec: np.ndarray | None) -> bool:
        """Whether a photo's neighbours vote on the category shown for it (``tune-ranker`` fit it so)."""
        p = self.predictor
        return p is not None and p.photo_vote_weight > 0 and image_vec is not None and p.image_dim == len(image_vec)

    def category_probs(self, text_vec: np.ndarray | None, image_vec: np.ndarray | None,
                       text: str | None = None, exclude: frozenset[int] = frozenset()) -> np.ndarray | None:
        """P(root category | words and/or photo), the belief the ranker's features read: the fused
        predictor times, for words, the categories of the catalogue listings nearest to them
        (``neighbour_vote``); None without a predictor."""
        if self.predictor is None or (text_vec is None and image_vec is None):
            return None
        if image_vec is not None and self.predictor.image_dim != len(image_vec):
            image_vec = None
            if text_vec is None:
                return None
        probs = self.predictor.predict_proba(None if text_vec is None else text_vec[None],
                                             None if image_vec is None else image_vec[None],
                                             None if text is None else [text])[0]
        vote = self.neighbour_vote(text_vec, exclude) if text_vec is not None else None
        return probs if vote is None else softmax(np.log(np.maximum(probs, 1e-12)) + np.log(vote))

    def shown_probs(self, probs: np.ndarray | None, image_vec: np.ndarray | None,
                    photo_pool: dict[int, Candidate] | None = None,
                    exclude: frozenset[int] = frozenset()) -> np.ndarray | None:
        """The category belief a photo search shows (before its temperature): ``probs`` times the root
        categories of the ``PHOTO_VOTERS`` listings with the nearest photos (``photo_vote``), ``exclude``
        left out, to the predictor's ``photo_vote_weight``. ``photo_pool``: unfiltered photo candidates
        already found (the search's own); searched here when not given or holding fewer than
        ``PHOTO_VOTERS`` listings, so the voters never depend on filters, ``k`` or ``offset``.

        Only what is shown: on never-seen listings it makes a photo's shown category right 0.512 ->
        0.534 of the time, but fed to the ranker it moved no search metric (docs/ranking.md)."""
        if probs is None or not self.votes_on_photos(image_vec):
            return probs
        if photo_pool is None or len(photo_pool) < PHOTO_VOTERS:
            photo_pool = self.engine._image_candidates(np.asarray(image_vec)[None], PHOTO_VOTERS, Filters(), exclude)
        vote = self.photo_vote(photo_pool)
        if vote is None:
            return probs
        return softmax(np.log(np.maximum(probs, 1e-12)) + self.predictor.photo_vote_weight * np.log(vote))

    def photo_vote(self, pool: dict[int, Candidate]) -> np.ndarray | None:
        """Root categories of the ``PHOTO_VOTERS`` listings of ``pool`` whose best photo is nearest the
        query photo, weighted by exp(cosine / ``PHOTO_VOTE_TEMPERATURE``), smoothed; chosen on the val
        split (category of a val photo: predictor 0.506, times this vote to the power 0.3, 0.528)."""
        cards = self.engine.live.cards
        best = sorted(((c.scores[IMAGE], key) for key, c in pool.items() if IMAGE in c.scores),
                      key=lambda p: (-p[0], p[1]))[:PHOTO_VOTERS]
        return self._vote(best, cards, PHOTO_VOTE_TEMPERATURE)

    def neighbour_vote(self, text_vec: np.ndarray, exclude: frozenset[int] = frozenset()) -> np.ndarray | None:
        """Root categories of the ``KNN_NEIGHBOURS`` catalogue listings whose text is nearest to the words,
        weighted by exp(cosine / ``KNN_TEMPERATURE``), smoothed; chosen on the val split (category of a
        val title: predictor 0.730, times this vote 0.768)."""
        index, cards = self.engine.text_index, self.engine.live.cards
        if index is None or not cards or index.size == 0:
            return None
        with self.engine.locked():
            res = index.search(np.asarray(text_vec, np.float32)[None], KNN_NEIGHBOURS * 4 + len(exclude))
        pairs = [(float(sc), int(k)) for sc, k in zip(res.scores[0], res.ids[0])
                 if int(k) not in exclude][:KNN_NEIGHBOURS]
        return self._vote(pairs, cards, KNN_TEMPERATURE)

    def _vote(self, pairs: list[tuple[float, int]], cards: dict, temperature: float) -> np.ndarray | None:
        """Root categories of the (cosine, listing key) ``pairs``, each weighted exp((cosine - best) /
        ``temperature``), smoothed by ``KNN_SMOOTHING`` and normalised; None without pairs."""
        if not pairs:
            return None
        top = max(sc for sc, _ in pairs)
        vote = np.full(len(self._label_index), KNN_SMOOTHING)
        for sc, key in pairs:
            label = self._label_of_root(cards[key].root) if key in cards else None
            if label is not None and label < len(vote):
                vote[label] += np.exp((sc - top) / temperature)
        return vote / vote.sum()

    def predict_category(self, image: bytes | None, text: str | None, top: int) -> list[tuple[str, float]]:
        """Root categories for a seller's photo and/or title; the vision head alone when no predictor."""
        text_vec = self._text_vec(text) if text else None
        image_vec, vision_probs = (self.engine.embed_photo(image) if image else (None, None))
        probs = self.shown_probs(self.category_probs(text_vec, image_vec, text), image_vec)
        if probs is not None:  # the mode of what the belief used (a photo of another model's size is left out)
            used_image = image_vec is not None and self.predictor.image_dim == len(image_vec)
            mode = "both" if text_vec is not None and used_image else "text" if text_vec is not None else "image"
            probs = self.predictor.calibrated(probs, mode)
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
    def features(self, query: SearchQuery, cands: list[Candidate]) -> tuple[np.ndarray, dict[int, Card]]:
        """The ranker's features of each candidate (``rank.features``), and the listing cards they read."""
        cards = self.cards([c.listing_key for c in cands])
        got = [cards.get(c.listing_key) for c in cands]
        qc = QueryContext.of(query.searched_text or query.text, query.category_probs, query.has_image)
        x = candidate_features(qc, [c.scores for c in cands], [g.title_tokens if g else None for g in got],
                               [g.root if g else None for g in got], [g.path if g else None for g in got],
                               self._label_of_root)
        return x, cards

    def cards(self, keys: list[int]) -> dict[int, Card]:
        """Title words and categories per listing: from the live indexes' cards, else the store."""
        live = self.engine.live.cards
        if live:
            return {k: live[k] for k in keys if k in live}
        listings = self.engine.store.listings_by_key(keys)
        return {k: Card(tokens(v.title), v.root_category, v.category_path) for k, v in listings.items()}

    def rescore(self, query: SearchQuery, candidates: list[Candidate]) -> list[Candidate]:
        """The engine's ``Rescorer``: learned ranker on the features, calibrated, blended with the history."""
        if not candidates:
            return []
        if not self.fitted and not query.history:
            return weighted_mean(query, candidates)
        x, cards = self.features(query, candidates)
        scores = self.ranker.score(x)
        relevance = self.relevance(scores, query)
        if query.history:
            profile = query.profile if query.profile is not None else self.profile(query.history)
            if not profile.empty:
                p = self.ranker.score(self.profile_features(profile, candidates, cards))
                scores = (1.0 - self.history_weight) * scores + self.history_weight * p
        for i, (cand, s) in enumerate(zip(candidates, scores)):
            cand.score = float(s)
            cand.relevance = None if relevance is None else float(relevance[i])
        return sorted(candidates, key=lambda c: (-c.score, c.listing_key))

    def relevance(self, scores: np.ndarray, query: SearchQuery) -> np.ndarray | None:
        """Calibrated P(the listing shares the query's root category); None before calibration."""
        if self.calibration is None or not self.fitted:
            return None
        return self.calibration.apply(np.asarray(scores, np.float64), query_mode(query))

    def annotate(self, query: SearchQuery, ranked: list[Candidate], result: SearchResult) -> None:
        """What a searcher needs to trust the answer: the photo's likely category, and "no good match"."""
        if query.has_image:
            probs = query.shown_belief
            names = self.predictor.categories if self.predictor else None
            if probs is not None and self.predictor is not None:
                probs = self.predictor.calibrated(probs, query_mode(query))
            if probs is None:
                probs, names = query.vision_probs, (self.engine.encoder.categories or self.engine.categories)
            if probs is not None and names:
                order = np.argsort(-np.asarray(probs))[:3]
                result.predicted_categories = [(names[i], float(probs[i])) for i in order if i < len(names)]
        speller = self.engine.live.speller
        words = query.searched_text or query.text
        result.unknown_words = bool(words and not query.has_image and speller is not None
                                    and speller.known_words(words) == 0)
        rel = [c.relevance for c in ranked if c.relevance is not None]
        if rel:
            result.best_relevance = max(rel)
            result.no_match = self.calibration is not None and \
                result.best_relevance < self.calibration.threshold(query_mode(query))
        result.no_match = result.no_match or result.unknown_words or not ranked

    def _label_of_root(self, root: str | None) -> int | None:
        return self._label_index.get(root) if root is not None else None

    def _agreement_of_root(self, probs: np.ndarray | None, root: str | None) -> float:
        label = self._label_of_root(root)
        if probs is None or label is None or label >= len(probs):
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
                         cards: dict[int, Card]) -> np.ndarray:
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
        agree = [self._agreement_of_root(profile.category_prefs, cards[k].root if k in cards else None)
                 for k in keys]
        return stack_features(len(cands), text_cos=text, image_cos=image, category_agreement=agree,
                              has_text=float(profile.text_vec is not None),
                              has_image=float(profile.image_vec is not None))

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
            hits = self.engine.search(query)
            return Feed(hits, profile.used, profile.unknown_ids, notes, self.reasons(history, hits))
        if profile.empty:
            notes.append("no usable history: nothing to recommend")
            return Feed([], 0, profile.unknown_ids, notes)
        cands = self._profile_candidates(profile, k, filters)
        cards = self.cards([c.listing_key for c in cands])
        scores = self.ranker.score(self.profile_features(profile, cands, cards)) if cands else []
        for cand, s in zip(cands, scores):
            cand.score = float(s)
        ranked = sorted(cands, key=lambda c: (-c.score, c.listing_key))[:k]
        hits = self.engine._hits(ranked)
        return Feed(hits, profile.used, profile.unknown_ids, notes, self.reasons(history, hits))

    def reasons(self, history: list[HistoryEvent], hits: list[ListingHit]) -> dict[str, Reason]:
        """For each hit, the history listing it is most like ("because you viewed ..."): the highest mean
        of the photo and words cosines both have; a hit with nothing in common with any is left out."""
        events = {"searched": 0, "viewed": 1, "liked": 2}
        seen: dict[int, Reason] = {}
        resolved: dict[str, Listing | None] = {}  # one store read per distinct listing, not per event
        for e in history:
            lid = str(e.listing_id)
            if lid not in resolved:
                resolved[lid] = self.engine.store.listing(lid)
            listing = resolved[lid]
            if listing is None:
                continue
            old = seen.get(listing.key)
            if old is None or events.get(e.event, 0) > events.get(old.event, 0):
                seen[listing.key] = Reason(listing.listing_id, listing.title, e.event)
        if not seen or not hits:
            return {}
        past = list(seen)
        sims = self.listing_similarity([h.listing.key for h in hits], past)
        out = {}
        for hit, row in zip(hits, sims):
            if np.isfinite(row).any():
                out[hit.listing.listing_id] = seen[past[int(np.nanargmax(row))]]
        return out

    def listing_similarity(self, a: list[int], b: list[int]) -> np.ndarray:
        """Listing-to-listing similarity [len(a), len(b)]: the mean over channels (photos as each listing's
        mean unit photo vector, words as its text vector) of the cosines, NaN where no channel has both."""
        keys = list(dict.fromkeys(a + b))
        total, count = np.zeros((len(a), len(b))), np.zeros((len(a), len(b)))
        for vectors in (self._listing_photo_means(keys), self._listing_text_vectors(keys)):
            rows = [i for i, k in enumerate(a) if k in vectors]
            cols = [j for j, k in enumerate(b) if k in vectors]
            if not rows or not cols:
                continue
            cosines = np.stack([vectors[a[i]] for i in rows]) @ np.stack([vectors[b[j]] for j in cols]).T
            total[np.ix_(rows, cols)] += cosines
            count[np.ix_(rows, cols)] += 1
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)

    def _listing_photo_means(self, keys: list[int]) -> dict[int, np.ndarray]:
        return {k: unit_rows(v.mean(0)) for k, v in self._photo_vectors(keys).items()}

    def _listing_text_vectors(self, keys: list[int]) -> dict[int, np.ndarray]:
        index = self.engine.text_index
        if index is None:
            return {}
        with self.engine.locked():
            present, vectors = index.reconstruct_present(np.array(keys, np.int64))
        return dict(zip(present.tolist(), unit_rows(vectors)))


    def _profile_candidates(self, profile: ServingProfile, k: int, filters: Filters) -> list[Candidate]:
        engine = self.engine
        engine.check_filters(filters)
        cands: dict[int, Candidate] = {}
        if profile.image_vec is not None:
            cands = engine._image_candidates(profile.image_vec[None], k, filters, profile.seen_keys)
        if profile.text_vec is not None and engine.text_index is not None:
            engine._merge_text(cands, profile.text_vec, k, engine.allowed_keys(filters), profile.seen_keys)
        return list(cands.values())


def query_mode(query: SearchQuery) -> str:
    """text, image or both: calibration differs by what the query gave."""
    if query.has_image and query.text:
        return "both"
    return "image" if query.has_image else "text"


def ranker_kind(ranker) -> str:
    return "lambdamart" if type(ranker).__name__ == "LambdaMartRanker" else "ordinal_logistic"
