"""Domain errors -> 4xx JSON answers with the reason, so bad input never becomes a 500."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from listing_search.data.images import CORRUPT, ELONGATED, MISSING, TOO_LARGE, UNREADABLE, ImageRejected
from listing_search.errors import (
    BadCursor, BadNear, IdempotencyConflict, PhotoQueueFull, StorageError, TextSearchUnavailable, UnknownCategory,
)
from listing_search.serve.auth import is_write

log = logging.getLogger(__name__)

IMAGE_STATUS = {UNREADABLE: 415, CORRUPT: 422, ELONGATED: 422, TOO_LARGE: 413, MISSING: 400}
ERROR_RESPONSES: dict[int | str, dict] = {
    400: {"description": "Bad input (empty upload, text search unavailable, a cursor of another search)"},
    413: {"description": "Upload or image dimensions too large, or its decode over the photo decode budget"},
    415: {"description": "Not an image"},
    422: {"description": "Invalid field, corrupt or truncated image, image longer than 20:1, unknown category, "
                         "k out of range, unknown place (`matches` names close ones), sort=distance without near"},
    503: {"description": "Model, index or catalogue not loaded; storage refuses writes (read-only, unreachable); "
                         "photo queue full (retry after Retry-After seconds)"},
    507: {"description": "Storage full: the write was not made"},
}


def install(app: FastAPI) -> None:
    app.add_exception_handler(ImageRejected, _image_rejected)
    app.add_exception_handler(UnknownCategory, _unknown_category)
    app.add_exception_handler(BadNear, _bad_near)
    app.add_exception_handler(TextSearchUnavailable, _text_unavailable)
    app.add_exception_handler(BadCursor, _bad_cursor)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StorageError, _storage)
    app.add_exception_handler(IdempotencyConflict, _idempotency_conflict)
    app.add_exception_handler(PhotoQueueFull, _photo_queue_full)


async def _image_rejected(request: Request, exc: ImageRejected) -> JSONResponse:
    return JSONResponse({"detail": f"image rejected: {exc}", "reason": exc.reason},
                        status_code=IMAGE_STATUS.get(exc.reason, 422))


async def _unknown_category(request: Request, exc: UnknownCategory) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=422)


async def _bad_near(request: Request, exc: BadNear) -> JSONResponse:
    """An unknown place says which known ones are close (``matches``: send one as ``near``)."""
    return JSONResponse({"detail": str(exc), "matches": list(exc.matches)}, status_code=422)


async def _text_unavailable(request: Request, exc: TextSearchUnavailable) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=400)


async def _bad_cursor(request: Request, exc: BadCursor) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=400)


async def _storage(request: Request, exc: StorageError) -> JSONResponse:
    """Nothing was written (a write) or nothing could be read (a read): say which kind of storage failed
    and how, never where (paths, blob keys and database hosts go to the log); a retry (with the same
    Idempotency-Key) is safe."""
    log.warning("%s %s: %s storage error: %s", request.method, request.url.path, exc.kind, exc.reason)
    verb = "not written" if is_write(request.scope) else "could not be served"  # a search is a POST too
    return JSONResponse({"detail": f"{verb}: {exc.public}", "reason": exc.kind}, status_code=exc.status,
                        headers={"Retry-After": "5"})


async def _photo_queue_full(request: Request, exc: PhotoQueueFull) -> JSONResponse:
    """Too much photo work at once: nothing was done, the same request may be sent again."""
    return JSONResponse({"detail": str(exc), "reason": "busy"}, status_code=503,
                        headers={"Retry-After": str(exc.retry_after)})


async def _idempotency_conflict(request: Request, exc: IdempotencyConflict) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=422)


async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    """One readable sentence in ``detail`` (``field: problem; ...``) plus FastAPI's list in ``errors``."""
    errors = exc.errors()
    parts = []
    for err in errors:
        loc = ".".join(str(p) for p in _field_loc(err.get("loc", ())))
        parts.append(f"{loc}: {err.get('msg', 'invalid')}" if loc else str(err.get("msg", "invalid")))
    safe = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in errors]
    return JSONResponse({"detail": "; ".join(parts) or "invalid request", "errors": safe}, status_code=422)


def _field_loc(loc: tuple | list) -> tuple | list:
    """The field's path without where it came from: ``("body", "query")`` is the field ``query``."""
    return loc[1:] if loc and loc[0] in ("body", "query", "path", "header", "form") else loc
