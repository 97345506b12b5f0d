"""``POST /v1/recommend``: a user's history (and optional words) -> a feed without what they saw.

History ids the catalogue does not know are reported back and ignored, never an error; the
history itself is also accepted by ``/v1/search`` (form field ``history``, the same JSON list).
"""

from __future__ import annotations

import json

from fastapi import APIRouter, HTTPException
from pydantic import TypeAdapter, ValidationError

from listing_search.store.models import Filters
from listing_search.rank.personalise import HistoryEvent
from listing_search.serve.deps import EngineDep, SettingsDep, check_k
from listing_search.serve.errors import ERROR_RESPONSES
from listing_search.serve.schemas import HistoryEventIn, RecommendIn, RecommendOut, SearchHitOut

router = APIRouter(prefix="/v1", tags=["recommend"], responses=ERROR_RESPONSES)
_HISTORY = TypeAdapter(list[HistoryEventIn])


def to_events(items: list[HistoryEventIn]) -> tuple[HistoryEvent, ...]:
    return tuple(HistoryEvent(i.listing_id, i.event, i.timestamp) for i in items)


def parse_history(raw: str | None) -> tuple[HistoryEvent, ...]:
    """The ``history`` form field of ``/v1/search``: a JSON list of events; 422 with the reason if not."""
    if not raw or not raw.strip():
        return ()
    try:
        items = _HISTORY.validate_python(json.loads(raw))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise HTTPException(422, f"history: expected a JSON list of {{listing_id, event, timestamp}}: "
                                 f"{str(exc).splitlines()[0]}") from None
    if len(items) > 500:
        raise HTTPException(422, "history: at most 500 events")
    return to_events(items)


@router.post("/recommend", response_model=RecommendOut, summary="Listings for a user, from their history")
def recommend(body: RecommendIn, engine: EngineDep, settings: SettingsDep) -> RecommendOut:
    """A feed favouring what the history says (recent and liked listings weigh more), blended with
    ``query`` when given, and never containing a listing the history names."""
    check_k(body.k, settings)
    if engine.ranking is None:
        raise HTTPException(503, "recommendations are unavailable: ranking is not loaded")
    query = (body.query or "").strip() or None
    if query and not engine.has_text:
        raise HTTPException(400, "text is not available: no text model or text index is loaded")
    feed = engine.ranking.recommend(list(to_events(body.history)), body.k, text=query,
                                    filters=Filters(root_category=body.category or None))
    return RecommendOut(results=[SearchHitOut.of_hit(h) for h in feed.hits], k=body.k, history_used=feed.used,
                        unknown_listing_ids=feed.unknown_ids, notes=feed.notes)
