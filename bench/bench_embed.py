"""Claim: the photo path (decode, preprocess, embed) runs at >= 300 photos/s on 2 cores, <= 0.5 points lost.

Measures photos/s on real photos for each speed-up separately, then together:

* decode + preprocess alone (the serving code's ``load_image``), with and without the reduced-size
  JPEG decode (PIL draft) on phone-sized uploads (the real photos re-encoded at ``--upload-size``);
* the network alone: PyTorch vs ONNX Runtime, intra-op threads 1 / 2, batch 1 / ``--batch``,
  ORT graph optimisation levels, and int8 quantisation (onnxruntime.quantization: static QDQ
  calibrated on real photos, and dynamic);
* the full path, photo bytes -> embedding, for the original way (PyTorch, batch 1) and the fast ways.

Then the accuracy cost of int8 on ``--accuracy-photos`` validation photos: agreement of the predicted
category and of the 1000-way top-1 with the fp32 graph, max abs difference of the embeddings, and,
with the trained model, category accuracy of both.

Without a trained model in ART (``model/model.pt``), a stand-in with the same graph is used:
EfficientNet-Lite0 with its ImageNet weights and a seeded random category layer. Speed is the same;
category agreement then compares random-head predictions, and the JSON says so. A model trained on the
int8 backbone (the default) is served int8: its ``ort_int8_static`` row is that served graph and ``ort`` the
same weights with the backbone in fp32 (so the accuracy rows compare a tail fit to int8 features with
fp32 ones; ``scripts/vision_variants.py`` compares models trained each way).

    python bench/bench_embed.py --data DIR --artifacts ART [--photos 256] [--accuracy-photos 500]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import benchlib
import standin

log = logging.getLogger("bench.embed")


@dataclass
class Model:
    onnx: Path  # the fp32 graph
    torch_graph: Any  # VisionGraph (nn.Module): photo batch -> (embedding, logits)
    input_size: int
    source: str
    categories: list[str]
    served_int8: Path | None = None  # the served graph when the model was trained on an int8 backbone


# --- the model ------------------------------------------------------------------------------------


def load_model(artifacts: Path, workdir: Path, seed: int) -> Model:
    """The trained graph from ART, or the stand-in (same architecture) exported to ``workdir``."""
    from listing_search import schema as S
    from listing_search.vision.export import export_onnx
    from listing_search.vision.model import VisionGraph

    categories = _categories(artifacts)
    if (artifacts / S.MODEL_CHECKPOINT).is_file():
        from listing_search.vision.train import load_model as load_trained

        model, checkpoint = load_trained(artifacts)
        card = json.loads((artifacts / S.MODEL_CARD).read_text()) if (artifacts / S.MODEL_CARD).is_file() else {}
        graph = VisionGraph(model, card.get("embed_layer", "logits1000")).eval()
        size = int(checkpoint["preprocess"]["input_size"])
        onnx = artifacts / S.VISION_ONNX
        source = "trained (ART/model)"
        categories = list(checkpoint.get("categories", categories))
        served_int8 = None
        if checkpoint.get("backbone_onnx"):  # the served graph is int8 already: the fp32 one is made here
            served_int8 = onnx
            onnx = export_onnx(graph, workdir / "vision.fp32.onnx", size, ["image"], ["embedding", "logits"])
            source += " (int8 backbone served; the same weights in fp32 exported by the bench)"
        elif not onnx.is_file():
            onnx = export_onnx(graph, workdir / "vision.onnx", size, ["image"], ["embedding", "logits"])
            source += ", ONNX exported by the bench"
        return Model(onnx, graph, size, source, categories, served_int8)

    onnx, graph, size = standin.export_standin(workdir, categories, seed)
    return Model(onnx, graph, size, "stand-in: efficientnet_lite0 ImageNet weights + random category layer",
                 categories)


def _categories(artifacts: Path) -> list[str]:
    path = artifacts / "categories.json"
    return list(json.loads(path.read_text())["categories"]) if path.is_file() else []


def ort_session(path: Path, threads: int, level: str = "all") -> Any:
    import onnxruntime as ort

    levels = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = levels[level]
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def quantize_int8(src: Path, dest: Path) -> Path:
    """Dynamic int8 quantisation of the weights (activations quantised at run time)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dest), weight_type=QuantType.QInt8)
    return dest


def quantize_static_int8(src: Path, dest: Path, calibration: np.ndarray) -> Path:
    """Static int8 (QDQ, per-channel weights, activation ranges calibrated on real photos).

    This is the kind of quantisation a CNN needs: dynamic quantisation turns every convolution into
    ConvInteger with run-time activation scaling, which is both slower and far less accurate here.
    """
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"image": calibration[i:i + 8]} for i in range(0, len(calibration), 8)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    import onnx

    prepared = dest.with_suffix(".pre.onnx")
    quant_pre_process(str(src), str(prepared))
    # The 1000-way layer and the category layer stay fp32: they are the embedding and the answer,
    # and cost almost nothing next to the convolutions.
    keep_fp32 = [n.name for n in onnx.load(str(prepared)).graph.node if n.op_type in ("Gemm", "MatMul")]
    quantize_static(str(prepared), str(dest), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    nodes_to_exclude=keep_fp32, calibrate_method=CalibrationMethod.Percentile)
    prepared.unlink(missing_ok=True)
    return dest


# --- photos ---------------------------------------------------------------------------------------


def photo_bytes(paths: list[Path]) -> list[bytes]:
    return [p.read_bytes() for p in paths]


def upsized(photos: list[bytes], size: int) -> list[bytes]:
    """The photos re-encoded with their longer side at ``size`` px: what a phone upload looks like."""
    from PIL import Image

    out = []
    for data in photos:
        img = Image.open(io.BytesIO(data)).convert("RGB")
        scale = size / max(img.size)
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.BICUBIC)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def val_photos(data_dir: Path, artifacts: Path, limit: int, seed: int) -> tuple[list[Path], np.ndarray | None]:
    """Validation photos (with their category labels) from ART/training_data.csv, else any photos."""
    import pandas as pd

    table = artifacts / "training_data.csv"
    folder = Path(data_dir) / "images"
    if table.is_file():
        df = pd.read_csv(table, usecols=["image_id", "label", "split"], dtype={"image_id": str})
        df = df[df["split"] == "val"]
        df = df[[(folder / f"{i}.jpg").is_file() for i in df["image_id"]]]
        df = df.sample(n=min(limit, len(df)), random_state=seed)
        if len(df):
            return [folder / f"{i}.jpg" for i in df["image_id"]], df["label"].to_numpy()
    return benchlib.real_photos(data_dir, limit, seed), None


# --- timing ---------------------------------------------------------------------------------------


def rate(fn: Callable[[], int], min_s: float, min_calls: int = 1, warmup: Callable[[], Any] | None = None) -> float:
    """Items per second of ``fn`` (which returns how many items it did), after ``warmup`` (or one call)."""
    (warmup or fn)()
    done, calls, start = 0, 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - start < min_s:
        done += fn()
        calls += 1
    return done / (time.perf_counter() - start)


def batches_of(arrays: np.ndarray, batch: int) -> Callable[[Callable[[np.ndarray], Any]], Callable[[], int]]:
    """Wrap a model call into a "do every batch once" callable for :func:`rate`."""
    def wrap(run: Callable[[np.ndarray], Any]) -> Callable[[], int]:
        def all_batches() -> int:
            for start in range(0, len(arrays), batch):
                run(arrays[start:start + batch])
            return len(arrays)
        return all_batches
    return wrap


def torch_runner(graph: Any, threads: int) -> Callable[[np.ndarray], Any]:
    import torch

    def run(x: np.ndarray) -> Any:
        torch.set_num_threads(threads)
        with torch.inference_mode():
            return graph(torch.from_numpy(x))
    return run


def ort_runner(session: Any) -> Callable[[np.ndarray], Any]:
    return lambda x: session.run(None, {"image": x})


# --- the measurements -----------------------------------------------------------------------------


def measure_preprocess(photos: list[bytes], big: list[bytes], size: int, min_s: float) -> dict[str, float]:
    from listing_search.data.images import letterbox, open_image, to_rgb
    from listing_search.vision.preprocess import PreprocessConfig, load_image, normalise

    cfg = PreprocessConfig(size)

    def served(items: list[bytes]) -> Callable[[], int]:
        return lambda: len([load_image(b, cfg) for b in items])

    def no_draft(items: list[bytes]) -> Callable[[], int]:
        def go() -> int:
            for b in items:
                normalise(letterbox(to_rgb(open_image(b, 64_000_000, draft_to=None)), size), cfg)
            return len(items)
        return go

    return {
        "dataset_photos_per_s": round(rate(served(photos), min_s), 1),
        "dataset_photos_no_draft_per_s": round(rate(no_draft(photos), min_s), 1),
        "upload_photos_per_s": round(rate(served(big), min_s), 1),
        "upload_photos_no_draft_per_s": round(rate(no_draft(big), min_s), 1),
    }


def measure_network(model: Model, arrays: np.ndarray, graphs: dict[str, Path], batch: int, min_s: float,
                    levels: list[str]) -> list[dict[str, Any]]:
    """Network alone on decoded photos: every runtime x threads x batch, then ORT optimisation levels."""
    rows: list[dict[str, Any]] = []
    for runtime in ("torch", *graphs):
        grid = [(2, batch)] if runtime == "ort_int8_dynamic" else [(t, b) for t in (1, 2) for b in (1, batch)]
        for threads, b in grid:
            rows.append(_network_row(model, arrays, graphs, runtime, threads, b, "all", min_s))
    for level in levels:
        if level != "all":
            rows.append(_network_row(model, arrays, graphs, "ort", 2, batch, level, min_s))
    return rows


def _network_row(model: Model, arrays: np.ndarray, graphs: dict[str, Path], runtime: str, threads: int,
                 batch: int, level: str, min_s: float) -> dict[str, Any]:
    if runtime == "torch":
        run = torch_runner(model.torch_graph, threads)
    else:
        run = ort_runner(ort_session(graphs[runtime], threads, level))
    per_s = rate(batches_of(arrays, batch)(run), min_s, warmup=lambda: run(arrays[:batch]))
    row = {"runtime": runtime, "threads": threads, "batch": batch, "photos_per_s": round(per_s, 1)}
    if runtime != "torch":
        row["graph_optimization"] = level
    log.info("network %s", row)
    return row


def measure_full_path(model: Model, photos: list[bytes], graphs: dict[str, Path], batch: int,
                      min_s: float) -> list[dict[str, Any]]:
    """Photo bytes -> embeddings, decoding included, for the original and the fast configurations."""
    from listing_search.vision.preprocess import PreprocessConfig, load_image

    cfg = PreprocessConfig(model.input_size)
    configs: list[tuple[str, Callable[[np.ndarray], Any], int]] = [
        ("original: torch, batch 1", torch_runner(model.torch_graph, 2), 1)]
    for runtime, path in graphs.items():
        for b in ((batch,) if runtime == "ort_int8_dynamic" else (1, batch)):
            configs.append((f"{runtime}, batch {b}", ort_runner(ort_session(path, 2)), b))
    rows = []
    for name, run, b in configs:
        def go(run: Callable[[np.ndarray], Any] = run, b: int = b) -> int:
            for start in range(0, len(photos), b):
                run(np.stack([load_image(p, cfg) for p in photos[start:start + b]]))
            return len(photos)
        warm = (lambda run=run, b=b: run(np.stack([load_image(p, cfg) for p in photos[:b]])))
        rows.append({"path": name, "batch": b, "threads": 2, "photos_per_s": round(rate(go, min_s, warmup=warm), 1)})
        log.info("full path %s", rows[-1])
    return rows


def measure_accuracy(model: Model, int8: Path, paths: list[Path], labels: np.ndarray | None,
                     batch: int) -> dict[str, Any]:
    """How far the ``int8`` graph strays from the fp32 one on real validation photos."""
    from listing_search.vision.preprocess import PreprocessConfig, load_image

    cfg = PreprocessConfig(model.input_size)
    fp32, q8 = ort_session(model.onnx, 2), ort_session(int8, 2)
    emb32, emb8, log32, log8 = [], [], [], []
    for start in range(0, len(paths), batch):
        x = np.stack([load_image(p, cfg) for p in paths[start:start + batch]])
        e, lg = fp32.run(["embedding", "logits"], {"image": x})
        e8, lg8 = q8.run(["embedding", "logits"], {"image": x})
        emb32.append(e), emb8.append(e8), log32.append(lg), log8.append(lg8)
    e32, e8 = np.concatenate(emb32), np.concatenate(emb8)
    c32, c8 = np.concatenate(log32).argmax(1), np.concatenate(log8).argmax(1)
    cos = (e32 * e8).sum(1) / (np.linalg.norm(e32, axis=1) * np.linalg.norm(e8, axis=1) + 1e-12)
    out: dict[str, Any] = {
        "photos": len(paths),
        "category_agreement": round(float((c32 == c8).mean()), 4),
        "imagenet_top1_agreement": round(float((e32.argmax(1) == e8.argmax(1)).mean()), 4),
        "embedding_max_abs_diff": round(float(np.abs(e32 - e8).max()), 4),
        "embedding_max_abs_fp32": round(float(np.abs(e32).max()), 4),
        "embedding_cosine_min": round(float(cos.min()), 4),
        "embedding_cosine_mean": round(float(cos.mean()), 5),
    }
    if labels is not None and model.source.startswith("trained"):
        acc32, acc8 = float((c32 == labels).mean()), float((c8 == labels).mean())
        out.update({"category_accuracy_fp32": round(acc32, 4), "category_accuracy_int8": round(acc8, 4),
                    "accuracy_loss_points": round(100 * (acc32 - acc8), 2)})
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    state = benchlib.machine_state()
    with tempfile.TemporaryDirectory(prefix="bench_embed_") as tmp:
        workdir = Path(tmp)
        model = load_model(args.artifacts, workdir, args.seed)
        from listing_search.vision.preprocess import PreprocessConfig, load_image

        calib = np.stack([load_image(p, PreprocessConfig(model.input_size))
                          for p in benchlib.real_photos(args.data, args.calibration_photos, args.seed + 1)])
        with contextlib.redirect_stdout(sys.stderr):  # the quantiser prints progress on stdout
            graphs = {
                "ort": model.onnx,
                "ort_int8_static": model.served_int8 or quantize_static_int8(model.onnx, workdir / "vision.int8s.onnx",
                                                                             calib),
                "ort_int8_dynamic": quantize_int8(model.onnx, workdir / "vision.int8d.onnx"),
            }
        paths = benchlib.real_photos(args.data, args.photos, args.seed)
        photos = photo_bytes(paths)
        big = upsized(photos[: args.upload_photos], args.upload_size)
        log.info("%d photos, model %s", len(photos), model.source)
        pre = measure_preprocess(photos, big, model.input_size, args.min_s)
        log.info("preprocess %s", pre)
        arrays = np.stack([load_image(p, PreprocessConfig(model.input_size)) for p in photos[: args.network_photos]])
        network = measure_network(model, arrays, graphs, args.batch, args.min_s, args.levels)
        full = measure_full_path(model, photos, graphs, args.batch, args.min_s)
        acc_paths, labels = val_photos(args.data, args.artifacts, args.accuracy_photos, args.seed)
        accuracy = {name: measure_accuracy(model, path, acc_paths[:100] if "dynamic" in name else acc_paths,
                                           None if labels is None else labels[:100] if "dynamic" in name else labels,
                                           args.batch)
                    for name, path in graphs.items() if name != "ort"}  # dynamic is slow: 100 photos
        sizes = {name: round(path.stat().st_size / 2**20, 1) for name, path in graphs.items()}
    best = max(full, key=lambda r: r["photos_per_s"])
    original = full[0]["photos_per_s"]
    return {
        "bench": "embed",
        "command": f"python bench/bench_embed.py --photos {args.photos} --batch {args.batch}",
        "model": model.source, "input_size": model.input_size, "photos": len(photos),
        "photo_source": str(Path(args.data) / "images"), "upload_size": args.upload_size,
        "goal": {"photos_per_s": 300, "accuracy_loss_points": 0.5},
        "preprocess_single_thread": pre,
        "network": network,
        "full_path": full,
        "best_full_path": best,
        "speedup_best_vs_original": round(best["photos_per_s"] / original, 2) if original else None,
        "int8_vs_fp32": accuracy,
        "model_file_mb": sizes,
        "machine_start": state,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = benchlib.parser(__doc__)
    p.add_argument("--photos", type=int, default=128, help="real photos timed on the full path")
    p.add_argument("--network-photos", type=int, default=64, help="decoded photos fed to the network timings")
    p.add_argument("--upload-photos", type=int, default=64, help="photos re-encoded as big uploads")
    p.add_argument("--upload-size", type=int, default=1600, help="longer side of the simulated uploads")
    p.add_argument("--accuracy-photos", type=int, default=500)
    p.add_argument("--calibration-photos", type=int, default=64, help="photos calibrating static int8")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--min-s", type=float, default=3.0, help="each rate is measured for at least this long")
    p.add_argument("--levels", nargs="*", default=["disable", "basic", "extended", "all"])
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    benchlib.main(run, parse_args(argv))


if __name__ == "__main__":
    main()
