"""A cosine-similarity vector index over FAISS with int64 ids, persisted atomically after each change.

Vectors are L2-normalised on the way in, so inner product = cosine similarity and scores are in
[-1, 1]. The same class serves photo embeddings and (later) listing text embeddings.

Files, for ``name`` in a folder: ``<name>.faiss`` (the FAISS index), ``<name>.infos.json`` (type,
size, dimension, build time, the selector's choice, recall@10 and p50/p99 measured on held-out queries,
filtered-search measurements, search parameters, budget verdict) and, for types that cannot delete
(HNSW), ``<name>.tombstones.json``: removed ids stay in the graph, are excluded from
every search with an ``IDSelectorNot``, and the graph is rebuilt from the live vectors (compaction)
once tombstones pass ``COMPACT_RATIO`` of it. Flat and IVF indexes delete for real (IVF through
its id -> (list, offset) hashtable), so every structure the selector can choose follows live changes.

Filtered search: allowed sets up to ``subset_exact_max`` ids (the cost model's switch point) are
scanned exactly; larger ones go through the index with an ID selector and the larger knob tuned at
build for that selectivity (``search_params["filtered"]``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from listing_search.index.select import FLAT, HNSW, IVF_KINDS, IVF_SQ8, IndexChoice, choose_index, subset_exact_max
from listing_search.index.tune import (  # noqa: F401  (re-exported: the reference searches live with the index)
    RECALL_K, RECALL_TARGET, Probe, exact_top_k, recall_at, recall_with_ties, tune_and_measure,
)
from listing_search.pipeline import atomic_path, atomic_write_text

log = logging.getLogger(__name__)

COMPACT_RATIO = 0.2
TRAIN_PER_LIST, TRAIN_MIN = 16, 10_000  # IVF k-means sample: enough per list, bounded build time
MAX_EF = 4096
QUANTIZER_EF = 32  # efSearch of an IVF's HNSW coarse quantizer, at least twice nprobe

# Adds (vectors, ids) to a trained, empty IVF index somewhere else (cluster workers: ``index.sharded``)
# and returns the filled index; the index it is given is left unchanged.
Fill = Callable[[faiss.Index, np.ndarray, np.ndarray], faiss.Index]


@dataclass
class SearchResult:
    """Per query: ``ids[i]`` ranked by ``scores[i]`` (cosine similarity), padding removed."""

    scores: list[np.ndarray]
    ids: list[np.ndarray]


def normalise(vectors: np.ndarray) -> np.ndarray:
    """float32, C-contiguous, unit rows (zero rows stay zero)."""
    x = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32).copy()
    faiss.normalize_L2(x)
    return x


class VectorIndex:
    """Build / load / add / remove / search; the owner serialises writes (see ``SearchEngine``)."""

    def __init__(self, index: faiss.Index, kind: str, infos: dict, tombstones: set[int] | None = None) -> None:
        self.index, self.kind, self.infos = index, kind, infos
        self.tombstones: set[int] = tombstones or set()
        self.path: Path | None = None
        self._not_dead_cache: tuple | None = None
        self.set_search_params(infos.get("search_params", {}))

    # ----------------------------------------------------------------- build / persist
    @classmethod
    def build(
        cls, vectors: np.ndarray, ids: np.ndarray, memory_budget_mb: int = 1536, latency_budget_ms: float = 2.0,
        recall_sample: int = 200, kind: str | None = None, seed: int = 0, choice: IndexChoice | None = None,
        search_params: dict | None = None, fill: Fill | None = None,
    ) -> "VectorIndex":
        """Choose the type from the budgets, train, add, tune and measure on held-out queries.

        A rebuild passes the builder's recorded ``choice`` and ``search_params``: the same structure,
        no new tuning or measuring. ``fill`` adds the catalogue to an IVF index trained here (other
        kinds are filled here: a graph cannot be merged, a flat index gains nothing); the held-out
        queries are still added here after tuning, so the result equals the one-machine build.
        """
        t0 = time.perf_counter()
        x, ids = normalise(vectors), np.asarray(ids, dtype=np.int64)
        if len(x) != len(ids) or len(np.unique(ids)) != len(ids):
            raise ValueError("ids must be unique and one per vector")
        choice = choice or choose_index(len(x), x.shape[1], memory_budget_mb, latency_budget_ms, kind)
        index = _new_index(choice, x.shape[1], x, seed)
        infos = {
            "kind": choice.kind, "factory": choice.factory, "dimension": int(x.shape[1]),
            "size": int(len(x)), "metric": "cosine (inner product of unit vectors)",
            "choice": choice.to_json(), "memory_budget_mb": memory_budget_mb, "latency_budget_ms": latency_budget_ms,
        }
        self = cls(index, choice.kind, infos)
        if fill is not None and choice.kind not in IVF_KINDS:
            fill = None
        infos["filled_by"] = "driver" if fill is None else getattr(fill, "name", "fill")
        if search_params is not None or len(x) == 0:
            self._fill(x, ids, fill)
            self.set_search_params(search_params or {})
        else:
            self.set_search_params({} if choice.kind == FLAT else {"subset_exact_max": subset_exact_max(x.shape[1])})
            held = _held_out(len(x), recall_sample, seed)
            self._fill(x, ids, fill, skip=held)
            probe = Probe(x[held], x, ids, ~held, np.random.default_rng(seed + 1))
            tune_and_measure(self, probe, latency_budget_ms, memory_budget_mb)
            _add(self.index, x[held], ids[held])
        self.infos["build_seconds"] = round(time.perf_counter() - t0, 3)
        self.infos["built_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        log.info("index %s: %d x %d, recall@10 %s, p50 %s ms", choice.factory, len(x), x.shape[1],
                 self.infos.get("recall_at_10"), self.infos.get("measured", {}).get("p50_ms"))
        return self

    def _fill(self, x: np.ndarray, ids: np.ndarray, fill: Fill | None, skip: np.ndarray | None = None) -> None:
        if fill is None:
            _add(self.index, x, ids, skip=skip)
        elif len(x):
            keep = np.ones(len(x), bool) if skip is None else ~skip
            self.index = fill(self.index, x[keep], ids[keep])

    def to_bytes(self) -> tuple[bytes, dict]:
        """The FAISS index serialised, and its infos with the tombstones (a snapshot's two parts)."""
        infos = {**self.infos, "size": self.size, "tombstone_ids": sorted(self.tombstones)}
        return faiss.serialize_index(self.index).tobytes(), infos

    @classmethod
    def from_bytes(cls, data: bytes, infos: dict) -> "VectorIndex":
        infos = dict(infos)
        dead = set(int(i) for i in infos.pop("tombstone_ids", []))
        return cls(faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8)), infos["kind"], infos, dead)

    @property
    def choice(self) -> IndexChoice:
        return IndexChoice(**self.infos["choice"])

    @classmethod
    def load(cls, path: Path) -> "VectorIndex":
        """Read ``<name>.faiss`` with its infos and tombstones."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no index at {path}")
        infos = json.loads(infos_path(path).read_text())
        tomb = tombstones_path(path)
        dead = set(json.loads(tomb.read_text())) if tomb.is_file() else set()
        self = cls(faiss.read_index(str(path)), infos["kind"], infos, dead)
        self.path = path
        return self

    def save(self, path: Path | None = None) -> None:
        """Index, then tombstones, then infos; each replaced atomically."""
        path = Path(path or self.path)
        with atomic_path(path) as tmp:
            faiss.write_index(self.index, str(tmp))
        self._save_sidecars(path)
        self.path = path

    def _save_sidecars(self, path: Path) -> None:
        if self.kind == HNSW:
            atomic_write_text(tombstones_path(path), json.dumps(sorted(self.tombstones)))
        self.infos["size"] = self.size
        self.infos["tombstones"] = len(self.tombstones)
        atomic_write_text(infos_path(path), json.dumps(self.infos, indent=2, sort_keys=True))

    @property
    def prefix_stable(self) -> bool:
        """Whether a search for more results starts with the search for fewer (exact and IVF scans
        probe the same lists whatever ``k``; an HNSW graph search widens with ``k``)."""
        return self.kind != HNSW

    # ----------------------------------------------------------------- live changes
    @property
    def size(self) -> int:
        """Live vectors (tombstoned ones excluded)."""
        return int(self.index.ntotal) - len(self.tombstones)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def add(self, vectors: np.ndarray, ids: np.ndarray, persist: bool = True) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        if self.tombstones and np.isin(ids, np.fromiter(self.tombstones, np.int64)).any():
            self.compact(persist=False)  # a graph cannot hold an id twice: drop the dead copy first
        self.index.add_with_ids(normalise(vectors), ids)
        if persist and self.path is not None:
            self.save()

    def remove(self, ids: np.ndarray, persist: bool = True) -> int:
        """Delete (or tombstone, for HNSW) ``ids``; returns how many were present."""
        ids = np.asarray(ids, dtype=np.int64)
        if self.kind == HNSW:
            removed, rewritten = self._tombstone(ids)
        else:
            removed, rewritten = int(self.index.remove_ids(ids)), True
        if persist and removed and self.path is not None:
            if rewritten:
                self.save()
            else:
                self._save_sidecars(self.path)  # the graph itself did not change
        return removed

    def _tombstone(self, ids: np.ndarray) -> tuple[int, bool]:
        """Mark ids dead; compact when too many are. Returns (count, whether the graph was rebuilt)."""
        hit = set(self.reconstruct_present(ids)[0].tolist())  # live ids only, without listing them all
        self.tombstones |= hit
        if len(self.tombstones) > COMPACT_RATIO * self.index.ntotal:
            self.compact(persist=False)
            return len(hit), True
        return len(hit), False

    def compact(self, persist: bool = True) -> None:
        """Rebuild an HNSW graph from its live vectors, dropping tombstones."""
        live = self.all_ids()
        x = self.reconstruct(live)
        choice = IndexChoice(HNSW, self.infos["factory"], 0, "compaction")
        index = _new_index(choice, self.dim, x, 0)
        index.add_with_ids(x, live)
        self.index, self.tombstones = index, set()
        log.info("index compacted to %d vectors", len(live))
        if persist and self.path is not None:
            self.save()

    def all_ids(self) -> np.ndarray:
        """Every live id (order unspecified)."""
        if isinstance(self.index, faiss.IndexIDMap2) or isinstance(self.index, faiss.IndexIDMap):
            ids = faiss.vector_to_array(self.index.id_map).astype(np.int64)
        else:
            ids = _ivf_ids(faiss.extract_index_ivf(self.index))
        if self.tombstones:
            ids = ids[~np.isin(ids, np.fromiter(self.tombstones, np.int64))]
        return ids

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        """Stored (unit) vectors of ``ids``; approximate for IVF codes."""
        ids = np.asarray(ids, dtype=np.int64)
        return self.index.reconstruct_batch(ids) if len(ids) else np.empty((0, self.dim), np.float32)

    def reconstruct_present(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ids that are live, their vectors): unknown and tombstoned ids are skipped, not errors."""
        ids = np.asarray(ids, dtype=np.int64)
        if self.tombstones and len(ids):
            ids = ids[~np.isin(ids, np.fromiter(self.tombstones, np.int64))]
        if not len(ids):
            return ids, np.empty((0, self.dim), np.float32)
        try:
            return ids, self.index.reconstruct_batch(ids)  # one call in C++: the common case, all present
        except RuntimeError:  # FAISS: some id not in the index; find which, one by one
            pass
        kept, rows = [], []
        for i in ids:
            try:
                rows.append(self.index.reconstruct(int(i)))
            except RuntimeError:
                continue
            kept.append(int(i))
        vectors = np.stack(rows).astype(np.float32) if rows else np.empty((0, self.dim), np.float32)
        return np.array(kept, np.int64), vectors

    # ----------------------------------------------------------------- search
    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> SearchResult:
        """Top ``k`` by cosine, optionally only among ``allowed`` ids (an exact scan when they are few)."""
        q = normalise(queries)
        if allowed is not None:
            allowed = np.asarray(allowed, dtype=np.int64)
            if self.tombstones:
                allowed = allowed[~np.isin(allowed, np.fromiter(self.tombstones, np.int64))]
            if len(allowed) == 0 or k <= 0:
                return _empty(len(q))
            switch = self.infos["search_params"].get("subset_exact_max", subset_exact_max(self.dim))  # older infos
            if self.kind != FLAT and len(allowed) <= int(switch):
                return self._search_subset(q, k, allowed)
        k = int(min(k, self.size if allowed is None else len(allowed)))
        if k <= 0:
            return _empty(len(q))
        params, _keep = self._params(allowed)
        scores, ids = self.index.search(q, k, params=params)
        keep = ids >= 0
        return SearchResult([s[m] for s, m in zip(scores, keep)], [i[m] for i, m in zip(ids, keep)])

    def _search_subset(self, q: np.ndarray, k: int, allowed: np.ndarray) -> SearchResult:
        # An allowed id missing from the index (catalogue ahead of it after a crash) is skipped.
        allowed, x = self.reconstruct_present(allowed)
        if not len(allowed):
            return _empty(len(q))
        sims = q @ x.T
        k = min(k, len(allowed))
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(sims, top, 1).argsort(axis=1)[:, ::-1]
        top = np.take_along_axis(top, order, 1)
        return SearchResult(
            [sims[r, top[r]] for r in range(len(q))], [allowed[top[r]] for r in range(len(q))]
        )

    def _params(self, allowed: np.ndarray | None) -> tuple[faiss.SearchParameters | None, list]:
        """Search parameters with a selector; the list keeps selector objects alive during search."""
        keep: list = []
        sel = None
        if allowed is not None:
            sel, keep = id_selector(allowed)
        if self.tombstones:
            not_dead = self._not_dead()
            sel = not_dead if sel is None else faiss.IDSelectorAnd(sel, not_dead)
            keep.append(sel)
        share = None if allowed is None else len(allowed) / max(self.size, 1)
        if self.kind == HNSW:
            params = faiss.SearchParametersHNSW(efSearch=self.knob("efSearch", 64, share))
        elif self.kind in IVF_KINDS:
            nprobe = self.knob("nprobe", 8, share)
            params = faiss.SearchParametersIVF(nprobe=nprobe)
            if self.kind == IVF_SQ8:  # its coarse quantizer is an HNSW graph: ef 16 loses ~0.01 recall@10
                params.quantizer_params = faiss.SearchParametersHNSW(efSearch=max(QUANTIZER_EF, 2 * nprobe))
                keep.append(params.quantizer_params)
        elif sel is None:
            return None, keep
        else:
            params = faiss.SearchParameters()
        if sel is not None:
            params.sel = sel
        keep.append(params)
        return params, keep

    def knob(self, name: str, default: int, share: float | None = None) -> int:
        """efSearch / nprobe for a search; filtered ones use the knob tuned for their selectivity.

        Tuned at 10% and 1%: a share between uses the next lower tuned selectivity's knob; a smaller
        share (only above the exact-scan switch point, so on large indexes) scales the 1% knob by 1/share.
        """
        sp = self.infos["search_params"]
        base = int(sp.get(name, default))
        if share is None or not sp.get("filtered"):
            return base
        cap = int(self.infos["choice"].get("nlist") or MAX_EF) if name == "nprobe" else MAX_EF
        tuned = sorted(((float(s), int(v)) for s, v in sp["filtered"]), reverse=True)
        for s, v in tuned:
            if share >= s:
                return max(base, v)
        s, v = tuned[-1]
        return int(min(cap, max(base, np.ceil(v * s / max(share, 1e-9)))))

    def _not_dead(self) -> faiss.IDSelector:
        """A selector of live ids, rebuilt only when the tombstones changed (not once per search).

        Tombstones only grow until a compaction replaces the set, so (set, size) names its content.
        """
        key = (id(self.tombstones), len(self.tombstones))
        cached = self._not_dead_cache
        if cached is None or cached[0] != key:
            dead, keep = id_selector(np.fromiter(self.tombstones, np.int64))
            cached = self._not_dead_cache = (key, faiss.IDSelectorNot(dead), keep)
        return cached[1]

    def set_search_params(self, sp: dict) -> None:
        """Replace the search parameters (knob, filtered knobs, exact-scan switch point)."""
        self.infos["search_params"] = dict(sp)


def id_selector(ids: np.ndarray) -> tuple[faiss.IDSelector, list]:
    """A bitmap over ids 0..max when that is small (built in well under a ms for 100k ids), else a hash set.

    ``IDSelectorBatch`` hashes every id on each search: about 8 ms for 100k ids on this machine.
    """
    top = int(ids.max()) if len(ids) else 0
    if int(ids.min(initial=0)) >= 0 and top < max(1 << 24, 64 * len(ids)):
        mask = np.zeros(top + 1, bool)
        mask[ids] = True
        bits = np.packbits(mask, bitorder="little")
        sel = faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits))  # n counts bytes
        return sel, [sel, bits]
    sel = faiss.IDSelectorBatch(ids)
    return sel, [sel]


def _empty(nq: int) -> SearchResult:
    return SearchResult([np.empty(0, np.float32)] * nq, [np.empty(0, np.int64)] * nq)


def _held_out(n: int, sample: int, seed: int) -> np.ndarray:
    """A mask of ``sample`` rows (at most a tenth of the catalogue, at least one) kept out while measuring."""
    held = np.zeros(n, bool)
    count = min(sample, max(1, n // 10)) if n > 1 else 0
    held[np.random.default_rng(seed).choice(n, size=count, replace=False)] = True
    return held


def _add(index: faiss.Index, x: np.ndarray, ids: np.ndarray, skip: np.ndarray | None = None,
         chunk: int = 100_000) -> None:
    """Add in chunks (no full copy of a large catalogue), leaving out rows marked in ``skip``."""
    for start in range(0, len(x), chunk):
        part, part_ids = x[start : start + chunk], ids[start : start + chunk]
        if skip is not None:
            keep = ~skip[start : start + chunk]
            part, part_ids = part[keep], part_ids[keep]
        if len(part):
            index.add_with_ids(np.ascontiguousarray(part), np.ascontiguousarray(part_ids))


def infos_path(path: Path) -> Path:
    return Path(path).with_suffix(".infos.json")


def tombstones_path(path: Path) -> Path:
    return Path(path).with_suffix(".tombstones.json")


def _new_index(choice: IndexChoice, dim: int, train: np.ndarray, seed: int) -> faiss.Index:
    """An empty index with int64 ids; IVF is trained on a sample of ``train`` and keeps a hashtable id map."""
    if choice.kind == FLAT:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    if choice.kind == HNSW:
        return faiss.IndexIDMap2(faiss.index_factory(dim, choice.factory, faiss.METRIC_INNER_PRODUCT))
    index = faiss.index_factory(dim, choice.factory, faiss.METRIC_INNER_PRODUCT)
    ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
    ivf.cp.seed, ivf.cp.niter, ivf.cp.min_points_per_centroid = seed, 10, 4
    if isinstance(ivf, faiss.IndexIVFPQ):  # polysemous codes are never searched here, and cost minutes to train
        ivf.pq.cp.niter, ivf.do_polysemous_training = 10, False
    size = min(len(train), max(TRAIN_MIN, TRAIN_PER_LIST * choice.nlist))
    rows = np.sort(np.random.default_rng(seed).choice(len(train), size=size, replace=False))
    index.train(np.ascontiguousarray(train[rows]))
    ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
    return index


def _ivf_ids(ivf: faiss.IndexIVF) -> np.ndarray:
    invlists = ivf.invlists
    parts = []
    for lst in range(ivf.nlist):
        n = invlists.list_size(lst)
        if n:
            parts.append(faiss.rev_swig_ptr(invlists.get_ids(lst), n).copy())
    return np.concatenate(parts).astype(np.int64) if parts else np.empty(0, np.int64)
