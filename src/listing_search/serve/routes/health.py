"""Liveness/readiness and the category list."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from listing_search.serve.deps import EngineDep
from listing_search.serve.schemas import CategoriesOut, HealthOut

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=HealthOut, summary="Model, index and catalogue loaded?",
            responses={503: {"description": "Not ready, with the reason"}})
def health(request: Request) -> HealthOut | JSONResponse:
    engine = getattr(request.app.state, "engine", None)
    if engine is None:
        reason = getattr(request.app.state, "load_error", None) or "loading"
        return JSONResponse({"status": "unavailable", "detail": reason}, status_code=503)
    try:
        problem = request.app.state.writer.write_problem()
        status = "degraded" if problem else "ok"  # reads still work; writes would be refused
        return HealthOut(status=status, writes=problem or "ok", **engine.health())
    except Exception as exc:  # a broken or unreachable store must read as unhealthy, not crash the probe
        return JSONResponse({"status": "unavailable", "detail": str(exc)}, status_code=503)


@router.get("/v1/categories", response_model=CategoriesOut, summary="Root categories (for filters)")
def categories(engine: EngineDep) -> CategoriesOut:
    return CategoriesOut(categories=engine.categories)
