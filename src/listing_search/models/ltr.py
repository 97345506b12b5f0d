"""LambdaMART re-ranker, applied: gradient-boosted trees (LightGBM, ``lambdarank``) over the pair features.

The ordinal logistic ``Ranker`` is linear in the features, so it cannot learn "grade 2 only when the
text AND the photo agree"; trees can. The model optimises nDCG@10 directly with gains [0, 1, 3]
(= 2^grade - 1, the gain ``ndcg_at_k`` uses). ``ranker.json`` carries ``kind: "lambdamart"``, the
feature names, the LightGBM model as its text dump, the training parameters, and which split (and
which listing ids, hashed) the fit saw, like the ordinal ranker.

LightGBM is imported lazily, so loading an ordinal ``ranker.json`` never imports it (nor the pandas
LightGBM pulls in when installed).

Scoring runs the trees compiled to native code by ``lleaves`` (LLVM, in memory, once per model per
process: ~0.5 s for 200 trees): a search's ~300 candidates score in ~45 us against ~650 us through
``Booster.predict``, which spends most of it setting up per call; the compiled function holds no state
and runs without the GIL. Its scores equal LightGBM's to ~1e-15 (the order of a float sum), which
orders nothing differently (bench/bench_ranker_predict.py). Where lleaves or LLVM cannot be had or the
compile fails, scoring falls back to ``Booster.predict`` (logged once), under a lock: the C API's
predictor set-up writes to the shared booster (LightGBM issue #6142), so concurrent ``predict`` calls
on one booster are a data race.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from listing_search.pipeline import atomic_write_text
from listing_search.core.splits import ids_sha
from listing_search.models.ranker import LAMBDAMART

log = logging.getLogger(__name__)

KIND = LAMBDAMART


@dataclass
class LambdaMartRanker:
    features: list[str]
    model: str  # LightGBM's text dump (``Booster.model_to_string``), only the iterations kept
    params: dict = field(default_factory=dict)
    fit_split: str = "train"
    fit_listing_ids: list[str] = field(default_factory=list)
    report: dict = field(default_factory=dict)
    name = "lambdamart"
    _booster: Any = field(init=False, repr=False, compare=False)
    _lock: threading.Lock = field(init=False, repr=False, compare=False, default_factory=threading.Lock)
    _forest: Any = field(init=False, repr=False, compare=False, default=False)  # False: not yet looked up

    def __post_init__(self) -> None:
        import lightgbm

        self._booster = lightgbm.Booster(model_str=self.model)
        if self._booster.num_feature() != len(self.features):
            raise ValueError(f"LightGBM model has {self._booster.num_feature()} features, "
                             f"ranker.json names {len(self.features)}")

    def score(self, x: np.ndarray) -> np.ndarray:
        """Relevance score of each row of pair features [N, F] (higher is better; not a probability)."""
        x = np.ascontiguousarray(x, np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.features):
            raise ValueError(f"expected pair features [N, {len(self.features)}], got shape {x.shape}")
        if len(x) == 0:
            return np.zeros(0, np.float64)
        compiled = self.compiled()
        if compiled is not None:
            return compiled.predict(x, n_jobs=1)
        with self._lock:
            return np.asarray(self._booster.predict(x, num_threads=1), np.float64)

    def compiled(self) -> Any | None:
        """The model compiled by lleaves (made on first use, shared by every ranker of the same model
        text in this process); None where it cannot be (then ``Booster.predict`` scores)."""
        if self._forest is False:
            self._forest = compiled_forest(self.model)
        return self._forest

    def to_json(self) -> dict:
        return {"kind": KIND, "features": self.features, "model": self.model, "params": self.params,
                "grades": "same category path = 2, same root category = 1, else 0",
                "fit_split": self.fit_split, "fit_listing_ids_sha": ids_sha(self.fit_listing_ids),
                "n_fit_listings": len(self.fit_listing_ids), "fit_listing_ids": self.fit_listing_ids,
                "report": self.report}

    @classmethod
    def from_json(cls, d: dict) -> "LambdaMartRanker":
        if d.get("kind") != KIND:
            raise ValueError(f"not a LambdaMART ranker: kind {d.get('kind')!r}")
        return cls(list(d["features"]), d["model"], dict(d.get("params", {})), d.get("fit_split", "train"),
                   list(d.get("fit_listing_ids", [])), d.get("report", {}))

    def save(self, path: Path) -> None:
        atomic_write_text(Path(path), json.dumps(self.to_json(), indent=1))

    @classmethod
    def load(cls, path: Path) -> "LambdaMartRanker":
        return cls.from_json(json.loads(Path(path).read_text()))


COMPILE_ENV = "LISTING_SEARCH_COMPILED_RANKER"  # "0": score through Booster.predict
_compiled: dict[str, Any] = {}  # sha256 of a model's text -> its lleaves.Model, or None (could not compile)
_compile_lock = threading.Lock()


def compiled_forest(model: str) -> Any | None:
    """``model`` (LightGBM's text dump) compiled to native code by lleaves, once per process and model;
    None when turned off (``LISTING_SEARCH_COMPILED_RANKER=0``) or when lleaves/LLVM fail (logged)."""
    if os.environ.get(COMPILE_ENV, "1") == "0":
        return None
    key = hashlib.sha256(model.encode()).hexdigest()
    with _compile_lock:
        if key not in _compiled:
            _compiled[key] = _compile(model)
            if len(_compiled) > 16:  # fitting compiles a model per trial: keep the newest few
                _compiled.pop(next(iter(_compiled)))
        return _compiled[key]  # an evicted model lives on in the rankers holding it (its code with it)


def _compile(model: str) -> Any | None:
    try:
        import lleaves

        with tempfile.TemporaryDirectory(prefix="lambdamart-") as folder:
            path = Path(folder) / "model.txt"
            path.write_text(model)
            forest = lleaves.Model(model_file=str(path))
            forest.compile()  # in memory, for this machine's CPU: nothing is written or cached
        return forest
    except Exception as exc:  # noqa: BLE001 - any failure leaves LightGBM's own predictor in place
        log.warning("LambdaMART ranker not compiled (%s: %s): scoring with LightGBM's predictor",
                    type(exc).__name__, exc)
        return None
