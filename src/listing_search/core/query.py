"""What a buyer asks: immutable request types every stage reads and none writes into.

A :class:`Query` is one search: words and/or a photo (or vectors a caller already holds), filters,
an order, a page, a history. The four front doors of ``search.pipeline`` (search, browse, similar,
recommend) all start from one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from listing_search.core.near import Near

# Query modes: what the query gave. Calibration, the no-match threshold and the shown category's
# temperature are kept per mode; the names are the keys of relevance.json and category_predictor.json.
TEXT, IMAGE, BOTH = "text", "image", "both"
MODES = (TEXT, IMAGE, BOTH)
# Relevance is calibrated (and "no match" judged) apart for a buyer's one to three words: their
# scores mean something else than a whole title's. A file fit before it falls back to the text mode.
TEXT_SHORT = "text_short"
CALIBRATION_MODES = (*MODES, TEXT_SHORT)
MODE_FALLBACK = {TEXT_SHORT: TEXT}

RELEVANCE, NEWEST, PRICE_ASC, PRICE_DESC = "relevance", "newest", "price_asc", "price_desc"
DISTANCE = "distance"  # nearest first: needs ``Filters.near``
SORTS = (RELEVANCE, NEWEST, PRICE_ASC, PRICE_DESC, DISTANCE)
RADIUS = "radius"  # ``Filters.without(RADIUS)``: the near point kept, its radius dropped (distance facets)

# History events a buyer leaves, and how much each counts in a profile (search.personalise).
EVENTS = ("viewed", "searched", "liked")


def mode_of(has_text: bool, has_image: bool) -> str | None:
    """text, image or both; None for a query with neither (browsing)."""
    if has_text and has_image:
        return BOTH
    return TEXT if has_text else IMAGE if has_image else None


@dataclass(frozen=True)
class Filters:
    """Structured filters of a search; ``None`` means no constraint."""

    category: str | None = None  # a category path prefix of whole segments: a root, or "Root / Sub", ...
    min_price: float | None = None
    max_price: float | None = None
    location: str | None = None  # a case-insensitive substring of the listing's location
    buying: bool | None = None  # False: leave buying ads ("wanted", "we buy ...") out; True: only them
    near: Near | None = None  # within ``near.within_km`` of a point (listings without coordinates fail it)

    def active(self) -> bool:
        return any(v is not None for v in (self.category, self.min_price, self.max_price, self.location,
                                           self.buying, self.near))

    def sets(self, name: str) -> bool:
        """Whether the filter ``name`` (a field, or ``RADIUS``) narrows the search."""
        if name == RADIUS:
            return self.near is not None and self.near.within_km is not None
        return getattr(self, name) is not None

    def without(self, name: str) -> "Filters":
        """These filters less one (facets count each under the others); ``RADIUS`` keeps the point."""
        if name == RADIUS:
            return self if self.near is None else replace(self, near=self.near.unbounded())
        return replace(self, **{name: None})

    def admits(self, price: float | None, category_path: str, location: str) -> bool:
        """Whether one listing passes every filter, as ``index.catalog.CatalogView.allowed`` decides for
        all of them at once (a saved search's alerts check one new listing)."""
        if self.category is not None:
            want = path_segments(self.category)
            if not want or path_segments(category_path)[:len(want)] != want:
                return False
        if (self.min_price is not None or self.max_price is not None) and (price is None or price != price):
            return False  # no price (or NaN) fails every price comparison
        if self.min_price is not None and not price >= self.min_price:
            return False
        if self.max_price is not None and not price <= self.max_price:
            return False
        return not self.location or self.location.casefold() in (location or "").casefold()


def path_segments(path: str | None) -> tuple[str, ...]:
    """A category path's segments as compared: trimmed, case folded ("Home & Garden / Sofas")."""
    return tuple(s.strip().casefold() for s in (path or "").split("/") if s.strip())


@dataclass(frozen=True)
class HistoryEvent:
    listing_id: str
    event: str = "viewed"
    timestamp: float | None = None  # seconds since the epoch


@dataclass(frozen=True)
class Page:
    """Which slice of the ordered match set: ``k`` results after ``offset`` of them, or after an
    opaque ``cursor`` a previous answer gave (``search.paging``)."""

    k: int = 10
    offset: int = 0
    cursor: str | None = None


@dataclass(frozen=True, eq=False)
class Query:
    """One search. ``image`` is an uploaded photo's bytes; ``image_vecs`` are photo vectors a caller
    already holds (a listing's own photos for "similar", a stored photo when fitting), searched
    together: a listing's photo score is its best against any of them. ``exclude`` holds listing
    keys never to return (a feed leaves out what the buyer has seen; fitting leaves out a split)."""

    text: str | None = None
    image: bytes | None = None
    image_vecs: np.ndarray | None = None
    filters: Filters = field(default_factory=Filters)
    sort: str = RELEVANCE
    page: Page = field(default_factory=Page)
    history: tuple[HistoryEvent, ...] = ()
    exclude: frozenset[int] = frozenset()
    spelling: bool = True
    read_words: bool = True  # a price or a place typed among the words becomes a filter (search.asks)

    @property
    def has_image(self) -> bool:
        return self.image is not None or self.image_vecs is not None

    @property
    def mode(self) -> str | None:
        return mode_of(bool(self.text), self.has_image)
