"""Claim: an image query to POST /v1/search answers in p50 <= 100 ms on the real catalogue, on 2 shared cores.

Starts `listing-search serve` on a free 127.0.0.1 port (the real uvicorn process, model and index
loaded once), sends raw dataset photos one at a time as a client would (multipart upload, k=10),
and reports latency percentiles for plain and category-filtered searches, plus the index in use.
Photos come from DATA/raw_images (full-size uploads, up to ~1 MB) when present, else DATA/images.

    python bench/bench_serve_latency.py --data DIR --artifacts ART [--n 200]
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import REPO, emit, machine_state, percentiles_ms, real_photos, setup_logging  # noqa: E402

log = logging.getLogger("bench.serve")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(artifacts: Path, port: int, env: dict[str, str] | None = None) -> subprocess.Popen:
    env = {**os.environ, "LISTING_SEARCH_LOG_LEVEL": "WARNING", **(env or {})}
    cmd = [sys.executable, "-m", "listing_search.cli", "serve", "--artifacts", str(artifacts),
           "--host", "127.0.0.1", "--port", str(port)]
    return subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_healthy(client: httpx.Client, proc: subprocess.Popen, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            r = client.get("/health")
            if r.status_code == 200:
                return r.json()
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise TimeoutError("server did not become healthy")


def run_queries(client: httpx.Client, photos: list[Path], data: dict) -> tuple[list[float], int]:
    """Sequential requests (one client, like one user); returns durations and the count of non-200s."""
    durations, failures = [], 0
    for path in photos:
        body = path.read_bytes()
        start = time.perf_counter()
        r = client.post("/v1/search", files={"image": (path.name, body, "image/jpeg")}, data=data)
        durations.append(time.perf_counter() - start)
        failures += r.status_code != 200
    return durations, failures


def upload_photos(data: Path, n: int) -> list[Path]:
    """Full-size photos as users upload them when the dataset has them, else the standard ones."""
    raw = sorted((data / "raw_images").glob("*.jpg"))
    if raw:
        return random.Random(1).sample(raw, min(n, len(raw)))
    return real_photos(data, n, seed=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared/data/fb_marketplace")
    ap.add_argument("--artifacts", type=Path, default=REPO / "artifacts")
    ap.add_argument("--n", type=int, default=200, help="Queries per case.")
    ap.add_argument("--warmup", type=int, default=10)
    args = ap.parse_args()
    setup_logging()
    photos = upload_photos(args.data, args.n + args.warmup)
    if not photos:
        raise SystemExit(f"no photos in {args.data / 'images'}")
    port = free_port()
    state_start = machine_state()
    proc = start_server(args.artifacts.resolve(), port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            health = wait_healthy(client, proc)
            log.info("server healthy: %s", health)
            run_queries(client, photos[: args.warmup], {"k": "10"})
            plain, bad_plain = run_queries(client, photos[args.warmup:], {"k": "10"})
            category = client.get("/v1/categories").json()["categories"][0]
            filtered, bad_filtered = run_queries(client, photos[args.warmup:], {"k": "10", "category": category})
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    emit({
        "bench": "serve_latency", "claim_p50_ms": 100.0, "endpoint": "POST /v1/search (image, k=10)",
        "index_type": health.get("index_type"), "index_size": health.get("index"),
        "listings": health.get("listings"), "text": health.get("text"),
        "plain": {**percentiles_ms(plain), "non_200": bad_plain},
        "filtered": {**percentiles_ms(filtered), "non_200": bad_filtered, "category": category},
        "photos": str(photos[0].parent), "photo_bytes_mean": round(sum(p.stat().st_size for p in photos) / len(photos)),
        "machine_start": state_start,
    })


if __name__ == "__main__":
    main()
