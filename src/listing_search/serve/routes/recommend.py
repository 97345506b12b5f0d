"""``POST /v1/recommend``: a user's history (and optional words) -> a feed without what they saw.

History ids the catalogue does not know are reported back and ignored, never an error; the
history itself is also accepted by ``/v1/search`` (form field ``history``, the same JSON list).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import Field, TypeAdapter, ValidationError

from listing_search.core.query import Filters, HistoryEvent
from listing_search.serve.deps import EngineDep, SettingsDep, check_k, near_of
from listing_search.serve.errors import ERROR_RESPONSES
from listing_search.serve.querylog import log_query
from listing_search.serve.schemas import HistoryEventIn, NearOut, RecommendHitOut, RecommendIn, RecommendOut, sent
from listing_search.serve.validate import MAX_HISTORY_CHARS, MAX_HISTORY_EVENTS, BoundedJSONRoute

router = APIRouter(prefix="/v1", tags=["recommend"], responses=ERROR_RESPONSES, route_class=BoundedJSONRoute)
_HISTORY = TypeAdapter(Annotated[list[HistoryEventIn], Field(max_length=MAX_HISTORY_EVENTS)])


def to_events(items: list[HistoryEventIn]) -> tuple[HistoryEvent, ...]:
    return tuple(HistoryEvent(i.listing_id, i.event, i.timestamp) for i in items)


def parse_history(raw: str | None) -> tuple[HistoryEvent, ...]:
    """The ``history`` form field of ``/v1/search``: a JSON list of events; 422 with the reason if not.

    Parsed by pydantic's JSON parser, which caps nesting depth (``json.loads`` would recurse
    50,000 brackets deep into a RecursionError), after a cap on the size."""
    if not raw or not raw.strip():
        return ()
    if len(raw) > MAX_HISTORY_CHARS:
        raise HTTPException(422, f"history: at most {MAX_HISTORY_CHARS} characters")
    try:
        return to_events(_HISTORY.validate_json(raw))
    except ValidationError as exc:
        raise HTTPException(422, f"history: expected a JSON list of at most {MAX_HISTORY_EVENTS} "
                                 f"{{listing_id, event, timestamp}}: {first_error(exc)}") from None


def first_error(exc: ValidationError) -> str:
    """``loc: message`` of the first problem, without echoing the (possibly huge) input."""
    err = exc.errors(include_input=False, include_url=False)[0]
    loc = ".".join(str(p) for p in err["loc"])
    return f"{loc}: {err['msg']}" if loc else err["msg"]


@router.post("/recommend", response_model=RecommendOut, summary="Listings for a user, from their history")
def recommend(body: RecommendIn, request: Request, engine: EngineDep, settings: SettingsDep) -> Response:
    """A feed favouring what the history says (recent and liked listings weigh more), blended with
    ``query`` when given, and never containing a listing the history names. Each result names the
    history listing it is most like (``because``), for a "because you viewed ..." line."""
    check_k(body.k, settings)
    query = (body.query or "").strip() or None
    if query and not engine.has_text:
        raise HTTPException(400, "text is not available: no text model or text index is loaded")
    near = near_of(engine, body.near, body.within_km)
    feed = engine.recommend(to_events(body.history), body.k, text=query,
                            filters=Filters(category=body.category or None, near=near))
    results = [RecommendHitOut.of_reason(h, feed.because.get(h.listing.listing_id)) for h in feed.hits]
    out = RecommendOut(results=results, k=body.k, history_used=feed.used,
                       unknown_listing_ids=feed.unknown_ids, notes=feed.notes, versions=engine.versions(),
                       near_resolved=NearOut.of(near))
    request.app.state.metrics.observe_answer("recommend", len(out.results), False)
    log_query(settings, "recommend", {"text": query, "history": len(body.history), "category": body.category,
                                      "near": None if near is None else near.rounded()}, out)
    return sent(out)
