from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx

from listing_search import schema as S
from listing_search.data.prepare import load_training
from listing_search.vision.embed import embed
from listing_search.vision.export import parity
from listing_search.vision.model import VisionGraph
from listing_search.vision.train import load_model
from tests.vision.fixtures import tiny_settings, trained_artifacts  # noqa: F401  (fixture)


def test_one_onnx_graph_with_image_in_and_embedding_logits_out(trained_artifacts: Path) -> None:
    graph = onnx.load(str(trained_artifacts / S.VISION_ONNX))
    assert [i.name for i in graph.graph.input] == ["image"]
    assert [o.name for o in graph.graph.output] == ["embedding", "logits"]
    batch_dim = graph.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param  # dynamic N


def test_onnx_runtime_matches_pytorch(trained_artifacts: Path) -> None:
    model, _ = load_model(trained_artifacts)
    batch = np.random.default_rng(0).normal(size=(3, 3, 64, 64)).astype(np.float32)
    assert parity(VisionGraph(model, "logits1000"), trained_artifacts / S.VISION_ONNX, batch) < 1e-3


def test_every_photo_is_embedded_in_json_and_npy(trained_artifacts: Path) -> None:
    ids = json.loads((trained_artifacts / S.IMAGE_EMBEDDING_IDS).read_text())
    vectors = np.load(trained_artifacts / S.IMAGE_EMBEDDINGS_NPY)
    as_json = json.loads((trained_artifacts / S.IMAGE_EMBEDDINGS_JSON).read_text())
    assert ids == load_training(trained_artifacts)[S.IMAGE_ID].tolist()
    assert vectors.dtype == np.float32 and vectors.shape == (len(ids), 1000)
    assert np.allclose(np.array(as_json[ids[0]]), vectors[0], atol=1e-5)


def test_pooled_layer_export_and_skip_when_up_to_date(trained_artifacts: Path, tmp_path: Path) -> None:
    art = tmp_path / "art"
    (art / S.MODEL_DIR).mkdir(parents=True)
    for name in (S.TRAINING_CSV, S.CATEGORIES_JSON, S.MODEL_CHECKPOINT, S.MODEL_CARD):
        (art / name).write_bytes((trained_artifacts / name).read_bytes())
    (art / S.CLEAN_IMAGES_DIR).symlink_to(trained_artifacts / S.CLEAN_IMAGES_DIR)
    settings = tiny_settings(embed_layer="pooled")
    report = embed(settings, art)
    assert report.embedding_dim == 1280 and report.onnx_max_abs_diff < 1e-3
    assert json.loads((art / S.MODEL_CARD).read_text())["embedding_dim"] == 1280
    assert embed(settings, art).up_to_date
