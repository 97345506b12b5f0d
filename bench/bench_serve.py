"""Claim: photo search (``/predict/similar_images``) p50 <= 10 ms at one client, >= 10x the requests/s of
the original way of serving at 8 clients, photo + words ``/v1/search`` p50 <= 20 ms.

Starts the real server (``listing-search serve``, uvicorn, on 127.0.0.1) over ART, and the reference
server built the original way (reference_server.py: PyTorch ResNet50 per request + exact IndexFlatL2
over 1000-d vectors of the same catalogue size), one at a time, and drives each with a bounded async
load (httpx.AsyncClient, concurrency 1 and 8, at most ``--n`` requests and ``--max-s`` seconds per
phase) of real photo uploads and text queries. Reports p50/p95/p99 latency and req/s per endpoint
and the ratios to the reference. Client and server share the same 2 cores.

When ART cannot be served yet (no trained model / index), a folder is built from ART's tables with
the stand-in model (standin.py) and the real index stage; the JSON says which was used.

    python bench/bench_serve.py --data DIR --artifacts ART [--n 200] [--max-s 60]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import psutil

import benchlib
import standin
from listing_search import schema as S
from bench_serve_latency import free_port, start_server, wait_healthy

log = logging.getLogger("bench.serve")
Request = Callable[[httpx.AsyncClient, int], Any]


def image_request(path: str, photos: list[bytes], data: dict[str, str] | None = None) -> Request:
    def send(client: httpx.AsyncClient, i: int) -> Any:
        files = {"image": ("photo.jpg", photos[i % len(photos)], "image/jpeg")}
        return client.post(path, files=files, data=data or {})
    return send


def photo_and_words_request(photos: list[bytes], queries: list[str]) -> Request:
    def send(client: httpx.AsyncClient, i: int) -> Any:
        files = {"image": ("photo.jpg", photos[i % len(photos)], "image/jpeg")}
        return client.post("/v1/search", files=files, data={"text": queries[i % len(queries)], "k": "10"})
    return send


def text_request(queries: list[str]) -> Request:
    def send(client: httpx.AsyncClient, i: int) -> Any:
        return client.post("/v1/search", data={"text": queries[i % len(queries)], "k": "10"})
    return send


async def load(base_url: str, send: Request, concurrency: int, n: int, max_s: float) -> dict[str, Any]:
    """``concurrency`` workers share ``n`` requests, stopping new ones after ``max_s`` seconds."""
    durations: list[float] = []
    failures = 0
    counter = iter(range(n))
    deadline = time.perf_counter() + max_s
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal failures
        for i in counter:
            if time.perf_counter() > deadline:
                return
            start = time.perf_counter()
            response = await send(client, i)
            durations.append(time.perf_counter() - start)
            failures += response.status_code != 200

    async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as client:
        for i in range(min(3, n)):  # warm-up: first requests pay lazy initialisation
            await send(client, i)
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        wall = time.perf_counter() - start
    return {"concurrency": concurrency, **benchlib.percentiles_ms(durations),
            "req_per_s": round(len(durations) / wall, 1) if wall else None, "non_200": failures}


def server_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of the server process and its children (uvicorn's workers) so far."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return float("nan")
    total = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):  # a worker that exited meanwhile
            total += sum(proc.cpu_times()[:2])  # user + system
    return total


def run_phases(base_url: str, cases: dict[str, Request], n: dict[int, int], max_s: float,
               pid: int | None = None) -> dict[str, Any]:
    """Each case at each concurrency; with the server's ``pid``, also its CPU ms per request (the three
    warm-up requests counted in both the time and the count; the change-log follower's polling is in
    the time too). Noise on a shared machine moves it less than latency."""
    out: dict[str, Any] = {}
    for name, send in cases.items():
        out[name] = {}
        for concurrency, count in n.items():
            cpu0 = server_cpu_seconds(pid) if pid else None
            row = asyncio.run(load(base_url, send, concurrency, count, max_s))
            cpu1 = server_cpu_seconds(pid) if pid else None
            if cpu0 is not None and cpu1 is not None and row.get("n") and math.isfinite(cpu1 - cpu0):
                row["server_cpu_ms_per_request"] = round((cpu1 - cpu0) / (row["n"] + 3) * 1000, 2)
            log.info("%s c=%d %s", name, concurrency, row)
            out[name][f"c{concurrency}"] = row
    return out


def start_reference(port: int, n_vectors: int, threads: int = 0) -> subprocess.Popen:
    cmd = [sys.executable, str(Path(__file__).with_name("reference_server.py")), "--port", str(port),
           "--n-vectors", str(n_vectors), "--threads", str(threads)]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    return subprocess.Popen(cmd, cwd=benchlib.REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def serve_and_measure(proc: subprocess.Popen, port: int,
                      cases: Callable[[dict[str, Any]], dict[str, Request]], n: dict[int, int],
                      max_s: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """Wait for ``proc`` to be healthy, drive the cases its health allows, always stop it."""
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            health = wait_healthy(client, proc, timeout=300)
        return health, run_phases(base, cases(health), n, max_s, proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def measure_ours(art: Path, photos: list[bytes], queries: list[str], n: dict[int, int], max_s: float,
                 quantized: bool, workers: int = 1) -> tuple[dict[str, Any], dict[str, Any]]:
    """Our server over ``art`` (fp32 or int8 vision graph, ``workers`` processes): image and, when
    available, text search."""
    port = free_port()
    proc = start_server(art, port, {"LISTING_SEARCH_SERVE__QUANTIZED": "true" if quantized else "false",
                                    "LISTING_SEARCH_SERVE__WORKERS": str(workers)})

    def cases(health: dict[str, Any]) -> dict[str, Request]:
        out = {
            "image_search": image_request("/v1/search", photos, {"k": "10"}),
            "similar_images": image_request("/predict/similar_images", photos),
        }
        if health.get("text") and queries:
            out["text_search"] = text_request(queries)
            out["image_text_search"] = photo_and_words_request(photos, queries)
        return out

    return serve_and_measure(proc, port, cases, n, max_s)


def _ratio(ours: dict[str, Any], reference: dict[str, Any]) -> float | None:
    """Our similar_images throughput at concurrency 8 over the reference's."""
    ref = reference["similar_images"]["c8"]["req_per_s"]
    return round(ours["similar_images"]["c8"]["req_per_s"] / ref, 1) if ref else None


def text_queries(artifacts: Path, count: int, seed: int) -> list[str]:
    listings = pd.read_csv(artifacts / "listings.csv", usecols=["title"]).dropna()
    return listings["title"].sample(n=min(count, len(listings)), random_state=seed).str.slice(0, 60).tolist()


def goals(ours: dict[str, Any], ratio: float | None) -> dict[str, Any]:
    """The speed issue's goals: photo search (the original ``/predict/similar_images``) p50 <= 10 ms at one
    client, >= 10x the reference's requests/s at 8 clients, photo + words ``/v1/search`` p50 <= 20 ms."""
    sim, both = ours.get("similar_images", {}), ours.get("image_text_search", {})

    def get(d: dict[str, Any], c: str, key: str) -> float | None:
        return d.get(c, {}).get(key)

    checks = {
        "similar_images_p50_ms_c1<=10": get(sim, "c1", "p50_ms"),
        "throughput_vs_reference_c8>=10": ratio,
        "image_text_search_p50_ms_c1<=20": get(both, "c1", "p50_ms"),
    }
    limits = {"similar_images_p50_ms_c1<=10": (10, "le"), "throughput_vs_reference_c8>=10": (10, "ge"),
              "image_text_search_p50_ms_c1<=20": (20, "le")}
    return {name: {"value": value, "met": None if value is None else
                   (value <= limits[name][0] if limits[name][1] == "le" else value >= limits[name][0])}
            for name, value in checks.items()}


def run(args: argparse.Namespace) -> dict[str, Any]:
    state = benchlib.machine_state()
    art, source = standin.serving_artifacts(args.artifacts, args.work, args.catalogue_limit)
    photos = [p.read_bytes() for p in benchlib.real_photos(args.data, args.photos, args.seed)]
    queries = text_queries(art, 200, args.seed)
    n = {1: args.n, 8: args.n * 2}

    by_workers = {w: measure_ours(art, photos, queries, n, args.max_s, quantized=False, workers=w)
                  for w in args.workers}
    health, ours = by_workers[args.workers[0]]
    ours_int8 = None
    card = art / S.MODEL_CARD
    int8_already = card.is_file() and bool(json.loads(card.read_text()).get("backbone_int8"))
    if args.quantized and not int8_already:  # a model trained on the int8 backbone serves int8 anyway
        _, ours_int8 = measure_ours(art, photos, [], n, args.max_s, quantized=True)

    catalogue = int(health.get("index") or health.get("images") or 11_000) if isinstance(health, dict) else 11_000
    ref_n = {1: args.reference_n, 8: args.reference_n * 2}
    references = {}
    for threads in (0, 1):  # torch's default threads (the original), and one thread per request
        ref_port = free_port()
        _, references[threads] = serve_and_measure(
            start_reference(ref_port, catalogue, threads), ref_port,
            lambda _health: {"similar_images": image_request("/predict/similar_images", photos)}, ref_n, args.max_s)
    # The ratio is taken against the faster reference configuration at each concurrency.
    reference = {"similar_images": {c: max((references[t]["similar_images"][c] for t in references),
                                           key=lambda row: row["req_per_s"] or 0) for c in ("c1", "c8")}}
    ratios = {}
    for c in ("c1", "c8"):
        ours_rps = ours["similar_images"][c]["req_per_s"]
        ref_rps = reference["similar_images"][c]["req_per_s"]
        ratios[c] = {
            "similar_images_throughput_x": round(ours_rps / ref_rps, 1) if ref_rps else None,
            "image_search_throughput_x": round(ours["image_search"][c]["req_per_s"] / ref_rps, 1) if ref_rps else None,
            "similar_images_p50_x": round(reference["similar_images"][c]["p50_ms"]
                                          / ours["similar_images"][c]["p50_ms"], 1),
        }
    return {
        "bench": "serve",
        "command": f"python bench/bench_serve.py --n {args.n} --max-s {args.max_s} "
                   f"--workers {' '.join(map(str, args.workers))}",
        "artifacts": source, "server_health": health, "catalogue_vectors": catalogue,
        "photos": len(photos), "photo_bytes_mean": round(sum(map(len, photos)) / len(photos)),
        "ours": ours, "ours_int8_vision": ours_int8, "reference": reference,
        "reference_torch_default_threads": references[0], "reference_torch_1_thread": references[1], "reference_server": "bench/reference_server.py "
        "(torchvision resnet50 random init per request + exact IndexFlatL2, 1000-d)",
        "ratios_vs_reference": ratios,
        "goals": goals(ours, ratios["c8"]["similar_images_throughput_x"]),
        "goals_int8_vision": goals(ours_int8, _ratio(ours_int8, reference)) if ours_int8 else None,
        "server_workers": args.workers[0],
        "by_workers": {str(w): {"ours": o, "goals": goals(o, _ratio(o, reference))}
                       for w, (_, o) in by_workers.items()} if len(by_workers) > 1 else None,
        "note": "client, our server and the reference share the same cores; one server runs at a time",
        "machine_start": state,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = benchlib.parser(__doc__)
    p.add_argument("--work", type=Path, default=Path("/tmp/listing_search_bench_serve"),
                   help="stand-in serving folder when ART cannot be served yet")
    p.add_argument("--catalogue-limit", type=int, default=None, help="stand-in: embed only this many photos")
    p.add_argument("--n", type=int, default=200, help="requests per endpoint at concurrency 1 (x2 at 8)")
    p.add_argument("--reference-n", type=int, default=30, help="same for the (slow) reference server")
    p.add_argument("--max-s", type=float, default=60.0, help="no new request after this long per phase")
    p.add_argument("--photos", type=int, default=100, help="distinct real photos uploaded in turn")
    p.add_argument("--quantized", action=argparse.BooleanOptionalAction, default=True,
                   help="also measure our server with serve.quantized (int8 vision graph)")
    p.add_argument("--workers", type=int, nargs="+", default=[1],
                   help="server processes (serve.workers); several: each measured, the first is 'ours'")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    benchlib.main(run, parse_args(argv))


if __name__ == "__main__":
    main()
