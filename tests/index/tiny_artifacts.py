"""A tiny artifacts folder for index and serving tests: photos, tables, a 3-op ONNX model, embeddings.

The model averages the normalised photo per channel and projects the 3 means to ``DIM`` dims
(and to one logit per category), so a photo's nearest catalogue photo is itself, and photos of
similar colour are near: enough to check retrieval without torch or real data.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from tests.factories import photo

ROOTS = ("Home & Garden", "Computers & Software", "Sports, Leisure & Travel", "Appliances")
DIM, INPUT_SIZE = 8, 32
RARE = "Appliances"


def make_onnx(path: Path, n_classes: int, dim: int = DIM, seed: int = 0) -> Path:
    """image [N,3,S,S] -> GlobalAveragePool -> Flatten -> MatMul -> embedding [N,dim] -> MatMul -> logits."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w1 = numpy_helper.from_array(rng.standard_normal((3, dim)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((dim, n_classes)).astype(np.float32), "w2")
    nodes = [
        helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "w1"], ["embedding"]),
        helper.make_node("MatMul", ["embedding", "w2"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_vision",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, INPUT_SIZE, INPUT_SIZE])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", dim]),
         helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", n_classes])],
        initializer=[w1, w2])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def colour(i: int) -> tuple[int, int, int]:
    rng = np.random.default_rng(1000 + i)
    return tuple(int(c) for c in rng.integers(0, 256, 3))


def make_artifacts(root: Path, n_listings: int = 30, photos_per_listing: int = 2, n_rare: int = 3,
                   dupes: int = 0, embed: bool = True) -> Path:
    """Write an artifacts folder; ``dupes`` extra photos of listing 0's colour go to listing 0."""
    from listing_search.vision.preprocess import PreprocessConfig

    (root / "images").mkdir(parents=True)
    listings, photos = [], []
    for i in range(n_listings):
        root_cat = RARE if i >= n_listings - n_rare else ROOTS[i % 3]
        lid = f"listing-{i:03d}"
        listings.append({
            "listing_id": lid, "title": f"Item {i}", "description": f"Description of item {i}",
            "price": float(i * 10), "location": "Leeds, West Yorkshire" if i % 2 else "Bristol, Bristol",
            "category_path": f"{root_cat} / Sub", "root_category": root_cat, "label": ROOTS.index(root_cat),
            "split": "train"})
        count = photos_per_listing + (dupes if i == 0 else 0)
        for j in range(count):
            image_id = f"img-{i:03d}-{j}"
            photo(colour(i), size=(48, 40), seed=i * 100 + j).save(root / "images" / f"{image_id}.jpg", quality=90)
            photos.append({"image_id": image_id, **listings[-1]})
    pd.DataFrame(listings).to_csv(root / "listings.csv", index=False)
    cols = ["image_id", "listing_id", "label", "root_category", "category_path", "title", "description",
            "price", "location", "split"]
    pd.DataFrame(photos)[cols].to_csv(root / "training_data.csv", index=False)
    (root / "categories.json").write_text(json.dumps(
        {"categories": list(ROOTS), "encoder": {c: i for i, c in enumerate(ROOTS)}}))
    make_onnx(root / "model" / "vision.onnx", len(ROOTS))
    cfg = PreprocessConfig(input_size=INPUT_SIZE)
    (root / "model" / "model_card.json").write_text(json.dumps(
        {"preprocess": cfg.to_json(), "categories": list(ROOTS), "embedding_dim": DIM}))
    if embed:
        embed_catalogue(root, [p["image_id"] for p in photos])
    return root


def embed_catalogue(root: Path, image_ids: list[str]) -> None:
    """What the vision stage writes: image_embeddings.npy + image_embedding_ids.json."""
    from listing_search.vision.encoder import ImageEncoder

    enc = ImageEncoder.from_artifacts(root)
    batch = np.stack([enc.prepare(root / "images" / f"{i}.jpg") for i in image_ids])
    emb, _ = enc.run(batch)
    np.save(root / "image_embeddings.npy", emb)
    (root / "image_embedding_ids.json").write_text(json.dumps(image_ids))
