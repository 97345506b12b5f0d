"""The learned re-ranker: ordinal logistic regression over pair features, scored with numpy only.

Relevance is graded (same full category path = 2, same root category = 1, else 0). Two logistic
regressions learn P(grade >= 1) and P(grade >= 2); the score is their sum, the expected grade,
which orders by what nDCG rewards. ``ranker.json`` carries the feature names, the standardisation,
the weights, and which split (and which listing ids, hashed) the fit saw.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from listing_search.pipeline import atomic_write_text

if TYPE_CHECKING:
    from listing_search.rank.ltr import LambdaMartRanker

ORDINAL = "ordinal_logistic_regression"


def ids_sha(ids: np.ndarray | list[str]) -> str:
    """Order-free fingerprint of a set of listing ids (recorded with every fit)."""
    return hashlib.sha256("\n".join(sorted(map(str, ids))).encode()).hexdigest()


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


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


def fit_ranker(x: np.ndarray, grades: np.ndarray, features: list[str], fit_listing_ids: list[str],
               c: float = 1.0) -> Ranker:
    """Fit the ordinal model on pair features [N, F] and grades [N] in {0, 1, 2}."""
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(0), x.std(0)
    scale = np.where(scale > 1e-6, scale, 1.0)
    z = (x - mean) / scale
    weights, biases = [], []
    for threshold in (1, 2):
        y = (grades >= threshold).astype(int)
        if y.min() == y.max():
            weights.append(np.zeros(x.shape[1]))
            biases.append(10.0 if y[0] else -10.0)
            continue
        model = LogisticRegression(C=c, max_iter=1000).fit(z, y)
        weights.append(model.coef_[0])
        biases.append(float(model.intercept_[0]))
    return Ranker(list(features), mean.astype(np.float32), scale.astype(np.float32),
                  np.asarray(weights, np.float32), np.asarray(biases, np.float32), "train",
                  sorted(map(str, fit_listing_ids)))


def ranker_from_json(d: dict) -> "Ranker | LambdaMartRanker":
    """Either kind of ranker from its JSON; files written before ``kind`` existed are ordinal."""
    kind = d.get("kind", ORDINAL)
    if kind == ORDINAL:
        return Ranker.from_json(d)
    if kind == "lambdamart":
        from listing_search.rank.ltr import LambdaMartRanker  # lazy: LightGBM only when this kind is used

        return LambdaMartRanker.from_json(d)
    raise ValueError(f"unknown ranker kind {kind!r}: expected {ORDINAL!r} or 'lambdamart'")


def load_ranker(path: Path) -> "Ranker | LambdaMartRanker":
    """Load ``ranker.json`` of either kind."""
    return ranker_from_json(json.loads(Path(path).read_text()))
