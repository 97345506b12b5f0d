"""Listings: read one, similar ones, add (with photos) and delete; writes need the API key."""

from __future__ import annotations

from typing import Annotated

import numpy as np

from fastapi import APIRouter, Depends, File, Form, Header, HTTPException, Path, Query, Response, UploadFile, status

from listing_search.core.near import MAX_WITHIN_KM, MIN_WITHIN_KM, haversine_km
from listing_search.core.query import Filters
from listing_search.serve.deps import EngineDep, SettingsDep, WriterDep, check_k, near_of, read_upload, require_api_key
from listing_search.serve.errors import ERROR_RESPONSES
from listing_search.serve.schemas import DeletedOut, ListingOut, NearOut, SearchHitOut, SimilarOut, sent
from listing_search.serve.validate import NonBlankText, Price, Text

router = APIRouter(prefix="/v1/listings", tags=["listings"], responses=ERROR_RESPONSES)
MAX_PHOTOS = 10
# The change-log sequence of a write: a client reading from another replica waits until that
# replica's /health shows log_seq >= this value to read its own write.
LOG_SEQ_HEADER = "X-Log-Seq"
MAX_LISTING_ID_LENGTH = 128  # also what the listing page (serve.web) accepts before asking the store
ListingId = Annotated[str, Path(min_length=1, max_length=MAX_LISTING_ID_LENGTH, description="Listing id.")]
AUTH_RESPONSES: dict[int | str, dict] = {401: {"description": "Missing X-API-Key"},
                                         403: {"description": "Wrong X-API-Key"}}
Near = Annotated[Text | None, Query(max_length=200, description=(
    "A town (such as Leeds) or a position as 'lat,lon': `distance_km` is measured from it."), examples=["Leeds"])]
WithinKm = Annotated[float | None, Query(ge=MIN_WITHIN_KM, le=MAX_WITHIN_KM, description=(
    "Only listings within this many km of `near` (default 40)."))]


@router.get("/{listing_id}", response_model=ListingOut, summary="One listing", responses={404: {}})
def get_listing(engine: EngineDep, listing_id: ListingId, near: Near = None) -> ListingOut:
    """The listing as stored; with ``near``, its ``distance_km`` from there (a listing page opened from a
    search near a place)."""
    point = near_of(engine, near, None)
    listing = engine.get_listing(listing_id)
    if listing is None:
        raise HTTPException(404, f"unknown listing {listing_id!r}")
    km = None
    if point is not None and listing.lat is not None and listing.lon is not None:
        km = float(haversine_km(point.lat, point.lon, np.array([listing.lat]), np.array([listing.lon]))[0])
    return ListingOut.of(listing, km)


@router.get("/{listing_id}/similar", response_model=SimilarOut, summary="Listings that look alike",
            responses={404: {}})
def similar_listings(engine: EngineDep, settings: SettingsDep, listing_id: ListingId,
                     k: Annotated[int, Query(description="How many listings (1..max_k).")] = 10,
                     near: Near = None, within_km: WithinKm = None) -> Response:
    point = near_of(engine, near, within_km)
    hits = engine.similar_listings(listing_id, check_k(k, settings), Filters(near=point))
    if hits is None:
        raise HTTPException(404, f"unknown listing {listing_id!r}")
    return sent(SimilarOut(listing_id=listing_id, results=[SearchHitOut.of_hit(h) for h in hits],
                           near_resolved=NearOut.of(point)))


@router.post("", response_model=ListingOut, status_code=status.HTTP_201_CREATED, summary="Add a listing",
             dependencies=[Depends(require_api_key)], responses=AUTH_RESPONSES)
def add_listing(
    writer: WriterDep,
    settings: SettingsDep,
    title: Annotated[NonBlankText, Form(min_length=1, max_length=300, examples=["Pine bed frame"])],
    category: Annotated[NonBlankText, Form(max_length=200, description="Root category.", examples=["Home & Garden"])],
    photos: Annotated[list[UploadFile], File(description=f"1..{MAX_PHOTOS} photos.")],
    description: Annotated[Text, Form(max_length=20_000)] = "",
    price: Annotated[Price | None, Form(ge=0, examples=[40.0])] = None,
    location: Annotated[Text, Form(max_length=200, examples=["Leeds, West Yorkshire"])] = "",
    category_path: Annotated[Text | None, Form(max_length=500)] = None,
    idempotency_key: Annotated[str | None, Header(
        alias="Idempotency-Key", min_length=1, max_length=200,
        description="Retries with the same key and body within 24 h return the first 201 and add nothing.")] = None,
    response: Response = None,  # type: ignore[assignment]
) -> ListingOut:
    """Photos are checked, standardised and embedded; the index and catalogue are updated and saved."""
    if not 1 <= len(photos) <= MAX_PHOTOS:
        raise HTTPException(422, f"photos: give 1 to {MAX_PHOTOS} photos, got {len(photos)}")
    data = [read_upload(p, settings, f"photos[{i}]") for i, p in enumerate(photos)]
    fields = {"title": title.strip(), "description": description, "price": price, "location": location,
              "root_category": category, "category_path": category_path}
    written = writer.add_listing(fields, data, idempotency_key)
    response.headers[LOG_SEQ_HEADER] = str(written.seq)
    if not written.created:
        response.headers["Idempotent-Replayed"] = "true"
    return ListingOut.of(written.listing)


@router.delete("/{listing_id}", response_model=DeletedOut, summary="Delete a listing",
               dependencies=[Depends(require_api_key)], responses={**AUTH_RESPONSES, 404: {}})
def delete_listing(writer: WriterDep, listing_id: ListingId, response: Response) -> DeletedOut:
    seq = writer.remove_listing(listing_id)
    if seq is None:
        raise HTTPException(404, f"unknown listing {listing_id!r}")
    response.headers[LOG_SEQ_HEADER] = str(seq)
    return DeletedOut(deleted=listing_id)
