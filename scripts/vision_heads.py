"""Compare photo heads on one activation cache, through the training stage's own ``fit``.

A cache folder (``ART/model/cache/<key>``, written by ``listing-search train``: frozen-backbone pooled
features of every train view and val photo) is loaded once; each variant (vision settings overrides:
``head``, ``embedding_dim``, ``hidden_dim``, loss weights, epochs, batch size, ...) is trained on it by
``vision.train.fit`` exactly as ``train`` would, and prints one JSON line: val photo accuracy, val photo ->
train photos precision@10 by root and by full category path (cosine over the embeddings the photo index
would hold), the best epoch, and the seconds the fit took (give the load: ``uptime``).

Training leaves out the photos of tune-ranker's training queries, as ``train`` does (``--no-hold-out``:
keep them). ``--views DIR`` (written by ``scripts/vision_view_features.py``): also scores each fit with the plain
view's backbone features averaged with those of a flipped and/or centre-cropped view, for queries and
catalogue alike (what a served graph running several views per photo would hold).

    PYTHONPATH=src python scripts/vision_heads.py --artifacts ART --cache ART/model/cache/KEY \\
        --variants '[{"head": "imagenet"}, {}, {"embedding_dim": 256}]'
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

from listing_search import schema as S
from listing_search.data.prepare import load_training
from listing_search.data.tables import CategoryCodec
from listing_search.settings import Settings
from listing_search.vision.cache import load_cache
from listing_search.vision.neighbours import precision_at_k, unit
from listing_search.vision.train import (
    IGNORE, build_model, embed_cache, fit, held_back_listings, known_paths, neighbour_precision, path_targets,
    without_listings,
)

log = logging.getLogger("vision_heads")


def run_variant(overrides: dict, artifacts: Path, cache, photos, paths, targets, flips: dict | None) -> dict:
    """Fit one variant on the cache; its measures as a dict."""
    vs = Settings().vision.model_copy(update={"device": "cpu", **overrides})
    vs = type(vs)(**vs.model_dump())  # validated
    codec = CategoryCodec.load(artifacts / S.CATEGORIES_JSON)
    torch.manual_seed(vs.seed)  # the head's initial weights, as `train` seeds before building
    model = build_model(vs, len(codec), n_paths=max(1, len(paths)))
    cut = len(model.backbone.stages)
    t0 = time.perf_counter()
    result = fit(model, cache, cut, vs, torch.device("cpu"), targets=targets)
    seconds = time.perf_counter() - t0
    model.load_state_dict(result.state)
    root, path = neighbour_precision(model, cache, cut, targets, 2048, torch.device("cpu"))
    out = {"variant": overrides, "val_photo_accuracy": round(result.best_val_accuracy, 4),
           "val_photo_precision_at_10": round(root, 4), "val_photo_path_precision_at_10": round(path, 4),
           "best_epoch": result.best_epoch, "epochs_run": len(result.history), "fit_seconds": round(seconds, 1),
           "embedding_dim": int(embed_cache(model, cache.val_x[:1], cut, 1, torch.device("cpu")).shape[1])}
    out.update(listing_scores(model, cut, cache, photos))
    if flips is not None:
        out.update(view_scores(model, cut, cache, targets, flips))
    return out


def listing_scores(model, cut: int, cache, photos) -> dict:
    """Val photo -> train listings P@10 (same root), a listing scored by its best photo (as search groups
    photo hits) or held as the mean of its photos' unit embeddings (listing-level pooling)."""
    per = len(cache.train_x) // max(len(cache.train_ids), 1)
    plain = np.arange(0, len(cache.train_x), per)
    listing_of = photos.assign(**{S.IMAGE_ID: photos[S.IMAGE_ID].astype(str)}).set_index(S.IMAGE_ID)[S.LISTING_ID]
    groups, group = np.unique(listing_of.reindex(cache.train_ids).to_numpy(dtype=str), return_inverse=True)
    cat = unit(embed_cache(model, cache.train_x[plain], cut, 2048, torch.device("cpu")))
    qry = unit(embed_cache(model, cache.val_x, cut, 2048, torch.device("cpu")))
    roots = np.zeros(len(groups), np.int64)
    roots[group] = cache.train_y[plain]
    sims = qry @ cat.T
    order = np.argsort(group, kind="stable")  # per listing: its best photo
    starts = np.r_[0, np.flatnonzero(np.diff(group[order])) + 1]
    best = np.maximum.reduceat(sims[:, order], starts, axis=1)
    means = np.zeros((len(groups), cat.shape[1]), np.float32)
    np.add.at(means, group, cat)
    by_best = np.argsort(-best, axis=1)[:, :10]
    return {"listing_max_precision_at_10": round(float((roots[by_best] == cache.val_y[:, None]).mean()), 4),
            "listing_mean_precision_at_10": round(precision_at_k(qry, cache.val_y, means, roots), 4)}


def view_scores(model, cut: int, cache, targets, views: dict) -> dict:
    """P@10 (root, full path) with each photo's features the mean over plain + the named views."""
    per = len(cache.train_x) // max(len(cache.train_ids), 1)
    plain = np.arange(0, len(cache.train_x), per)
    unseen = np.where(targets.val_path == IGNORE, -1, targets.val_path)
    names = sorted({k.split("_", 1)[1] for k in views})
    out = {}
    for combo in [[n] for n in names] + ([names] if len(names) > 1 else []):
        cat_x = np.mean([cache.train_x[plain]] + [views[f"train_{n}"] for n in combo], axis=0)
        val_x = np.mean([cache.val_x] + [views[f"val_{n}"] for n in combo], axis=0)
        cat = embed_cache(model, cat_x.astype(np.float32), cut, 2048, torch.device("cpu"))
        qry = embed_cache(model, val_x.astype(np.float32), cut, 2048, torch.device("cpu"))
        key = "plain+" + "+".join(combo)
        out[f"{key}_precision_at_10"] = round(precision_at_k(qry, cache.val_y, cat, cache.train_y[plain]), 4)
        out[f"{key}_path_precision_at_10"] = round(precision_at_k(qry, unseen, cat, targets.train_path[plain]), 4)
        plain_q = embed_cache(model, cache.val_x, cut, 2048, torch.device("cpu"))  # views in the catalogue only
        out[f"{key}_catalogue_only_precision_at_10"] = round(
            precision_at_k(plain_q, cache.val_y, cat, cache.train_y[plain]), 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--artifacts", type=Path, required=True, help="prepared artifacts (training_data.csv)")
    parser.add_argument("--cache", type=Path, required=True, help="an activation cache folder (meta.json)")
    parser.add_argument("--variants", default='[{}]', help="JSON list of vision settings overrides")
    parser.add_argument("--no-hold-out", action="store_true",
                        help="train on tune-ranker's training-query listings too "
                             "(vision.hold_out_ranker_queries=false)")
    parser.add_argument("--views", type=Path, default=None, help="folder of scripts/vision_view_features.py")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    torch.set_num_threads(2)
    cache = load_cache(args.cache)
    photos = load_training(args.artifacts)
    paths = known_paths(photos)
    targets = path_targets(cache, photos, paths)
    flips = None
    if args.views is not None:
        flips = {f.stem: np.load(f) for f in sorted(args.views.glob("*.npy"))}
    if not args.no_hold_out:  # as `train` does for the retrieval head (vision.hold_out_ranker_queries)
        full_ids = cache.train_ids
        cache, targets = without_listings(cache, targets, photos, held_back_listings(args.artifacts, Settings()))
        if flips is not None:  # the view features follow the training photos kept
            row = {image_id: i for i, image_id in enumerate(full_ids)}
            kept = np.array([row[i] for i in cache.train_ids], np.int64)
            flips = {k: (v[kept] if k.startswith("train_") else v) for k, v in flips.items()}
    for overrides in json.loads(args.variants):
        print(json.dumps(run_variant(overrides, args.artifacts, cache, photos, paths, targets, flips)), flush=True)


if __name__ == "__main__":
    main()
