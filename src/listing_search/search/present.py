"""The last stage: catalogue rows -> results a buyer sees, and what the engine tells about the query."""

from __future__ import annotations

import numpy as np

from listing_search.index.catalog import CatalogView
from listing_search.models.bundle import ModelBundle
from listing_search.search.candidates import Retriever
from listing_search.search.highlight import highlight
from listing_search.search.types import CHANNELS, Hit, Ranked, Understanding

SHOWN_CATEGORIES = 3


def hits(catalog: CatalogView, rows: np.ndarray, ranked: Ranked | None, u: Understanding | None,
         retriever: Retriever, position: dict[int, int] | None = None, all_related: bool = False,
         others: dict[int, np.ndarray] | None = None) -> list[Hit]:
    """One result per row: the listing, its score and channel scores (when ranked), the photos that
    matched a photo query best first, and its relevance; ``all_related`` (no match): each only related;
    ``others``: a representative's other copies (``search.collapse``), named in ``duplicates``."""
    out = []
    order_of, others = position or {}, others or {}
    for row in np.asarray(rows, np.int64).tolist():
        listing = catalog.listing(row)
        at = order_of.get(row) if ranked is not None else None
        marks = highlight(listing.title, listing.description, u.terms) if u is not None else None
        copies = tuple(catalog.listing_id[r] for r in others.get(row, ()))
        buying = bool(catalog.buying[row])
        if at is None:
            out.append(Hit(listing, 0.0, {}, [], highlight=marks, duplicates=copies, buying=buying))
            continue
        i = int(ranked.order[at])
        scores = {c: float(ranked.candidates.scores[c][i]) for c in CHANNELS if c in ranked.candidates.scores}
        matched = []
        if u is not None and u.has_image:
            names = dict(zip(catalog.vector_ids[row], catalog.image_ids[row]))
            matched = [names[v] for v in retriever.matched_photos(catalog, u.image_vecs, row) if v in names]
        relevance = None if ranked.relevance is None else float(ranked.relevance[i])
        related = all_related or bool(ranked.tiered and ranked.held is not None and not ranked.held[i])
        out.append(Hit(listing, float(ranked.score[i]), scores, matched, relevance, related, marks, copies, buying))
    return out


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
