"""Claims: the one search path over a catalogue in memory is no slower.

1. **Against a base commit** (default eca91ab, before the path was rebuilt): photo, words and
   price-sorted words ``/v1/search`` p50 at one client, and photo requests/s at 8 clients, each within
   5% of the base's; medians of ``--rounds`` rounds, the two servers interleaved round by round so
   machine noise hits both alike (an even count, so each side starts a round as often: an odd one is
   rounded up). The base serves its own artifacts folder (``--base-artifacts``: a
   store of its schema), HEAD serves ``--artifacts``, both built from the same catalogue.
2. **PostgreSQL against SQLite** (HEAD, ``--postgres``): photo, words and filtered words p50 with
   the catalogue in a throwaway PostgreSQL within 10% of the same over SQLite, side by side.

Servers are real ``listing-search serve`` processes on 127.0.0.1; queries are never-seen listings'
titles and photos of ``--data`` (a holdout test folder).

    python bench/bench_search_path.py --data HELDOUT/test --artifacts ART --base-artifacts BASE_ART \\
        [--base-commit eca91ab] [--rounds 6] [--n 120] [--postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402
from bench_serve import image_request, load, text_request  # noqa: E402
from bench_serve_latency import free_port, start_server, wait_healthy  # noqa: E402

COMMIT_GOAL, BACKEND_GOAL = 1.05, 1.10


def titles(data: Path, n: int) -> list[str]:
    products = pd.read_csv(data / "Products.csv", lineterminator="\n", dtype=str)
    names = [t.split("|")[0].strip() for t in products["product_name"].dropna()]
    return names[:n]


def photos(data: Path, n: int) -> list[bytes]:
    return [p.read_bytes() for p in benchlib.real_photos(data, n)]


def cases(photo: list[bytes], words: list[str]) -> dict[str, Any]:
    def sorted_words(client: httpx.AsyncClient, i: int):
        return client.post("/v1/search", data={"text": words[i % len(words)], "k": "10", "sort": "price_asc"})

    def filtered_words(client: httpx.AsyncClient, i: int):
        return client.post("/v1/search", data={"text": words[i % len(words)], "k": "10",
                                               "category": "Home & Garden", "price_max": "200"})

    return {"photo": image_request("/v1/search", photo, {"k": "10"}), "words": text_request(words),
            "price_sorted_words": sorted_words, "filtered_words": filtered_words}


@contextmanager
def served(artifacts: Path, env: dict[str, str]):
    port = free_port()
    proc = start_server(artifacts, port, env)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            wait_healthy(client, proc, timeout=600)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def measure(base: str, requests: dict[str, Any], names: list[str], n: int, eight: bool) -> dict[str, float]:
    out = {}
    for name in names:
        out[f"{name}_p50_ms"] = asyncio.run(load(base, requests[name], 1, n, 120))["p50_ms"]
    if eight:
        out["photo_c8_req_per_s"] = asyncio.run(load(base, requests["photo"], 8, 2 * n, 120))["req_per_s"]
    return out


def medians(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.median(r[k] for r in rounds), 3) for k in rounds[0]}


@contextmanager
def worktree(commit: str):
    folder = Path(tempfile.mkdtemp(prefix="bench-base-"))
    subprocess.run(["git", "worktree", "add", "--detach", "-f", str(folder), commit], cwd=benchlib.REPO,
                   check=True, capture_output=True)
    try:
        yield folder
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(folder)], cwd=benchlib.REPO, capture_output=True)


def against_base(args, requests: dict[str, Any]) -> dict[str, Any]:
    names = ["photo", "words", "price_sorted_words"]
    rounds: dict[str, list] = {"base": [], "head": []}
    args.rounds += args.rounds % 2  # each side first in half the rounds
    with worktree(args.base_commit) as base_tree:
        setups = {"base": (args.base_artifacts, {"PYTHONPATH": str(base_tree / "src")}),
                  "head": (args.artifacts, {"PYTHONPATH": str(benchlib.REPO / "src")})}
        for r in range(args.rounds):
            for side in (("base", "head") if r % 2 == 0 else ("head", "base")):
                art, env = setups[side]
                with served(art, env) as base:
                    rounds[side].append(measure(base, requests, names, args.n, eight=True))
                benchlib.log.info("round %d %s %s", r, side, rounds[side][-1])
    base, head = medians(rounds["base"]), medians(rounds["head"])
    ratios = {k: round(head[k] / base[k], 3) for k in base if k.endswith("_ms")}
    ratios["photo_c8_req_per_s"] = round(base["photo_c8_req_per_s"] / head["photo_c8_req_per_s"], 3)
    return {"base_commit": args.base_commit, "rounds": args.rounds, "base": base, "head": head,
            "head_over_base (throughput: base over head)": ratios,
            "met": all(v <= COMMIT_GOAL for v in ratios.values())}


def against_sqlite(args, requests: dict[str, Any]) -> dict[str, Any]:
    sys.path.insert(0, str(benchlib.REPO))
    from tests.realparts import PostgresServer

    names = ["photo", "words", "filtered_words"]
    server = PostgresServer()
    copy = Path(tempfile.mkdtemp(prefix="bench-pg-")) / "art"
    try:
        server.start()
        shutil.copytree(args.artifacts, copy, ignore=shutil.ignore_patterns("store.sqlite*", "snapshots"))
        pg = {"LISTING_SEARCH_STORE__URL": f"{server.url}/postgres"}
        subprocess.run([sys.executable, "-m", "listing_search.cli", "index", "--artifacts", str(copy)],
                       env={**os.environ, **pg}, check=True, capture_output=True)
        rounds: dict[str, list] = {"sqlite": [], "postgresql": []}
        for r in range(args.rounds):
            for side in (("sqlite", "postgresql") if r % 2 == 0 else ("postgresql", "sqlite")):
                art, env = (args.artifacts, {}) if side == "sqlite" else (copy, pg)
                with served(art, env) as base:
                    rounds[side].append(measure(base, requests, names, args.n, eight=False))
        sqlite, postgres = medians(rounds["sqlite"]), medians(rounds["postgresql"])
        ratios = {k: round(postgres[k] / sqlite[k], 3) for k in sqlite}
        return {"rounds": args.rounds, "sqlite": sqlite, "postgresql": postgres, "postgresql_over_sqlite": ratios,
                "met": all(v <= BACKEND_GOAL for v in ratios.values())}
    finally:
        server.remove()
        shutil.rmtree(copy.parent, ignore_errors=True)


def run(args) -> dict[str, Any]:
    before = benchlib.machine_state()
    requests = cases(photos(args.data, 60), titles(args.data, 60))
    out: dict[str, Any] = {"claim": "the in-memory search path is no slower: within 5% of the base commit; "
                                    "PostgreSQL within 10% of SQLite", "machine_before": before}
    if args.base_artifacts is not None:
        out["against_base"] = against_base(args, requests)
    if args.postgres:
        out["postgresql_against_sqlite"] = against_sqlite(args, requests)
    return out


if __name__ == "__main__":
    p = benchlib.parser(__doc__)
    p.add_argument("--base-artifacts", type=Path, default=None, help="what the base commit serves (its schema)")
    p.add_argument("--base-commit", default="eca91ab")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--n", type=int, default=120, help="requests per measurement")
    p.add_argument("--postgres", action="store_true", help="also compare PostgreSQL with SQLite (starts one)")
    benchlib.main(run, p.parse_args())
