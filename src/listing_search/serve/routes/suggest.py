"""``GET /v1/suggest``: completions of what is being typed, from the catalogue's titles and categories."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from listing_search.search.suggest import suggest as suggest_for
from listing_search.serve.deps import EngineDep
from listing_search.serve.errors import ERROR_RESPONSES
from listing_search.serve.schemas import SuggestionOut, SuggestOut, sent

router = APIRouter(prefix="/v1", tags=["search"], responses=ERROR_RESPONSES)
MAX_Q, MAX_K = 100, 20


@router.get("/suggest", response_model=SuggestOut, summary="Suggestions while typing")
def suggest(engine: EngineDep,
            q: Annotated[str, Query(max_length=MAX_Q, description="What has been typed so far.")] = "",
            k: Annotated[int, Query(ge=1, le=MAX_K, description="How many suggestions.")] = 8) -> Response:
    """Completions of ``q`` from the catalogue's own title phrases and category names (never from what
    buyers typed), typo-tolerant on the word being typed, most listings first; ``count`` is how many
    listings hold the suggestion's words, or are in the suggested category. Blank ``q``: none."""
    found = suggest_for(engine.live, q, k) if q.strip() else []
    return sent(SuggestOut(suggestions=[SuggestionOut(text=s.text, kind=s.kind, count=s.count) for s in found]))
