"""Ranker score -> P(relevant), relevant = grade >= 1 (same root category as the query), applied.

``fit.calibration`` fits it. A ranker's score orders candidates but means nothing on its own (LambdaMART's is unbounded, the
ordinal ranker's is an expected grade); a threshold ("hide results under 30 %") or a confidence shown
to users needs a probability. Isotonic regression is fit at fit time (scikit-learn) but only its
breakpoints are stored, so serving is ``np.interp`` (numpy only). Scores mean different things for
text, photo and text+photo queries, so ``ModeCalibrator`` keeps one calibrator per query mode with an
"all" fallback for modes too rare to fit.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from listing_search.core.query import MODE_FALLBACK
from listing_search.pipeline import atomic_write_text

log = logging.getLogger(__name__)

MIN_POINTS = 50
FALLBACK = "all"


@dataclass
class Calibrator:
    x: np.ndarray  # [B] score thresholds, strictly increasing
    y: np.ndarray  # [B] P(relevant) at each threshold, non-decreasing, in [0, 1]
    report: dict = field(default_factory=dict)
    target: str = "P(grade >= 1)"  # what it estimates: same root (>= 1) or same full category path (>= 2)

    def apply(self, scores: np.ndarray) -> np.ndarray:
        """P(relevant) per score: linear between breakpoints, flat beyond them; NaN scores -> 0."""
        s = np.asarray(scores, np.float64)
        p = np.interp(s, self.x, self.y)  # +-inf land on the end values
        return np.clip(np.where(np.isnan(s), 0.0, p), 0.0, 1.0)

    def to_json(self) -> dict:
        return {"kind": "isotonic", "target": self.target, "x": self.x.tolist(), "y": self.y.tolist(),
                "report": self.report}

    @classmethod
    def from_json(cls, d: dict) -> "Calibrator":
        x, y = np.asarray(d["x"], np.float64), np.asarray(d["y"], np.float64)
        if len(x) == 0 or len(x) != len(y) or (np.diff(x) <= 0).any() or (np.diff(y) < 0).any():
            raise ValueError("calibrator breakpoints must be non-empty, x increasing and y non-decreasing")
        return cls(x, y, d.get("report", {}), d.get("target", "P(grade >= 1)"))

    def save(self, path: Path) -> None:
        atomic_write_text(Path(path), json.dumps(self.to_json(), indent=1))

    @classmethod
    def load(cls, path: Path) -> "Calibrator":
        return cls.from_json(json.loads(Path(path).read_text()))


@dataclass
class ModeCalibrator:
    calibrators: dict[str, Calibrator]  # query mode ("text", "image", "both") -> calibrator, plus "all"

    def apply(self, scores: np.ndarray, mode: str) -> np.ndarray:
        """Calibrated with the mode's own calibrator, else its fallback mode's, else the "all" one (a
        mode with too little data, or a file fit before the mode existed)."""
        fallback = self.calibrators.get(MODE_FALLBACK.get(mode, FALLBACK), self.calibrators[FALLBACK])
        return self.calibrators.get(mode, fallback).apply(scores)

    def to_json(self) -> dict:
        return {"kind": "mode_calibrator", "fallback": FALLBACK,
                "calibrators": {m: c.to_json() for m, c in self.calibrators.items()}}

    @classmethod
    def from_json(cls, d: dict) -> "ModeCalibrator":
        calibrators = {m: Calibrator.from_json(c) for m, c in d["calibrators"].items()}
        if FALLBACK not in calibrators:
            raise ValueError(f"mode calibrator has no {FALLBACK!r} fallback")
        return cls(calibrators)

    def save(self, path: Path) -> None:
        atomic_write_text(Path(path), json.dumps(self.to_json(), indent=1))

    @classmethod
    def load(cls, path: Path) -> "ModeCalibrator":
        return cls.from_json(json.loads(Path(path).read_text()))
