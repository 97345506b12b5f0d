"""Real photos: a quick run on a slice of the real dataset must learn something. Skipped without the data."""

from __future__ import annotations

from pathlib import Path

import pytest

from listing_search import schema as S
from listing_search.data.prepare import prepare
from listing_search.data.tables import read_csv_strict
from listing_search.vision.train import train
from tests.vision.fixtures import tiny_settings

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


def _slice(real: Path, out: Path, n_listings: int) -> Path:
    """The first listings of the real dump with their photo rows, written back as clean CSVs."""
    products = read_csv_strict(real / S.PRODUCTS_CSV, S.PRODUCTS_CSV, S.PRODUCTS_COLUMNS)
    images = read_csv_strict(real / S.IMAGES_CSV, S.IMAGES_CSV, S.IMAGES_COLUMNS)
    products = products.sample(n=n_listings, random_state=0)
    out.mkdir()
    products[list(S.PRODUCTS_COLUMNS)].to_csv(out / S.PRODUCTS_CSV, index=False)
    images[images["product_id"].isin(set(products["id"]))][list(S.IMAGES_COLUMNS)].to_csv(
        out / S.IMAGES_CSV, index=False)
    (out / S.IMAGES_DIR).symlink_to(real / S.IMAGES_DIR)
    return out


def test_real_slice_training_beats_chance(real_data: Path, tmp_path: Path) -> None:
    settings = tiny_settings(input_size=224, epochs=4, batch_size=32, augment_copies=0, train_last_blocks=1,
                             lr_head=3e-3)
    settings = settings.model_copy(update={"data": settings.data.model_copy(update={"image_size": 256})})
    art = tmp_path / "art"
    prepare(settings, str(_slice(real_data, tmp_path / "raw", 300)), art)
    report = train(settings, art)
    assert report.best["val_image_accuracy"] > 2.0 / 13  # 13 root categories; chance is 1/13
