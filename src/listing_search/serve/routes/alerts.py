"""Saved searches and their alerts: a buyer saves a search and hears when a matching listing is added.

``POST /v1/saved-searches`` takes the fields of ``/v1/search`` (words and/or a photo, filters);
``GET`` lists the buyer's, ``DELETE /v1/saved-searches/{id}`` removes one with its alerts. The
matcher (``serve.matcher``) writes alerts; ``GET /v1/alerts?after=`` reads them and
``GET /v1/alerts/stream`` pushes them (Server-Sent Events, authenticated by the cookie
``POST /v1/alerts/session`` sets). Every request names its buyer by ``X-Buyer-Token``
(``serve.buyers``); one buyer never sees or deletes another's.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from typing import Annotated

import numpy as np
from fastapi import APIRouter, File, Form, Header, HTTPException, Path, Query, Request, Response, UploadFile, status
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from listing_search.core.query import Filters
from listing_search.core.query import Query as Search
from listing_search.errors import TextSearchUnavailable
from listing_search.index.catalog import NONE
from listing_search.search.engine import SearchEngine
from listing_search.serve.buyers import (
    COOKIE, COOKIE_PATH, SECRET, BuyerDep, client_address, cookie_value, owner_of_cookie,
)
from listing_search.serve.deps import EngineDep, SettingsDep, engine_of, read_upload
from listing_search.serve.errors import ERROR_RESPONSES
from listing_search.serve.ratelimit import WindowLimit
from listing_search.serve.schemas import AlertOut, AlertsOut, ListingOut, SavedSearchesOut, SavedSearchOut
from listing_search.serve.validate import Price, Text
from listing_search.settings import Settings
from listing_search.store.saved import SavedSearchLimit, SavedSearchRow

router = APIRouter(prefix="/v1", tags=["saved searches"], responses=ERROR_RESPONSES)
MAX_ALERTS = 100
EVERYTHING = ("a saved search needs words, a photo or a filter: one with none would alert on every new "
              "listing")
AUTH_RESPONSES: dict[int | str, dict] = {401: {"description": "Missing X-Buyer-Token"},
                                         422: {"description": "A token that cannot hold 128 random bits"}}


@router.post("/saved-searches", response_model=SavedSearchOut, status_code=status.HTTP_201_CREATED,
             summary="Save a search: alerts for the listings added later that match it",
             responses={**AUTH_RESPONSES, 409: {"description": "The buyer keeps the most saved searches allowed"},
                        429: {"description": "Too many saved searches created lately (Retry-After)"}})
def save_search(
    request: Request,
    owner: BuyerDep,
    engine: EngineDep,
    settings: SettingsDep,
    image: Annotated[UploadFile | None, File(description="A photo of what you look for (kept as its embedding).")] = None,
    text: Annotated[Text | None, Form(max_length=1000, examples=["oak wardrobe"])] = None,
    category: Annotated[Text | None, Form(max_length=500, examples=["Home & Garden"])] = None,
    price_min: Annotated[Price | None, Form(ge=0)] = None,
    price_max: Annotated[Price | None, Form(ge=0)] = None,
    location: Annotated[Text | None, Form(max_length=200, examples=["Leeds"])] = None,
    spelling: Annotated[bool, Form(description="Correct misspelt words first, as /v1/search does.")] = True,
    read_words: Annotated[bool, Form(description=(
        "Read a price (\"under £50\") and a place (\"near Leeds\", saved as `location`) typed among the words "
        "as filters, as /v1/search does, unless the same filter is set."))] = True,
) -> SavedSearchOut:
    """The same fields as ``/v1/search``. The words are saved as searched (corrected) and a photo as its
    embedding; listings already listed never alert, only those added from now on."""
    typed, _ = engine.pipeline.read_words(Search(text=(text or "").strip() or None, read_words=read_words,
                                                 filters=Filters(min_price=price_min, max_price=price_max,
                                                                 location=(location or "").strip() or None)))
    text, price_min, price_max = typed.text, typed.filters.min_price, typed.filters.max_price
    location = typed.filters.near.name if typed.filters.near is not None else location  # a place read: by name
    if price_min is not None and price_max is not None and price_min > price_max:
        raise HTTPException(422, f"price_min {price_min} is above price_max {price_max}")
    filters = Filters((category or "").strip() or None, price_min, price_max, (location or "").strip() or None)
    if image is None and text is None and not filters.active():
        raise HTTPException(422, EVERYTHING)
    _check_rate(request, owner, settings)
    engine.pipeline.check_filters(filters)
    photo = read_upload(image, settings) if image is not None else None
    words, text_vec = _words(engine, text, spelling)
    image_vec = np.asarray(engine.embed_photo(photo)[0], np.float32) if photo is not None else None
    query = {"text": text, "words": words, "filters": _filters_json(filters), "photo": photo is not None,
             "label": label(words, photo is not None, filters)}
    try:
        row = engine.store.save_search(owner, query, text_vec, image_vec, settings.alerts.max_per_buyer)
    except SavedSearchLimit as exc:
        raise HTTPException(409, str(exc)) from None
    _limits(request, settings).record(owner, client_address(request))
    return saved_out(row, 0)


@router.get("/saved-searches", response_model=SavedSearchesOut, summary="The buyer's saved searches",
            responses=AUTH_RESPONSES)
def list_saved(owner: BuyerDep, engine: EngineDep, settings: SettingsDep) -> SavedSearchesOut:
    rows = engine.store.saved_searches(owner)
    engine.store.touch_saved_searches(owner)
    counts = engine.store.alert_counts(owner) if rows else {}
    return SavedSearchesOut(saved_searches=[saved_out(r, counts.get(r.id, 0)) for r in rows],
                            limit=settings.alerts.max_per_buyer)


@router.delete("/saved-searches/{search_id}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Delete a saved search and its alerts", responses={**AUTH_RESPONSES, 404: {}})
def delete_saved(owner: BuyerDep, engine: EngineDep,
                 search_id: Annotated[int, Path(ge=1, le=2**62, description="The saved search's id.")]) -> Response:
    if not engine.store.delete_saved_search(owner, search_id):
        raise HTTPException(404, f"no saved search {search_id} for this buyer")
    return Response(status_code=204)


@router.get("/alerts", response_model=AlertsOut, summary="Alerts after a cursor", responses=AUTH_RESPONSES)
def alerts(owner: BuyerDep, engine: EngineDep,
           after: Annotated[int, Query(ge=0, le=2**62, description="The previous answer's `next_after` (0: all).")] = 0,
           limit: Annotated[int, Query(ge=1, le=MAX_ALERTS)] = 50) -> AlertsOut:
    """The buyer's alerts with an id above ``after``, oldest first; each names its saved search and the
    listing (null once the listing is gone). Alert ids grow in commit order: nothing is skipped."""
    engine.store.touch_saved_searches(owner)
    return alerts_out(engine, owner, after, limit)


@router.post("/alerts/session", status_code=status.HTTP_204_NO_CONTENT, responses=AUTH_RESPONSES,
             summary="A cookie for the alert stream (EventSource cannot send the token header)")
def alert_session(request: Request, owner: BuyerDep, engine: EngineDep, settings: SettingsDep) -> Response:
    response = Response(status_code=204)
    lifetime = settings.alerts.session_s
    response.set_cookie(COOKIE, cookie_value(owner, _secret(request, engine), lifetime), max_age=int(lifetime),
                        path=COOKIE_PATH, httponly=True, samesite="strict", secure=request.url.scheme == "https")
    return response


@router.get("/alerts/stream", summary="New alerts as Server-Sent Events (needs the session cookie)",
            responses={401: {"description": "No valid session cookie"}}, response_class=StreamingResponse)
async def alert_stream(request: Request, settings: SettingsDep,
                       after: Annotated[int, Query(ge=0, le=2**62)] = 0,
                       last_event_id: Annotated[str | None, Header(max_length=20)] = None) -> StreamingResponse:
    """``event: alerts`` with the body of ``GET /v1/alerts`` whenever the buyer has new ones; the event id
    is the last alert's, so a reconnecting EventSource goes on after it."""
    engine = engine_of(request)
    owner = owner_of_cookie(request.cookies.get(COOKIE), await run_in_threadpool(_secret, request, engine))
    if owner is None:
        raise HTTPException(401, "no valid alert session: POST /v1/alerts/session with X-Buyer-Token first")
    await run_in_threadpool(engine.store.touch_saved_searches, owner)
    start = max(after, int(last_event_id) if (last_event_id or "").isdigit() else 0)
    events = _events(request, engine, settings, owner, start)
    return StreamingResponse(events, media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def _events(request: Request, engine: SearchEngine, settings: Settings, owner: str,
                  sent: int) -> AsyncIterator[str]:
    feed, cfg = _feed(request, engine), settings.alerts
    yield "retry: 2000\n\n"
    ends, beat = time.monotonic() + cfg.stream_max_s, time.monotonic()
    while time.monotonic() < ends and not await request.is_disconnected():
        if await run_in_threadpool(feed.head) > sent:
            body = await run_in_threadpool(alerts_out, engine, owner, sent, MAX_ALERTS)
            if body.alerts:
                sent = body.next_after
                yield f"id: {sent}\nevent: alerts\ndata: {body.model_dump_json()}\n\n"
                continue
        if time.monotonic() - beat > 15:
            beat = time.monotonic()
            yield ": keep-alive\n\n"
        await asyncio.sleep(cfg.stream_poll_s)


# ------------------------------------------------------------- shapes
def alerts_out(engine: SearchEngine, owner: str, after: int, limit: int) -> AlertsOut:
    rows = engine.store.alerts_after(owner, after, limit + 1)
    more, rows = len(rows) > limit, rows[:limit]
    labels = {s.id: s.query.get("label", "") for s in engine.store.saved_searches(owner)} if rows else {}
    catalog = engine.live.catalog
    out = []
    for a in rows:
        row = catalog.row_of_key(a.listing_key)
        listing = ListingOut.of(catalog.listing(row)) if row != NONE else None
        out.append(AlertOut(id=a.id, saved_search_id=a.search_id, saved_search=labels.get(a.search_id, ""),
                            listing_id=a.listing_id, listing=listing, at=a.at))
    return AlertsOut(alerts=out, next_after=rows[-1].id if rows else after, more=more)


def saved_out(row: SavedSearchRow, alerts: int) -> SavedSearchOut:
    q = row.query
    return SavedSearchOut(id=row.id, label=q.get("label", ""), text=q.get("text"), words=q.get("words"),
                          photo=bool(q.get("photo")), filters=q.get("filters") or {}, created_at=row.created_at,
                          alerts=alerts)


def label(words: str | None, photo: bool, filters: Filters) -> str:
    """What the search looks for, in words: "oak wardrobe, in Home & Garden, £10 to £50, near Leeds"."""
    parts = [" and ".join(p for p in (f"“{words}”" if words else "", "your photo" if photo else "") if p)]
    if filters.category:
        parts.append(f"in {filters.category}")
    low, high = filters.min_price, filters.max_price
    if low is not None or high is not None:
        parts.append(f"£{low:g} to £{high:g}" if low is not None and high is not None
                     else f"from £{low:g}" if low is not None else f"up to £{high:g}")
    if filters.location:
        parts.append(f"near {filters.location}")
    return ", ".join(p for p in parts if p)


# ------------------------------------------------------------- helpers
def _words(engine: SearchEngine, text: str | None, spelling: bool) -> tuple[str | None, np.ndarray | None]:
    """The words as a search would search them (spelling corrected), and their text vector."""
    if text is None:
        return None, None
    if not engine.has_text:
        raise TextSearchUnavailable("text search is not available: no text model or text index is loaded")
    words, _ = engine.pipeline.understander.correct(text, spelling)
    return words, np.asarray(engine.text_encoder.encode([words])[0], np.float32)


def _filters_json(filters: Filters) -> dict:
    return {k: v for k, v in (("category", filters.category), ("price_min", filters.min_price),
                              ("price_max", filters.max_price), ("location", filters.location)) if v is not None}


class _Limits:
    def __init__(self, settings: Settings) -> None:
        a = settings.alerts
        self.buyer = WindowLimit(a.create_per_buyer, a.create_window_s)
        self.address = WindowLimit(a.create_per_address, a.create_window_s)

    def wait_s(self, owner: str, address: str) -> int:
        return max(self.buyer.wait_s(owner), self.address.wait_s(address))

    def record(self, owner: str, address: str) -> None:
        self.buyer.record(owner)
        self.address.record(address)


_lock = threading.Lock()


def _limits(request: Request, settings: Settings) -> _Limits:
    with _lock:
        if getattr(request.app.state, "save_limits", None) is None:
            request.app.state.save_limits = _Limits(settings)
        return request.app.state.save_limits


def _check_rate(request: Request, owner: str, settings: Settings) -> None:
    wait = _limits(request, settings).wait_s(owner, client_address(request))
    if wait:
        raise HTTPException(429, f"too many saved searches created lately from this buyer or address: try again in "
                                 f"{wait} s", headers={"Retry-After": str(wait)})


def _secret(request: Request, engine: SearchEngine) -> bytes:
    key = getattr(request.app.state, "alerts_key", None)
    if key is None:
        key = request.app.state.alerts_key = engine.store.shared_secret(SECRET)
    return key


class AlertFeed:
    """The newest alert id, asked of the store at most every ``every_s`` whatever the number of streams."""

    def __init__(self, engine: SearchEngine, every_s: float) -> None:
        self.engine, self.every_s = engine, every_s
        self._head, self._at = 0, 0.0
        self._lock = threading.Lock()

    def head(self) -> int:
        with self._lock:
            if time.monotonic() - self._at >= self.every_s:
                self._head, self._at = self.engine.store.alert_head(), time.monotonic()
            return self._head


def _feed(request: Request, engine: SearchEngine) -> AlertFeed:
    with _lock:
        feed = getattr(request.app.state, "alert_feed", None)
        if feed is None or feed.engine is not engine:
            feed = request.app.state.alert_feed = AlertFeed(engine, request.app.state.settings.alerts.stream_poll_s)
        return feed

