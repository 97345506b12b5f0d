"""The last stage: catalogue rows -> results a buyer sees, and what the engine tells about the query."""

from __future__ import annotations

import numpy as np

from listing_search.core.near import Near
from listing_search.index.catalog import CatalogView
from listing_search.models.bundle import ModelBundle
from listing_search.search.candidates import Retriever
from listing_search.search.highlight import highlight
from listing_search.search.types import CHANNELS, Hit, Ranked, Understanding

SHOWN_CATEGORIES = 3
# ``match`` from P(same full category path): what a buyer wants is the same kind of thing, so "good
# match" needs the fine category, not only the department; a buyer's words must also be held
# (a listing without them is "related" whatever its score). Thresholds: docs/ranking.md.
GREAT_PATH, GOOD_PATH = 0.8, 0.5
# ... and from P(same root category) alone, for a relevance.json fit before the path calibrator
GREAT_ROOT, GOOD_ROOT, RELATED_ROOT = 0.85, 0.6, 0.35
CLOSE = ("great match", "good match")


def match_label(relevance: float | None, same_path: float | None, related: bool = False) -> str | None:
    """The label a buyer reads for a result: great match, good match, related or weak match (None
    before calibration)."""
    if relevance is None:
        return None
    if related:  # the words not all held, or a search with no match: never better than related
        return "related"
    if same_path is not None:
        if same_path >= GREAT_PATH:
            return "great match"
        if same_path >= GOOD_PATH:
            return "good match"
    elif relevance >= GOOD_ROOT:
        return "great match" if relevance >= GREAT_ROOT else "good match"
    return "related" if relevance >= RELATED_ROOT else "weak match"


def hits(catalog: CatalogView, rows: np.ndarray, ranked: Ranked | None, u: Understanding | None,
         retriever: Retriever, position: dict[int, int] | None = None, all_related: bool = False,
         others: dict[int, np.ndarray] | None = None, near: Near | None = None) -> list[Hit]:
    """One result per row: the listing, its score and channel scores (when ranked), the photos that
    matched a photo query best first, and its relevance; ``all_related`` (no match): each only related;
    ``others``: a representative's other copies (``search.collapse``), named in ``duplicates``;
    ``near``: its distance from that point."""
    out = []
    order_of, others = position or {}, others or {}
    rows = np.asarray(rows, np.int64)
    km = _distances(catalog, rows, near)
    photos = retriever.matched_photos(catalog, u.image_vecs, rows) if u is not None and u.has_image else {}
    for row, distance in zip(rows.tolist(), km):
        listing = catalog.listing(row)
        at = order_of.get(row) if ranked is not None else None
        marks = highlight(listing.title, listing.description, u.terms) if u is not None else None
        copies = tuple(catalog.listing_id[r] for r in others.get(row, ()))
        buying = bool(catalog.buying[row])
        if at is None:
            out.append(Hit(listing, 0.0, {}, [], highlight=marks, distance_km=distance, duplicates=copies,
                           buying=buying))
            continue
        i = int(ranked.order[at])
        scores = {c: float(ranked.candidates.scores[c][i]) for c in CHANNELS if c in ranked.candidates.scores}
        matched = []
        if u is not None and u.has_image:
            names = dict(zip(catalog.vector_ids[row], catalog.image_ids[row]))
            matched = [names[v] for v in photos.get(row, ()) if v in names]
        relevance, same_path, related = labelled(ranked, i, all_related)
        out.append(Hit(listing, float(ranked.score[i]), scores, matched, relevance, related, marks, same_path,
                       match_label(relevance, same_path, related), distance, duplicates=copies, buying=buying))
    return out


def _distances(catalog: CatalogView, rows: np.ndarray, near: Near | None) -> list[float | None]:
    if near is None:
        return [None] * len(rows)
    return [None if np.isnan(d) else float(d) for d in catalog.distance_to(rows, near).tolist()]


def labelled(ranked: Ranked, i: int, all_related: bool = False) -> tuple[float | None, float | None, bool]:
    """Candidate ``i``'s relevance, P(same path) and whether it is only related (a buyer's words not
    held, or a search with no match)."""
    relevance = None if ranked.relevance is None else float(ranked.relevance[i])
    same_path = None if ranked.same_path is None else float(ranked.same_path[i])
    related = all_related or bool(ranked.tiered and ranked.held is not None and not ranked.held[i])
    return relevance, same_path, related


def best_match(ranked: Ranked, rows: np.ndarray, position: dict[int, int], no_match: bool) -> str | None:
    """The label of M's best listing (its first in relevance order): a photo search whose best is
    "related" or "weak match" found nothing close, and says so."""
    if not len(rows) or ranked.relevance is None:
        return None
    at = position.get(int(rows[0]))
    return None if at is None else match_label(*labelled(ranked, int(ranked.order[at]), no_match))


def shown_categories(u: Understanding, models: ModelBundle, vision_categories: tuple[str, ...]
                     ) -> list[tuple[str, float]]:
    """For a photo search: its likeliest root categories, with the probability shown (tempered per mode)."""
    if not u.has_image:
        return []
    probs, names = u.shown_belief, list(models.categories)
    if probs is not None and models.predictor is not None:
        probs = models.predictor.calibrated(probs, u.mode)
    if probs is None:
        probs, names = u.vision_probs, list(vision_categories or models.categories)
    if probs is None or not names:
        return []
    order = np.argsort(-np.asarray(probs))[:SHOWN_CATEGORIES]
    return [(names[i], float(probs[i])) for i in order if i < len(names)]
