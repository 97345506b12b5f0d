"""``POST /v1/search``: a photo and/or words -> ranked listings, filtered, one result per ad (copies grouped)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, HTTPException, Request, Response, UploadFile

from listing_search.core.near import MAX_WITHIN_KM, MIN_WITHIN_KM
from listing_search.core.query import SORTS, Filters, Page, Query
from listing_search.search.paging import MAX_CURSOR_CHARS
from listing_search.serve.deps import EngineDep, SettingsDep, check_k, near_of, read_upload
from listing_search.serve.errors import ERROR_RESPONSES
from listing_search.serve.routes.recommend import parse_history
from listing_search.serve.querylog import log_query
from listing_search.serve.schemas import (
    CategoryGuess, Correction, FacetsOut, NearOut, ReadOut, SearchHitOut, SearchOut, sent,
)
from listing_search.serve.validate import MAX_HISTORY_CHARS, Price, Text

router = APIRouter(prefix="/v1", tags=["search"], responses=ERROR_RESPONSES)


@router.post("/search", response_model=SearchOut, summary="Search listings by photo and/or text")
def search(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    image: Annotated[UploadFile | None, File(description="A photo of what you look for.")] = None,
    text: Annotated[Text | None, Form(max_length=1000, description="Words (needs the text model).",
                                     examples=["pine bed frame"])] = None,
    k: Annotated[int, Form(description="How many listings (1..max_k).")] = 10,
    category: Annotated[Text | None, Form(max_length=500, description=(
        "A root category, or a category path's first segments (a facet's value)."),
        examples=["Home & Garden", "Home & Garden / Dining, Living Room Furniture"])] = None,
    price_min: Annotated[Price | None, Form(ge=0, examples=[5])] = None,
    price_max: Annotated[Price | None, Form(ge=0, examples=[100])] = None,
    location: Annotated[Text | None, Form(max_length=200, description="Substring of the location.",
                                         examples=["Leeds"])] = None,
    buying: Annotated[bool | None, Form(description=(
        "false: leave out buying ads (\"wanted\", \"cash for your ...\", \"we buy ...\"); true: only them; "
        "unset: both, buying ads ranked after sale ads."))] = None,
    near: Annotated[Text | None, Form(max_length=200, description=(
        "Only listings within `within_km` of a place: a town (such as Leeds, or 'Leeds, West Yorkshire') or a "
        "position as 'lat,lon'. Listings without coordinates are left out. An unknown place is a 422 naming "
        "close ones."), examples=["Leeds", "53.80,-1.55"])] = None,
    within_km: Annotated[float | None, Form(ge=MIN_WITHIN_KM, le=MAX_WITHIN_KM, description=(
        "The radius around `near`, km (default 40; 10 miles = 16.09 km)."), examples=[16.09])] = None,
    sort: Annotated[Literal[SORTS], Form(description="relevance (without words or a photo: the nearest first "
                                         "near a place, else the newest), newest, price_asc, price_desc or "
                                         "distance (nearest first; needs near).")] = "relevance",
    offset: Annotated[int, Form(ge=0, le=10_000, description="Results to skip (paging).")] = 0,
    cursor: Annotated[str | None, Form(max_length=MAX_CURSOR_CHARS, description=(
        "Where the next page starts: the previous answer's `next_cursor` (not with `offset`). A listing "
        "added meanwhile neither shifts nor repeats what follows."))] = None,
    spelling: Annotated[bool, Form(description="Correct misspelt words against the catalogue's vocabulary "
                                   "(false: search exactly what was typed).")] = True,
    read_words: Annotated[bool, Form(description=(
        "Read a price (\"under £50\", \"£20-£80\", \"over £100\") and a place (\"near Glasgow\", \"in Leeds\") "
        "typed among the words as filters, unless the same filter is set (false: search every word)."))] = True,
    history: Annotated[str | None, Form(max_length=MAX_HISTORY_CHARS, description=(
        "Optional JSON list of {listing_id, event: viewed|liked|searched, timestamp?}: results lean "
        "towards what the history says."), examples=['[{"listing_id": "243809c0", "event": "liked"}]'])] = None,
) -> Response:
    """Listings matching a photo and/or words (the match set: docs/search.md), filtered, one result
    per ad (copies of one ad grouped under its first listing in the order asked), in ``sort`` order;
    ``total`` counts the results. Filters without a photo or words browse every listing that passes them.
    Page with ``offset`` or with the previous answer's ``next_cursor``."""
    check_k(k, settings)
    text = (text or "").strip() or None
    if price_min is not None and price_max is not None and price_min > price_max:
        raise HTTPException(422, f"price_min {price_min} is above price_max {price_max}")
    filters = Filters((category or "").strip() or None, price_min, price_max, (location or "").strip() or None,
                      buying, near_of(engine, near, within_km))
    if image is None and text is None and not filters.active():
        raise HTTPException(422, "give an image, a text query, filters to browse by, or a combination")
    if cursor is not None and offset:
        raise HTTPException(422, "give offset or cursor, not both")
    data = read_upload(image, settings) if image is not None else None
    query = Query(text=text, image=data, filters=filters, sort=sort, page=Page(k, offset, cursor or None),
                  history=parse_history(history), spelling=spelling, read_words=read_words)
    result = engine.search(query)
    filters = result.filters or filters  # with a price or place read from the words (search.asks)
    if result.read:
        text = result.searched
    browsing = data is None and text is None
    applied = {n: v for n, v in (("category", filters.category), ("price_min", filters.min_price),
                                 ("price_max", filters.max_price), ("location", filters.location), ("buying", buying))
               if v is not None}
    near_out = NearOut.of(filters.near)
    if near_out is not None:
        applied |= {"near": near_out.name, "within_km": near_out.within_km}
    out = SearchOut(results=[SearchHitOut.of_hit(h) for h in result.hits], k=k, filters=applied, sort=sort,
                    offset=offset, total=result.total, next_cursor=result.next_cursor, searched=result.searched,
                    corrections=[Correction(typed=a, searched=b) for a, b in result.corrections],
                    predicted_categories=[CategoryGuess(category=c, probability=round(p, 4))
                                          for c, p in result.predicted_categories],
                    no_match=result.no_match and not browsing,
                    best_relevance=None if result.best_relevance is None else round(result.best_relevance, 4),
                    best_match=None if browsing else result.best_match,
                    versions=engine.versions(),
                    facets=FacetsOut(category=result.facets.category, price=result.facets.price,
                                     buying=result.facets.buying, distance=result.facets.distance)
                    if result.facets is not None else FacetsOut(),
                    near_resolved=near_out,
                    read_from_words=[ReadOut(phrase=r.phrase, filter=r.filter, value=r.value) for r in result.read])
    if not browsing:
        request.app.state.metrics.observe_answer("search", len(out.results), out.no_match, bool(out.corrections))
    logged = {n: v for n, v in applied.items() if n not in ("near", "within_km")}  # privacy: rounded, below
    if filters.near is not None:
        logged["near"] = filters.near.rounded()
    log_query(settings, "search", {"text": text, "image": data is not None, "filters": logged, "sort": sort,
                                   "offset": offset, "history": len(query.history)}, out)
    return sent(out)
