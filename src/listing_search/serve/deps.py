"""Request dependencies: the loaded engine, settings, API key, bounded upload reading, k checks."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security, UploadFile
from fastapi.security import APIKeyHeader

from listing_search.core.near import Near
from listing_search.search.engine import SearchEngine
from listing_search.serve.auth import refusal
from listing_search.serve.writes import CatalogWriter
from listing_search.settings import Settings

API_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False,
                              description="Needed to add or delete listings (settings.serve.api_keys).")
READ_CHUNK = 1 << 20


# The dependencies below only read the app's state: ``async def``, so FastAPI calls them on the event
# loop. A plain ``def`` dependency is run through the thread pool, a hop there and back per dependency
# per request (two on every search, beside the route's own) for a dictionary lookup.


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def engine_of(request: Request) -> SearchEngine:
    """The engine loaded at start-up; 503 with the reason while it is missing (no path: /health's detail
    and the log have those)."""
    engine = getattr(request.app.state, "engine", None)
    if engine is None:
        reason = getattr(request.app.state, "load_problem", None) or "not loaded yet"
        raise HTTPException(503, f"search engine unavailable: {reason}")
    return engine


async def get_engine(request: Request) -> SearchEngine:
    """``engine_of`` as a dependency."""
    return engine_of(request)


async def get_writer(request: Request) -> CatalogWriter:
    """The catalogue writer of the loaded engine; 503 while the engine is missing."""
    engine_of(request)
    return request.app.state.writer


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[SearchEngine, Depends(get_engine)]
WriterDep = Annotated[CatalogWriter, Depends(get_writer)]


async def require_api_key(settings: SettingsDep, key: Annotated[str | None, Security(API_KEY_HEADER)] = None) -> None:
    """The ApiKeyMiddleware's check again, so a route cannot be mounted without it; documents the header."""
    refused = refusal(key.encode() if key else None, settings.serve.write_keys())
    if refused is not None:
        headers = {"WWW-Authenticate": "X-API-Key"} if refused[0] == 401 else None
        raise HTTPException(*refused, headers=headers)


def read_upload(upload: UploadFile, settings: Settings, field: str = "image") -> bytes:
    """The uploaded bytes, refused when empty or over ``max_upload_bytes`` (never read past it)."""
    limit = settings.serve.max_upload_bytes
    chunks, size = [], 0
    while True:
        chunk = upload.file.read(min(READ_CHUNK, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"{field}: upload too large: the limit is {limit} bytes")
    if size == 0:
        raise HTTPException(400, f"{field}: empty upload")
    return b"".join(chunks)


def near_of(engine: SearchEngine, near: str | None, within_km: float | None) -> Near | None:
    """``near`` and ``within_km`` as a point and a radius (None without ``near``); 422 with the reason
    (an unknown place names close ones) or for a radius without a place."""
    near = (near or "").strip() or None
    if near is None:
        if within_km is not None:
            raise HTTPException(422, "within_km: give near too (a town, or a position as 'lat,lon')")
        return None
    return engine.resolve_near(near, within_km)


def check_k(k: int, settings: Settings) -> int:
    if not 1 <= k <= settings.serve.max_k:
        raise HTTPException(422, f"k must be between 1 and {settings.serve.max_k}, got {k}")
    return k
