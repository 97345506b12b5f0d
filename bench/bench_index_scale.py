"""Claim: at 100k, 300k and 1M x 1000-d the selector's pick meets recall@10 >= 0.95, <= 2 ms p50 per
unfiltered query (one thread), <= 1.5 GB per million vectors, also after live changes; filtered
search at 1% and 10% selectivity keeps recall@10 >= 0.95 with p50 <= 10 ms.

Everything goes through the product's path: ``VectorIndex.build`` (the selector, training, tuning
and its own held-out measurement), ``VectorIndex.search`` (filters included), ``add`` / ``remove``.
The catalogue comes from vectors.py (around the real embeddings when ART/image_embeddings.npy
exists, else a seeded Gaussian mixture); queries are more vectors of the same distribution, never in
the index. 3M is not built: the selector's pick, its predicted latency and estimated bytes come
from the cost model, build time is 3x the 1M one; the row says "extrapolated".

    python bench/bench_index_scale.py [--sizes 100000 300000 1000000] [--queries 300]
    python bench/bench_index_scale.py --calibrate [--n 200000]   # the cost model's constants
    python bench/bench_index_scale.py --render results.jsonl      # the markdown table
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

import benchlib
import vectors
from listing_search.index import select
from listing_search.index.select import HNSW, IVF_SQ8, choose_index
from listing_search.index.tune import one_thread, time_singles
from listing_search.index.vector_index import VectorIndex

log = logging.getLogger("bench.index_scale")
K = 10
GB_PER_MILLION = 1.5


def load_real(artifacts: Path) -> np.ndarray | None:
    path = artifacts / "image_embeddings.npy"
    return np.load(path, mmap_mode="r").astype(np.float32) if path.exists() else None


def budget_mb(n: int) -> int:
    """1.5 GB per million vectors, and never less than the 1536 MB default."""
    return int(1536 * max(1.0, n / 1e6))


def recall(found: list[np.ndarray], truth: np.ndarray) -> float:
    return float(np.mean([len(set(f[:K].tolist()) & set(t.tolist())) / K for f, t in zip(found, truth)]))


# --- one size --------------------------------------------------------------------------------------


def measure_size(n: int, args: argparse.Namespace, real: np.ndarray | None) -> dict[str, Any]:
    t0 = time.perf_counter()
    allx, source = vectors.catalogue(n + args.queries + args.adds, args.dim, args.seed + n, real)
    xb, xq, xa = allx[:n], np.ascontiguousarray(allx[n:n + args.queries]), allx[n + args.queries:]
    ids = np.arange(n, dtype=np.int64)
    log.info("n=%d: catalogue of %s in %.1fs", n, source, time.perf_counter() - t0)
    truth = faiss.knn(xq, xb, K, metric=faiss.METRIC_INNER_PRODUCT)[1]
    state = benchlib.machine_state()
    rss0, t0 = benchlib.rss_bytes(), time.perf_counter()
    index = VectorIndex.build(xb, ids, memory_budget_mb=budget_mb(n), latency_budget_ms=args.latency_ms,
                              recall_sample=args.recall_sample, seed=args.seed)
    build_s = time.perf_counter() - t0
    rss = benchlib.rss_bytes() - rss0
    row: dict[str, Any] = {
        "n": n, "distribution": source, "pick": index.infos["factory"], "reason": index.infos["choice"]["reason"],
        "predicted_ms": index.infos["choice"]["predicted_ms"], "search_params": index.infos["search_params"],
        "build_s": round(build_s, 1), "index_bytes": index.infos["budget"]["index_bytes"],
        "index_gb": round(index.infos["budget"]["index_bytes"] / 1e9, 3), "rss_delta_gb": round(rss / 1e9, 3),
        "memory_budget_mb": budget_mb(n), "build_measured": index.infos["measured"],
        "build_budget_verdict": index.infos["budget"], "machine_start": state,
    }
    row.update(unfiltered(index, xq, truth, args))
    row["filtered"] = filtered(index, xb, xq, args)
    row["live"] = live_changes(index, xb, xa, xq, args)
    row["machine_end"] = benchlib.machine_state()
    row["meets_goal"] = meets(row, args)
    log.info("n=%d: %s", n, {k: v for k, v in row.items() if k not in ("search_params", "build_budget_verdict")})
    del index, allx, xb
    gc.collect()
    return row


def unfiltered(index: VectorIndex, xq: np.ndarray, truth: np.ndarray, args: argparse.Namespace) -> dict[str, Any]:
    rec = recall(index.search(xq, K).ids, truth)
    t = time_singles(lambda q: index.search(q, K), xq[: args.timed])
    return {"recall_at_10": round(rec, 4), **t}


def filtered(index: VectorIndex, xb: np.ndarray, xq: np.ndarray, args: argparse.Namespace) -> dict[str, Any]:
    """Random allowed ids at each selectivity against exact search over exactly those ids."""
    rng = np.random.default_rng(args.seed + 7)
    out = {}
    switch = int(index.infos["search_params"].get("subset_exact_max", 0))
    for share in (0.01, 0.1):
        allowed = np.sort(rng.choice(len(xb), size=int(share * len(xb)), replace=False)).astype(np.int64)
        truth = allowed[faiss.knn(xq, np.ascontiguousarray(xb[allowed]), K, metric=faiss.METRIC_INNER_PRODUCT)[1]]
        rec = recall(index.search(xq, K, allowed).ids, truth)
        t = time_singles(lambda q: index.search(q, K, allowed), xq[: args.timed // 2])
        out[str(share)] = {"allowed": len(allowed), "path": "exact scan" if len(allowed) <= switch else "index",
                           "recall_at_10": round(rec, 4), **t}
    return out


def live_changes(index: VectorIndex, xb: np.ndarray, xa: np.ndarray, xq: np.ndarray,
                 args: argparse.Namespace) -> dict[str, Any]:
    """1,000 adds and 1,000 deletes one at a time (as the log follower applies single listings)."""
    n = len(xb)
    new_ids = np.arange(n, n + len(xa), dtype=np.int64)
    gone = np.random.default_rng(args.seed + 3).choice(n, size=args.adds, replace=False).astype(np.int64)
    with one_thread():
        t0 = time.perf_counter()
        for i in range(len(xa)):
            index.add(xa[i:i + 1], new_ids[i:i + 1], persist=False)
        add_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in gone:
            index.remove(np.array([i]), persist=False)
        remove_s = time.perf_counter() - t0
    # Exact truth over (catalogue - gone) + added: enough extra neighbours to drop the removed ones.
    s_b, i_b = faiss.knn(xq, xb, K + len(gone), metric=faiss.METRIC_INNER_PRODUCT)
    s_b[np.isin(i_b, gone)] = -np.inf
    s_a, i_a = faiss.knn(xq, np.ascontiguousarray(xa), K, metric=faiss.METRIC_INNER_PRODUCT)
    s, i = np.concatenate([s_b, s_a], 1), np.concatenate([i_b, new_ids[i_a]], 1)
    truth = np.take_along_axis(i, np.argsort(-s, axis=1)[:, :K], 1)
    after = unfiltered(index, xq, truth, args)
    return {"adds": len(xa), "add_s": round(add_s, 3), "add_ms_each": round(add_s * 1000 / len(xa), 3),
            "removes": len(gone), "remove_s": round(remove_s, 3), "tombstones": len(index.tombstones),
            "after": after}


def meets(row: dict[str, Any], args: argparse.Namespace) -> dict[str, bool]:
    gb_budget = GB_PER_MILLION * max(1.0, row["n"] / 1e6) * 1.024**3  # budget_mb in GB (1e9 bytes)
    return {
        "unfiltered": row["recall_at_10"] >= 0.95 and row["p50_ms"] <= args.latency_ms and row["index_gb"] <= gb_budget,
        "after_live_changes": row["live"]["after"]["recall_at_10"] >= 0.95
        and row["live"]["after"]["p50_ms"] <= args.latency_ms,
        "filtered": all(f["recall_at_10"] >= 0.95 and f["p50_ms"] <= 10.0 for f in row["filtered"].values()),
    }


def extrapolated(n: int, rows: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """The selector's pick at ``n`` from the cost model; build and add costs scaled from the largest run."""
    choice = choose_index(n, args.dim, budget_mb(n), args.latency_ms)
    big = max(rows, key=lambda r: r["n"])
    return {"n": n, "extrapolated": True, "pick": choice.factory, "reason": choice.reason,
            "predicted_ms": choice.predicted_ms, "estimated_gb": round(choice.estimated_bytes / 1e9, 3),
            "memory_budget_mb": budget_mb(n), "build_s": round(big["build_s"] * n / big["n"], 0),
            "add_ms_each": big["live"]["add_ms_each"],
            "note": f"not built: cost-model prediction; build time scaled linearly from {big['n']:,}"}


def run_sizes(args: argparse.Namespace) -> dict[str, Any]:
    faiss.omp_set_num_threads(args.threads)
    real = load_real(args.artifacts)
    start = benchlib.machine_state()
    rows = [measure_size(n, args, real) for n in args.sizes]
    extra = [extrapolated(n, rows, args) for n in args.extrapolate]
    source = f" --artifacts {args.artifacts}" if real is not None else ""
    return {"bench": "index_scale", "command": "python bench/bench_index_scale.py --sizes "
            + " ".join(map(str, args.sizes)) + f" --queries {args.queries}{source}", "dim": args.dim, "k": K,
            "latency_budget_ms": args.latency_ms, "threads_build": args.threads, "cost_model": select.CALIBRATED.to_json(),
            "results": rows, "extrapolated": extra, "machine_start": start}


# --- calibration -----------------------------------------------------------------------------------


def calibrate(args: argparse.Namespace) -> dict[str, Any]:
    """The cost model's constants, measured through the product's build and search."""
    faiss.omp_set_num_threads(args.threads)
    state = benchlib.machine_state()
    n, d = args.n, args.dim
    x, source = vectors.catalogue(n + 200, d, args.seed, load_real(args.artifacts))
    xb, xq = x[:n], np.ascontiguousarray(x[n:])
    flat = faiss.IndexFlatIP(d)
    nf = min(n, 100_000)
    flat.add(xb[:nf])
    flat_ms = time_singles(lambda q: flat.search(q, K), xq[:30])["p50_ms"]
    del flat
    select.CALIBRATED = dataclasses.replace(select.CALIBRATED, filtered_index_ms=0.0)  # tune the index path too
    quarter = VectorIndex.build(xb[: n // 4], np.arange(n // 4), kind=IVF_SQ8, latency_budget_ms=args.latency_ms,
                                seed=args.seed)
    nprobe_quarter = int(quarter.infos["search_params"]["nprobe"])
    del quarter
    ivf = VectorIndex.build(xb, np.arange(n), kind=IVF_SQ8, latency_budget_ms=args.latency_ms, seed=args.seed)
    nprobe = int(ivf.infos["search_params"]["nprobe"])
    growth = max(0.0, math.log(nprobe / nprobe_quarter) / math.log(4))  # never predicts fewer lists for more data
    nlist = ivf.infos["choice"]["nlist"]
    probes = [p for p in (1, 4, 16, 64) if p <= nlist]
    times = []
    for p in probes:
        ivf.set_search_params({**ivf.infos["search_params"], "nprobe": p})
        times.append(time_singles(lambda q: ivf.search(q, K), xq[:100])["p50_ms"])
    slope, fixed = np.polyfit(probes, times, 1)
    ivf.set_search_params({**ivf.infos["search_params"], "nprobe": nprobe, "subset_exact_max": 10**9})
    subset = {}
    for a in (500, 2000, 8000):
        allowed = np.arange(0, n, n // a, dtype=np.int64)[:a]
        subset[a] = time_singles(lambda q: ivf.search(q, K, allowed), xq[:50])["p50_ms"]
    sub_slope = np.polyfit(list(subset), list(subset.values()), 1)[0]
    filtered_ms = ivf.infos["filtered"]["0.01"]["p50_ms"]
    ivf_infos = {k: ivf.infos[k] for k in ("factory", "measured", "filtered", "search_params")}
    del ivf
    gc.collect()
    nh = min(n, args.hnsw_n)
    hnsw = VectorIndex.build(xb[:nh], np.arange(nh), kind=HNSW, seed=args.seed)
    ef = int(hnsw.infos["search_params"]["efSearch"])
    hnsw_ms = time_singles(lambda q: hnsw.search(q, K), xq[:100])["p50_ms"]
    constants = {
        "flat_ns": round(flat_ms * 1e6 / (nf * d), 4),
        "ivf_fixed_ns_per_dim": round(max(fixed, 0.0) * 1e6 / d, 2),
        "ivf_ns_per_code_byte": round(slope * 1e6 / ((n / nlist) * d), 4),
        "ivf_nprobe": nprobe,
        "ivf_nprobe_n": n,
        "ivf_nprobe_growth": round(growth, 3),
        "hnsw_ns": round(hnsw_ms * 1e6 / (d * ef * math.log2(nh)), 4),
        "hnsw_ef": ef,
        "subset_ns": round(sub_slope * 1e6 / d, 3),
        "filtered_index_ms": filtered_ms,
    }
    return {"bench": "index_calibration", "command": f"python bench/bench_index_scale.py --calibrate --n {n}",
            "n": n, "dim": d, "distribution": source, "constants": constants,
            "raw": {"flat_p50_ms_on_n": [flat_ms, nf], "ivf_nprobe_p50_ms": dict(zip(probes, times)),
                    "ivf_tuned_nprobe": {n // 4: nprobe_quarter, n: nprobe},
                    "subset_p50_ms": subset, "hnsw": [hnsw_ms, ef, nh], "ivf": ivf_infos},
            "machine_start": state}


# --- report ----------------------------------------------------------------------------------------


def render(path: Path) -> str:
    """Markdown for docs/performance.md from the bench's JSON line(s)."""
    out = []
    for line in path.read_text().splitlines():
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        if r.get("bench") != "index_scale":
            continue
        out += [f"`{r['command']}`, budget {r['latency_budget_ms']} ms p50 (one thread), "
                f"{GB_PER_MILLION} GB per million vectors; {r['results'][0]['distribution']}.", "",
                "| n | pick | build s | index GB | recall@10 | p50 / p99 ms (CPU p50) | after 1,000 adds + 1,000 deletes: "
                "recall, p50 ms | 1,000 adds s (ms each) | filtered 1%: path, recall, p50 / p99 ms | "
                "filtered 10% | goals | load1 start / end |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for x in r["results"]:
            lv, f1, f10 = x["live"], x["filtered"]["0.01"], x["filtered"]["0.1"]
            goals = ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in x["meets_goal"].items())
            out.append(
                f"| {x['n']:,} | `{x['pick']}` ({_knob(x)}; predicted {x['predicted_ms']:.2f} ms) | {x['build_s']:.0f} | {x['index_gb']:.2f} | "
                f"{x['recall_at_10']:.3f} | {x['p50_ms']:.2f} / {x['p99_ms']:.2f} ({_cpu(x)}) | "
                f"{lv['after']['recall_at_10']:.3f}, {lv['after']['p50_ms']:.2f} ({_cpu(lv['after'])}) | {lv['add_s']:.2f} "
                f"({lv['add_ms_each']:.2f}) | {_f(f1)} | {_f(f10)} | {goals} | "
                f"{x['machine_start']['load1']} / {x['machine_end']['load1']} |")
        for e in r.get("extrapolated", []):
            out.append(f"| {e['n']:,} (**extrapolated**) | `{e['pick']}` (predicted {e['predicted_ms']:.2f} ms) | "
                       f"~{e['build_s']:.0f} | ~{e['estimated_gb']:.2f} (estimate) | - | - | - | "
                       f"~{e['add_ms_each'] * 1000 / 1000:.2f} s | - | - | not judged | - |")
    return "\n".join(out) + "\n"


def _cpu(t: dict[str, Any]) -> str:
    return f"CPU {t['cpu_p50_ms']:.2f}" if "cpu_p50_ms" in t else "CPU -"


def _knob(x: dict[str, Any]) -> str:
    sp = x["search_params"]
    return ", ".join(f"{k} {sp[k]}" for k in ("nprobe", "efSearch") if k in sp) or "exact"


def _f(f: dict[str, Any]) -> str:
    return f"{f['path']}, {f['recall_at_10']:.3f}, {f['p50_ms']:.2f} / {f['p99_ms']:.2f}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = benchlib.parser(__doc__)
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    p.add_argument("--extrapolate", type=int, nargs="*", default=[3_000_000])
    p.add_argument("--dim", type=int, default=1000)
    p.add_argument("--queries", type=int, default=300, help="held-out queries for recall (exact truth)")
    p.add_argument("--timed", type=int, default=200, help="single queries timed (half of them filtered)")
    p.add_argument("--adds", type=int, default=1000, help="live adds, and as many deletes")
    p.add_argument("--recall-sample", type=int, default=200, help="the build's own held-out sample")
    p.add_argument("--latency-ms", type=float, default=2.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="faiss threads for building and batched search")
    p.add_argument("--calibrate", action="store_true", help="measure the cost model's constants instead")
    p.add_argument("--n", type=int, default=200_000, help="catalogue size for --calibrate")
    p.add_argument("--hnsw-n", type=int, default=30_000, help="HNSW calibration size (graph builds are slow)")
    p.add_argument("--render", type=Path, help="print the markdown table of a results file and exit")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.render:
        print(render(args.render), end="")  # noqa: T201 - a bench's report goes to stdout
        return
    benchlib.main(calibrate if args.calibrate else run_sizes, args)


if __name__ == "__main__":
    main()
