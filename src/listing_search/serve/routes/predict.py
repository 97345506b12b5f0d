"""The original model API (``/predict/...``) and category prediction."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, UploadFile

from listing_search.serve.deps import EngineDep, SettingsDep, check_k, read_upload
from listing_search.serve.errors import ERROR_RESPONSES
from listing_search.serve.schemas import CategoryOut, CategoryScore, FeaturesOut, SimilarImagesOut
from listing_search.serve.validate import Text

router = APIRouter(tags=["predict"], responses=ERROR_RESPONSES)
ImageFile = Annotated[UploadFile, File(description="A photo: JPEG, PNG, WebP, ... (multipart field `image`).")]


@router.post("/predict/feature_embedding", response_model=FeaturesOut, summary="Embedding of a photo")
def feature_embedding(engine: EngineDep, settings: SettingsDep, image: ImageFile) -> FeaturesOut:
    """The vision model's embedding of the photo, as the original API returned it."""
    return FeaturesOut(features=engine.embed_image(read_upload(image, settings)).tolist())


@router.post("/predict/similar_images", response_model=SimilarImagesOut, summary="Nearest catalogue photos")
def similar_images(engine: EngineDep, settings: SettingsDep, image: ImageFile,
                   k: Annotated[int, Form(description="How many photos (1..max_k).")] = 4) -> SimilarImagesOut:
    """Photo by photo (one listing may appear several times); see ``/v1/search`` for listings."""
    hits = engine.similar_images(read_upload(image, settings), check_k(k, settings))
    return SimilarImagesOut(similar_index=[vid for vid, _, _, _ in hits], image_ids=[i for _, i, _, _ in hits],
                            listing_ids=[lid for _, _, lid, _ in hits],
                            distances=[round(1.0 - score, 6) for _, _, _, score in hits])


@router.post("/v1/predict/category", response_model=CategoryOut, summary="Root category of a photo and/or words")
def predict_category(
    engine: EngineDep, settings: SettingsDep,
    image: Annotated[UploadFile | None, File(description="A photo of the item.")] = None,
    text: Annotated[Text | None, Form(max_length=5000, description="The listing's title (and description).",
                                     examples=["pine bed frame"])] = None,
    top: Annotated[int, Form(ge=1, le=50, description="How many categories.")] = 3,
) -> CategoryOut:
    """Most likely root categories with their probabilities, from the photo, the words, or both."""
    text = (text or "").strip() or None
    if image is None and text is None:
        raise HTTPException(422, "give an image, a text, or both")
    data = read_upload(image, settings) if image is not None else None
    ranked = engine.predict_category(data, text, top)  # a bad photo or no text model: the 4xx handlers answer
    return CategoryOut(categories=[CategoryScore(category=c, probability=round(p, 6)) for c, p in ranked])
