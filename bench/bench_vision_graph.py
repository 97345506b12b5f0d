"""Claim: what one photo costs in the served vision graph, per backbone and head (docs/vision.md).

For each artifacts folder given, the served ``model/vision.onnx`` (int8 backbone + trained head, run by
ONNX Runtime as serving runs it: ``ImageEncoder``, spinning off) embeds real, already preprocessed catalogue
photos: the median milliseconds of one photo alone (batch 1, what a single search pays), and photos/s at
``--batch``. Decoding is left out (the same for every graph of one input size). One JSON line per folder,
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


def measure(artifacts: Path, photos: int, repeats: int, batch: int, threads: int) -> dict:
    card = json.loads((artifacts / S.MODEL_CARD).read_text())
    encoder = ImageEncoder.from_artifacts(artifacts, threads=threads)
    paths = sorted((artifacts / S.CLEAN_IMAGES_DIR).glob("*.jpg"))[:photos]
    inputs = np.stack([load_image(p, encoder.preprocess) for p in paths])
    load = os.getloadavg()[0]
    for x in inputs[:8]:  # warm up
        encoder.run(x[None])
    one = []
    for i in range(repeats):
        t0 = time.perf_counter()
        encoder.run(inputs[i % len(inputs)][None])
        one.append((time.perf_counter() - t0) * 1000)
    t0, done = time.perf_counter(), 0
    while time.perf_counter() - t0 < 3.0:
        encoder.run(inputs[:batch])
        done += min(batch, len(inputs))
    return {"artifacts": artifacts.name, "backbone": card.get("backbone"), "head": card.get("head", "imagenet"),
            "input_size": card["preprocess"]["input_size"], "embedding_dim": encoder.dim,
            "ms_per_photo_batch1_p50": round(statistics.median(one), 2),
            "ms_per_photo_batch1_p90": round(float(np.percentile(one, 90)), 2),
            f"photos_per_s_batch{batch}": round(done / (time.perf_counter() - t0), 1),
            "threads": threads, "load_avg_1min_at_start": round(load, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--artifacts", type=Path, nargs="+", required=True)
    parser.add_argument("--photos", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    for artifacts in args.artifacts:
        print(json.dumps(measure(artifacts, args.photos, args.repeats, args.batch, args.threads)), flush=True)


if __name__ == "__main__":
    main()
