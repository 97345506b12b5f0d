"""The vision training stage: train the head (and any fine-tuned stages) on cached activations.

Reader (training_data.csv, photos) -> activation cache of the frozen stages -> tail training with
separate learning rates, cosine schedule, early stopping on the ``val`` split (split by listing in the
data stage) -> best checkpoint, model card, settings, TensorBoard, plots. The retrieval head is kept at
the epoch with the best val photo -> photo precision@10 (val photos searching the train photos' plain
views), the imagenet head at its best val accuracy. A sweep trains several configurations on the same
cache and keeps the best by the same measure.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from listing_search import schema as S
from listing_search.data.prepare import fetch_clean_photos, load_training
from listing_search.data.tables import CategoryCodec
from listing_search.pipeline import (
    atomic_path, atomic_write_bytes, atomic_write_text, fingerprint, is_up_to_date, read_stamp, write_stamp,
)
from listing_search.settings import Settings, VisionSettings
from listing_search.vision import plots
from listing_search.vision.backbones import create_backbone
from listing_search.vision.cache import CACHE_DIR, ActivationCache, build_cache
from listing_search.vision.heads import IGNORE, LossWeights, create_head, retrieval_loss
from listing_search.vision.model import ListingClassifier, embedding_dim, freeze_prefix, param_groups
from listing_search.vision.neighbours import precision_at_k

log = logging.getLogger(__name__)
STAGE = "train"
VISION_SETTINGS_JSON = "model/vision_settings.json"
TB_DIR = "model/tb"
# Only what acts after the cache may vary within one sweep: everything else would need a new cache.
EMBED_ONLY = {"embed_layer", "embed_batch_size", "device"}  # changing these needs no retraining
SWEEPABLE = {"epochs", "batch_size", "lr_head", "lr_backbone", "weight_decay", "patience",
             "label_smoothing", "dropout", "seed", "path_loss_weight", "supcon_weight", "supcon_temperature"}
NEIGHBOURS = 10  # the k of the val photo -> photo precision the retrieval head is chosen by


@dataclass
class FitResult:
    name: str
    overrides: dict
    history: list[dict]
    best_epoch: int
    best_val_accuracy: float
    best_val_loss: float
    state: dict = field(repr=False)
    val_pred: np.ndarray = field(repr=False)
    best_val_precision: float = float("nan")  # val photo -> train photos, same root, P@10
    best_val_path_precision: float = float("nan")  # the same, same full category path

    def score(self) -> tuple[float, float]:
        """What the best epoch and the best sweep entry are chosen by: P@10 when measured, else accuracy."""
        if not math.isnan(self.best_val_precision):
            return self.best_val_precision, self.best_val_accuracy
        return self.best_val_accuracy, -self.best_val_loss


@dataclass(frozen=True)
class Targets:
    """Labels the retrieval loss and the neighbour measure need beyond the cache's root labels."""

    train_path: np.ndarray  # full-path index of each cached training view (IGNORE: none)
    val_path: np.ndarray  # of each val photo (IGNORE: a path no training photo has)
    paths: tuple[str, ...]  # the full paths known to training, in index order


def known_paths(photos: pd.DataFrame) -> tuple[str, ...]:
    """The full category paths of the train split's photos, sorted: the retrieval head's path classes."""
    return tuple(sorted(set(photos.loc[photos[S.SPLIT] == "train", S.CATEGORY_PATH].dropna().astype(str))))


def path_targets(cache: ActivationCache, photos: pd.DataFrame, paths: tuple[str, ...]) -> Targets:
    """Full category path labels for the cache's rows (IGNORE for a path not in ``paths``)."""
    path_of = photos.assign(**{S.IMAGE_ID: photos[S.IMAGE_ID].astype(str)}).set_index(S.IMAGE_ID)[S.CATEGORY_PATH]
    train_paths = path_of.reindex(cache.train_ids).fillna("").astype(str).to_numpy()
    index = {p: i for i, p in enumerate(paths)}
    per = len(cache.train_x) // max(len(cache.train_ids), 1)
    encode = np.vectorize(lambda p: index.get(p, IGNORE), otypes=[np.int64])
    train_path = np.repeat(encode(train_paths), per) if len(train_paths) else np.zeros(0, np.int64)
    val_paths = path_of.reindex(cache.val_ids).fillna("").astype(str).to_numpy()
    val_path = encode(val_paths) if len(val_paths) else np.zeros(0, np.int64)
    return Targets(train_path, val_path, paths)


@dataclass
class TrainReport:
    backbone: str
    device: str
    train_photos: int
    val_photos: int
    cached_views: int
    best: dict
    sweep: list[dict]
    cache_seconds: float = 0.0
    seconds: float = 0.0
    up_to_date: bool = False
    held_back_photos: int = 0  # train-split photos of tune-ranker's training queries, not trained on


def resolve_device(choice: str) -> torch.device:
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda asked for, but no CUDA GPU is visible")
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def select_photos(photos: pd.DataFrame, subset: int | None, seed: int) -> pd.DataFrame:
    """All photos, or a seeded sample of ``subset`` keeping the train/val proportions (and both sides)."""
    if subset is None or subset >= len(photos):
        return photos.reset_index(drop=True)
    parts = []
    for _, group in photos.groupby(S.SPLIT, sort=True):
        n = max(1, round(subset * len(group) / len(photos)))
        parts.append(group.sample(n=min(n, len(group)), random_state=seed))
    return pd.concat(parts).reset_index(drop=True)


def held_back_listings(artifacts: Path, settings: Settings) -> set[str]:
    """The listings ``tune-ranker`` asks as its training queries (as ``embed-text`` holds them back from
    the text model): a head trained on their photos would make those queries' photo vectors look far
    better than any user's photo, and the ranker would learn to trust photos too much. At most half the
    train split is held back (a small catalogue keeps the other half to train on)."""
    from listing_search.data.prepare import load_listings
    from listing_search.core.splits import ranker_train_queries

    listings = load_listings(artifacts)
    splits = listings[S.SPLIT].to_numpy()
    rows, _ = ranker_train_queries(splits, settings.rank.seed, settings.rank.train_queries)  # drawn in random order: a prefix is a random subset
    rows = rows[: int((splits == "train").sum()) // 2]
    return set(listings[S.LISTING_ID].to_numpy()[rows].astype(str))


def without_listings(cache: ActivationCache, targets: Targets, photos: pd.DataFrame,
                     listings: set[str]) -> tuple[ActivationCache, Targets]:
    """The cache and targets less the training photos of ``listings`` (all their views)."""
    if not listings:
        return cache, targets
    listing_of = photos.assign(**{S.IMAGE_ID: photos[S.IMAGE_ID].astype(str)}).set_index(S.IMAGE_ID)[S.LISTING_ID]
    keep_photo = ~listing_of.reindex(cache.train_ids).astype(str).isin(listings).to_numpy()
    per = len(cache.train_x) // max(len(cache.train_ids), 1)
    keep_view = np.repeat(keep_photo, per)
    kept = np.flatnonzero(keep_photo)
    renumber = np.full(len(keep_photo), -1, np.int64)
    renumber[kept] = np.arange(len(kept))
    sub = ActivationCache(
        train_x=cache.train_x[keep_view], train_y=cache.train_y[keep_view],
        train_photo=renumber[cache.train_photo[keep_view]], val_x=cache.val_x, val_y=cache.val_y, key=cache.key,
        train_ids=[cache.train_ids[i] for i in kept], val_ids=cache.val_ids, backbone_onnx=cache.backbone_onnx)
    return sub, Targets(targets.train_path[keep_view], targets.val_path, targets.paths)


def build_model(vs: VisionSettings, n_categories: int, pretrained: bool = True, n_paths: int = 1) -> ListingClassifier:
    backbone = create_backbone(vs.backbone, vs.input_size, vs.resnet50_weights, pretrained=pretrained)
    head = create_head(vs.head, backbone.pooled_dim, backbone.num_classes, n_categories, hidden_dim=vs.hidden_dim,
                       embedding_dim=vs.embedding_dim, n_paths=n_paths, dropout=vs.dropout)
    return ListingClassifier(backbone, n_categories, vs.dropout, head)


def train(settings: Settings, artifacts: Path, force: bool = False, progress: bool = False) -> TrainReport:
    """Train (or skip, when up to date) and write ART/model/model.pt, model_card.json and figures."""
    t0 = time.perf_counter()
    artifacts = Path(artifacts)
    vs = settings.vision
    inputs = [artifacts / S.TRAINING_CSV, artifacts / S.CATEGORIES_JSON]
    held = [settings.rank.seed, settings.rank.train_queries] if vs.holds_out() else []
    if held:  # which listings tune-ranker asks depends on listings.csv's rows
        inputs.append(artifacts / S.LISTINGS_CSV)
    fp = fingerprint(inputs, json.dumps([vs.model_dump(mode="json", exclude=EMBED_ONLY), held], sort_keys=True))
    int8 = vs.int8_backbone and vs.train_last_blocks == 0
    outputs = [artifacts / name for name in S.TRAINED_MODEL_FILES if int8 or name != S.BACKBONE_INT8_ONNX]
    if not force and is_up_to_date(artifacts, STAGE, outputs, fp):
        log.info("train: up to date in %s", artifacts)
        report = TrainReport(**read_stamp(artifacts, STAGE)["report"])
        report.up_to_date = True
        return report

    _check_sweep(vs.sweep)
    seed_everything(vs.seed)
    device = resolve_device(vs.device)
    codec = CategoryCodec.load(artifacts / S.CATEGORIES_JSON)
    photos = select_photos(load_training(artifacts), vs.subset, vs.seed)
    fetch_clean_photos(artifacts, photos[S.IMAGE_ID], settings.data.s3_endpoint_url)  # after a sharded prepare
    paths = known_paths(photos)
    model = build_model(vs, len(codec), n_paths=max(1, len(paths)))
    cut = model.cut_index(vs.train_last_blocks)
    cfg = model.backbone.preprocess

    t_cache = time.perf_counter()
    cache = build_cache(model, cut, photos, artifacts / S.CLEAN_IMAGES_DIR, cfg, vs.augment_copies, vs.seed,
                        device, artifacts / CACHE_DIR, vs.backbone, progress, int8=vs.int8_backbone)
    cache_seconds = time.perf_counter() - t_cache
    log.info("train: cache of %d train views, %d val photos in %.0fs", len(cache.train_x), len(cache.val_x),
             cache_seconds)

    targets = path_targets(cache, photos, paths)
    held_back = held_back_listings(artifacts, settings) if vs.holds_out() else set()
    fit_cache, fit_targets = without_listings(cache, targets, photos, held_back)
    log.info("train: %d listings (%d photos) held back for tune-ranker's training queries", len(held_back),
             len(cache.train_ids) - len(fit_cache.train_ids))
    results = _run_sweep(model, fit_cache, cut, vs, device, artifacts, progress, fit_targets)
    best = max(results, key=FitResult.score)
    best_vs = vs.model_copy(update=best.overrides)
    model.load_state_dict(best.state)
    _write_model(artifacts, model, best_vs, codec, cut, best, results, cache, targets.paths)
    _write_figures(artifacts, best, results, cache, codec)

    report = TrainReport(
        backbone=vs.backbone, device=str(device), train_photos=int((photos[S.SPLIT] == "train").sum()),
        val_photos=int((photos[S.SPLIT] == "val").sum()), cached_views=len(fit_cache.train_x),
        held_back_photos=len(cache.train_ids) - len(fit_cache.train_ids),
        best=_summary(best), sweep=[_summary(r) for r in results],
        cache_seconds=round(cache_seconds, 1), seconds=round(time.perf_counter() - t0, 1),
    )
    write_stamp(artifacts, STAGE, fp, {"report": asdict(report)})
    log.debug("train: best %s", report.best)  # the CLI prints the summary
    return report


def _check_sweep(sweep: list[dict]) -> None:
    for i, overrides in enumerate(sweep):
        bad = set(overrides) - SWEEPABLE
        if bad:
            raise ValueError(f"sweep entry {i} sets {sorted(bad)}: only {sorted(SWEEPABLE)} can vary "
                             "within a sweep (the others change the activation cache)")


def _run_sweep(model: ListingClassifier, cache: ActivationCache, cut: int, vs: VisionSettings,
               device: torch.device, artifacts: Path, progress: bool, targets: Targets) -> list[FitResult]:
    """The base configuration, then each sweep entry, every one from the same pretrained start."""
    from torch.utils.tensorboard import SummaryWriter

    start = copy.deepcopy(model.state_dict())
    results = []
    for i, overrides in enumerate([{}, *vs.sweep]):
        name = "base" if i == 0 else f"sweep{i}:" + ",".join(f"{k}={v}" for k, v in overrides.items())
        run_vs = vs.model_copy(update=overrides)
        model.load_state_dict(start)
        model.dropout = run_vs.dropout
        writer = SummaryWriter(str(artifacts / TB_DIR / ("base" if i == 0 else f"sweep{i}")))
        try:
            result = fit(model, cache, cut, run_vs, device, writer, name, progress, targets)
            result.overrides = dict(overrides)
            results.append(result)
        finally:
            writer.close()
    return results


def fit(model: ListingClassifier, cache: ActivationCache, cut: int, vs: VisionSettings, device: torch.device,
        writer=None, name: str = "base", progress: bool = False, targets: Targets | None = None) -> FitResult:
    """Train the tail on the cache; keep the state of the best epoch (``FitResult.score``)."""
    seed_everything(vs.seed)
    rng = np.random.default_rng(vs.seed)
    model.to(device)
    freeze_prefix(model, cut)
    optimizer = torch.optim.AdamW(param_groups(model, cut, vs.lr_backbone, vs.lr_head, vs.weight_decay))
    n_photos = int(cache.train_photo.max()) + 1 if len(cache.train_photo) else 0
    steps = vs.epochs * math.ceil(n_photos / vs.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_cosine(steps, warmup=min(100, steps // 10)))
    views_per_photo = len(cache.train_x) // max(n_photos, 1)
    retrieval = model.head_kind == "retrieval"
    if retrieval and targets is None:
        targets = Targets(np.full(len(cache.train_x), IGNORE), np.full(len(cache.val_x), IGNORE), ())
    history: list[dict] = []
    best: FitResult | None = None
    for epoch in range(1, vs.epochs + 1):
        order = rng.permutation(n_photos) * views_per_photo + rng.integers(0, views_per_photo, n_photos)
        train_loss, train_acc = _train_epoch(model, cache, cut, order, vs, optimizer, scheduler, device, targets)
        val_loss, val_acc, val_pred = evaluate_cache(model, cache.val_x, cache.val_y, cut, vs.batch_size * 4,
                                                     device)
        row = {"epoch": epoch, "train_loss": train_loss, "train_accuracy": train_acc, "val_loss": val_loss,
               "val_accuracy": val_acc, "lr_head": optimizer.param_groups[-1]["lr"]}
        if retrieval:
            row["val_precision_at_10"], row["val_path_precision_at_10"] = neighbour_precision(
                model, cache, cut, targets, vs.batch_size * 4, device)
        history.append(row)
        _log_epoch(writer, name, row, vs.epochs, progress)
        current = FitResult(name, {}, history, epoch, val_acc, val_loss, {}, val_pred,
                            row.get("val_precision_at_10", float("nan")),
                            row.get("val_path_precision_at_10", float("nan")))
        if best is None or current.score() > best.score():
            current.state = copy.deepcopy(model.state_dict())
            best = current
        elif epoch - best.best_epoch >= vs.patience:
            log.info("%s: early stop at epoch %d (best %d)", name, epoch, best.best_epoch)
            break
    model.cpu()
    if best is None:  # no epoch ran
        return FitResult(name, {}, history, 0, -1.0, math.inf, copy.deepcopy(model.state_dict()), np.zeros(0, np.int64))
    best.state = {k: v.cpu() for k, v in best.state.items()}
    best.history = history
    return best


def _warmup_cosine(total: int, warmup: int):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

    return factor


def _train_epoch(model: ListingClassifier, cache: ActivationCache, cut: int, order: np.ndarray,
                 vs: VisionSettings, optimizer, scheduler, device: torch.device,
                 targets: Targets | None = None) -> tuple[float, float]:
    model.train()
    freeze_prefix(model, cut)
    weights = LossWeights(vs.path_loss_weight, vs.supcon_weight, vs.supcon_temperature, vs.label_smoothing)
    total_loss, correct = 0.0, 0
    for start in range(0, len(order), vs.batch_size):
        idx = np.sort(order[start:start + vs.batch_size])
        x = torch.from_numpy(cache.train_x[idx]).to(device).float()
        y = torch.from_numpy(cache.train_y[idx]).to(device)
        _, embedding, logits = model.tail(x, cut)
        if model.head_kind == "retrieval":
            paths = torch.from_numpy(targets.train_path[idx]).to(device)
            loss = retrieval_loss(model.head, embedding, logits, y, paths, weights)
        else:
            loss = F.cross_entropy(logits, y, label_smoothing=vs.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total_loss += loss.item() * len(idx)
        correct += int((logits.argmax(1) == y).sum())
    return total_loss / max(len(order), 1), correct / max(len(order), 1)


def evaluate_cache(model: ListingClassifier, x: np.ndarray, y: np.ndarray, cut: int, batch: int,
                   device: torch.device) -> tuple[float, float, np.ndarray]:
    """Validation loss (no smoothing), accuracy and predictions from cached activations."""
    model.eval()
    preds, loss = [], 0.0
    with torch.inference_mode():
        for start in range(0, len(x), batch):
            xb = torch.from_numpy(x[start:start + batch]).to(device).float()
            yb = torch.from_numpy(y[start:start + batch]).to(device)
            logits = model.tail(xb, cut)[2]
            loss += float(F.cross_entropy(logits, yb, reduction="sum"))
            preds.append(logits.argmax(1).cpu().numpy())
    pred = np.concatenate(preds) if preds else np.zeros(0, np.int64)
    n = max(len(x), 1)
    return loss / n, float((pred == y).mean()) if len(y) else 0.0, pred


def embed_cache(model: ListingClassifier, x: np.ndarray, cut: int, batch: int, device: torch.device) -> np.ndarray:
    """The head's embeddings of cached activations (eval mode)."""
    model.eval()
    rows = []
    with torch.inference_mode():
        for start in range(0, len(x), batch):
            rows.append(model.tail(torch.from_numpy(x[start:start + batch]).to(device).float(), cut)[1].cpu().numpy())
    return np.concatenate(rows) if rows else np.zeros((0, 0), np.float32)


def neighbour_precision(model: ListingClassifier, cache: ActivationCache, cut: int, targets: Targets, batch: int,
                        device: torch.device, k: int = NEIGHBOURS) -> tuple[float, float]:
    """Val photos searching the train photos' plain (serving) views by cosine: (same root, same full
    path) precision@k. The listing split keeps a val photo's own listing out of what it searches."""
    per = len(cache.train_x) // max(len(cache.train_ids), 1)
    plain = np.arange(0, len(cache.train_x), max(per, 1))
    catalogue = embed_cache(model, cache.train_x[plain], cut, batch, device)
    queries = embed_cache(model, cache.val_x, cut, batch, device)
    root = precision_at_k(queries, cache.val_y, catalogue, cache.train_y[plain], k)
    unseen = np.where(targets.val_path == IGNORE, -1, targets.val_path)  # a path training lacks: never a hit
    catalogue_paths = np.where(targets.train_path[plain] == IGNORE, -2, targets.train_path[plain])
    path = precision_at_k(queries, unseen, catalogue, catalogue_paths, k)
    return root, path


def _log_epoch(writer, name: str, row: dict, epochs: int, progress: bool) -> None:
    if writer is not None:
        for key in ("train_loss", "val_loss"):
            writer.add_scalar(f"loss/{key}", row[key], row["epoch"])
        for key in ("train_accuracy", "val_accuracy"):
            writer.add_scalar(f"accuracy/{key}", row[key], row["epoch"])
        writer.add_scalar("lr/head", row["lr_head"], row["epoch"])
        for key in ("val_precision_at_10", "val_path_precision_at_10"):
            if key in row:
                writer.add_scalar(f"neighbours/{key}", row[key], row["epoch"])
    p10 = f" P@10 {row['val_precision_at_10']:.3f}" if "val_precision_at_10" in row else ""
    log.log(logging.INFO if progress else logging.DEBUG,
            "%s epoch %d/%d: train loss %.3f acc %.3f | val loss %.3f acc %.3f%s", name, row["epoch"], epochs,
            row["train_loss"], row["train_accuracy"], row["val_loss"], row["val_accuracy"], p10)


def _summary(result: FitResult) -> dict:
    return {"name": result.name, "overrides": result.overrides, "best_epoch": result.best_epoch,
            "epochs_run": len(result.history), "val_image_accuracy": round(result.best_val_accuracy, 4),
            "val_loss": round(result.best_val_loss, 4), **_precisions(result)}


def _precisions(result: FitResult) -> dict:
    if math.isnan(result.best_val_precision):
        return {}
    return {"val_photo_precision_at_10": round(result.best_val_precision, 4),
            "val_photo_path_precision_at_10": round(result.best_val_path_precision, 4)}


def _write_model(artifacts: Path, model: ListingClassifier, vs: VisionSettings, codec: CategoryCodec, cut: int,
                 best: FitResult, results: list[FitResult], cache: ActivationCache,
                 paths: tuple[str, ...] = ()) -> None:
    """Checkpoint (weights + everything needed to rebuild), model card, resolved settings; with an int8
    backbone, that graph too (the embed stage appends the trained tail to it)."""
    cfg = model.backbone.preprocess
    int8 = None
    if cache.backbone_onnx is not None:
        atomic_write_bytes(artifacts / S.BACKBONE_INT8_ONNX, cache.backbone_onnx.read_bytes())
        int8 = S.BACKBONE_INT8_ONNX
    checkpoint = {
        "state_dict": model.state_dict(), "backbone": vs.backbone, "input_size": cfg.input_size,
        "categories": list(codec.categories), "preprocess": cfg.to_json(), "cut": cut,
        "vision_settings": vs.model_dump(mode="json"), "backbone_onnx": int8, "cache_key": cache.key,
        "category_paths": list(paths),
    }
    with atomic_path(artifacts / S.MODEL_CHECKPOINT) as tmp:
        torch.save(checkpoint, tmp)
    card = {
        "backbone": vs.backbone, "preprocess": cfg.to_json(), "categories": list(codec.categories),
        "head": vs.head, "embed_layer": vs.embed_layer, "embedding_dim": embedding_dim(model, vs.embed_layer),
        "embedding_normalised": False, "onnx": S.VISION_ONNX, "onnx_inputs": ["image"],
        "onnx_outputs": ["embedding", "logits"], "trained_stages": len(model.backbone.stages) - cut,
        "backbone_int8": int8 is not None,
        "val": _summary(best), "sweep": [_summary(r) for r in results],
    }
    atomic_write_text(artifacts / S.MODEL_CARD, json.dumps(card, indent=2))
    atomic_write_text(artifacts / VISION_SETTINGS_JSON, json.dumps(vs.model_dump(mode="json"), indent=2,
                                                                   sort_keys=True))


def _write_figures(artifacts: Path, best: FitResult, results: list[FitResult], cache: ActivationCache,
                   codec: CategoryCodec) -> None:
    folder = artifacts / S.MODEL_DIR
    plots.plot_curves(best.history, folder / "curves.png", best.name)
    plots.plot_confusion(cache.val_y, best.val_pred, list(codec.categories), folder / "confusion.png")
    if len(results) > 1:
        plots.plot_sweep({r.name: r.history for r in results}, folder / "sweep.png")


def load_model(artifacts: Path) -> tuple[ListingClassifier, dict]:
    """The trained classifier (no pretrained weights needed) and its checkpoint metadata."""
    checkpoint = torch.load(Path(artifacts) / S.MODEL_CHECKPOINT, map_location="cpu", weights_only=False)
    vs = VisionSettings(**{"head": "imagenet", **checkpoint["vision_settings"]})  # older ones had no choice
    model = build_model(vs, len(checkpoint["categories"]), pretrained=False,
                        n_paths=max(1, len(checkpoint.get("category_paths", []))))
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval(), checkpoint
