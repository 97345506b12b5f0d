"""Activation cache: run the frozen stages once per photo view, so training touches only the tail.

On a 2-core CPU the frozen part of the network is most of the cost; ONNX Runtime runs it about ten
times faster than eager PyTorch, so the prefix is exported to a temporary ONNX graph and run there
(on a GPU, PyTorch runs it directly). Each training photo gets its plain view (exactly the serving
preprocessing) plus ``augment_copies`` augmented views; validation photos get the plain view only.
The cache is stored under ``ART/model/cache/<key>`` and reused while its key (data, backbone,
resolution, cut, views, seed, int8) is unchanged, so sweeps and re-runs skip this step.

When every convolutional stage is frozen (``train_last_blocks = 0``, the default) the cache holds the
pooled features ([D] float32 per view), and the backbone may run as an int8 graph (static
quantisation, ``vision.quantize``): that very graph is then kept with the cache, becomes the front of
the served graph, and its plain-view features are the catalogue's embeddings before the tail, so
training, embedding and serving see the same numbers by construction.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageEnhance
from tqdm import tqdm

from listing_search import schema as S
from listing_search.data.images import open_image, to_rgb
from listing_search.vision.model import ListingClassifier, Prefix
from listing_search.vision.preprocess import DEFAULT_MAX_PIXELS, PreprocessConfig, load_image, normalise

log = logging.getLogger(__name__)

CACHE_DIR = "model/cache"
PREFIX_OUTPUT = "acts"  # the output of the cached prefix graph (the input of the trained tail)
BACKBONE_INT8 = "backbone.int8.onnx"  # in the cache folder: the int8 prefix that computed it
_BATCH = 64


@dataclass
class ActivationCache:
    """Cached inputs of the trained tail. ``train_photo`` maps each training view to its photo row."""

    train_x: np.ndarray  # (views, C, H, W) float16
    train_y: np.ndarray  # (views,) int64
    train_photo: np.ndarray  # (views,) int64
    val_x: np.ndarray
    val_y: np.ndarray
    key: str
    train_ids: list[str] = field(default_factory=list)  # image id of each training photo (views in blocks)
    val_ids: list[str] = field(default_factory=list)
    backbone_onnx: Path | None = None  # the int8 backbone graph that computed the cache, when quantised

    def plain_views(self) -> dict[str, np.ndarray]:
        """Image id -> its plain (serving) view's cached activations."""
        per = len(self.train_x) // max(len(self.train_ids), 1)
        out = {i: self.train_x[j * per] for j, i in enumerate(self.train_ids)}
        out.update(zip(self.val_ids, self.val_x))
        return out


def cache_key(photos: pd.DataFrame, backbone: str, cfg: PreprocessConfig, cut: int, copies: int,
              seed: int, int8: bool = False) -> str:
    h = hashlib.sha256(json.dumps([backbone, cfg.to_json(), cut, copies, seed] + (["int8"] if int8 else [])).encode())
    h.update(pd.util.hash_pandas_object(photos[[S.IMAGE_ID, S.LABEL, S.SPLIT]], index=False).values.tobytes())
    return h.hexdigest()[:16]


def augment(img: Image.Image, size: int, rng: np.random.Generator) -> Image.Image:
    """Random resized crop (35-100% of the area), horizontal flip, brightness/contrast/colour jitter."""
    w, h = img.size
    area = w * h * rng.uniform(0.35, 1.0)
    ratio = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    cw, ch = min(w, int(round(np.sqrt(area * ratio)))), min(h, int(round(np.sqrt(area / ratio))))
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    out = img.resize((size, size), Image.Resampling.BILINEAR, box=(x0, y0, x0 + cw, y0 + ch))
    if rng.random() < 0.5:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        out = enhancer(out).enhance(float(rng.uniform(0.7, 1.3)))
    return out


def photo_views(path: Path, cfg: PreprocessConfig, copies: int, seed: int) -> np.ndarray:
    """(1 + copies, 3, S, S): the plain serving view, then seeded augmented views."""
    plain = load_image(path, cfg)
    if copies == 0:
        return plain[None]
    rng = np.random.default_rng(seed)
    img = to_rgb(open_image(path, DEFAULT_MAX_PIXELS))
    views = [plain] + [normalise(augment(img, cfg.input_size, rng), cfg) for _ in range(copies)]
    return np.stack(views)


def _prefix_runner(model: ListingClassifier, cut: int, cfg: PreprocessConfig, device: torch.device,
                   workdir: Path, int8: Path | None = None,
                   calibration: Path | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """A function running the frozen stages on a batch: ONNX Runtime on CPU, PyTorch on a GPU.

    ``int8``: quantise the prefix (calibrated on photos of the ``calibration`` folder) into that file
    and run it there, whatever the device: the served graph runs the same int8 backbone.
    """
    prefix = Prefix(model, cut).eval()
    if cut == 0:
        return lambda x: x
    if device.type != "cpu" and int8 is None:
        prefix = prefix.to(device)

        def run_torch(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return prefix(torch.from_numpy(x).to(device)).float().cpu().numpy()

        return run_torch

    from listing_search.vision.export import export_onnx, onnx_session

    path = workdir / "prefix.onnx"
    export_onnx(prefix, path, cfg.input_size, ["image"], [PREFIX_OUTPUT])
    if int8 is not None:
        from listing_search.vision.quantize import calibration_batch, quantize_static

        assert calibration is not None, "an int8 prefix needs calibration photos"
        path = quantize_static(path, int8, calibration_batch(calibration, cfg))
    session = onnx_session(path, max(1, torch.get_num_threads()))
    return lambda x: session.run(None, {"image": x})[0]


def _batches(paths: list[Path], copies: list[int], cfg: PreprocessConfig, seed: int,
             threads: int) -> Iterator[np.ndarray]:
    """Decoded, augmented views in photo order, in batches of about ``_BATCH`` views."""
    def load(i: int) -> np.ndarray:
        return photo_views(paths[i], cfg, copies[i], seed * 1_000_003 + i)

    starts = range(0, len(paths), _BATCH)
    with ThreadPoolExecutor(threads) as pool:
        ahead = None  # the next batch decodes while the caller runs the network on this one
        for start in starts:
            current = ahead or [pool.submit(load, i) for i in range(start, min(start + _BATCH, len(paths)))]
            nxt = start + _BATCH
            ahead = [pool.submit(load, i) for i in range(nxt, min(nxt + _BATCH, len(paths)))] or None
            yield np.concatenate([f.result() for f in current])


def _compute(paths: list[Path], copies: list[int], run: Callable[[np.ndarray], np.ndarray],
             cfg: PreprocessConfig, seed: int, progress: bool, desc: str) -> np.ndarray:
    total = int(sum(1 + c for c in copies))
    out: np.ndarray | None = None
    pos = 0
    with tqdm(total=total, disable=not progress, desc=desc, unit="view") as bar:
        for batch in _batches(paths, copies, cfg, seed, threads=2):
            acts = run(batch)
            if out is None:  # pooled features are small: keep them exact; feature maps as float16
                out = np.empty((total, *acts.shape[1:]), np.float32 if acts.ndim == 2 else np.float16)
            out[pos:pos + len(acts)] = acts
            pos += len(acts)
            bar.update(len(acts))
    assert out is not None and pos == total
    return out


def build_cache(model: ListingClassifier, cut: int, photos: pd.DataFrame, images_dir: Path,
                cfg: PreprocessConfig, copies: int, seed: int, device: torch.device, cache_root: Path,
                backbone: str, progress: bool = False, int8: bool = False) -> ActivationCache:
    """Load the cache for these photos and settings, computing it first when it does not exist.

    ``int8`` (only with every stage frozen): the backbone runs as an int8 graph, kept in the cache."""
    int8 = int8 and model.frozen_backbone(cut)
    key = cache_key(photos, backbone, cfg, cut, copies, seed, int8)
    folder = cache_root / key
    if (folder / "meta.json").is_file():
        log.info("activation cache %s: reusing", key)
        return load_cache(folder)
    train = photos[photos[S.SPLIT] == "train"]
    val = photos[photos[S.SPLIT] == "val"]
    with tempfile.TemporaryDirectory() as tmp:
        graph = Path(tmp) / BACKBONE_INT8 if int8 else None
        run = _prefix_runner(model, cut, cfg, device, Path(tmp), graph, images_dir)
        paths = [images_dir / f"{i}.jpg" for i in train[S.IMAGE_ID]]
        train_x = _compute(paths, [copies] * len(paths), run, cfg, seed, progress, "cache train")
        paths = [images_dir / f"{i}.jpg" for i in val[S.IMAGE_ID]]
        val_x = _compute(paths, [0] * len(paths), run, cfg, seed, progress, "cache val")
        cache = ActivationCache(
            train_x=train_x,
            train_y=np.repeat(train[S.LABEL].to_numpy(np.int64), 1 + copies),
            train_photo=np.repeat(np.arange(len(train)), 1 + copies),
            val_x=val_x,
            val_y=np.array(val[S.LABEL], np.int64),
            key=key, train_ids=train[S.IMAGE_ID].astype(str).tolist(), val_ids=val[S.IMAGE_ID].astype(str).tolist(),
            backbone_onnx=graph,
        )
        _save(folder, cache)
    _prune(cache_root, keep=key)
    return load_cache(folder)


def _prune(cache_root: Path, keep: str) -> None:
    """Older caches (other data or settings) are hundreds of MB each: keep only the current one."""
    for old in cache_root.iterdir():
        if old.is_dir() and old.name != keep:
            shutil.rmtree(old, ignore_errors=True)
            log.info("activation cache %s removed", old.name)


def _save(folder: Path, cache: ActivationCache) -> None:
    """Arrays, the int8 graph, then ``meta.json`` last: a cache without it is unfinished and recomputed."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("train_x", "train_y", "train_photo", "val_x", "val_y"):
        np.save(folder / f"{name}.npy", getattr(cache, name))
    if cache.backbone_onnx is not None:
        shutil.copyfile(cache.backbone_onnx, folder / BACKBONE_INT8)
    meta = {"key": cache.key, "train_views": len(cache.train_x), "train_ids": cache.train_ids,
            "val_ids": cache.val_ids, "int8": cache.backbone_onnx is not None}
    (folder / "meta.json").write_text(json.dumps(meta))


def load_cache(folder: Path) -> ActivationCache:
    """A finished cache folder (``meta.json`` written)."""
    meta = json.loads((folder / "meta.json").read_text())
    arrays = {n: np.load(folder / f"{n}.npy") for n in ("train_x", "train_y", "train_photo", "val_x", "val_y")}
    return ActivationCache(key=meta["key"], train_ids=meta.get("train_ids", []), val_ids=meta.get("val_ids", []),
                           backbone_onnx=folder / BACKBONE_INT8 if meta.get("int8") else None, **arrays)
