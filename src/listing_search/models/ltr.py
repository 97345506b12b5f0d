"""LambdaMART re-ranker, applied: gradient-boosted trees (LightGBM, ``lambdarank``) over the pair features.

The ordinal logistic ``Ranker`` is linear in the features, so it cannot learn "grade 2 only when the
text AND the photo agree"; trees can. The model optimises nDCG@10 directly with gains [0, 1, 3]
(= 2^grade - 1, the gain ``ndcg_at_k`` uses). ``ranker.json`` carries ``kind: "lambdamart"``, the
feature names, the LightGBM model as its text dump, the training parameters, and which split (and
which listing ids, hashed) the fit saw, like the ordinal ranker.

LightGBM is imported lazily, so loading an ordinal ``ranker.json`` never imports it (nor the pandas
LightGBM pulls in when installed). Scoring holds a lock: the C API's predictor set-up writes to the
shared booster (LightGBM issue #6142), so concurrent ``predict`` calls on one booster are a data race.
"""

from __future__ import annotations

import json
import logging
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

    def __post_init__(self) -> None:
        import lightgbm

        self._booster = lightgbm.Booster(model_str=self.model)
        if self._booster.num_feature() != len(self.features):
            raise ValueError(f"LightGBM model has {self._booster.num_feature()} features, "
                             f"ranker.json names {len(self.features)}")

    def score(self, x: np.ndarray) -> np.ndarray:
        """Relevance score of each row of pair features [N, F] (higher is better; not a probability)."""
        x = np.asarray(x, np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.features):
            raise ValueError(f"expected pair features [N, {len(self.features)}], got shape {x.shape}")
        if len(x) == 0:
            return np.zeros(0, np.float64)
        with self._lock:
            return np.asarray(self._booster.predict(x, num_threads=1), np.float64)

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
