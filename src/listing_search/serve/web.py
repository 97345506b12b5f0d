"""The web page: ``/`` serves the search page, ``/static/*`` its script and style (no build step).

The page only talks to the public JSON API (``/v1/...``) of the same server, so it is one router,
included by the app factory with ``app.include_router(web.router)``.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).with_name("static")

router = APIRouter(tags=["web"])
router.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


@router.get("/", include_in_schema=False)
def index() -> FileResponse:
    """The search page; revalidated on each visit so a new release is picked up at once."""
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})
