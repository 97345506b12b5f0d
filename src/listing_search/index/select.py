"""Pick the FAISS index from a latency budget and a memory budget, with a calibrated cost model.

Each structure the selector knows has a memory estimate (bytes) and a predicted single-query,
one-thread latency at the search knob that reaches recall@10 0.95 (``CostModel``, constants measured
by ``bench/bench_index_scale.py --calibrate`` and committed below as ``CALIBRATED``). The choice is a
pure function of (n, dim, budgets, constants), so it never flips with machine noise; ``index`` then
measures what was built (``VectorIndex.build``) and warns when the measurement misses the budget.

Order of preference, among structures that fit the memory budget:

1. ``Flat`` when the exact scan is predicted within the latency budget (recall 1, nothing to tune);
2. else the approximate structure with the fewest bytes predicted within the latency budget:
   IVF-SQ8 (one byte per dimension) before HNSW (full floats plus a graph), because memory is what
   bounds listings per replica and both are well under the budget where both fit;
3. else IVF-PQ (``m`` bytes per vector) when only compressed codes fit: recall is not assured there;
4. else, when nothing fitting is predicted within the latency budget, the fastest that fits.

Every one of them supports live add and delete (see ``vector_index``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

FLAT, HNSW, IVF_SQ8, IVF_PQ = "flat", "hnsw", "ivfsq8", "ivfpq"
KINDS = (FLAT, HNSW, IVF_SQ8, IVF_PQ)
IVF_KINDS = (IVF_SQ8, IVF_PQ)  # searched with nprobe
HNSW_M = 32
_ID_BYTES = 8
_IVF_ID_BYTES = 8 + 16  # the id in its list, and its entry in the id -> (list, offset) hashtable


@dataclass(frozen=True)
class CostModel:
    """Single query, one thread, at the knob reaching recall@10 0.95; latencies in nanoseconds.

    flat:   ``n * dim * flat_ns``
    IVF:    ``dim * ivf_fixed_ns_per_dim + nprobe(n) * (n / nlist) * code_bytes * ivf_ns_per_code_byte``,
            ``nprobe(n) = ivf_nprobe * (n / ivf_nprobe_n) ** ivf_nprobe_growth`` (the tuner's nprobe at
            two calibration sizes: the lists needed for the same recall grow with n on some data)
    HNSW:   ``dim * hnsw_ef * log2(n) * hnsw_ns``
    subset (exact scan over reconstructed allowed ids): ``ids * dim * subset_ns``
    """

    flat_ns: float
    ivf_fixed_ns_per_dim: float
    ivf_ns_per_code_byte: float
    ivf_nprobe: int
    hnsw_ns: float
    hnsw_ef: int
    subset_ns: float
    filtered_index_ms: float  # p50 of a filtered search through the index at 1% selectivity (calibration n)
    source: str
    ivf_nprobe_n: int = 200_000  # the catalogue size ``ivf_nprobe`` was tuned at
    ivf_nprobe_growth: float = 0.0  # log(nprobe at n / nprobe at n/4) / log(4), from the calibration

    def nprobe_at(self, n: int) -> float:
        """Predicted nprobe reaching the recall target at ``n`` vectors (at least 1)."""
        return max(1.0, self.ivf_nprobe * (max(n, 1) / self.ivf_nprobe_n) ** self.ivf_nprobe_growth)

    def to_json(self) -> dict:
        return asdict(self)


# `python bench/bench_index_scale.py --calibrate --n 200000` at 2026-11-28T16:41:22Z, 2 cores, load1 2.72 -> 3.19,
# 200k x 1000-d mixture_of_gaussians (docs/performance.md, "Index at scale"). Rerun it and paste its
# "constants" here to recalibrate; the tests of select.py check decisions, not these values.
CALIBRATED = CostModel(
    flat_ns=0.4526,
    ivf_fixed_ns_per_dim=274.23,
    ivf_ns_per_code_byte=0.3752,
    ivf_nprobe=3,
    hnsw_ns=0.8026,
    hnsw_ef=16,
    subset_ns=5.942,
    filtered_index_ms=0.683,
    source="bench_index_scale.py --calibrate --n 200000, 2026-11-28T16:41:22Z, load1 2.72",
)


@dataclass(frozen=True)
class IndexChoice:
    """What to build and why; saved in the infos file and, by the builder, in the store's meta."""

    kind: str
    factory: str
    estimated_bytes: int
    reason: str
    nlist: int = 0
    pq_m: int = 0
    predicted_ms: float = 0.0

    def to_json(self) -> dict:
        return asdict(self)


def flat_bytes(n: int, dim: int) -> int:
    return n * (dim * 4 + _ID_BYTES)


def hnsw_bytes(n: int, dim: int, m: int = HNSW_M) -> int:
    # Level-0 neighbour lists hold 2*M int32 links, upper levels add about 1/M more.
    return n * (dim * 4 + _ID_BYTES + 2 * m * 4 + m * 4 // max(m - 1, 1) + 16)


def ivf_sq8_bytes(n: int, dim: int) -> int:
    """One byte per dimension plus the id, and the float centroids with their HNSW graph."""
    return n * (dim + _IVF_ID_BYTES) + hnsw_bytes(ivf_nlist(n), dim)


def ivf_pq_bytes(n: int, dim: int, m: int) -> int:
    return n * (m + _IVF_ID_BYTES) + hnsw_bytes(ivf_nlist(n), dim)


def ivf_nlist(n: int) -> int:
    """About 4*sqrt(n) lists, and never fewer than 39 training points per list."""
    return int(max(1, min(4 * math.sqrt(max(n, 1)), n // 39)))


def pq_m_for(n: int, dim: int, budget_bytes: int) -> int:
    """Largest number of 1-byte sub-quantizers dividing ``dim`` that fits the budget (at least 1)."""
    divisors = [m for m in range(1, dim + 1) if dim % m == 0 and m <= max(1, dim // 2)]
    fitting = [m for m in divisors if n * (m + _IVF_ID_BYTES) <= budget_bytes]
    return max(fitting) if fitting else divisors[0]


def pq_nbits(n: int) -> int:
    """8-bit codes need about 39*256 training vectors; tiny catalogues get coarser codes."""
    return int(max(4, min(8, math.floor(math.log2(max(n // 39, 16))))))


def predict_ms(kind: str, n: int, dim: int, cost: CostModel | None = None, pq_m: int = 0) -> float:
    """Predicted p50 of one unfiltered query on one thread, at the knob that reaches recall 0.95."""
    n, cost = max(n, 1), cost or CALIBRATED
    if kind == FLAT:
        ns = n * dim * cost.flat_ns
    elif kind == HNSW:
        ns = dim * cost.hnsw_ef * math.log2(max(n, 2)) * cost.hnsw_ns
    else:
        nlist = ivf_nlist(n)
        code = dim if kind == IVF_SQ8 else pq_m
        nprobe = min(nlist, cost.nprobe_at(n) * (1 if kind == IVF_SQ8 else 4))  # PQ codes need more lists
        ns = dim * cost.ivf_fixed_ns_per_dim + nprobe * (n / nlist) * code * cost.ivf_ns_per_code_byte
    return ns / 1e6


def subset_exact_max(dim: int, cost: CostModel | None = None) -> int:
    """Allowed ids up to which an exact scan is predicted cheaper than a filtered index search."""
    cost = cost or CALIBRATED
    return int(cost.filtered_index_ms * 1e6 / (max(dim, 1) * cost.subset_ns))


def choose_index(n: int, dim: int, memory_budget_mb: int = 1536, latency_budget_ms: float = 2.0,
                 kind: str | None = None, cost: CostModel | None = None) -> IndexChoice:
    """The index for ``n`` vectors of ``dim`` floats; ``kind`` forces one (tests, experiments)."""
    budget = memory_budget_mb * 1024 * 1024
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown index kind {kind!r}; expected one of {KINDS}")
    pq_m = pq_m_for(n, dim, budget - hnsw_bytes(ivf_nlist(n), dim))  # centroids count against the budget
    bytes_of = {FLAT: flat_bytes(n, dim), IVF_SQ8: ivf_sq8_bytes(n, dim), HNSW: hnsw_bytes(n, dim),
                IVF_PQ: ivf_pq_bytes(n, dim, pq_m)}
    ms = {k: predict_ms(k, n, dim, cost, pq_m) for k in KINDS}
    if kind is None:
        kind, reason = _pick(bytes_of, ms, memory_budget_mb, latency_budget_ms)
    else:
        reason = "forced"
    return _make(kind, n, dim, bytes_of[kind], reason, pq_m, ms[kind])


def _pick(bytes_of: dict[str, int], ms: dict[str, float], budget_mb: int, budget_ms: float) -> tuple[str, str]:
    budget = budget_mb * 1024 * 1024
    fits = [k for k in (FLAT, IVF_SQ8, HNSW, IVF_PQ) if bytes_of[k] <= budget]
    fast = [k for k in fits if ms[k] <= budget_ms]
    if FLAT in fast:
        return FLAT, f"exact scan predicted {ms[FLAT]:.2f} ms <= {budget_ms} ms and fits {budget_mb} MB"
    for k in (IVF_SQ8, HNSW):
        if k in fast:
            slower = "; ".join(f"{o} {ms[o]:.2f} ms" for o in (FLAT,) if o in fits) or "flat does not fit"
            return k, (f"fewest bytes predicted within {budget_ms} ms ({ms[k]:.2f} ms) in {budget_mb} MB; "
                       f"{slower}")
    if IVF_PQ in fits and not (set(fits) - {IVF_PQ}):
        return IVF_PQ, f"only compressed PQ codes fit {budget_mb} MB: recall@10 0.95 is not assured"
    if fits:
        best = min(fits, key=ms.__getitem__)
        return best, f"nothing is predicted within {budget_ms} ms; fastest that fits {budget_mb} MB ({ms[best]:.2f} ms)"
    return IVF_PQ, f"nothing fits {budget_mb} MB; smallest PQ codes"


def _make(kind: str, n: int, dim: int, nbytes: int, reason: str, pq_m: int, ms: float) -> IndexChoice:
    ms = round(ms, 4)
    if kind == FLAT:
        return IndexChoice(FLAT, "Flat", nbytes, reason, predicted_ms=ms)
    if kind == HNSW:
        return IndexChoice(HNSW, f"HNSW{HNSW_M},Flat", nbytes, reason, predicted_ms=ms)
    nlist = ivf_nlist(n)
    if kind == IVF_SQ8:
        # An HNSW graph over the centroids: one query no longer scans every centroid at full dimension.
        return IndexChoice(IVF_SQ8, f"IVF{nlist}_HNSW{HNSW_M},SQ8", nbytes, reason, nlist, predicted_ms=ms)
    return IndexChoice(IVF_PQ, f"IVF{nlist},PQ{pq_m}x{pq_nbits(n)}", nbytes, reason, nlist, pq_m, ms)
