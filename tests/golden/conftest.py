"""The golden catalogue: ~1,200 real listings (tests/golden/golden.json), indexed and ranker-tuned once.

Titles, descriptions, prices, locations and categories are the real ones, cleaned by the project's
own table code; text vectors come from the real bundled MiniLM (``text_artifacts``). Photos are NOT
real: each listing gets one small synthetic photo of a seeded random colour, embedded by the tiny
ONNX vision model of ``tests/index/tiny_artifacts.py``, so the photo channel carries no category
signal. The golden set measures WORD queries (titles, misspelt titles) through the served path;
photo search quality is ``evaluate``'s job with the real vision model.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from listing_search import schema as S
from listing_search.data.tables import CategoryCodec, Dropped, clean_products, read_csv_strict, split_by_listing
from listing_search.index.build import build_index
from listing_search.fit.tune_ranker import tune_ranker
from listing_search.settings import Settings
from listing_search.vision.preprocess import PreprocessConfig
from tests.conftest import REAL_DATA
from tests.factories import photo
from tests.index.tiny_artifacts import DIM, INPUT_SIZE, embed_catalogue, make_onnx
from tests.text.fixtures import text_artifacts, write_text  # noqa: F401

GOLDEN = Path(__file__).with_name("golden.json")
VAL_FRACTION = 0.2
PHOTO_SIZE = (40, 32)


def golden_settings(artifacts: Path) -> Settings:
    """Serving defaults, with fewer ranker-fitting queries (a CI-sized fit) and candidates per channel."""
    s = Settings(artifacts_dir=artifacts)
    s.rank.train_queries, s.rank.val_queries, s.rank.candidates = 200, 100, 100
    return s


def load_golden() -> dict:
    return json.loads(GOLDEN.read_text())


def catalogue_listings(data: Path, ids: list[str], seed: int) -> pd.DataFrame:
    """The catalogue's rows of the real Products.csv, cleaned as ``prepare`` cleans them, ~20% in val."""
    raw = read_csv_strict(data / S.PRODUCTS_CSV, S.PRODUCTS_CSV, S.PRODUCTS_COLUMNS)
    listings = clean_products(raw, Dropped())
    listings = listings.set_index(S.LISTING_ID).loc[ids].reset_index()
    codec = CategoryCodec.fit(listings[S.ROOT_CATEGORY])
    listings[S.LABEL] = listings[S.ROOT_CATEGORY].map(codec.encode).astype(int)
    listings[S.SPLIT] = split_by_listing(listings, VAL_FRACTION, seed)
    return listings[list(S.LISTING_COLUMNS)]


def write_photos(root: Path, listings: pd.DataFrame, categories: list[str], seed: int) -> None:
    """One synthetic photo per listing, the tiny vision model, its card and the photo embeddings.

    A photo's colour is half its root category's own colour and half chance: photos of one department
    look somewhat alike, as real ones do (a random colour per listing made photo likeness pure noise, and
    the feed, which ranks by it, noise too)."""
    (root / S.CLEAN_IMAGES_DIR).mkdir(parents=True)
    rng = np.random.default_rng(seed)
    roots = sorted(set(listings[S.ROOT_CATEGORY]))
    own = {r: rng.integers(0, 256, 3) for r in roots}
    image_ids = [f"golden-{i:05d}" for i in range(len(listings))]
    for i, (image_id, root_category) in enumerate(zip(image_ids, listings[S.ROOT_CATEGORY])):
        colour = tuple(int(c) for c in (own[root_category] + rng.integers(0, 256, 3)) // 2)
        photo(colour, size=PHOTO_SIZE, seed=i).save(root / S.CLEAN_IMAGES_DIR / f"{image_id}.jpg", quality=90)
    training = listings.assign(**{S.IMAGE_ID: image_ids})[list(S.TRAINING_COLUMNS)]
    training.to_csv(root / S.TRAINING_CSV, index=False)
    make_onnx(root / S.VISION_ONNX, len(categories))
    (root / S.MODEL_CARD).write_text(json.dumps({"preprocess": PreprocessConfig(input_size=INPUT_SIZE).to_json(),
                                                 "categories": categories, "embedding_dim": DIM}))
    embed_catalogue(root, image_ids)


@pytest.fixture(scope="session")
def golden_artifacts(text_artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    """The golden catalogue's artifacts after ``index`` and ``tune-ranker``; build seconds in ``build_seconds.json``.

    Skips, as the ``real_data`` fixture does (that one is per test), when the real dataset is absent."""
    if not (REAL_DATA / S.PRODUCTS_CSV).is_file():
        pytest.skip(f"real dataset not found at {REAL_DATA}")
    t0 = time.perf_counter()
    golden = load_golden()
    root = tmp_path_factory.mktemp("golden") / "artifacts"
    listings = catalogue_listings(REAL_DATA, golden["catalogue_listing_ids"], golden["seed"])
    categories = sorted(set(listings[S.ROOT_CATEGORY]))
    root.mkdir(parents=True)
    listings.to_csv(root / S.LISTINGS_CSV, index=False)
    (root / S.CATEGORIES_JSON).write_text(json.dumps(CategoryCodec(tuple(categories)).to_json()))
    write_photos(root, listings, categories, golden["seed"])
    t_text = time.perf_counter()
    write_text(root, listings, text_artifacts)
    t_index = time.perf_counter()
    settings = golden_settings(root)
    build_index(settings, root)
    t_rank = time.perf_counter()
    tune_ranker(settings, root)
    seconds = {"photos": t_text - t0, "text": t_index - t_text, "index": t_rank - t_index,
               "tune_ranker": time.perf_counter() - t_rank, "total": time.perf_counter() - t0}
    (root / "build_seconds.json").write_text(json.dumps({k: round(v, 1) for k, v in seconds.items()}))
    return root
