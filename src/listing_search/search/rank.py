"""Ranking: candidates -> the ranker's features -> scores, calibrated relevance and an order.

The learned ranker scores every candidate's features (``search.features``); the calibration turns
the query's scores into P(same root category) per query mode; a history's profile, scored by the
same ranker as if it were the query, is blended in. Buying ads ("wanted", "cash for your ...":
``core.ads``) come after every sale ad. A listing holding a (nearly) identical photo to the query's
comes first among the rest whatever the ranker prefers. For a query of one to three words (a
buyer's), the typed words come first (``rank.word_tiers``): listings holding them together and in
order in the title, then listings holding them anywhere, then the rest (``related``), the ranker
ordering within each tier. Before ``tune-ranker`` has run, the mean of the query's channel cosines
orders the candidates (no relevance).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from listing_search.core.query import TEXT_SHORT, path_segments
from listing_search.core.text import content_words, match_terms, title_terms, title_words
from listing_search.index.catalog import CatalogView
from listing_search.models.bundle import ModelBundle
from listing_search.search.candidates import Retriever
from listing_search.search.features import candidate_features
from listing_search.search.personalise import Profile
from listing_search.search.types import IMAGE, TEXT, Candidates, Ranked, Understanding

# Photo cosine from which two photos are taken to show the same thing. Measured with the stand-in
# 1000-d model (bench/standin.py) on 2,000 catalogue photos: a copy resized to 300 px and re-saved
# at JPEG quality 70 keeps cosine >= 0.972 (p50 0.990); 1.9% of photos have another listing's
# photo at >= 0.98, nearly all byte-identical duplicates listed twice.
NEAR_DUPLICATE = 0.97
MAX_TIERED_TERMS = 3  # queries of up to this many words are a buyer's: the typed words come first
# A history leans a search by how much the query's category belief lies in the history's root, against
# the belief's peak (``relatedness``). Held-out seed 7 (evaluate's personal / personalisation): gated by
# the MiniLM cosine of words and history (0.2 .. 0.4) an unrelated history changed 0.22 of a one-word
# search's top 10 on average (5 at most) and history-leaned two-word searches scored nDCG 0.461; gated by
# this ratio, 0.04 (2 at most) and 0.493; the cosine and the ratio together 0 (0) and 0.456.
AGREE_BELOW, AGREE_FROM = 0.2, 0.5
# A history also leans toward its own category paths (``path_affinity``): a candidate in a path the
# history viewed gains ``PATH_LEAN`` x history_weight x the spread (std) of the candidates' scores x
# its affinity, and a listing holding a buyer's words in such a path (affinity >= ``PROMOTE``: half
# the history in its path) joins the first tier, the words in its title or not. Among the listings
# holding a buyer's words the path lean is not gated by ``relatedness`` (a history only chooses among
# listings the words already match: "doors" after wardrobes brings wardrobe doors up, "lawn mower"
# after sofas finds no sofa holding the words); elsewhere it is. Chosen on catalogue listings as the
# queries, not the held-out test (``scripts/tune_history_lean.py``, seed 11; docs/ranking.md): one-word
# lift in the history's path +0.076 with the vector lean alone, +0.092 / +0.131 with PATH_LEAN 1 / 4
# gated everywhere, +0.169 ungated among holders, +0.209 with PROMOTE 0.5; PATH_LEAN 8 or 16 little more.
PATH_LEAN = 4.0
PATH_POWER = 4.0  # affinity falls fast with the levels two paths do not share: siblings (3 of 4) 0.32
PROMOTE = 0.5
PHRASE, HELD, RELATED = 0, 1, 2  # the tiers, best first

@dataclass(frozen=True)
class Ranker:
    """Scores candidates with the bundle's ranker; a history leans the order by ``history_weight``."""

    models: ModelBundle
    retriever: Retriever
    history_weight: float
    word_tiers: bool = True

    def features(self, catalog: CatalogView, u: Understanding, cands: Candidates, held: np.ndarray | None = None,
                 phrase: np.ndarray | None = None) -> np.ndarray:
        """The ranker's features of each candidate, as it was fit on them."""
        rows = cands.rows
        words = content_words(u.words)
        titles = [title_words(catalog.title[r]) for r in rows] if words else [frozenset()] * len(rows)
        roots = catalog.root[rows]
        labels = self.models.labels_of(catalog.roots.values) if len(catalog.roots) else np.zeros(0, np.int64)
        return candidate_features(words, u.category_probs, u.has_text, u.has_image, dict(cands.scores), titles,
                                  labels[roots] if len(roots) else np.zeros(0, np.int64), roots,
                                  catalog.path[rows], held, phrase, len(u.terms))

    def rank(self, catalog: CatalogView, u: Understanding, cands: Candidates,
             profile: Profile | None = None, holding: np.ndarray | None = None, feed: bool = False) -> Ranked:
        """The candidates scored and ordered; ``profile`` leans them. For a ``feed`` the profile is the
        query itself (``u``), so only its category paths lean."""
        held = np.isin(cands.rows, holding) if holding is not None and len(holding) else np.zeros(len(cands), bool)
        phrase = title_phrase(catalog, u.terms, cands.rows, held)
        x = self.features(catalog, u, cands, held, phrase)
        models = self.models
        affinity = None
        if not models.fitted and (profile is None or profile.empty or feed):  # before tune-ranker: cosines
            score = hand_score(u, cands)
            relevance = same_path = None
        else:
            score = models.ranker.score(x) if len(cands) else np.zeros(0)
            relevance = models.relevance(score, calibration_mode(u))
            same_path = models.same_path(score, calibration_mode(u))
            personal = profile is not None and not profile.empty
            weight = self.history_weight * relatedness(u, profile) if personal else 0.0
            spread = float(np.std(score)) if len(score) > 1 else 0.0
            if weight > 0 and not feed:
                lean = models.ranker.score(self.features(catalog, profile_understanding(u, profile),
                                                         self.profile_scores(catalog, profile, cands)))
                score = (1.0 - weight) * score + weight * lean
            if personal and profile.path_prefs:
                pw = np.where(held & is_tiered(u), self.history_weight, weight)
                affinity = path_affinity(catalog, profile.path_prefs, cands.rows)
                score = score + pw * PATH_LEAN * spread * affinity
        tiers = word_tiers(u, held, phrase) if self.word_tiers else None
        if tiers is not None and affinity is not None:
            tiers = np.where(held & (affinity >= PROMOTE), PHRASE, tiers)
        score = np.asarray(score, np.float64)
        order = relevance_order(cands, score, tiers, catalog.buying[cands.rows])
        return Ranked(cands, x, score, relevance, order, held, tiers is not None, same_path)

    def profile_scores(self, catalog: CatalogView, profile: Profile, cands: Candidates) -> Candidates:
        """The candidates scored against a profile's vectors instead of the query's."""
        scores = {}
        if profile.text_vec is not None:
            scores[TEXT] = self.retriever.text_scores(profile.text_vec, cands)
        if profile.image_vec is not None:
            scores[IMAGE] = self.retriever.photo_scores(catalog, profile.image_vec[None], cands)
        return Candidates(cands.rows, cands.keys, scores)


def relatedness(u: Understanding, profile: Profile) -> float:
    """How much a history may lean this query, 0..1: by how much of the query's root-category belief
    lies where the history is, against the belief's own peak (none under ``AGREE_BELOW``, fully from
    ``AGREE_FROM``). A history of sofas leaves a search believed to be for garden tools alone, leans
    one for a corner sofa, and leans words that say little ("brand new": a flat belief) fully. Without
    words, or without a belief, the history leans fully."""
    if u.text_vec is None or profile.text_vec is None:
        return 1.0
    probs, prefs = u.category_probs, profile.category_prefs
    if probs is None or len(probs) != len(prefs):
        return 1.0
    probs = np.asarray(probs, np.float64)
    here = float(np.dot(probs, prefs / prefs.max()))  # ~ P(the query is in the history's root)
    ratio = here / max(float(probs.max()), 1e-9)
    return float(np.clip((ratio - AGREE_BELOW) / (AGREE_FROM - AGREE_BELOW), 0.0, 1.0))


def path_affinity(catalog: CatalogView, prefs: dict[str, float], rows: np.ndarray) -> np.ndarray:
    """How much of the history lies in each row's category path: its share of each history path, by the
    share of levels the two paths have in common (the same path 1; "/ Private" and "/ Trade" of one
    subcategory 3 of 4 levels), raised to ``PATH_POWER``."""
    history = [(path_segments(p), w) for p, w in prefs.items() if path_segments(p)]
    codes, inverse = np.unique(catalog.path[rows], return_inverse=True)
    per_code = np.zeros(len(codes))
    for i, code in enumerate(codes.tolist()):
        levels = path_segments(catalog.paths.values[code]) if code >= 0 else ()
        if not levels:
            continue  # no category: like nothing the history viewed
        for other, w in history:
            common = 0
            for a, b in zip(levels, other):
                if a != b:
                    break
                common += 1
            per_code[i] += w * (common / max(len(levels), len(other), 1)) ** PATH_POWER
    return per_code[inverse]


def profile_understanding(u: Understanding, profile: Profile) -> Understanding:
    """A profile as the query the ranker scores: its vectors and category preferences, no words."""
    return Understanding(u.query, text_vec=profile.text_vec,
                         image_vecs=None if profile.image_vec is None else profile.image_vec[None],
                         category_probs=profile.category_prefs)


def hand_score(u: Understanding, cands: Candidates) -> np.ndarray:
    """Before ``tune-ranker``: the mean of the photo and text cosines of the channels the query used."""
    used = [c for c, on in ((IMAGE, u.has_image), (TEXT, u.has_text)) if on] or [IMAGE]
    return np.mean([cands.score(c) for c in used], axis=0) if len(cands) else np.zeros(0)


def is_tiered(u: Understanding) -> bool:
    """Whether the typed words come first: a query of one to ``MAX_TIERED_TERMS`` words."""
    return bool(u.words) and 1 <= len(u.terms) <= MAX_TIERED_TERMS


def calibration_mode(u: Understanding) -> str | None:
    """The query mode relevance is calibrated for: a buyer's words alone have a mode of their own."""
    return TEXT_SHORT if is_tiered(u) and not u.has_image else u.mode


def word_tiers(u: Understanding, held: np.ndarray, phrase: np.ndarray) -> np.ndarray | None:
    """Each candidate's tier for a buyer's query (None for other queries): the words together and in
    order in the title, then the words anywhere, then the rest."""
    if not is_tiered(u):
        return None
    return np.where(phrase, PHRASE, np.where(held, HELD, RELATED))


def title_phrase(catalog: CatalogView, terms: tuple[str, ...], rows: np.ndarray,
                 among: np.ndarray | None = None) -> np.ndarray:
    """Whether each listing's title has ``terms`` side by side, in order (function words skipped);
    only the rows ``among`` marks are read (the holders of the words: no other title can have them)."""
    out = np.zeros(len(rows), bool)
    if not terms:
        return out
    n = len(terms)
    at = np.arange(len(rows)) if among is None else np.flatnonzero(among)
    for i, r in zip(at.tolist(), np.asarray(rows)[at].tolist()):
        title = title_terms(catalog.title[r])
        out[i] = terms[0] in title if n == 1 else any(
            tuple(title[j:j + n]) == terms for j in range(len(title) - n + 1))
    return out


def relevance_order(cands: Candidates, score: np.ndarray, tiers: np.ndarray | None = None,
                    buying: np.ndarray | None = None) -> np.ndarray:
    """Candidate positions best first: sale ads before buying ads, then near-identical photos (closest
    first), then by tier (a buyer's query), then by score; ties by key."""
    if not len(cands):
        return np.zeros(0, np.int64)
    image = cands.score(IMAGE)
    dupe = image >= NEAR_DUPLICATE
    tier = np.zeros(len(cands), np.int64) if tiers is None else tiers
    wanted = np.zeros(len(cands), bool) if buying is None else np.asarray(buying, bool)
    return np.lexsort((cands.keys, -score, tier, np.where(dupe, -image, 0.0), ~dupe, wanted))
