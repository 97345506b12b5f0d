"""The web page: ``/`` serves the search page, ``/listing/{id}`` a listing's own page (the same page,
which reads the id from the address), ``/static/*`` their script and style (no build step).

The page only talks to the public JSON API (``/v1/...``) of the same server, so it is one router,
included by the app factory with ``app.include_router(web.router)``.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).with_name("static")
MAX_ID_LENGTH = 128  # as the API's listing ids (routes.listings.ListingId)
NO_CACHE = {"Cache-Control": "no-cache"}  # revalidated on each visit so a new release is picked up at once

router = APIRouter(tags=["web"])
router.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


@router.get("/", include_in_schema=False)
def index() -> FileResponse:
    """The search page."""
    return FileResponse(STATIC_DIR / "index.html", headers=NO_CACHE)


@router.get("/listing/{listing_id}", include_in_schema=False)
def listing_page(request: Request, listing_id: str) -> HTMLResponse:
    """A listing's own address, to reload and share. ``<base href="../">`` makes the page's relative
    addresses (its script, the API) resolve from the site's root, under a path prefix too. An unknown
    id gets the page as well (it asks the API and says "listing not found" in words), with status
    404, so crawlers and link checkers see a dead link as dead; while the engine is not loaded the
    page answers 200 and reports what the API says."""
    html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    engine = getattr(request.app.state, "engine", None)
    known = engine is None or (len(listing_id) <= MAX_ID_LENGTH and engine.get_listing(listing_id) is not None)
    return HTMLResponse(html.replace("<head>", '<head>\n  <base href="../">', 1), headers=NO_CACHE,
                        status_code=200 if known else 404)
