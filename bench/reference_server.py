"""The ORIGINAL way of serving, as a baseline for bench_serve.py (not part of the product).

A minimal FastAPI app as the original project had it: a PyTorch ResNet50-shaped feature extractor
(torchvision resnet50, 1000-way output as the 1000-d feature) run once per request on the uploaded
photo with torchvision transforms, and an exact ``faiss.IndexFlatL2`` over 1000-d vectors of the
catalogue. ImageNet weights cannot be downloaded here, so the network has random (seeded) weights:
the cost per request is the same; the answers are meaningless. The catalogue vectors are seeded
random ones of the same count as the real catalogue (an exact L2 scan costs the same either way).

    python bench/reference_server.py --port 8100 --n-vectors 11000
"""

from __future__ import annotations

import argparse
import io
import logging

import faiss
import numpy as np
import torch
import uvicorn
from fastapi import FastAPI, File, UploadFile
from PIL import Image
from torchvision import transforms
from torchvision.models import resnet50

log = logging.getLogger("bench.reference")


def create_app(n_vectors: int, seed: int = 0, threads: int | None = None) -> FastAPI:
    """``threads``: torch intra-op threads (None: torch's default, one per core, as the original had)."""
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model = resnet50(weights=None).eval()
    index = faiss.IndexFlatL2(1000)
    index.add(np.random.default_rng(seed).standard_normal((n_vectors, 1000), dtype=np.float32))
    prep = transforms.Compose([
        transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    app = FastAPI(title="reference (original way)")

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "vectors": int(index.ntotal)}

    @app.post("/predict/similar_images")
    def similar_images(image: UploadFile = File(...)) -> dict:
        pil = Image.open(io.BytesIO(image.file.read())).convert("RGB")
        with torch.no_grad():
            features = model(prep(pil).unsqueeze(0)).numpy().astype(np.float32)
        distances, indices = index.search(features, 4)
        return {"similar_index": indices[0].tolist(), "distances": distances[0].tolist()}

    return app


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8100)
    p.add_argument("--n-vectors", type=int, default=11_000)
    p.add_argument("--threads", type=int, default=0, help="torch threads; 0: torch's default")
    args = p.parse_args()
    uvicorn.run(create_app(args.n_vectors, threads=args.threads or None), host=args.host, port=args.port,
                log_level="warning")


if __name__ == "__main__":
    main()
