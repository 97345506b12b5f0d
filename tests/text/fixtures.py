"""A tiny prepared catalogue with text embeddings and the exported encoder, built once per session."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from listing_search import schema as S
from listing_search.data.prepare import load_training, prepare
from listing_search.settings import get_settings
from listing_search.text.encoder import TextEncoder, listing_text
from listing_search.text.embed import embed_text
from tests.factories import make_dataset


def tiny_settings(tmp: Path):
    return get_settings(artifacts_dir=tmp, data={"image_size": 32, "workers": 1, "val_fraction": 0.25},
                        text={"batch_size": 8, "max_length": 64, "fine_tune_epochs": 0}, rank={"train_queries": 12, "candidates": 10})


def fake_image_embeddings(artifacts: Path, dim: int = 16, seed: int = 0) -> None:
    """Photo vectors clustered by root category, as a fine-tuned vision model would give."""
    training = load_training(artifacts)
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(training[S.LABEL].max() + 1, dim))
    vectors = centres[training[S.LABEL]] + 0.3 * rng.normal(size=(len(training), dim))
    np.save(artifacts / S.IMAGE_EMBEDDINGS_NPY, vectors.astype(np.float32))
    (artifacts / S.IMAGE_EMBEDDING_IDS).write_text(json.dumps(training[S.IMAGE_ID].tolist()))


@pytest.fixture(scope="session")
def text_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 prepared listings (3 roots, 2 paths each), embedded by the real bundled MiniLM."""
    root = tmp_path_factory.mktemp("text")
    data = make_dataset(root / "dataset", n_listings=24, seed=1)
    artifacts = root / "artifacts"
    settings = tiny_settings(artifacts)
    prepare(settings, str(data), artifacts)
    embed_text(settings, artifacts)
    fake_image_embeddings(artifacts)
    return artifacts


def write_text(root: Path, listings: pd.DataFrame, text_model: Path) -> None:
    """The bundled MiniLM copied in; each listing's title + description embedded as ``embed-text`` does."""
    (root / S.TEXT_DIR).mkdir()
    for name in (S.TEXT_ONNX, S.TEXT_TOKENIZER, S.TEXT_MODEL_CARD):
        shutil.copyfile(text_model / name, root / name)
    texts = [listing_text(t, d) for t, d in zip(listings[S.TITLE], listings[S.DESCRIPTION])]
    np.save(root / S.TEXT_EMBEDDINGS_NPY, TextEncoder.from_artifacts(root).encode(texts))
    (root / S.TEXT_EMBEDDING_IDS).write_text(json.dumps(listings[S.LISTING_ID].tolist()))
