"""The web page: ``/`` serves the search page, ``/listing/{id}`` a listing's own page and ``/saved`` the
buyer's saved listings (the same page, which reads the view from the address), ``/static/*`` their
script and style (no build step).

The page only talks to the public JSON API (``/v1/...``) of the same server, so it is one router,
included by the app factory with ``app.include_router(web.router)``.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from listing_search.errors import StorageError
from listing_search.serve.routes.listings import MAX_LISTING_ID_LENGTH

STATIC_DIR = Path(__file__).with_name("static")
NO_CACHE = {"Cache-Control": "no-cache"}  # revalidated on each visit so a new release is picked up at once

router = APIRouter(tags=["web"])
router.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


@router.get("/", include_in_schema=False)
def index() -> FileResponse:
    """The search page."""
    return FileResponse(STATIC_DIR / "index.html", headers=NO_CACHE)


@router.get("/saved", include_in_schema=False)
def saved_page() -> FileResponse:
    """The Saved page, to reload and bookmark: the saves live in the browser, so the server has nothing
    to look up; the page is the search page's, at the site's root level (its relative addresses hold)."""
    return FileResponse(STATIC_DIR / "index.html", headers=NO_CACHE)


@router.get("/listing/{listing_id}", include_in_schema=False)
def listing_page(request: Request, listing_id: str) -> HTMLResponse:
    """A listing's own address, to reload and share. ``<base href="../">`` makes the page's relative
    addresses (its script, the API) resolve from the site's root, under a path prefix too.

    The page is always the same; its status says what a crawler or link checker should know: 404
    for an id no listing has (the page asks the API and says "listing not found" in words), 503
    while the engine is not loaded or the store cannot be read (the page reports what the API says)."""
    html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    return HTMLResponse(html.replace("<head>", '<head>\n  <base href="../">', 1), headers=NO_CACHE,
                        status_code=_listing_status(request, listing_id))


def _listing_status(request: Request, listing_id: str) -> int:
    engine = getattr(request.app.state, "engine", None)
    if engine is None:
        return 503
    if len(listing_id) > MAX_LISTING_ID_LENGTH or not listing_id.isprintable():  # no listing has such an id
        return 404
    try:
        return 200 if engine.get_listing(listing_id) is not None else 404
    except StorageError:
        return 503
