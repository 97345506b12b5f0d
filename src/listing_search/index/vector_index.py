"""A cosine-similarity vector index over FAISS with int64 ids, persisted atomically after each change.

Vectors are L2-normalised on the way in, so inner product = cosine similarity and scores are in
[-1, 1]. The same class serves photo embeddings and (later) listing text embeddings.

Files, for ``name`` in a folder: ``<name>.faiss`` (the FAISS index), ``<name>.infos.json`` (type,
size, dimension, build time, recall@10 against exact search, search parameters) and, for types that
cannot delete (HNSW), ``<name>.tombstones.json``: removed ids stay in the graph, are excluded from
every search with an ``IDSelectorNot``, and the graph is rebuilt from the live vectors (compaction)
once tombstones pass ``COMPACT_RATIO`` of it. Flat and IVF indexes delete for real.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from listing_search.index.select import FLAT, HNSW, IVF_KINDS, IndexChoice, choose_index
from listing_search.pipeline import atomic_path, atomic_write_text

log = logging.getLogger(__name__)

COMPACT_RATIO = 0.2
SUBSET_EXACT_MAX = 20_000  # filtered searches over at most this many ids are done exactly
RECALL_TARGET = 0.95
RECALL_K = 10


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
        self._apply_params(infos.get("search_params", {}))

    # ----------------------------------------------------------------- build / persist
    @classmethod
    def build(
        cls, vectors: np.ndarray, ids: np.ndarray, memory_budget_mb: int = 1536, exact_max: int = 200_000,
        recall_sample: int = 200, kind: str | None = None, seed: int = 0, choice: IndexChoice | None = None,
        search_params: dict | None = None,
    ) -> "VectorIndex":
        """Choose the type, train if needed, add, tune search parameters and measure recall@10.

        A rebuild passes the builder's recorded ``choice`` and ``search_params``: the same structure,
        no new tuning.
        """
        t0 = time.perf_counter()
        x, ids = normalise(vectors), np.asarray(ids, dtype=np.int64)
        if len(x) != len(ids) or len(np.unique(ids)) != len(ids):
            raise ValueError("ids must be unique and one per vector")
        choice = choice or choose_index(len(x), x.shape[1], memory_budget_mb, exact_max, kind)
        index = _new_index(choice, x.shape[1], x, seed)
        index.add_with_ids(x, ids)
        infos = {
            "kind": choice.kind, "factory": choice.factory, "dimension": int(x.shape[1]),
            "size": int(len(x)), "metric": "cosine (inner product of unit vectors)",
            "choice": choice.to_json(), "memory_budget_mb": memory_budget_mb, "exact_max": exact_max,
        }
        self = cls(index, choice.kind, infos)
        if search_params is None:
            self._tune(x, ids, recall_sample, seed)
        else:
            self._apply_params(search_params)
        self.infos["build_seconds"] = round(time.perf_counter() - t0, 3)
        self.infos["built_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        log.info("index %s: %d x %d, recall@10 %s", choice.factory, len(x), x.shape[1], self.infos.get("recall_at_10"))
        return self

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
        self._apply_params(self.infos.get("search_params", {}))
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
        """Stored (unit) vectors of ``ids``; approximate for IVF-PQ."""
        ids = np.asarray(ids, dtype=np.int64)
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        for row, i in enumerate(ids):
            out[row] = self.index.reconstruct(int(i))
        return out

    def reconstruct_present(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ids that are live, their vectors): unknown and tombstoned ids are skipped, not errors."""
        kept, rows = [], []
        for i in np.asarray(ids, dtype=np.int64):
            if int(i) in self.tombstones:
                continue
            try:
                rows.append(self.index.reconstruct(int(i)))
            except RuntimeError:  # FAISS: id not in the index
                continue
            kept.append(int(i))
        vectors = np.stack(rows).astype(np.float32) if rows else np.empty((0, self.dim), np.float32)
        return np.array(kept, np.int64), vectors

    # ----------------------------------------------------------------- search
    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> SearchResult:
        """Top ``k`` by cosine, optionally only among ``allowed`` ids (exact for small subsets)."""
        q = normalise(queries)
        if allowed is not None:
            allowed = np.asarray(allowed, dtype=np.int64)
            if self.tombstones:
                allowed = allowed[~np.isin(allowed, np.fromiter(self.tombstones, np.int64))]
            if len(allowed) == 0 or k <= 0:
                return SearchResult([np.empty(0, np.float32)] * len(q), [np.empty(0, np.int64)] * len(q))
            if self.kind != FLAT and len(allowed) <= SUBSET_EXACT_MAX:
                return self._search_subset(q, k, allowed)
        k = int(min(k, self.size if allowed is None else len(allowed)))
        if k <= 0:
            return SearchResult([np.empty(0, np.float32)] * len(q), [np.empty(0, np.int64)] * len(q))
        params, _keep = self._params(allowed)
        scores, ids = self.index.search(q, k, params=params)
        keep = ids >= 0
        return SearchResult([s[m] for s, m in zip(scores, keep)], [i[m] for i, m in zip(ids, keep)])

    def _search_subset(self, q: np.ndarray, k: int, allowed: np.ndarray) -> SearchResult:
        # An allowed id missing from the index (catalogue ahead of it after a crash) is skipped.
        allowed, x = self.reconstruct_present(allowed)
        if not len(allowed):
            return SearchResult([np.empty(0, np.float32)] * len(q), [np.empty(0, np.int64)] * len(q))
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
            sel = faiss.IDSelectorBatch(allowed)
            keep.append(sel)
        if self.tombstones:
            dead = faiss.IDSelectorBatch(np.fromiter(self.tombstones, np.int64))
            not_dead = faiss.IDSelectorNot(dead)
            keep += [dead, not_dead]
            sel = not_dead if sel is None else faiss.IDSelectorAnd(sel, not_dead)
            keep.append(sel)
        sp = self.infos.get("search_params", {})
        if self.kind == HNSW:
            params = faiss.SearchParametersHNSW(efSearch=int(sp.get("efSearch", 64)))
        elif self.kind in IVF_KINDS:
            params = faiss.SearchParametersIVF(nprobe=int(sp.get("nprobe", 8)))
        elif sel is None:
            return None, keep
        else:
            params = faiss.SearchParameters()
        if sel is not None:
            params.sel = sel
        keep.append(params)
        return params, keep

    def _apply_params(self, sp: dict) -> None:
        self.infos["search_params"] = dict(sp)

    # ----------------------------------------------------------------- tuning / recall
    def _tune(self, x: np.ndarray, ids: np.ndarray, sample: int, seed: int) -> None:
        """Smallest efSearch / nprobe reaching ``RECALL_TARGET``; records recall@10 in the infos."""
        rng = np.random.default_rng(seed)
        rows = rng.choice(len(x), size=min(sample, len(x)), replace=False)
        q, own = x[rows], ids[rows]
        # Leave-one-out: a query's own vector is not one of its neighbours (it would flatter recall).
        truth = _without(exact_top_k(x, ids, q, RECALL_K + 1), own, RECALL_K)
        row_of = {int(i): r for r, i in enumerate(ids)}
        if self.kind == HNSW:
            grid = [("efSearch", v) for v in (16, 32, 64, 128, 256, 512)]
        elif self.kind in IVF_KINDS:
            nlist = self.infos["choice"]["nlist"]
            grid = [("nprobe", v) for v in (1, 2, 4, 8, 16, 32, 64, 128, 256) if v <= nlist] or [("nprobe", 1)]
        else:
            grid = [("exact", 0)]
        recall = 0.0
        for name, value in grid:
            if name != "exact":
                self._apply_params({name: value})
            found = _without(self.search(q, RECALL_K + 1).ids, own, RECALL_K)
            recall = recall_with_ties(found, truth, q, x, row_of)
            if recall >= RECALL_TARGET:
                break
        self.infos["recall_at_10"] = round(float(recall), 4)
        self.infos["recall_sample"] = int(len(q))


def exact_top_k(x: np.ndarray, ids: np.ndarray, q: np.ndarray, k: int, chunk: int = 65_536) -> list[np.ndarray]:
    """Brute-force reference: ids of the ``k`` most similar rows of unit ``x`` for each query."""
    best_s = np.full((len(q), 0), -np.inf, np.float32)
    best_i = np.empty((len(q), 0), np.int64)
    for start in range(0, len(x), chunk):
        sims = q @ x[start : start + chunk].T
        s = np.concatenate([best_s, sims], 1)
        i = np.concatenate([best_i, np.broadcast_to(ids[start : start + chunk], sims.shape)], 1)
        top = np.argsort(-s, axis=1, kind="stable")[:, :k]
        best_s, best_i = np.take_along_axis(s, top, 1), np.take_along_axis(i, top, 1)
    return list(best_i)


def recall_with_ties(found: list[np.ndarray], truth: list[np.ndarray], q: np.ndarray, x: np.ndarray,
                     row_of: dict[int, int]) -> float:
    """Recall where a found vector as close as the k-th true neighbour counts as a hit.

    Duplicate photos have identical vectors; which of them an exact search returns is arbitrary,
    and plain id overlap would report an exact index below 1.
    """
    hits = []
    for f, t, qi in zip(found, truth, q):
        if len(t) == 0:
            continue
        kth = float(x[row_of[int(t[-1])]] @ qi)
        sims = x[[row_of[int(i)] for i in f]] @ qi if len(f) else np.empty(0)
        hits.append(min(len(t), int((sims >= kth - 1e-5).sum())) / len(t))
    return float(np.mean(hits)) if hits else 1.0


def recall_at(found: list[np.ndarray], truth: list[np.ndarray]) -> float:
    """Share of the true neighbours found, averaged over queries."""
    hits = [len(set(f.tolist()) & set(t.tolist())) / max(len(t), 1) for f, t in zip(found, truth)]
    return float(np.mean(hits)) if hits else 1.0


def _without(found: list[np.ndarray], own: np.ndarray, k: int) -> list[np.ndarray]:
    """Each row without its query's own id, cut to ``k``."""
    return [row[row != o][:k] for row, o in zip(found, own)]


def infos_path(path: Path) -> Path:
    return Path(path).with_suffix(".infos.json")


def tombstones_path(path: Path) -> Path:
    return Path(path).with_suffix(".tombstones.json")


def _new_index(choice: IndexChoice, dim: int, train: np.ndarray, seed: int) -> faiss.Index:
    """An empty index with int64 ids; IVF is trained on ``train`` and keeps a hashtable id map."""
    if choice.kind == FLAT:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    if choice.kind == HNSW:
        return faiss.IndexIDMap2(faiss.index_factory(dim, choice.factory, faiss.METRIC_INNER_PRODUCT))
    index = faiss.index_factory(dim, choice.factory, faiss.METRIC_INNER_PRODUCT)
    ivf = faiss.extract_index_ivf(index)
    ivf.cp.seed = seed
    index.train(train)
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
