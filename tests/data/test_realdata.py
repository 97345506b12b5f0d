"""The real dataset's exact counts (skipped when ../shared/data is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from listing_search.data.images import standardise
from listing_search.data.prepare import prepare
from listing_search.settings import Settings

pytestmark = pytest.mark.realdata


@pytest.mark.slow
def test_full_prepare_counts(real_data: Path, tmp_path: Path) -> None:
    base = Settings()
    settings = base.model_copy(update={"data": base.data.model_copy(update={"image_size": 32})})
    report = prepare(settings, str(real_data), tmp_path / "art")
    assert report.products_rows_read == report.listings_kept == 6441
    assert report.image_rows_read == report.photo_rows_kept == 11330
    assert report.categories == 13
    assert report.dropped == {}
    assert report.image_files_without_row == 64
    assert 90 <= report.listings_without_photos <= 110


def test_every_raw_photo_standardises_to_512_rgb(real_data: Path) -> None:
    raw = sorted((real_data / "raw_images").glob("*.jpg"))
    assert len(raw) == 300
    for path in raw:
        out = standardise(path, 512, 64_000_000)
        assert out.size == (512, 512) and out.mode == "RGB", path.name
    formats = {Image.open(p).format for p in raw}
    assert "PNG" in formats, "the raw set includes PNG data behind .jpg names"
