"""Measure photo-model recipes on the catalogue's own validation split (by listing), through the real stages.

Each variant is a set of vision settings (backbone, resolution, how much is fine-tuned, int8 backbone,
augmented views, epochs): the prepared artifacts of ``--artifacts`` are linked into a scratch folder,
``train`` and ``embed`` run there exactly as ``listing-search run`` would, and the served ONNX graph then
answers the validation photos (plain, and flipped for test-time augmentation). One JSON line per variant:

* ``val_photo_accuracy`` (the served graph, plain photos), ``val_photo_accuracy_flip_tta`` (mean softmax
  of plain and flipped), ``val_listing_accuracy`` (mean softmax of a listing's photos, plain) and the same
  with flips;
* ``val_photo_precision_at_10``: each val photo's 10 nearest train photos (cosine of the embeddings the
  catalogue is indexed with) sharing its root category;
* with ``--seeds N``, the validation accuracy of N fits on the same cache (mean and spread: on ~1,900
  validation photos one fit's accuracy moves by about a point with its seed alone);
* the seconds of the activation cache and of the whole training, as measured on this machine (give
  the load: ``uptime``).

    PYTHONPATH=src python scripts/vision_variants.py --artifacts ART --scratch /tmp/variants \\
        --variants '[{}, {"backbone": "efficientnet_lite2"}, {"train_last_blocks": 1, "int8_backbone": false}]'
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from listing_search import schema as S
from listing_search.data.prepare import load_training
from listing_search.evaluate.vision import accuracy, listing_accuracy_of, precision_at_k
from listing_search.settings import Settings
from listing_search.vision.cache import CACHE_DIR
from listing_search.vision.embed import embed
from listing_search.vision.encoder import ImageEncoder
from listing_search.vision.preprocess import load_image
from listing_search.vision.train import train

PREPARED = (S.LISTINGS_CSV, S.TRAINING_CSV, S.CATEGORIES_JSON)


def scratch_artifacts(source: Path, folder: Path) -> Path:
    """The prepared tables copied and the clean photos linked: train and embed may write here freely.
    ``source``'s activation caches are hard-linked in: a variant whose cache key matches one reuses it."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in PREPARED:
        shutil.copyfile(source / name, folder / name)
    photos = folder / S.CLEAN_IMAGES_DIR
    if not photos.exists():
        photos.symlink_to((source / S.CLEAN_IMAGES_DIR).resolve())
    caches = source / CACHE_DIR
    if caches.is_dir() and not (folder / CACHE_DIR).exists():
        shutil.copytree(caches, folder / CACHE_DIR, copy_function=os.link)
    return folder


def served_probabilities(art: Path, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Category probabilities of the served graph for these photos (the evaluation's preprocessing),
    plain and mirrored, from one decode of each: normalisation is per pixel, so mirroring the input
    equals mirroring the photo."""
    encoder = ImageEncoder.from_artifacts(art)
    plain, mirrored = [], []
    for start in range(0, len(ids), 64):
        batch = np.stack([load_image(art / S.CLEAN_IMAGES_DIR / f"{i}.jpg", encoder.preprocess)
                          for i in ids[start:start + 64]])
        plain.append(encoder.run(batch)[1])
        mirrored.append(encoder.run(batch[:, :, :, ::-1])[1])
    return np.concatenate(plain), np.concatenate(mirrored)


def listing_accuracy(probs: np.ndarray, labels: np.ndarray, listings: np.ndarray) -> float:
    """evaluate's listing accuracy (mean softmax of a listing's photos), from probabilities."""
    return listing_accuracy_of(np.log(np.maximum(probs, 1e-30)), labels, listings)


def measure(source: Path, scratch: Path, name: str, variant: dict, seeds: int = 1) -> dict:
    art = scratch_artifacts(source, scratch / name)
    base = Settings()
    sweep = [{"seed": s} for s in range(1, seeds)]  # the same cache, other initialisations and orders
    settings = base.model_copy(update={"vision": base.vision.model_copy(update={**variant, "sweep": sweep})})
    t0 = time.perf_counter()
    report = train(settings, art, force=True)
    train_s = time.perf_counter() - t0
    embed(settings, art, force=True)
    photos = load_training(art)
    ids = json.loads((art / S.IMAGE_EMBEDDING_IDS).read_text())
    vectors = np.load(art / S.IMAGE_EMBEDDINGS_NPY)
    side = photos.set_index(S.IMAGE_ID).loc[ids]
    val = (side[S.SPLIT] == "val").to_numpy()
    val_ids = [i for i, v in zip(ids, val) if v]
    labels, listings = side[S.LABEL].to_numpy()[val], side[S.LISTING_ID].to_numpy()[val]
    plain, flipped = served_probabilities(art, val_ids)
    both = (plain + flipped) / 2
    roots = side[S.ROOT_CATEGORY].to_numpy()
    card = json.loads((art / S.MODEL_CARD).read_text())
    per_seed = [r["val_image_accuracy"] for r in report.sweep]
    return {
        "variant": name, "settings": variant, "backbone": card["backbone"],
        "input_size": card["preprocess"]["input_size"], "trained_stages": card["trained_stages"],
        "int8_backbone": card.get("backbone_int8", False), "best_epoch": report.best["best_epoch"],
        "val_photos": int(val.sum()),
        "val_photo_accuracy_per_seed": per_seed, "val_photo_accuracy_seed_mean": round(float(np.mean(per_seed)), 4),
        "val_photo_accuracy_seed_std": round(float(np.std(per_seed)), 4),
        "val_photo_accuracy": round(accuracy(plain, labels), 4),
        "val_photo_accuracy_flip_tta": round(accuracy(both, labels), 4),
        "val_listing_accuracy": round(listing_accuracy(plain, labels, listings), 4),
        "val_listing_accuracy_flip_tta": round(listing_accuracy(both, labels, listings), 4),
        "val_photo_precision_at_10": round(precision_at_k(vectors[val], roots[val], vectors[~val], roots[~val]), 4),
        "cache_seconds": report.cache_seconds, "train_seconds": round(train_s, 1),
        "load1_at_end": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--artifacts", type=Path, required=True, help="artifacts after `listing-search prepare`")
    p.add_argument("--scratch", type=Path, required=True)
    p.add_argument("--variants", required=True, help="JSON list of vision settings overrides")
    p.add_argument("--seeds", type=int, default=1, help="fits per variant on its one cache (seed 0..N-1, as a "
                   "sweep): the mean and spread of val accuracy say how much of a difference is noise; the "
                   "other metrics are the best seed's (chosen on val, so optimistic)")
    args = p.parse_args()
    for i, variant in enumerate(json.loads(args.variants)):
        name = "-".join(f"{k}={v}" for k, v in sorted(variant.items())) or "default"
        print(json.dumps(measure(args.artifacts, args.scratch, f"{i:02d}-{name}", variant, args.seeds)), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
