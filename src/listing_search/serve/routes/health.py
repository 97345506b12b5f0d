"""Liveness/readiness and the category list.

``/health`` says whether the replica serves and, when writes would fail, which storage and how
(``the database is read-only``); the whole reasons, with paths and hosts, go to the log and to
operators who send one of ``serve.operator_keys`` in ``X-API-Key`` (write keys do not show them).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader

from listing_search.errors import DATABASE, STORAGE, StorageError
from listing_search.serve.auth import key_matches
from listing_search.serve.deps import EngineDep
from listing_search.serve.schemas import CategoriesOut, HealthOut
from listing_search.store.backup import redacted_url

if TYPE_CHECKING:
    from listing_search.search.engine import SearchEngine

log = logging.getLogger(__name__)
router = APIRouter(tags=["operations"])
OPERATOR_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="OperatorKey",
                            description="One of serve.operator_keys: /health then shows its detail.")
# CatalogWriter.write_problem's prefixes -> the storage they name
PROBLEM_KINDS = (("store:", DATABASE), ("blob store:", STORAGE), ("disk full", STORAGE))
STATES = (("full", "is full"), ("read-only", "is read-only"), ("only accepts reads", "is read-only"),
          ("unreachable", "is unreachable"), ("connect", "is unreachable"))


@router.get("/health", response_model=HealthOut, summary="Model, index and catalogue loaded?",
            responses={503: {"description": "Not ready, with the reason"}})
def health(request: Request, key: Annotated[str | None, Security(OPERATOR_KEY)] = None) -> HealthOut | JSONResponse:
    operator = is_operator(request, key)
    engine = getattr(request.app.state, "engine", None)
    if engine is None:
        body = {"status": "unavailable", "detail": getattr(request.app.state, "load_problem", None) or "loading"}
        if operator:
            body["error"] = getattr(request.app.state, "load_error", None)
        return JSONResponse(body, status_code=503)
    try:
        problem = request.app.state.writer.write_problem()
        facts = engine.health()
    except Exception as exc:  # a broken or unreachable store must read as unhealthy, not crash the probe
        log.warning("/health: %s", getattr(exc, "reason", None) or repr(exc))
        body = {"status": "unavailable", "detail": exc.public if isinstance(exc, StorageError) else
                "the replica cannot read its state (see the server log)"}
        if operator:
            body["error"] = getattr(exc, "reason", None) or repr(exc)
        return JSONResponse(body, status_code=503)
    follower = facts.pop("follower_error", None)
    out = HealthOut(status="degraded" if problem else "ok", writes=public_problem(problem),  # reads still work
                    follower_error=public_problem(follower and f"store: {follower}") if follower else None,
                    **facts)
    if operator:
        out.detail = {"writes": problem, "follower_error": follower, **engine_locations(engine)}
    return out


def is_operator(request: Request, key: str | None) -> bool:
    """Whether ``key`` is an operator key (never a write key, unless it is also listed as an operator's)."""
    keys = request.app.state.settings.serve.health_keys()
    return bool(key and keys) and key_matches(key, keys)


def public_problem(problem: str | None) -> str:
    """``CatalogWriter.write_problem``'s reason as a client may read it: which storage, and how, never where."""
    if not problem:
        return "ok"
    kind = next((k for prefix, k in PROBLEM_KINDS if problem.startswith(prefix)), STORAGE)
    lowered = problem.lower()
    state = next((s for word, s in STATES if word in lowered), "is unavailable")
    return StorageError("", kind, state).public


def engine_locations(engine: "SearchEngine") -> dict[str, str]:
    """Where the engine's store (password removed) and blob store are."""
    return {"store": redacted_url(engine.store.url), "blob_store": engine.blobs.url}


@router.get("/v1/categories", response_model=CategoriesOut, summary="Root categories (for filters)")
def categories(engine: EngineDep) -> CategoriesOut:
    return CategoriesOut(categories=engine.categories)
