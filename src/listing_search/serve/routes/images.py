"""Catalogue photos by id (the files the search results link to)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import FileResponse, Response

from listing_search.serve.deps import EngineDep

router = APIRouter(prefix="/v1", tags=["images"])


@router.get("/images/{image_id}", response_class=FileResponse, summary="A catalogue photo (image/jpeg)",
            responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "Unknown photo"}})
def get_image(engine: EngineDep,
              image_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,128}$")]) -> Response:
    path, data = engine.photo(image_id)
    headers = {"Cache-Control": "public, max-age=86400"}
    if path is not None:
        return FileResponse(path, media_type="image/jpeg", headers=headers)
    if data is None:
        raise HTTPException(404, f"unknown image {image_id!r}")
    return Response(data, media_type="image/jpeg", headers=headers)
