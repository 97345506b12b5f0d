"""One search path, four front doors.

Every door runs the same stages: **understand** the query (``search.understand``) -> **retrieve**
candidates (``search.candidates``) -> **rank** them on the ranker's features (``search.rank``) ->
the **match set** M (``search.match``) -> **collapse** near-duplicate listings into one result each
(``search.collapse``) -> **page** the results (``search.paging``) -> **present** the hits
(``search.present``). Each stage takes immutable inputs and returns its own type
(``search.types``). A search reads one catalogue view throughout and nothing but memory.

* :meth:`SearchPipeline.search`: words and/or a photo, filters, a sort, a page, a history;
* :meth:`SearchPipeline.browse`: filters alone (M = every listing passing them);
* :meth:`SearchPipeline.similar`: a listing's own photos as the query;
* :meth:`SearchPipeline.recommend`: a buyer's history as the query (or leaning a query).

``tune-ranker`` fits on :meth:`SearchPipeline.scored` (the stages up to the ranker's features) and
``evaluate`` measures through the doors, so what is fit and measured is what buyers get.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from listing_search.core.near import Near, population
from listing_search.core.query import DISTANCE, RADIUS, RELEVANCE, Filters, HistoryEvent, Page, Query
from listing_search.errors import BadNear, UnknownCategory
from listing_search.index.catalog import NONE, CatalogView
from listing_search.index.live import LiveIndexes
from listing_search.models.bundle import ModelBundle
from listing_search.search import present
from listing_search.search.candidates import Allowed, Retriever
from listing_search.search.collapse import Collapsed, collapse
from listing_search.search.facets import Facets, buying_facet, category_facet, distance_facet, price_facet
from listing_search.search.match import alerting_rows, holding_words, match_set
from listing_search.search.asks import IN_MIN_POPULATION, read_asks
from listing_search.search.nearby import find_near, resolve_near, suggest_places
from listing_search.search.paging import cut_page, stored_order
from listing_search.search.personalise import Personaliser, Profile
from listing_search.search.rank import Ranker
from listing_search.search.types import Candidates, Hit, Ranked, Result, Understanding
from listing_search.search.understand import Encoders, Understander
from listing_search.settings import RankSettings


@dataclass(frozen=True)
class Scored:
    """The stages up to the ranker, for one query: what fitting and explaining read."""

    understanding: Understanding
    candidates: Candidates
    ranked: Ranked
    catalog: CatalogView


@dataclass(frozen=True)
class Feed:
    """A recommendation feed: hits, and for each the history listing it is most like."""

    hits: list[Hit]
    used: int
    unknown_ids: tuple[str, ...]
    notes: list[str] = field(default_factory=list)
    because: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # hit id -> (id, title, event)


class SearchPipeline:
    """The stages over one replica's live indexes, encoders and fitted models; thread-safe."""

    def __init__(self, live: LiveIndexes, encoders: Encoders, models: ModelBundle, settings: RankSettings,
                 categories: list[str]) -> None:
        self.live, self.encoders, self.models, self.settings = live, encoders, models, settings
        self.categories = list(categories)
        self.retriever = Retriever(live, settings)
        self.understander = Understander(live, self.retriever, encoders, models, settings.holder_vote_weight)
        self.ranker = Ranker(models, self.retriever, settings.history_weight, settings.word_tiers)
        self.personaliser = Personaliser(live, models, settings.half_life_days)

    def with_models(self, models: ModelBundle) -> "SearchPipeline":
        """The same indexes and encoders ranking with other models (fitting swaps them per query)."""
        return SearchPipeline(self.live, self.encoders, models, self.settings, self.categories)

    # ------------------------------------------------------------- doors
    def search(self, query: Query) -> Result:
        """A page of M's results for words and/or a photo (filters alone browse); ``total`` counts the
        results (a group of near-duplicate listings is one)."""
        query, read = self.read_words(query)
        self.check_query(query)
        if query.text is None and not query.has_image:
            return replace(self.browse(query), read=read)
        catalog = self.live.catalog
        u = self.understander.understand(query, catalog, show=True)
        scored, holding = self._ranked(query, u, catalog)
        ranked = scored.ranked
        matched = match_set(u, ranked, holding, self.models, catalog)
        near = query.filters.near
        results = collapse(catalog, matched.rows, None if query.sort == RELEVANCE else query.sort, near)
        page = cut_page(catalog, results.rows, results.rows, query, query.sort)
        own = catalog.group_of(matched.rows)  # M's group labels, counted by each facet its filters leave as it is

        def under_others(*names: str) -> tuple[np.ndarray, np.ndarray | None]:
            rows = self._matched(query, u, catalog, matched, *names)
            return rows, (own if rows is matched.rows else None)

        facets = Facets(category_facet(catalog, *under_others("category")),
                        price_facet(catalog, *under_others("min_price", "max_price")),
                        buying_facet(catalog, *under_others("buying")),
                        distance_facet(catalog, np.union1d(matched.rows, self._matched(query, u, catalog, matched,
                                                                                      RADIUS)), near)
                        if near is not None else [])
        return Result(present.hits(catalog, page.rows, ranked, u, self.retriever, matched.position,
                                   matched.no_match, results.others, near),
                      results.total, page.next_cursor, u.words, u.corrections,
                      present.shown_categories(u, self.models, self.encoders.vision_categories),
                      matched.no_match, u.unknown_words, ranked.best_relevance, facets,
                      present.best_match(ranked, matched.rows, matched.position, matched.no_match),
                      query.filters, read)

    def _matched(self, query: Query, u: Understanding, catalog: CatalogView, matched, *names: str) -> np.ndarray:
        """M's rows for the search without the filters ``names`` (the search's own M when they are unset)."""
        if not any(query.filters.sets(n) for n in names):
            return matched.rows
        other = replace(query, filters=_without(query.filters, names))
        scored, holding = self._ranked(other, u, catalog)
        return match_set(u, scored.ranked, holding, self.models, catalog).rows

    def browse(self, query: Query) -> Result:
        """Every listing passing the filters (M), one result per group of near-duplicates, in
        ``query.sort`` order (relevance: the nearest first near a point, else the newest)."""
        self.check_query(query)
        catalog = self.live.catalog
        allowed = Allowed.of(catalog, query.filters, query.exclude)
        rows = allowed.rows()
        near = query.filters.near
        results = collapse(catalog, rows, stored_order(query, query.sort), near)
        page = cut_page(catalog, None, results.rows, query, query.sort)

        def under_others(*names: str) -> np.ndarray:
            if not any(query.filters.sets(n) for n in names):
                return rows
            return Allowed.of(catalog, _without(query.filters, names), query.exclude).rows()

        facets = Facets(category_facet(catalog, under_others("category")),
                        price_facet(catalog, under_others("min_price", "max_price")),
                        buying_facet(catalog, under_others("buying")),
                        distance_facet(catalog, under_others(RADIUS), near) if near is not None else [])
        return Result(present.hits(catalog, page.rows, None, None, self.retriever, others=results.others, near=near),
                      results.total, page.next_cursor, facets=facets, filters=query.filters)

    def similar(self, listing_id: str, k: int, filters: Filters = Filters()) -> list[Hit] | None:
        """Listings whose photos look like this one's, best first; None when the listing is unknown."""
        catalog = self.live.catalog
        row = catalog.row_of_id(listing_id)
        if row == NONE:
            return None
        vids = np.array(catalog.vector_ids[row], np.int64)
        with self.live.lock:
            _, vectors = self.live.image.reconstruct_present(vids)
        if not len(vectors):
            return []
        query = Query(image_vecs=vectors, filters=filters, page=Page(k), exclude=frozenset({int(catalog.key[row])}))
        return self._top(query, k, show=False)

    def recommend(self, history: tuple[HistoryEvent, ...], k: int, text: str | None = None,
                  image: bytes | None = None, filters: Filters = Filters()) -> Feed:
        """A feed favouring the history and never holding a listing it names; a query is blended in."""
        self.check_filters(filters)
        catalog = self.live.catalog
        profile = self.personaliser.profile(catalog, history)
        notes = [f"{len(profile.unknown_ids)} history listing id(s) not in the catalogue were ignored"] \
            if profile.unknown_ids else []
        if text or image:
            query = Query(text=text, image=image, filters=filters, page=Page(k), history=history,
                          exclude=profile.seen_keys)
            found = self.search(query).hits
        elif profile.empty:
            return Feed([], 0, profile.unknown_ids, notes + ["no usable history: nothing to recommend"])
        else:
            found = self._feed(catalog, profile, k, filters)
        because = self.personaliser.reasons(catalog, profile, [h.listing.key for h in found])
        named = {h.listing.listing_id: _reason(catalog, because[h.listing.key]) for h in found
                 if h.listing.key in because}
        return Feed(found, profile.used, profile.unknown_ids, notes, named)

    def alerting(self, query: Query, catalog: CatalogView) -> np.ndarray:
        """Rows of ``catalog`` a saved search alerts on: its match set less the related tail
        (``search.match.alerting_rows``); for filters alone, every listing passing them. The same
        stages as :meth:`search`, on the view the caller holds; nothing is presented or paged. Per
        listing, not per result: near-duplicates are not collapsed here, so a new copy of an ad already
        alerted on alerts again (docs/alerts.md)."""
        if query.text is None and not query.has_image:
            return Allowed.of(catalog, query.filters, query.exclude).rows()
        u = self.understander.understand(query, catalog, show=False)
        scored, holding = self._ranked(query, u, catalog)
        return alerting_rows(u, scored.ranked, holding, self.models)

    # ------------------------------------------------------------- stages
    def understand(self, query: Query, show: bool = True) -> Understanding:
        return self.understander.understand(query, self.live.catalog, show)

    def scored(self, query: Query, show: bool = False) -> Scored:
        """understand -> retrieve -> rank, without the match set or a page (``tune-ranker`` fits on it)."""
        return self._scored(query, show)[0]

    def _scored(self, query: Query, show: bool) -> tuple[Scored, np.ndarray]:
        catalog = self.live.catalog
        return self._ranked(query, self.understander.understand(query, catalog, show), catalog)

    def _ranked(self, query: Query, u: Understanding, catalog: CatalogView) -> tuple[Scored, np.ndarray]:
        """retrieve -> rank for an understood query (the understanding never depends on filters)."""
        allowed = Allowed.of(catalog, query.filters, query.exclude)
        holding = np.zeros(0, np.int64) if u.unknown_words else holding_words(allowed, u.holders)
        cands = self.retriever.retrieve(u, allowed, holding[:self.settings.max_scored])
        profile = self.personaliser.profile(catalog, query.history) if query.history else None
        ranked = self.ranker.rank(catalog, u, cands, profile, holding)
        return Scored(u, cands, ranked, catalog), holding

    def _top(self, query: Query, k: int, show: bool) -> list[Hit]:
        """The ``k`` best ranked candidates (similar listings: no match set, no paging)."""
        scored = self.scored(query, show)
        ranked, catalog = scored.ranked, scored.catalog
        results = _best(catalog, ranked, k)
        position = {int(ranked.candidates.rows[i]): at for at, i in enumerate(ranked.order)}
        return present.hits(catalog, results.rows, ranked, scored.understanding, self.retriever, position,
                            others=results.others, near=query.filters.near)

    def _feed(self, catalog: CatalogView, profile: Profile, k: int, filters: Filters) -> list[Hit]:
        """A history alone as the query: candidates near its vectors, ranked as if it had asked."""
        query = Query(filters=filters, page=Page(k), exclude=profile.seen_keys)
        u = Understanding(query, text_vec=profile.text_vec,
                          image_vecs=None if profile.image_vec is None else profile.image_vec[None],
                          category_probs=profile.category_prefs)
        allowed = Allowed.of(catalog, filters, profile.seen_keys)
        cands = self.retriever.retrieve(u, allowed, np.zeros(0, np.int64))
        ranked = self.ranker.rank(catalog, u, cands, profile, feed=True)
        results = _best(catalog, ranked, k)
        position = {int(ranked.candidates.rows[i]): at for at, i in enumerate(ranked.order)}
        return present.hits(catalog, results.rows, ranked, None, self.retriever, position, others=results.others,
                            near=filters.near)

    def check_query(self, query: Query) -> None:
        """The filters (below), and a sort by distance only near a point; 422 otherwise."""
        self.check_filters(query.filters)
        if query.sort == DISTANCE and query.filters.near is None:
            raise BadNear("sort: distance needs near (a town, or a position as 'lat,lon')")

    def resolve_near(self, text: str, within_km: float | None = None) -> Near:
        """``near`` as a point and a radius (``search.nearby``); ``BadNear`` with close names when unknown."""
        return resolve_near(self.live.catalog, text, within_km)

    def read_words(self, query: Query) -> tuple[Query, tuple]:
        """The query with a price or place typed among its words made filters (``search.asks``), unless
        ``read_words`` is off or the buyer set that filter (a price; ``near`` or ``location``), and what was read."""
        f = query.filters
        if not query.read_words or not query.text:
            return query, ()
        catalog, found = self.live.catalog, {}

        def place(name: str, strict: bool) -> str | None:  # kept, so the place is resolved once
            if strict and population(name) < IN_MIN_POPULATION:
                return None
            found[name] = find_near(catalog, name)
            return None if found[name] is None else found[name].name

        asks = read_asks(query.text, place, prices=f.min_price is None and f.max_price is None,
                         places=f.near is None and f.location is None)
        if not asks.read:
            return query, ()
        near = next((n for n in found.values() if n is not None and n.name == asks.place), f.near)
        filters = replace(f, min_price=f.min_price if asks.price_min is None else asks.price_min,
                          max_price=f.max_price if asks.price_max is None else asks.price_max, near=near)
        return replace(query, text=asks.words, filters=filters), asks.read

    def places(self, prefix: str, k: int) -> list[tuple[str, int]]:
        """Places starting with ``prefix`` to search near, with how many listings each has."""
        return suggest_places(self.live.catalog, prefix, k)

    def check_filters(self, filters: Filters) -> None:
        """A category filter names a root category or a path prefix some listing has; 422 otherwise."""
        if filters.category is not None and not (filters.category in self.categories
                                                 or self.live.catalog.knows_category(filters.category)):
            raise UnknownCategory(f"unknown category {filters.category!r}: give a root category ({self.categories}) "
                                  "or a category path's first segments, such as 'Home & Garden / Sofas'")


def _best(catalog: CatalogView, ranked: Ranked, k: int) -> Collapsed:
    """The ``k`` best ranked results, one per group of near-duplicates."""
    results = collapse(catalog, ranked.candidates.rows[ranked.order])
    return Collapsed(results.rows[:k], results.others)


def _without(filters: Filters, names: tuple[str, ...]) -> Filters:
    for name in names:
        filters = filters.without(name)
    return filters


def _reason(catalog: CatalogView, found: tuple[int, str]) -> tuple[str, str, str]:
    row, event = found
    return catalog.listing_id[row], catalog.title[row], event
