"""The project's request dependencies run on the event loop: FastAPI sends a plain ``def`` dependency
through the thread pool, a hop there and back per request for what is a lookup of the app's state."""

from __future__ import annotations

import inspect

from fastapi.routing import APIRoute

from listing_search.serve.app import create_app
from listing_search.settings import Settings


def project_dependencies(dependant) -> list:
    out = []
    for sub in dependant.dependencies:
        call = sub.call
        if getattr(call, "__module__", "").startswith("listing_search"):
            out.append(call)
        out.extend(project_dependencies(sub))
    return out


def api_routes(routes) -> list[APIRoute]:
    """Every APIRoute, also those of included routers (FastAPI 0.165 keeps them behind a wrapper)."""
    out = []
    for route in routes:
        if isinstance(route, APIRoute):
            out.append(route)
        inner = getattr(route, "original_router", None)
        if inner is not None:
            out.extend(api_routes(inner.routes))
    return out


def test_project_dependencies_are_async(tmp_path):
    app = create_app(Settings(artifacts_dir=tmp_path))
    calls = {c for r in api_routes(app.routes) for c in project_dependencies(r.dependant)}
    names = {f"{c.__module__}.{c.__qualname__}" for c in calls}
    assert {"listing_search.serve.deps.get_engine", "listing_search.serve.deps.get_settings",
            "listing_search.serve.buyers.buyer"} <= names  # the walk reaches them
    blocking = sorted(f"{c.__module__}.{c.__qualname__}" for c in calls if not inspect.iscoroutinefunction(c))
    assert blocking == [], f"plain-def dependencies (each a thread-pool hop a request): {blocking}"
