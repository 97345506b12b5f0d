"""Split a raw dataset by listing into a catalogue folder and a held-out test folder.

Both halves have the input's shape (``Products.csv``, ``Images.csv``, ``images/``), so the whole
pipeline runs on the catalogue and ``evaluate`` measures on listings it has never seen: not in
training, not in tuning, not in the search catalogue.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd

from listing_search import schema as S
from listing_search.data.tables import read_csv_strict, root_category, split_by_listing


def make_holdout(src: Path, out: Path, fraction: float = 0.15, seed: int = 7) -> dict[str, int]:
    """Write ``out/catalog`` and ``out/test``; photos are linked, not copied. Returns counts."""
    products = read_csv_strict(src / S.PRODUCTS_CSV, S.PRODUCTS_CSV, S.PRODUCTS_COLUMNS)
    images = read_csv_strict(src / S.IMAGES_CSV, S.IMAGES_CSV, S.IMAGES_COLUMNS)
    keyed = pd.DataFrame({S.LISTING_ID: products["id"], S.ROOT_CATEGORY: products["category"].map(root_category)})
    side = split_by_listing(keyed, fraction, seed)
    test_ids = set(keyed.loc[side == "val", S.LISTING_ID])
    counts: dict[str, int] = {}
    for name, is_test in (("catalog", False), ("test", True)):
        keep_p = products["id"].isin(test_ids) == is_test
        keep_i = images["product_id"].isin(test_ids) == is_test
        _write_half(src, out / name, products[keep_p], images[keep_i])
        counts[f"{name}_listings"], counts[f"{name}_images"] = int(keep_p.sum()), int(keep_i.sum())
    return counts


def _write_half(src: Path, dest: Path, products: pd.DataFrame, images: pd.DataFrame) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    (dest / S.IMAGES_DIR).mkdir(parents=True)
    products.to_csv(dest / S.PRODUCTS_CSV, index=False, lineterminator="\n")
    images.to_csv(dest / S.IMAGES_CSV, index=False, lineterminator="\n")
    for image_id in images["id"]:
        photo = (src / S.IMAGES_DIR / f"{image_id}.jpg").resolve()
        if photo.exists():
            os.symlink(photo, dest / S.IMAGES_DIR / f"{image_id}.jpg")
