"""Claim: what one photo costs in the served vision graph, per backbone and head (docs/vision.md).

For each artifacts folder given, the served ``model/vision.onnx`` (int8 backbone + trained head, run by
ONNX Runtime as serving runs it: ``ImageEncoder``, spinning off) embeds real, already preprocessed catalogue
photos: the milliseconds of one photo alone (batch 1, what a single search pays; the graphs take turns photo by
photo, min and median), and photos/s at ``--batch``. Decoding is left out (the same for every graph of
one input size). One JSON line per folder,
with the load average at its start (2 shared cores: compare rows measured together).

    python bench/bench_vision_graph.py --artifacts ART_LITE0 ART_LITE1 [--photos 64] [--repeats 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

from listing_search import schema as S
from listing_search.vision.encoder import ImageEncoder
from listing_search.vision.preprocess import load_image


def load(artifacts: Path, photos: int, threads: int) -> tuple[dict, ImageEncoder, np.ndarray]:
    card = json.loads((artifacts / S.MODEL_CARD).read_text())
    encoder = ImageEncoder.from_artifacts(artifacts, threads=threads)
    paths = sorted((artifacts / S.CLEAN_IMAGES_DIR).glob("*.jpg"))[:photos]
    return card, encoder, np.stack([load_image(p, encoder.preprocess) for p in paths])


def measure(folders: list[Path], photos: int, repeats: int, batch: int, threads: int) -> list[dict]:
    """The graphs take turns, one photo each, so a shared machine's load falls on all of them alike; the
    minimum is the cost with the cores to itself, the median what a busy machine gives."""
    loaded = [load(f, photos, threads) for f in folders]
    load_avg = os.getloadavg()[0]
    times: list[list[float]] = [[] for _ in loaded]
    for _, encoder, inputs in loaded:  # warm up
        for x in inputs[:8]:
            encoder.run(x[None])
    for i in range(repeats):
        for j, (_, encoder, inputs) in enumerate(loaded):
            t0 = time.perf_counter()
            encoder.run(inputs[i % len(inputs)][None])
            times[j].append((time.perf_counter() - t0) * 1000)
    rows = []
    for folder, (card, encoder, inputs), one in zip(folders, loaded, times):
        t0, done = time.perf_counter(), 0
        while time.perf_counter() - t0 < 3.0:
            encoder.run(inputs[:batch])
            done += min(batch, len(inputs))
        rows.append({"artifacts": folder.name, "backbone": card.get("backbone"), "head": card.get("head", "imagenet"),
                     "input_size": card["preprocess"]["input_size"], "embedding_dim": encoder.dim,
                     "ms_per_photo_batch1_min": round(min(one), 2),
                     "ms_per_photo_batch1_p50": round(statistics.median(one), 2),
                     f"photos_per_s_batch{batch}": round(done / (time.perf_counter() - t0), 1),
                     "threads": threads, "repeats": repeats, "load_avg_1min_at_start": round(load_avg, 2)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--artifacts", type=Path, nargs="+", required=True)
    parser.add_argument("--photos", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    for row in measure(args.artifacts, args.photos, args.repeats, args.batch, args.threads):
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
