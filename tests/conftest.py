"""Shared fixtures: tiny seeded datasets of the input's shape, made fresh for each test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.factories import make_dataset

REAL_DATA = Path(os.environ.get("DATA_DIR", Path(__file__).resolve().parents[2] / "shared/data/fb_marketplace"))


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    """A dataset folder with 3 categories, 12 listings, 2 photos each, and the CSV's traps."""
    return make_dataset(tmp_path / "dataset", n_listings=12, seed=0)


@pytest.fixture
def real_data() -> Path:
    if not (REAL_DATA / "Products.csv").is_file():
        pytest.skip(f"real dataset not found at {REAL_DATA}")
    return REAL_DATA
