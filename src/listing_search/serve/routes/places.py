"""``GET /v1/places``: towns to search near, while one is typed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from listing_search.serve.deps import EngineDep
from listing_search.serve.errors import ERROR_RESPONSES
from listing_search.serve.schemas import PlaceOut, PlacesOut

router = APIRouter(prefix="/v1", tags=["search"], responses=ERROR_RESPONSES)
MAX_PREFIX, MAX_K = 100, 20


@router.get("/places", response_model=PlacesOut, summary="Places to search near, while typing")
def places(engine: EngineDep,
           prefix: Annotated[str, Query(max_length=MAX_PREFIX, description="The start of a town's name.")] = "",
           k: Annotated[int, Query(ge=1, le=MAX_K, description="How many places.")] = 8) -> PlacesOut:
    """Places whose name starts with ``prefix`` (case, accents and punctuation aside), each one ``near``
    accepts: the catalogue's locations, the most listed first, then the gazetteer's towns by population.
    Blank ``prefix``: none."""
    return PlacesOut(places=[PlaceOut(name=n, listings=c) for n, c in engine.places(prefix, k)])
