"""Public response shapes of the API, separate from the engine's internal records."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field
from starlette.responses import Response

from listing_search.core.near import COORDINATES, Near
from listing_search.search.types import Hit
from listing_search.serve.privacy import shown_coordinate, shown_km
from listing_search.serve.validate import MAX_HISTORY_EVENTS, Text, Timestamp
from listing_search.store.models import Listing


class ErrorOut(BaseModel):
    detail: str = Field(description="Why the request was refused.", examples=["k must be between 1 and 100"])


class PhotoOut(BaseModel):
    image_id: str
    url: str = Field(description="GET this to fetch the photo (image/jpeg).", examples=["/v1/images/3f2a..."])


class ListingOut(BaseModel):
    id: str = Field(examples=["243809c0-9cfc-4486-ad12-3b7a16605ba9"])
    title: str = Field(examples=["Mirror wall art"])
    description: str = ""
    price: float | None = Field(None, examples=[5.0])
    location: str = Field("", examples=["Wokingham, Berkshire"])
    category: str = Field("", description="Root category.", examples=["Home & Garden"])
    category_path: str = Field("", examples=["Home & Garden / Dining, Living Room Furniture / Mirrors"])
    posted_at: float | None = Field(None, description="When it was posted, seconds since the epoch (`newest` sorts by it).",
                                    examples=[1644192000.0])
    photos: list[PhotoOut] = []
    distance_km: float | None = Field(None, ge=0, description=(
        "Great-circle km from `near` to where the listing is placed (its town, or its area's principal "
        "settlement), to 0.1 km; null without `near`, or when the listing has no coordinates."), examples=[12.3])

    @classmethod
    def of(cls, listing: Listing, distance_km: float | None = None) -> "ListingOut":
        return cls(**listing_fields(listing, distance_km))


class SnippetOut(BaseModel):
    text: str = Field(description="A short piece of the description around the first word that matched.")
    spans: list[tuple[int, int]] = Field(default_factory=list, description="[start, end) in UTF-16 code units.")


class HighlightOut(BaseModel):
    title: list[tuple[int, int]] = Field(default_factory=list, description=(
        "[start, end) of the title's words that hold the query's words (plurals folded, corrections included), "
        "in UTF-16 code units (what JavaScript strings index)."))
    snippet: SnippetOut


class DuplicatesOut(BaseModel):
    count: int = Field(description="How many other listings are copies of this ad in the match set.", examples=[2])
    listing_ids: list[str] = Field(description="Their ids, in the answer's order (open them as listings).")


class SearchHitOut(ListingOut):
    score: float = Field(description="The ranker's score: orders results within one answer only.")
    relevance: float | None = Field(None, ge=0, le=1, description=(
        "Calibrated probability that this listing is in the category you searched for (same root "
        "category), comparable across searches; null before `tune-ranker` has calibrated the ranker."))
    same_category: float | None = Field(None, ge=0, le=1, description=(
        "Calibrated probability that this listing is the same kind of thing you searched for (same full "
        "category path, e.g. Sofas rather than anything in Home & Garden); null before calibration."))
    match: str | None = Field(None, description=(
        "What the result is to a buyer: \"great match\" / \"good match\" (same full category likely: "
        "`same_category` >= 0.8 / 0.5, and for words, every word held), \"related\" (same department "
        "likely, or the words not all held, or a search with no match), \"weak match\"."))
    scores: dict[str, float] = Field(default_factory=dict, description=(
        "Per-channel scores: image and text cosine, lexical BM25."))
    matched_photos: list[PhotoOut] = Field(default_factory=list, description="Photos that matched, best first.")
    highlight: HighlightOut | None = Field(None, description="Why it matched: the words held (a search with words).")
    duplicates: DuplicatesOut | None = Field(None, description=(
        "Other listings of the same ad (a near-identical photo, or a near-identical title from one place at one "
        "price) that this result stands for: one result, counted once in `total`. Null when there are none."))
    buying: bool = Field(False, description=(
        "A buying ad (\"wanted\", \"cash for your ...\"): someone who wants to buy, ranked after sale ads."))

    @classmethod
    def of_hit(cls, hit: Hit) -> "SearchHitOut":
        return cls(**hit_fields(hit))


def hit_fields(hit: Hit) -> dict:
    """A result's fields as ``SearchHitOut`` (and so ``RecommendHitOut``) answers them: validated once,
    by the model built from them."""
    marks = hit.highlight
    return dict(**listing_fields(hit.listing, hit.distance_km), score=round(hit.score, 6),
                relevance=None if hit.relevance is None else round(min(1.0, max(0.0, hit.relevance)), 4),
                same_category=None if hit.same_path is None else round(min(1.0, max(0.0, hit.same_path)), 4),
                match=hit.match, scores={k: round(v, 6) for k, v in hit.scores.items()},
                matched_photos=[photo_out(i) for i in hit.matched_image_ids],
                highlight=None if marks is None else HighlightOut(
                    title=marks.title, snippet=SnippetOut(text=marks.snippet_text, spans=marks.snippet_spans)),
                duplicates=DuplicatesOut(count=len(hit.duplicates), listing_ids=list(hit.duplicates))
                if hit.duplicates else None, buying=hit.buying)


class Correction(BaseModel):
    typed: str
    searched: str


class CategoryGuess(BaseModel):
    category: str
    probability: float


class CategoryCount(BaseModel):
    value: str = Field(description="A category path prefix the `category` filter accepts.",
                       examples=["Home & Garden / Dining, Living Room Furniture"])
    count: int


class CategoryFacet(CategoryCount):
    children: list[CategoryCount] = Field(default_factory=list, description="The next level of category path.")


class PriceBand(BaseModel):
    min: float = Field(description="Pounds, included.")
    max: float | None = Field(None, description="Pounds, not included; null for the last band.")
    count: int


class BuyingCount(BaseModel):
    value: bool = Field(description="The `buying` filter's value: false for sale ads, true for buying ads.")
    count: int


class DistanceBand(BaseModel):
    max_miles: float = Field(description="Within this many miles (included).", examples=[10])
    max_km: float = Field(description="The same in km.", examples=[16.093])
    count: int


class NearOut(BaseModel):
    """Where a search near a place searched from."""

    name: str = Field(description="The place `near` resolved to (a gazetteer town, an area's principal settlement "
                      "or a catalogue location), or the position as given.", examples=["Leeds"])
    lat: float = Field(description="To 0.01° (about 1 km): no answer holds an exact position.", examples=[53.8])
    lon: float = Field(description="To 0.01° (about 1 km).", examples=[-1.55])
    precision: str = Field(description="town, area (the area's principal settlement), area_centroid (the mean "
                           "of its listings), or coordinates (a 'lat,lon' given).", examples=["town"])
    within_km: float = Field(description="The radius searched.", examples=[40.0])

    @classmethod
    def of(cls, near: Near | None) -> "NearOut | None":
        if near is None:
            return None
        lat, lon = shown_coordinate(near.lat), shown_coordinate(near.lon)
        name = f"{lat:g}, {lon:g}" if near.precision == COORDINATES else near.name  # a typed position, rounded
        return cls(name=name, lat=lat, lon=lon, precision=near.precision,
                   within_km=near.within_km if near.within_km is not None else 0.0)


class FacetsOut(BaseModel):
    category: list[CategoryFacet] = Field(default_factory=list, description=(
        "Root categories (most results first), each with its next level, counted over the results the "
        "search matches under its other filters: choosing a category leaves its siblings' counts. Results as "
        "in `total`: a group of copies of one ad counts once under each category one of its listings is in."))
    price: list[PriceBand] = Field(default_factory=list, description=(
        "Fixed price bands (0-10, 10-25, 25-50, 50-100, 100-250, 250-500, 500-1000, 1000+), counted over the "
        "results the search matches under its other filters."))
    buying: list[BuyingCount] = Field(default_factory=list, description=(
        "Sale ads and buying ads (\"wanted\", \"we buy ...\") among the results under the other filters."))
    distance: list[DistanceBand] = Field(default_factory=list, description=(
        "With `near`: how many results are within 5, 10, 25, 50 and 100 miles (a group of copies of one ad counts "
        "once, at its nearest listing), counted over the results the search matches without its radius (what "
        "widening it would add) or with it, so a band wider than the radius counts at least `total`; listings "
        "without coordinates are in no band. Empty without `near`."))


class ReadOut(BaseModel):
    phrase: str = Field(description="As typed among the words, e.g. \"under £50\" or \"near Glasgow\".")
    filter: str = Field(description="The filter it set: price_min, price_max or near.")
    value: float | str = Field(description="The filter's value: an amount in pounds, or the place's name.")


class SearchOut(BaseModel):
    results: list[SearchHitOut]
    k: int
    filters: dict[str, str | bool | float] = Field(default_factory=dict, description="Filters that were applied.")
    sort: str = "relevance"
    offset: int = 0
    total: int = Field(0, description=(
        "How many results match (the match set: docs/search.md), whatever k, offset or sort; for filters "
        "alone, every listing that passes them. A result is one ad: copies of it are one result "
        "(its `duplicates`), so paging to the end shows `total` results."))
    next_cursor: str | None = Field(None, description=(
        "Send as `cursor` for the next page (null on the last one)."))
    searched: str | None = Field(None, description="The words searched, after spelling correction.")
    corrections: list[Correction] = Field(default_factory=list, description=(
        "Misspelt words replaced from the catalogue's vocabulary (\"showing results for ...\")."))
    predicted_categories: list[CategoryGuess] = Field(default_factory=list, description=(
        "For a photo search: what the photo looks like, most likely root category first."))
    no_match: bool = Field(False, description=(
        "True when no result matched well (best relevance under the threshold set on nonsense queries)."))
    best_relevance: float | None = None
    best_match: str | None = Field(None, description=(
        "The `match` of the best listing the search matched: \"related\" or \"weak match\" means nothing "
        "close was found (a photo of something the catalogue does not sell)."))
    versions: dict[str, str | None] = Field(default_factory=dict, description="Ranker and encoder versions.")
    facets: FacetsOut = Field(default_factory=FacetsOut, description="Counts by category, price and distance band.")
    near_resolved: NearOut | None = Field(None, description="Where `near` was taken to be; null without it.")
    read_from_words: list[ReadOut] = Field(default_factory=list, description=(
        "A price or a place typed among the words (\"sofa under £50 near Glasgow\"), taken out of the words and "
        "applied as filters (`filters` shows them; `searched` the words left). Not read when the same filter "
        "is set, or with `read_words=false`."))


class SuggestionOut(BaseModel):
    text: str = Field(examples=["garden table"])
    kind: str = Field(description="query (words to search) or category (a category path prefix to filter by).",
                      examples=["query"])
    count: int = Field(description="Listings holding its words, or in the category.")


class SuggestOut(BaseModel):
    suggestions: list[SuggestionOut]


class SimilarOut(BaseModel):
    listing_id: str
    results: list[SearchHitOut]
    near_resolved: NearOut | None = Field(None, description="Where `near` was taken to be; null without it.")


class PlaceOut(BaseModel):
    name: str = Field(description="Send as `near`.", examples=["Leeds"])
    listings: int = Field(description="Listings at places of this name (0: a town the gazetteer knows, none listed "
                          "there yet).", examples=[120])


class PlacesOut(BaseModel):
    places: list[PlaceOut]


class FeaturesOut(BaseModel):
    features: list[float] = Field(description="The model's embedding of the photo (as in the original API).")


class SimilarImagesOut(BaseModel):
    similar_index: list[int] = Field(description="Vector ids of the nearest catalogue photos (original API).")
    image_ids: list[str]
    listing_ids: list[str]
    distances: list[float] = Field(description="Cosine distance, 1 - cosine similarity; smaller is closer.")


class CategoryScore(BaseModel):
    category: str
    probability: float


class CategoryOut(BaseModel):
    categories: list[CategoryScore]


class CategoriesOut(BaseModel):
    categories: list[str]


class DeletedOut(BaseModel):
    deleted: str = Field(description="Id of the deleted listing.")


class HealthOut(BaseModel):
    status: str = Field(examples=["ok"])
    model: bool
    index: int = Field(description="Vectors in the image index.")
    index_type: str | None = None
    listings: int
    photos: int
    text: bool = Field(description="Whether text search is available.")
    writes: str = Field("ok", description="'ok', or which storage would make writes fail now and how, e.g. "
                        "'the database is read-only' (status is then 'degraded'); where is in 'detail'.")
    log_seq: int = Field(0, description="Change-log sequence this replica's indexes cover.")
    lag_entries: int = Field(0, description="Log entries committed but not yet applied here (at the last poll).")
    lag_seconds: float = Field(0.0, description="Age of the oldest log entry not yet applied here.")
    snapshot_seq: int = Field(-1, description="Log sequence of this replica's newest snapshot.")
    snapshot_age_seconds: float | None = None
    follower_error: str | None = Field(None, description="Why the last poll of the change log failed, if it did.")
    detail: dict[str, str | None] | None = Field(None, description=(
        "Operators only (X-API-Key holding one of serve.operator_keys): the whole reasons behind 'writes' and "
        "'follower_error', and where the store and the blob store are."))


class HistoryEventIn(BaseModel):
    """One thing the user did with a listing (the shape of ``rank.personalise.HistoryEvent``)."""

    listing_id: Text = Field(max_length=200, examples=["243809c0-9cfc-4486-ad12-3b7a16605ba9"])
    event: Literal["viewed", "liked", "searched"] = "viewed"
    timestamp: Timestamp | None = Field(None, description="Seconds since the epoch; older events count less.",
                                    examples=[1700000000])


class RecommendIn(BaseModel):
    history: list[HistoryEventIn] = Field(default_factory=list, max_length=MAX_HISTORY_EVENTS)
    query: Text | None = Field(None, max_length=1000, description="Optional words blended with the history.")
    k: int = Field(10, description="How many listings (1..max_k).")
    category: Text | None = Field(None, max_length=200, description="Root category filter.")
    near: Text | None = Field(None, max_length=200, description=(
        "A town (such as Leeds) or a position as 'lat,lon': only listings within `within_km` of it."),
        examples=["Leeds"])
    within_km: float | None = Field(None, ge=1, le=500, description="The radius around `near` (default 40 km).")


class BecauseOut(BaseModel):
    """The history listing a recommendation is most like: what "because you viewed ..." names."""

    listing_id: str
    title: str
    event: Literal["viewed", "liked", "searched"] = Field(description=(
        "The strongest thing the history did with it: liked, else viewed, else searched."))


class RecommendHitOut(SearchHitOut):
    because: BecauseOut | None = Field(None, description=(
        "The history listing this one is most like (photos and words); null when it shares neither."))

    @classmethod
    def of_reason(cls, hit: Hit, reason: tuple[str, str, str] | None) -> RecommendHitOut:
        because = None if reason is None else BecauseOut(listing_id=reason[0], title=reason[1], event=reason[2])
        return cls(**hit_fields(hit), because=because)


class RecommendOut(BaseModel):
    results: list[RecommendHitOut] = Field(description="Best first; never a listing named in the history.")
    k: int
    history_used: int = Field(description="History events that matched catalogue listings.")
    unknown_listing_ids: list[str] = Field(default_factory=list, description="History ids not in the catalogue.")
    notes: list[str] = Field(default_factory=list)
    versions: dict[str, str | None] = Field(default_factory=dict, description="Ranker and encoder versions.")
    near_resolved: NearOut | None = Field(None, description="Where `near` was taken to be; null without it.")


def km_out(km: float | None) -> float | None:
    """A distance as answered: to 100 m (``serve.privacy``)."""
    return None if km is None else shown_km(km)


def listing_fields(listing: Listing, distance_km: float | None = None) -> dict:
    """A listing's fields as ``ListingOut`` (and so ``SearchHitOut``) answers them."""
    return dict(id=listing.listing_id, title=listing.title, description=listing.description,
                price=listing.price, location=listing.location, category=listing.root_category,
                category_path=listing.category_path, posted_at=listing.posted_at,
                photos=[photo_out(i) for i in listing.image_ids], distance_km=km_out(distance_km))


def photo_out(image_id: str) -> PhotoOut:
    return PhotoOut(image_id=image_id, url=f"/v1/images/{image_id}")


class SavedSearchOut(BaseModel):
    id: int
    label: str = Field(description="What the search looks for, in words.", examples=["“oak wardrobe”, near Leeds"])
    text: str | None = Field(None, description="The words as typed.")
    words: str | None = Field(None, description="The words searched (spelling corrected when saved).")
    photo: bool = Field(False, description="Whether it searches with a photo (kept as its embedding).")
    filters: dict[str, str | float] = Field(default_factory=dict)
    created_at: float
    alerts: int = Field(0, description="Alerts it holds now.")


class SavedSearchesOut(BaseModel):
    saved_searches: list[SavedSearchOut]
    limit: int = Field(description="The most saved searches one buyer may keep.")


class AlertOut(BaseModel):
    id: int = Field(description="The alert's id: ids grow in the order alerts are written.")
    saved_search_id: int
    saved_search: str = Field(description="The saved search's label.")
    listing_id: str
    listing: ListingOut | None = Field(None, description="The listing as it is now; null once it is gone.")
    at: float = Field(description="When the alert was written, seconds since the epoch.")


class AlertsOut(BaseModel):
    alerts: list[AlertOut]
    next_after: int = Field(description="Send as `after` for the alerts that follow these.")
    more: bool = Field(False, description="More alerts wait after these.")


def sent(model: BaseModel) -> Response:
    """A read route's answer, serialised once, by pydantic. The route built (and so validated) the model;
    returned as it is, FastAPI would validate it again, on a worker thread, then serialise it (0.2 ms
    and a thread hop per search). The route keeps ``response_model`` for its documented schema."""
    return Response(model.model_dump_json(by_alias=True), media_type="application/json")
