"""The re-ranker: a registry of kinds, each loaded from ``ranker.json`` and scoring pair features.

``ranker.json`` names its ``kind``; :data:`KINDS` maps each kind to the class that loads it,
imported only when used (LightGBM is imported only for ``lambdamart``). Adding a kind means one
entry here and a class with ``from_json``, ``score`` and ``name``.

The ordinal logistic model below grades relevance as 2 (same category path), 1 (same root) or 0:
two logistic regressions learn P(grade >= 1) and P(grade >= 2); its score is their sum, the
expected grade, which orders by what nDCG rewards.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from listing_search.core.maths import sigmoid
from listing_search.core.splits import ids_sha
from listing_search.pipeline import atomic_write_text

ORDINAL = "ordinal_logistic_regression"
LAMBDAMART = "lambdamart"
# kind -> "module:Class"; classes are imported on first use
KINDS = {ORDINAL: "listing_search.models.ranker:Ranker", LAMBDAMART: "listing_search.models.ltr:LambdaMartRanker"}


class RankerModel(Protocol):
    """What serving needs of any ranker kind."""

    name: str  # short kind name for versions: "ordinal_logistic", "lambdamart"
    features: list[str]

    def score(self, x: np.ndarray) -> np.ndarray: ...


@dataclass
class Ranker:
    features: list[str]
    mean: np.ndarray  # [F]
    scale: np.ndarray  # [F]
    weights: np.ndarray  # [G, F], one row per grade threshold (>=1, >=2)
    biases: np.ndarray  # [G]
    fit_split: str = "train"
    fit_listing_ids: list[str] = field(default_factory=list)
    report: dict = field(default_factory=dict)
    name = "ordinal_logistic"

    def score(self, x: np.ndarray) -> np.ndarray:
        """Expected relevance grade of each row of pair features [N, F]."""
        z = ((np.asarray(x, np.float32) - self.mean) / self.scale) @ self.weights.T + self.biases
        return sigmoid(z).sum(axis=1)

    def to_json(self) -> dict:
        return {"kind": ORDINAL, "features": self.features, "mean": self.mean.tolist(),
                "scale": self.scale.tolist(), "weights": self.weights.tolist(), "biases": self.biases.tolist(),
                "grades": "same category path = 2, same root category = 1, else 0",
                "fit_split": self.fit_split, "fit_listing_ids_sha": ids_sha(self.fit_listing_ids),
                "n_fit_listings": len(self.fit_listing_ids), "fit_listing_ids": self.fit_listing_ids,
                "report": self.report}

    @classmethod
    def from_json(cls, d: dict) -> "Ranker":
        if d.get("kind", ORDINAL) != ORDINAL:
            raise ValueError(f"not an ordinal ranker: kind {d['kind']!r} (use load_ranker)")
        return cls(list(d["features"]), np.asarray(d["mean"], np.float32), np.asarray(d["scale"], np.float32),
                   np.asarray(d["weights"], np.float32), np.asarray(d["biases"], np.float32),
                   d.get("fit_split", "train"), list(d.get("fit_listing_ids", [])), d.get("report", {}))

    def save(self, path: Path) -> None:
        atomic_write_text(Path(path), json.dumps(self.to_json(), indent=1))

    @classmethod
    def load(cls, path: Path) -> "Ranker":
        return cls.from_json(json.loads(Path(path).read_text()))

    @classmethod
    def default(cls, features: list[str]) -> "Ranker":
        """Hand weights used before ``tune-ranker`` has run: text and photo cosine, equally."""
        w = np.array([[1.0 if f in ("text_cos", "image_cos") else 0.0 for f in features]], np.float32)
        return cls(list(features), np.zeros(len(features), np.float32), np.ones(len(features), np.float32),
                   w, np.zeros(1, np.float32), fit_split="none")


def ranker_class(kind: str) -> type:
    """The class that loads rankers of ``kind``; ValueError naming the known kinds otherwise."""
    if kind not in KINDS:
        raise ValueError(f"unknown ranker kind {kind!r}: expected one of {sorted(KINDS)}")
    module, name = KINDS[kind].split(":")
    return getattr(importlib.import_module(module), name)


def ranker_from_json(d: dict) -> RankerModel:
    """A ranker of whichever kind ``d`` names (files written before ``kind`` existed are ordinal)."""
    return ranker_class(d.get("kind", ORDINAL)).from_json(d)


def load_ranker(path: Path) -> RankerModel:
    """Load ``ranker.json`` of any registered kind."""
    return ranker_from_json(json.loads(Path(path).read_text()))
