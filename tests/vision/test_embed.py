from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import torch

from listing_search import schema as S
from listing_search.data.prepare import load_training, prepare
from listing_search.vision.embed import embed
from listing_search.vision.encoder import ImageEncoder
from listing_search.vision.export import onnx_session, parity
from listing_search.vision.model import VisionGraph, VisionTail
from listing_search.vision.preprocess import PreprocessConfig, load_image
from listing_search.vision.train import load_model, train
from tests.vision.fixtures import tiny_settings, trained_artifacts  # noqa: F401  (fixture)


def test_one_onnx_graph_with_image_in_and_embedding_logits_out(trained_artifacts: Path) -> None:
    graph = onnx.load(str(trained_artifacts / S.VISION_ONNX))
    assert [i.name for i in graph.graph.input] == ["image"]
    assert [o.name for o in graph.graph.output] == ["embedding", "logits"]
    batch_dim = graph.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param  # dynamic N


def test_served_graph_is_the_int8_backbone_then_the_trained_tail(trained_artifacts: Path) -> None:
    model, checkpoint = load_model(trained_artifacts)
    assert checkpoint["backbone_onnx"] == S.BACKBONE_INT8_ONNX
    assert json.loads((trained_artifacts / S.MODEL_CARD).read_text())["backbone_int8"] is True
    graph = onnx.load(str(trained_artifacts / S.VISION_ONNX))
    assert any(n.op_type == "QuantizeLinear" for n in graph.graph.node)  # int8 convolutions
    cfg = PreprocessConfig.from_json(checkpoint["preprocess"])
    batch = np.stack([load_image(p, cfg) for p in sorted((trained_artifacts / S.CLEAN_IMAGES_DIR).glob("*.jpg"))[:3]])
    pooled = onnx_session(trained_artifacts / S.BACKBONE_INT8_ONNX).run(None, {"image": batch})[0]
    with torch.inference_mode():
        embedding, logits = VisionTail(model, "logits1000")(torch.from_numpy(pooled))
    got = onnx_session(trained_artifacts / S.VISION_ONNX).run(["embedding", "logits"], {"image": batch})
    assert np.abs(got[0] - embedding.numpy()).max() < 1e-4 and np.abs(got[1] - logits.numpy()).max() < 1e-4
    # and it is a quantised copy of the PyTorch network on the photos it was calibrated for
    with torch.inference_mode():
        fp32 = VisionGraph(model, "logits1000")(torch.from_numpy(batch))[0].numpy()
    cos = (fp32 * got[0]).sum(1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(got[0], axis=1)
    assert cos.min() > 0.8  # tiny 64 px synthetic photos; real 224 px ones: 0.93-0.99 (docs/vision.md)


def test_catalogue_embeddings_from_the_cache_equal_the_served_graphs(trained_artifacts: Path, tmp_path: Path) -> None:
    """The embed stage reuses the training cache's features; the served graph on the same photos agrees,
    and so does an embed run without the cache (every photo through the graph)."""
    ids = json.loads((trained_artifacts / S.IMAGE_EMBEDDING_IDS).read_text())
    vectors = np.load(trained_artifacts / S.IMAGE_EMBEDDINGS_NPY)
    card = json.loads((trained_artifacts / S.MODEL_CARD).read_text())
    encoder = ImageEncoder.from_artifacts(trained_artifacts)
    for row in (0, len(ids) - 1):  # a train photo and a val photo
        served, _ = encoder.run(load_image(trained_artifacts / S.CLEAN_IMAGES_DIR / f"{ids[row]}.jpg",
                                           PreprocessConfig.from_json(card["preprocess"]))[None])
        assert np.abs(served[0] - vectors[row]).max() < 1e-4
    art = _copy_trained(trained_artifacts, tmp_path / "art")  # no cache folder
    embed(tiny_settings(), art)
    assert json.loads((art / S.IMAGE_EMBEDDING_IDS).read_text()) == ids
    assert np.abs(np.load(art / S.IMAGE_EMBEDDINGS_NPY) - vectors).max() < 1e-4


def test_fp32_fine_tuned_tail_exports_and_matches_pytorch(tmp_path: Path) -> None:
    """The other recipe: the last stages fine-tuned, the whole graph exported in fp32."""
    from tests.factories import make_dataset

    raw = make_dataset(tmp_path / "raw", n_listings=6, photos_per_listing=2, seed=3)
    art = tmp_path / "art"
    settings = tiny_settings(train_last_blocks=2, epochs=1)
    prepare(settings, str(raw), art)
    train(settings, art)
    report = embed(settings, art)
    model, checkpoint = load_model(art)
    assert checkpoint["backbone_onnx"] is None and report.onnx_max_abs_diff < 1e-3
    batch = np.random.default_rng(0).normal(size=(3, 3, 64, 64)).astype(np.float32)
    assert parity(VisionGraph(model, "logits1000"), art / S.VISION_ONNX, batch) < 1e-3


def test_every_photo_is_embedded_in_json_and_npy(trained_artifacts: Path) -> None:
    ids = json.loads((trained_artifacts / S.IMAGE_EMBEDDING_IDS).read_text())
    vectors = np.load(trained_artifacts / S.IMAGE_EMBEDDINGS_NPY)
    as_json = json.loads((trained_artifacts / S.IMAGE_EMBEDDINGS_JSON).read_text())
    assert ids == load_training(trained_artifacts)[S.IMAGE_ID].tolist()
    assert vectors.dtype == np.float32 and vectors.shape == (len(ids), 1000)
    assert np.allclose(np.array(as_json[ids[0]]), vectors[0], atol=1e-5)


def _copy_trained(trained: Path, art: Path) -> Path:
    """The trained model and its inputs, without the embed stage's outputs or the training cache."""
    (art / S.MODEL_DIR).mkdir(parents=True)
    for name in (S.TRAINING_CSV, S.CATEGORIES_JSON, S.MODEL_CHECKPOINT, S.MODEL_CARD, S.BACKBONE_INT8_ONNX):
        (art / name).write_bytes((trained / name).read_bytes())
    (art / S.CLEAN_IMAGES_DIR).symlink_to(trained / S.CLEAN_IMAGES_DIR)
    return art


def test_pooled_layer_export_and_skip_when_up_to_date(trained_artifacts: Path, tmp_path: Path) -> None:
    art = _copy_trained(trained_artifacts, tmp_path / "art")
    settings = tiny_settings(embed_layer="pooled")
    report = embed(settings, art)
    assert report.embedding_dim == 1280 and report.onnx_max_abs_diff < 1e-3
    assert json.loads((art / S.MODEL_CARD).read_text())["embedding_dim"] == 1280
    assert embed(settings, art).up_to_date
