"""Pick the FAISS index type from catalogue size and memory budget (after autofaiss ``optimize.py``).

Small catalogues get an exact flat index: at a few hundred thousand vectors a brute-force scan is
fast enough and recall is 1. Beyond ``exact_max`` (or when the flat index would not fit the budget)
an HNSW graph keeps full vectors for high recall; when that does not fit, IVF-SQ8 keeps one byte
per dimension (1M x 1000-d: 1.0 GB, recall@10 >= 0.95 at nprobe 4-8, under 2 ms/query on one
thread, see bench/bench_index_scale.py); only when even that does not fit, IVF-PQ compresses the
vectors to ``m`` bytes each.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

FLAT, HNSW, IVF_SQ8, IVF_PQ = "flat", "hnsw", "ivfsq8", "ivfpq"
KINDS = (FLAT, HNSW, IVF_SQ8, IVF_PQ)
IVF_KINDS = (IVF_SQ8, IVF_PQ)  # searched with nprobe
HNSW_M = 32
_ID_BYTES = 8


@dataclass(frozen=True)
class IndexChoice:
    """What to build and why; saved in the infos file."""

    kind: str
    factory: str
    estimated_bytes: int
    reason: str
    nlist: int = 0
    pq_m: int = 0

    def to_json(self) -> dict:
        return asdict(self)


def flat_bytes(n: int, dim: int) -> int:
    return n * (dim * 4 + _ID_BYTES)


def hnsw_bytes(n: int, dim: int, m: int = HNSW_M) -> int:
    # Level-0 neighbour lists hold 2*M int32 links, upper levels add about 1/M more.
    return n * (dim * 4 + _ID_BYTES + 2 * m * 4 + m * 4 // max(m - 1, 1) + 16)


def ivf_sq8_bytes(n: int, dim: int) -> int:
    """One byte per dimension plus the id, and the float centroids with their HNSW graph."""
    return n * (dim + _ID_BYTES) + hnsw_bytes(ivf_nlist(n), dim)


def ivf_nlist(n: int) -> int:
    """About 4*sqrt(n) lists, and never fewer than 39 training points per list."""
    return int(max(1, min(4 * math.sqrt(max(n, 1)), n // 39)))


def pq_m_for(n: int, dim: int, budget_bytes: int) -> int:
    """Largest number of 1-byte sub-quantizers dividing ``dim`` that fits the budget (at least 1)."""
    divisors = [m for m in range(1, dim + 1) if dim % m == 0 and m <= max(1, dim // 2)]
    fitting = [m for m in divisors if n * (m + _ID_BYTES) <= budget_bytes]
    return max(fitting) if fitting else divisors[0]


def choose_index(n: int, dim: int, memory_budget_mb: int, exact_max: int, kind: str | None = None) -> IndexChoice:
    """The index for ``n`` vectors of ``dim`` floats; ``kind`` forces one (tests, experiments)."""
    budget = memory_budget_mb * 1024 * 1024
    if kind is None:
        if n <= exact_max and flat_bytes(n, dim) <= budget:
            kind, reason = FLAT, f"{n} <= exact_max {exact_max} and fits {memory_budget_mb} MB"
        elif hnsw_bytes(n, dim) <= budget:
            kind, reason = HNSW, f"{n} > exact_max {exact_max}; HNSW{HNSW_M} fits {memory_budget_mb} MB"
        elif ivf_sq8_bytes(n, dim) <= budget:
            kind, reason = IVF_SQ8, f"uncompressed vectors exceed {memory_budget_mb} MB; 8-bit codes fit"
        else:
            kind, reason = IVF_PQ, f"uncompressed vectors exceed {memory_budget_mb} MB"
    else:
        if kind not in KINDS:
            raise ValueError(f"unknown index kind {kind!r}; expected one of {KINDS}")
        reason = "forced"
    if kind == FLAT:
        return IndexChoice(FLAT, "Flat", flat_bytes(n, dim), reason)
    if kind == HNSW:
        return IndexChoice(HNSW, f"HNSW{HNSW_M},Flat", hnsw_bytes(n, dim), reason)
    nlist = ivf_nlist(n)
    if kind == IVF_SQ8:
        # An HNSW graph over the centroids: one query no longer scans every centroid at full dimension.
        return IndexChoice(IVF_SQ8, f"IVF{nlist}_HNSW{HNSW_M},SQ8", ivf_sq8_bytes(n, dim), reason, nlist)
    m, nbits = pq_m_for(n, dim, budget - nlist * dim * 4), pq_nbits(n)  # centroids count against the budget
    factory = f"IVF{nlist},PQ{m}x{nbits}"
    return IndexChoice(IVF_PQ, factory, n * (m + _ID_BYTES) + nlist * dim * 4, reason, nlist, m)


def pq_nbits(n: int) -> int:
    """8-bit codes need about 39*256 training vectors; tiny catalogues get coarser codes."""
    return int(max(4, min(8, math.floor(math.log2(max(n // 39, 16))))))
