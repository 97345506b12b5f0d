"""The ranking tests' catalogue: tiny serving artifacts with real MiniLM text, indexed, ranker tuned."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from listing_search import schema as S
from listing_search.index.build import build_index
from listing_search.fit.tune_ranker import tune_ranker
from tests.index.tiny_artifacts import make_artifacts
from tests.serve.conftest import serve_settings
from tests.text.fixtures import text_artifacts, write_text  # noqa: F401

WORDS = {0: "wooden garden chair", 1: "gaming laptop computer", 2: "mountain bike helmet", 3: "vintage vinyl record"}


@pytest.fixture(scope="session")
def ranked_artifacts(text_artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 listings of 4 categories (titles name them), 1 in 5 in the val split; `index` then `tune-ranker`."""
    root = make_artifacts(tmp_path_factory.mktemp("ranked") / "artifacts", n_listings=30, n_rare=3)
    listings = pd.read_csv(root / S.LISTINGS_CSV, dtype={S.LISTING_ID: str})
    listings[S.TITLE] = [f"{WORDS[lab]} {i}" for i, lab in enumerate(listings[S.LABEL])]
    listings[S.SPLIT] = ["val" if i % 5 == 0 else "train" for i in range(len(listings))]
    listings.to_csv(root / S.LISTINGS_CSV, index=False)
    write_text(root, listings, text_artifacts)
    settings = serve_settings(root)
    settings.rank.train_queries = 24
    settings.rank.val_queries = 12
    settings.rank.candidates = 40  # each fitting query sees the whole tiny catalogue: enough pairs to calibrate
    build_index(settings, root)
    tune_ranker(settings, root)
    return root


