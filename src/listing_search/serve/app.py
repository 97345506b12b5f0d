"""The FastAPI app factory: model, indexes and catalogue loaded once at start-up into one engine.

``create_app(settings)`` is what uvicorn runs (``listing-search serve``); tests pass a ready engine.
Nothing here imports torch: the vision model runs in ONNX Runtime.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool

from listing_search import schema as S
from listing_search.core.near import warm as warm_places
from listing_search.errors import StorageError
from listing_search.search.engine import SearchEngine
from listing_search.serve import auth, errors, privacy, security
from listing_search.serve.deadlines import BodyDeadlineMiddleware
from listing_search.serve.limits import FORM_SLACK, BodyLimitMiddleware
from listing_search.serve.metrics import Metrics, MetricsMiddleware
from listing_search.serve.metrics import router as metrics_router
from listing_search.serve.matcher import MatcherService
from listing_search.serve.routes import (alerts, health, images, listings, places, predict, recommend, search,
                                         suggest)
from listing_search.serve.strict import StrictFormMiddleware, StrictFramingMiddleware
from listing_search.serve.writes import CatalogWriter
from listing_search.settings import Settings, get_settings

log = logging.getLogger(__name__)

DESCRIPTION = """Find second-hand listings from a photo, words, or both.

* `POST /v1/search` — photo (multipart `image`) and/or `text`, `k`, filters → ranked listings.
* `near` (a town or 'lat,lon') and `within_km` on search, browse, recommend and similar: listings within
  a radius, each with `distance_km`; `sort=distance`; `GET /v1/places?prefix=` names places to search near.
* `GET /v1/listings/{id}`, `GET /v1/listings/{id}/similar`, `GET /v1/images/{image_id}`.
* `POST /v1/listings`, `DELETE /v1/listings/{id}` — need the `X-API-Key` header.
* `POST /v1/saved-searches`, `GET /v1/alerts` — saved searches and their alerts (the `X-Buyer-Token` header).
* `POST /predict/feature_embedding`, `POST /predict/similar_images` — the original model API.

Errors are JSON: `{"detail": "<reason>"}` with a 4xx status.
"""


def create_app(settings: Settings | None = None, engine: SearchEngine | None = None,
               matcher: bool | None = None) -> FastAPI:
    """The API; loads the engine from ``settings.artifacts_dir`` at start-up unless one is given.

    The alert matcher (``serve.matcher``) runs when ``settings.alerts.matcher`` is on and the app loads
    its own engine; ``matcher`` forces it on or off (tests that hand in an engine)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if app.state.engine is None:
            await run_in_threadpool(_load, app, settings)
        if app.state.engine is not None and app.state.follow:
            app.state.engine.start_following()
        run_matcher = matcher if matcher is not None else app.state.follow and settings.alerts.matcher
        if app.state.engine is not None and run_matcher:
            app.state.matcher = MatcherService(app.state.engine, settings.alerts)
            app.state.matcher.start()
        yield
        if app.state.matcher is not None:
            await run_in_threadpool(app.state.matcher.stop)  # gives the lease up: another replica goes on
        if app.state.engine is not None and app.state.follow:
            await run_in_threadpool(app.state.engine.close)  # stops following, writes a last snapshot

    # Swagger UI and ReDoc assets from the fastapi-offline package, not a CDN: /docs works offline.
    app = FastAPIOffline(title="listing-search", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.settings, app.state.engine = settings, engine
    app.state.load_error = app.state.load_problem = None  # the whole story (operators), what clients see
    app.state.writer = CatalogWriter(engine) if engine is not None else None
    app.state.follow = engine is None  # a given engine is the caller's to run
    app.state.matcher = None
    app.state.metrics = Metrics()
    errors.install(app)
    privacy.install()  # the access log rounds a buyer's position
    for module in (predict, search, suggest, places, recommend, listings, images, health, alerts):
        app.include_router(module.router)
    app.include_router(metrics_router)
    _include_web(app)
    app.add_middleware(StrictFormMiddleware)  # innermost: sees the body the limits let through
    app.add_middleware(BodyLimitMiddleware, limit_for=body_limit(settings))
    app.add_middleware(BodyDeadlineMiddleware, seconds=settings.serve.body_timeout_s)
    auth.install(app, settings)
    app.add_middleware(StrictFramingMiddleware)  # before anything else looks at the request
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    security.install(app, settings)  # outermost: its headers go on every answer
    return app


def _load(app: FastAPI, settings: Settings) -> None:
    """Load once; on failure serve 503s with the reason instead of dying (the health check shows it)."""
    missing: list[str] = []
    try:
        missing = check_artifacts(settings.artifacts_dir)
        if missing:
            raise FileNotFoundError(f"missing {missing} in {settings.artifacts_dir} "
                                    "(run `listing-search index` after embed)")
        app.state.engine = SearchEngine.load(settings)
        app.state.writer = CatalogWriter(app.state.engine)
        try:
            warm_places()
        except Exception as exc:  # only a search naming a place needs it: that one says so
            log.warning("gazetteer not read at start-up: %s", exc)
        warm_ranker(app.state.engine.models.ranker)
        log.info("search engine loaded: %s", app.state.engine.health())
    except Exception as exc:  # any broken artifact: report it, keep the process up
        app.state.load_error = f"{type(exc).__name__}: {exc}"
        app.state.load_problem = load_problem(exc, missing)
        log.error("could not load the search engine from %s: %s; serving /health as 503 until fixed and "
                  "restarted", settings.artifacts_dir, exc)


def warm_ranker(ranker) -> None:
    """Compile a LambdaMART ranker while starting (~0.5 s), not in the first search that scores."""
    compiled = getattr(ranker, "compiled", None)
    if compiled is not None:
        compiled()  # a failure is logged there and leaves LightGBM's predictor in place


def check_artifacts(artifacts: Path) -> list[str]:
    """Files serving needs that are missing (empty when ready to serve)."""
    needed = [S.VISION_ONNX, S.MODEL_CARD, S.CATEGORIES_JSON]  # listings come from the store
    return [n for n in needed if not (Path(artifacts) / n).is_file()]


ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])(?:/[\w.-]+)+/([\w.-]+)")


def load_problem(exc: Exception, missing: list[str]) -> str:
    """Why the engine is not loaded, naming no folder or host (the log has the whole reason): missing
    artifacts by their relative names; a broken file by its own name (``…/vision.onnx``)."""
    if missing:
        return f"artifacts missing: {', '.join(missing)}"
    if isinstance(exc, StorageError):
        return exc.public
    named = ABSOLUTE_PATH.sub(r"…/\1", str(exc))
    return f"the search engine could not be loaded: {type(exc).__name__}: {named}"


def body_limit(settings: Settings) -> Callable[[str], int]:
    """Per-path request body cap: one photo, or up to MAX_PHOTOS for a new listing."""
    one = settings.serve.max_upload_bytes + FORM_SLACK
    many = settings.serve.max_upload_bytes * listings.MAX_PHOTOS + FORM_SLACK

    def limit_for(path: str) -> int:
        return many if path.rstrip("/") == "/v1/listings" else one

    return limit_for


def _include_web(app: FastAPI) -> None:
    """The static search page at ``/`` when its module is present."""
    try:
        from listing_search.serve import web
    except ImportError:
        return
    app.include_router(web.router)
