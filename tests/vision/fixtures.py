"""A tiny trained vision pipeline (raw data -> prepare -> train -> embed), built once per test session.

Seeded and small (64 px inputs, 2 epochs, 24 photos) so every vision and evaluate test stays fast on 2 cores.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from listing_search.settings import Settings
from tests.factories import make_dataset

# The default recipe (frozen int8 backbone, the 1000-way layer and head trained), small.
TINY_VISION = {"input_size": 64, "epochs": 2, "batch_size": 8, "augment_copies": 1, "patience": 2,
               "embed_batch_size": 8, "device": "cpu"}


def tiny_settings(**vision: object) -> Settings:
    base = Settings()
    return base.model_copy(update={
        "data": base.data.model_copy(update={"image_size": 96, "workers": 1}),
        "vision": base.vision.model_copy(update={**TINY_VISION, **vision}),
    })


_BUILT: dict[str, Path] = {}


@pytest.fixture(scope="session")
def trained_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Artifacts of a tiny dataset after prepare, train and embed (built once even when several test
    modules import this fixture, each of which pytest treats as its own definition)."""
    if "art" not in _BUILT:
        _BUILT["art"] = _build(tmp_path_factory)
    return _BUILT["art"]


def _build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from listing_search.data.prepare import prepare
    from listing_search.vision.embed import embed
    from listing_search.vision.train import train

    root = tmp_path_factory.mktemp("vision")
    raw = make_dataset(root / "raw", n_listings=12, photos_per_listing=2, seed=0)
    art = root / "art"
    settings = tiny_settings()
    prepare(settings, str(raw), art)
    train(settings, art)
    embed(settings, art)
    return art
