"""Backbone features of extra views (horizontal flip, centre crop) of an activation cache's photos.

For measuring test-time views with ``scripts/vision_heads.py --views``: each train photo's and each val
photo's plain serving view, flipped left-right or cropped to its central ``--crop`` share and resized,
goes through the same int8 backbone graph that computed the cache (kept in the cache folder). Writes
``OUT/train_<view>.npy`` (one row per train photo, in the cache's order) and ``OUT/val_<view>.npy``.

    PYTHONPATH=src python scripts/vision_view_features.py --artifacts ART --cache ART/model/cache/KEY --out DIR
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
from PIL import Image

from listing_search import schema as S
from listing_search.data.images import standardise
from listing_search.vision.cache import BACKBONE_INT8, PREFIX_OUTPUT
from listing_search.vision.export import onnx_session
from listing_search.vision.preprocess import DEFAULT_MAX_PIXELS, PreprocessConfig, normalise

log = logging.getLogger("vision_view_features")


def view(path: Path, cfg: PreprocessConfig, kind: str, crop: float) -> np.ndarray:
    """The serving view of a photo, flipped or centre-cropped."""
    img = standardise(path, cfg.input_size, DEFAULT_MAX_PIXELS)
    if kind == "flip":
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    elif kind == "crop":
        side = cfg.input_size
        margin = side * (1 - crop) / 2
        img = img.resize((side, side), Image.Resampling.BILINEAR, box=(margin, margin, side - margin, side - margin))
    return normalise(img, cfg)


def features(session, paths: list[Path], cfg: PreprocessConfig, kind: str, crop: float, batch: int = 64) -> np.ndarray:
    rows = []
    for start in range(0, len(paths), batch):
        arrays = np.stack([view(p, cfg, kind, crop) for p in paths[start:start + batch]])
        rows.append(session.run([PREFIX_OUTPUT], {"image": arrays})[0])
    return np.concatenate(rows).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--artifacts", type=Path, required=True)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--views", default="flip,crop")
    parser.add_argument("--crop", type=float, default=0.8)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    meta = json.loads((args.cache / "meta.json").read_text())
    card_size = np.load(args.cache / "val_x.npy", mmap_mode="r").shape  # sanity: pooled features
    assert len(card_size) == 2, "needs a frozen-backbone (pooled) cache"
    session = onnx_session(args.cache / BACKBONE_INT8, 2)
    size = session.get_inputs()[0].shape[-1]
    cfg = PreprocessConfig(int(size))
    args.out.mkdir(parents=True, exist_ok=True)
    images = args.artifacts / S.CLEAN_IMAGES_DIR
    for kind in args.views.split(","):
        for side in ("train", "val"):
            t0 = time.perf_counter()
            paths = [images / f"{i}.jpg" for i in meta[f"{side}_ids"]]
            np.save(args.out / f"{side}_{kind}.npy", features(session, paths, cfg, kind, args.crop))
            log.info("%s %s: %d photos in %.0f s", side, kind, len(paths), time.perf_counter() - t0)


if __name__ == "__main__":
    main()
