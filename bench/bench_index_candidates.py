"""Candidate structures at one size: which FAISS index could meet recall@10 >= 0.95, <= 2 ms, <= 1.5 GB.

(The selector's own pick, through the product's build path, at 100k/300k/1M: bench_index_scale.py.)

Builds each candidate index over the same synthetic catalogue (see vectors.py: sampled around the
real embeddings when ART/image_embeddings.npy exists, else a seeded Gaussian mixture), sweeps its
search knob from cheap to expensive until recall@10 against exact search reaches the target, and
reports build time, index bytes, RSS growth, recall, and ms/query at batch 1 and batched.

IVF variants share one trained coarse quantizer and one assignment of the catalogue (the dominant
build cost at 1M); each variant's ``build_s`` counts that shared cost in full. HNSW is built on a
sample (``--hnsw-n``) because on 2 cores a 1M x 1000-d graph takes far longer than the whole
bench; its 1M build time and memory are extrapolated and marked so.

    python bench/bench_index_candidates.py --data DIR --artifacts ART [--n 1000000] [--queries 1000]
"""

from __future__ import annotations

import argparse
import gc
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

import benchlib
import vectors

log = logging.getLogger("bench.index")
IP = faiss.METRIC_INNER_PRODUCT
SearchFn = Callable[[np.ndarray, int, dict[str, Any]], np.ndarray]

IVF_SWEEP = [{"nprobe": p} for p in (4, 8, 16, 32, 64, 128, 256)]
REFINE_SWEEP = [
    {"nprobe": p, "k_factor": f}
    for p, f in ((8, 4), (16, 4), (16, 8), (32, 8), (32, 16), (64, 16), (64, 32), (128, 32))
]
HNSW_SWEEP = [{"efSearch": e} for e in (16, 32, 64, 128, 256, 512)]


@dataclass
class Candidate:
    """One built index: how to search it, which knob settings to try, and what it cost."""

    name: str
    description: str
    search: SearchFn
    sweep: list[dict[str, Any]]
    build_s: float
    index_bytes: int
    rss_delta_bytes: int
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def index_bytes(index: faiss.Index) -> int:
    """Bytes of the serialised index: what it costs in memory once loaded."""
    return int(faiss.serialize_index(index).nbytes)


def exact_knn(xq: np.ndarray, xb: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k by inner product (what IndexFlatIP does, without copying ``xb``)."""
    return faiss.knn(xq, xb, k, metric=IP)[1]


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Share of the true top-k found in the returned top-k, averaged over queries."""
    k = truth.shape[1]
    hits = sum(len(set(f[:k].tolist()) & set(t.tolist())) for f, t in zip(found, truth))
    return hits / (k * len(truth))


def faiss_search(index: faiss.Index) -> SearchFn:
    space = faiss.ParameterSpace()

    def search(xq: np.ndarray, k: int, params: dict[str, Any]) -> np.ndarray:
        for key, value in params.items():
            space.set_index_parameter(index, "k_factor_rf" if key == "k_factor" else key, value)
        return index.search(xq, k)[1]

    return search


# --- the catalogue and its coarse quantizer ------------------------------------------------------


def load_real(artifacts: Path) -> np.ndarray | None:
    path = artifacts / "image_embeddings.npy"
    if not path.exists():
        return None
    return np.load(path, mmap_mode="r").astype(np.float32)


def default_nlist(n: int) -> int:
    """About 4 sqrt(n) lists, as a power of two (4096 at 1M)."""
    return max(64, 2 ** round(math.log2(4 * math.sqrt(n))))


def train_sample(x: np.ndarray, size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.ascontiguousarray(x[np.sort(rng.choice(len(x), size=min(size, len(x)), replace=False))])


def train_quantizer(sample: np.ndarray, nlist: int, seed: int) -> faiss.IndexFlatIP:
    """Spherical k-means centroids in an exact inner-product index."""
    d = sample.shape[1]
    km = faiss.Kmeans(d, nlist, niter=8, seed=seed, spherical=True, verbose=False,
                      max_points_per_centroid=256, min_points_per_centroid=1)
    km.train(sample)
    quantizer = faiss.IndexFlatIP(d)
    quantizer.add(km.centroids)
    return quantizer


def assign(quantizer: faiss.Index, x: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    out = np.empty(len(x), dtype=np.int64)
    for start in range(0, len(x), chunk):
        out[start:start + chunk] = quantizer.search(x[start:start + chunk], 1)[1][:, 0]
    return out


def add_chunked(index: faiss.Index, x: np.ndarray, chunk: int = 100_000) -> None:
    for start in range(0, len(x), chunk):
        index.add(np.ascontiguousarray(x[start:start + chunk]))


def add_assigned(ivf: faiss.IndexIVF, x: np.ndarray, labels: np.ndarray, chunk: int = 100_000) -> None:
    """Add with precomputed lists (faiss.contrib's add_preassigned drops its ids array too early)."""
    for start in range(0, len(x), chunk):
        part = np.ascontiguousarray(x[start:start + chunk])
        ids = np.arange(start, start + len(part), dtype=np.int64)
        lists = np.ascontiguousarray(labels[start:start + len(part)], dtype=np.int64)
        ivf.add_core(len(part), faiss.swig_ptr(part), faiss.swig_ptr(ids), faiss.swig_ptr(lists))


@dataclass
class Coarse:
    """A trained coarse quantizer and the list of every catalogue vector, built once, shared."""

    quantizer: faiss.IndexFlatIP
    labels: np.ndarray
    train_s: float
    assign_s: float

    @property
    def build_s(self) -> float:
        return self.train_s + self.assign_s


def build_coarse(x: np.ndarray, nlist: int, train_n: int, seed: int) -> Coarse:
    t0 = time.perf_counter()
    quantizer = train_quantizer(train_sample(x, train_n, seed), nlist, seed)
    t1 = time.perf_counter()
    labels = assign(quantizer, x)
    t2 = time.perf_counter()
    log.info("coarse quantizer d=%d nlist=%d: train %.1fs, assign %.1fs", x.shape[1], nlist, t1 - t0, t2 - t1)
    return Coarse(quantizer, labels, t1 - t0, t2 - t1)


def hnsw_coarse(coarse: Coarse, m: int = 32) -> Coarse:
    """The same centroids (and assignment) behind an HNSW graph, as ``IVF{nlist}_HNSW32`` builds them."""
    t0 = time.perf_counter()
    centroids = coarse.quantizer.reconstruct_n(0, coarse.quantizer.ntotal)
    graph = faiss.IndexHNSWFlat(centroids.shape[1], m, IP)
    graph.hnsw.efSearch = 64
    graph.add(centroids)
    return Coarse(graph, coarse.labels, coarse.train_s, coarse.assign_s + time.perf_counter() - t0)


# --- candidates ----------------------------------------------------------------------------------


def build_ivf(name: str, make: Callable[[faiss.Index], faiss.IndexIVF], x: np.ndarray, coarse: Coarse,
              train: np.ndarray, description: str) -> tuple[Candidate, faiss.IndexIVF]:
    rss0 = benchlib.rss_bytes()
    t0 = time.perf_counter()
    ivf = make(coarse.quantizer)
    ivf.train(train)  # the quantizer is already trained and full: this trains the codes only
    add_assigned(ivf, x, coarse.labels)
    own = time.perf_counter() - t0
    cand = Candidate(name, description, faiss_search(ivf), IVF_SWEEP, coarse.build_s + own,
                     index_bytes(ivf), benchlib.rss_bytes() - rss0)
    cand.extra["own_build_s"] = round(own, 2)
    return cand, ivf


def make_ivfpq(quantizer: faiss.Index, d: int, nlist: int, m: int) -> faiss.IndexIVFPQ:
    """8-bit PQ; 10 k-means iterations per sub-quantizer (the default 25 costs minutes on 2 cores)."""
    ivf = faiss.IndexIVFPQ(quantizer, d, nlist, m, 8, IP)
    ivf.pq.cp.niter = 10
    return ivf


def build_sq8_flat(x: np.ndarray, train: np.ndarray) -> tuple[faiss.IndexScalarQuantizer, float]:
    t0 = time.perf_counter()
    sq = faiss.IndexScalarQuantizer(x.shape[1], faiss.ScalarQuantizer.QT_8bit, IP)
    sq.train(train)
    add_chunked(sq, x)
    return sq, time.perf_counter() - t0


def refined(name: str, base: faiss.Index, base_cand: Candidate, refine: faiss.Index, refine_s: float,
            refine_bytes: int, description: str) -> Candidate:
    """``base`` followed by re-ranking its k_factor * k candidates on ``refine``'s codes."""
    index = faiss.IndexRefine(base, refine)
    cand = Candidate(name, description, faiss_search(index), REFINE_SWEEP, base_cand.build_s + refine_s,
                     base_cand.index_bytes + refine_bytes, base_cand.rss_delta_bytes + refine_bytes)
    cand.extra["_keep"] = index
    return cand


def refined_flat(name: str, base: faiss.Index, base_cand: Candidate, xb: np.ndarray) -> Candidate:
    """IndexRefineFlat's re-ranking on the raw float vectors, using ``xb`` in place (no 4 GB copy)."""
    space = faiss.ParameterSpace()

    def search(xq: np.ndarray, k: int, params: dict[str, Any]) -> np.ndarray:
        space.set_index_parameter(base, "nprobe", params["nprobe"])
        cand = base.search(xq, k * params["k_factor"])[1]
        safe = np.where(cand < 0, 0, cand)
        scores = np.einsum("qkd,qd->qk", xb[safe], xq)
        scores[cand < 0] = -np.inf
        order = np.argsort(-scores, axis=1)[:, :k]
        return np.take_along_axis(cand, order, axis=1)

    flat_bytes = xb.shape[0] * xb.shape[1] * 4
    return Candidate(name, description=f"{base_cand.description} + RefineFlat (float32 vectors)",
                     search=search, sweep=REFINE_SWEEP, build_s=base_cand.build_s,
                     index_bytes=base_cand.index_bytes + flat_bytes,
                     rss_delta_bytes=base_cand.rss_delta_bytes + flat_bytes,
                     notes=["re-ranks on the catalogue array itself, as IndexRefineFlat would on its copy"])


def build_pca_ivf(x: np.ndarray, dim: int, nlist: int, train_n: int, seed: int) -> tuple[Candidate, faiss.Index]:
    """PCA to ``dim``, then IVF-SQ8 in the reduced space (its own coarse quantizer)."""
    rss0 = benchlib.rss_bytes()
    t0 = time.perf_counter()
    pca = faiss.PCAMatrix(x.shape[1], dim)
    pca.train(train_sample(x, min(train_n, 100_000), seed))
    reduced = np.empty((len(x), dim), dtype=np.float32)
    for start in range(0, len(x), 100_000):
        reduced[start:start + 100_000] = pca.apply(np.ascontiguousarray(x[start:start + 100_000]))
    coarse = build_coarse(reduced, nlist, train_n, seed)
    ivf = faiss.IndexIVFScalarQuantizer(coarse.quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, IP)
    ivf.train(train_sample(reduced, train_n, seed))
    add_assigned(ivf, reduced, coarse.labels)
    del reduced
    index = faiss.IndexPreTransform(pca, ivf)
    build_s = time.perf_counter() - t0
    cand = Candidate("pca_ivf_sq8", f"PCA{dim},IVF{nlist},SQ8", faiss_search(index), IVF_SWEEP, build_s,
                     index_bytes(index), benchlib.rss_bytes() - rss0)
    cand.extra["_keep"] = (pca, ivf, coarse.quantizer)
    return cand, index


def build_hnsw(x: np.ndarray, xq: np.ndarray, k: int, sample_n: int, m: int, n_full: int,
               seed: int) -> tuple[Candidate, np.ndarray, np.ndarray]:
    """HNSW(M) on a sample; returns the candidate and the sample's exact top-k for its own recall."""
    sample = train_sample(x, sample_n, seed)
    rss0 = benchlib.rss_bytes()
    index = faiss.IndexHNSWFlat(x.shape[1], m, IP)
    index.hnsw.efConstruction = 40
    t0 = time.perf_counter()
    add_chunked(index, sample, chunk=10_000)
    build_s = time.perf_counter() - t0
    nbytes = index_bytes(index)
    cand = Candidate(f"hnsw{m}", f"HNSW{m},Flat (efConstruction 40)", faiss_search(index), HNSW_SWEEP,
                     build_s, nbytes, benchlib.rss_bytes() - rss0)
    cand.extra["_keep"] = index
    if len(sample) < n_full:
        scale = n_full / len(sample)
        cand.extra.update({
            "measured_on_n": len(sample),
            "build_s_measured": round(build_s, 2),
            "index_bytes_measured": nbytes,
            "extrapolated_to_n": n_full,
        })
        cand.build_s = build_s * scale * math.log(n_full) / math.log(len(sample))
        cand.index_bytes = int(nbytes * scale)
        cand.rss_delta_bytes = int(cand.rss_delta_bytes * scale)
        cand.notes.append(f"built on {len(sample):,} vectors; build_s and bytes extrapolated to {n_full:,} "
                          "(n log n for time, linear for memory); recall and speed are the sample's, "
                          "and recall at a given efSearch drops as n grows")
    truth = exact_knn(xq, sample, k)
    return cand, sample, truth


# --- evaluation ----------------------------------------------------------------------------------


def evaluate(cand: Candidate, xq: np.ndarray, truth: np.ndarray, k: int, target: float,
             sweep_queries: int, batch1_queries: int, threads: int, batch1_threads: int) -> dict[str, Any]:
    """Sweep the knob until recall reaches ``target``, then time that setting.

    Single queries run on ``batch1_threads`` (1: a server answers one request per core; OpenMP
    teams on a busy 2-core machine spend more time waking threads than searching).
    """
    sq, st = xq[:sweep_queries], truth[:sweep_queries]
    tried = []
    chosen = cand.sweep[-1]
    for params in cand.sweep:
        t0 = time.perf_counter()
        rec = recall_at_k(cand.search(sq, k, params), st)
        tried.append({**params, "recall": round(rec, 4), "batched_ms_per_query":
                      round((time.perf_counter() - t0) * 1000 / len(sq), 3)})
        log.info("%s %s recall@%d=%.4f", cand.name, params, k, rec)
        if rec >= target:
            chosen = params
            break
    t0 = time.perf_counter()
    found = cand.search(xq, k, chosen)
    batched_ms = (time.perf_counter() - t0) * 1000 / len(xq)
    recall = recall_at_k(found, truth)
    one = time_singles(cand.search, xq, k, chosen, batch1_queries, batch1_threads, threads)
    row = {
        "name": cand.name,
        "index": cand.description,
        "build_s": round(cand.build_s, 1),
        "index_bytes": cand.index_bytes,
        "index_gb": round(cand.index_bytes / 1e9, 3),
        "rss_delta_gb": round(cand.rss_delta_bytes / 1e9, 3),
        "params": chosen,
        "recall_at_k": round(recall, 4),
        "batch1_ms_per_query": one["mean_ms"],
        "batch1_p50_ms": one["p50_ms"],
        "batch1_p99_ms": one["p99_ms"],
        "batched_ms_per_query": round(batched_ms, 4),
        "sweep": tried,
    }
    row.update({key: v for key, v in cand.extra.items() if not key.startswith("_")})
    if cand.notes:
        row["notes"] = cand.notes
    return row


def time_singles(search: SearchFn, xq: np.ndarray, k: int, params: dict[str, Any], count: int,
                 batch1_threads: int, threads: int) -> dict[str, float]:
    singles = [xq[i:i + 1] for i in range(min(count, len(xq)))]
    faiss.omp_set_num_threads(batch1_threads)
    try:
        search(singles[0], k, params)  # warm-up
        return benchlib.percentiles_ms(benchlib.repeat_timed(iter_call(search, singles, k, params), len(singles)))
    finally:
        faiss.omp_set_num_threads(threads)


def iter_call(search: SearchFn, singles: list[np.ndarray], k: int, params: dict[str, Any]) -> Callable[[], None]:
    it = iter(singles)
    return lambda: search(next(it), k, params)


def meets(row: dict[str, Any], target: float, max_ms: float, budget_bytes: int) -> bool:
    return (row["recall_at_k"] >= target and row["batch1_ms_per_query"] <= max_ms
            and row["index_bytes"] <= budget_bytes)


# --- the serving engineer's selector -------------------------------------------------------------


def selector_choice(n: int, d: int, budget_mb: int, latency_ms: float) -> Any:
    """What ``listing_search.index.select.choose_index`` picks for this catalogue (None if absent)."""
    try:
        from listing_search.index.select import choose_index
    except ImportError:
        return None
    return choose_index(n, d, budget_mb, latency_ms)


def selector_row(choice: Any, rows: list[dict[str, Any]], xb: np.ndarray, coarse: Coarse | None,
                 train: np.ndarray, ev: dict[str, Any], seed: int) -> dict[str, Any]:
    """Evaluate the selector's pick: reuse a measured row with the same structure, else build it."""
    same = {"flat": "flat", "hnsw": f"hnsw{32}"}
    factory = choice.factory
    for row in rows:
        if row["name"] == same.get(choice.kind) or row["index"].split(" (")[0] == factory:
            return {**row, "name": "selector", "selector": choice.to_json(), "same_as": row["name"]}
    nlist = choice.nlist or default_nlist(len(xb))
    if coarse is None or coarse.quantizer.ntotal != nlist:
        coarse = build_coarse(xb, nlist, len(train), seed)

    def make(q: faiss.Index) -> faiss.IndexIVF:
        index = faiss.index_factory(xb.shape[1], factory, IP)
        ivf = faiss.extract_index_ivf(index)
        ivf.quantizer = q  # already trained: train() now trains the codes only
        ivf.own_fields = False
        ivf.referenced_objects = [index, q]  # the factory's object owns ``ivf``: keep it alive
        if isinstance(ivf, faiss.IndexIVFPQ):
            ivf.pq.cp.niter = 10
        return ivf

    cand, _ = build_ivf("selector", make, xb, coarse, train, factory)
    cand.notes.append("built by this bench from the selector's factory string, sharing its coarse quantizer")
    return {**evaluate(cand, **ev), "selector": choice.to_json()}


# --- main ----------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    faiss.omp_set_num_threads(args.threads)
    state = benchlib.machine_state()
    real = load_real(args.artifacts)
    t0 = time.perf_counter()
    allx, source = vectors.catalogue(args.n + args.queries, args.dim, args.seed, real)
    xb, xq = allx[: args.n], np.ascontiguousarray(allx[args.n:])
    gen_s = time.perf_counter() - t0
    log.info("catalogue %s of %s in %.1fs", xb.shape, source, gen_s)

    t0 = time.perf_counter()
    truth = exact_knn(xq, xb, args.k)
    exact_batched_ms = (time.perf_counter() - t0) * 1000 / len(xq)
    exact_one = time_singles(lambda q, k, p: exact_knn(q, xb, k), xq, args.k, {}, args.exact_batch1,
                             args.batch1_threads, args.threads)
    flat_bytes = xb.nbytes
    rows: list[dict[str, Any]] = [{
        "name": "flat", "index": "Flat (exact, inner product)", "build_s": 0.0, "index_bytes": flat_bytes,
        "index_gb": round(flat_bytes / 1e9, 3), "rss_delta_gb": round(flat_bytes / 1e9, 3), "params": {},
        "recall_at_k": 1.0, "batch1_ms_per_query": exact_one["mean_ms"], "batch1_p50_ms": exact_one["p50_ms"],
        "batch1_p99_ms": exact_one["p99_ms"], "batched_ms_per_query": round(exact_batched_ms, 4),
    }]
    ev = dict(xq=xq, truth=truth, k=args.k, target=args.target_recall, sweep_queries=args.sweep_queries,
              batch1_queries=args.batch1_queries, threads=args.threads, batch1_threads=args.batch1_threads)
    choice = selector_choice(args.n, args.dim, args.budget_mb, args.max_ms)
    nlist = args.nlist or (choice.nlist if choice is not None and choice.nlist else default_nlist(args.n))
    train = train_sample(xb, args.train_n, args.seed)
    skip = set(args.skip)

    coarse = build_coarse(xb, nlist, args.train_n, args.seed)
    if "ivf_sq8" not in skip:
        cand, ivf = build_ivf("ivf_sq8", lambda q: faiss.IndexIVFScalarQuantizer(
            q, args.dim, nlist, faiss.ScalarQuantizer.QT_8bit, IP), xb, coarse, train, f"IVF{nlist},SQ8")
        rows.append(evaluate(cand, **ev))
        del cand, ivf
        gc.collect()
        graph = hnsw_coarse(coarse)
        cand, ivf = build_ivf("ivf_hnsw_sq8", lambda q: faiss.IndexIVFScalarQuantizer(
            q, args.dim, nlist, faiss.ScalarQuantizer.QT_8bit, IP), xb, graph, train, f"IVF{nlist}_HNSW32,SQ8")
        cand.notes.append("the coarse quantizer is an HNSW32 graph over the same centroids: a single query "
                          "no longer scans all centroids at full dimension")
        rows.append(evaluate(cand, **ev))
        del cand, ivf, graph
        gc.collect()

    sq8, sq8_s = build_sq8_flat(xb, train)
    sq8_bytes = index_bytes(sq8)
    pq_m = args.pq_m
    cand, ivfpq = build_ivf("ivf_pq", lambda q: make_ivfpq(q, args.dim, nlist, pq_m),
                            xb, coarse, train[: args.pq_train_n], f"IVF{nlist},PQ{pq_m}")
    rows.append(evaluate(cand, **ev))
    rows.append(evaluate(refined("ivf_pq_refine_sq8", ivfpq, cand, sq8, sq8_s, sq8_bytes,
                                 f"IVF{nlist},PQ{pq_m},Refine(SQ8)"), **ev))
    rows.append(evaluate(refined_flat("ivf_pq_refine_flat", ivfpq, cand, xb), **ev))
    del cand, ivfpq
    gc.collect()
    if choice is not None and "selector" not in skip and choice.kind not in ("flat", "hnsw"):
        rows.append(selector_row(choice, rows, xb, coarse, train[: args.pq_train_n], ev, args.seed))
    del coarse
    gc.collect()

    if "pca" not in skip:
        cand, pca_index = build_pca_ivf(xb, args.pca_dim, nlist, args.train_n, args.seed)
        rows.append(evaluate(cand, **ev))
        rows.append(evaluate(refined("pca_ivf_sq8_refine_sq8", pca_index, cand, sq8, sq8_s, sq8_bytes,
                                     f"PCA{args.pca_dim},IVF{nlist},SQ8,Refine(SQ8)"), **ev))
        del cand, pca_index
    del sq8
    gc.collect()

    if "hnsw" not in skip:
        cand, _sample, sample_truth = build_hnsw(xb, xq, args.k, args.hnsw_n, args.hnsw_m, args.n, args.seed)
        rows.append(evaluate(cand, **{**ev, "truth": sample_truth}))
        del cand, _sample
        gc.collect()

    if choice is not None and "selector" not in skip and choice.kind in ("flat", "hnsw"):
        rows.append(selector_row(choice, rows, xb, None, train, ev, args.seed))
    budget = args.budget_mb * 2**20
    for row in rows:
        row["meets_goal"] = meets(row, args.target_recall, args.max_ms, budget)
    ok = [r for r in rows if r["meets_goal"]]
    best = min(ok, key=lambda r: r["batch1_ms_per_query"])["name"] if ok else None
    return {
        "bench": "index_candidates",
        "command": f"python bench/bench_index_candidates.py --n {args.n} --queries {args.queries}",
        "n": args.n, "dim": args.dim, "queries": args.queries, "k": args.k, "metric": "inner_product (unit vectors)",
        "distribution": source, "generate_s": round(gen_s, 1), "nlist": nlist, "threads": args.threads,
        "batch1_threads": args.batch1_threads,
        "goal": {"recall_at_k": args.target_recall, "batch1_ms_per_query": args.max_ms,
                 "index_mb": args.budget_mb},
        "best_meeting_goal": best,
        "selector": choice.to_json() if choice is not None else None,
        "results": rows,
        "machine_start": state,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = benchlib.parser(__doc__)
    p.add_argument("--n", type=int, default=1_000_000, help="catalogue size")
    p.add_argument("--dim", type=int, default=1000)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="faiss threads for building and batched search")
    p.add_argument("--batch1-threads", type=int, default=1, help="faiss threads for single queries")
    p.add_argument("--nlist", type=int, default=0, help="0: about 4 sqrt(n), a power of two")
    p.add_argument("--train-n", type=int, default=50_000, help="vectors used to train quantizers")
    p.add_argument("--pq-m", type=int, default=50, help="PQ sub-quantizers (must divide --dim)")
    p.add_argument("--pq-train-n", type=int, default=16_384, help="vectors used to train PQ codebooks")
    p.add_argument("--pca-dim", type=int, default=256)
    p.add_argument("--hnsw-n", type=int, default=100_000, help="HNSW is built on this many vectors")
    p.add_argument("--hnsw-m", type=int, default=32)
    p.add_argument("--target-recall", type=float, default=0.95)
    p.add_argument("--max-ms", type=float, default=2.0)
    p.add_argument("--budget-mb", type=int, default=1536)
    p.add_argument("--sweep-queries", type=int, default=200)
    p.add_argument("--batch1-queries", type=int, default=200)
    p.add_argument("--exact-batch1", type=int, default=5, help="single exact queries timed")
    p.add_argument("--skip", nargs="*", default=[], choices=["ivf_sq8", "pca", "hnsw", "selector"])
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    benchlib.main(run, parse_args(argv))


if __name__ == "__main__":
    main()
