"""Ranker score -> P(relevant), relevant = grade >= 1 (same root category as the query).

A ranker's score orders candidates but means nothing on its own (LambdaMART's is unbounded, the
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

from listing_search.pipeline import atomic_write_text

log = logging.getLogger(__name__)

MIN_POINTS = 50
FALLBACK = "all"


@dataclass
class Calibrator:
    x: np.ndarray  # [B] score thresholds, strictly increasing
    y: np.ndarray  # [B] P(relevant) at each threshold, non-decreasing, in [0, 1]
    report: dict = field(default_factory=dict)

    def apply(self, scores: np.ndarray) -> np.ndarray:
        """P(relevant) per score: linear between breakpoints, flat beyond them; NaN scores -> 0."""
        s = np.asarray(scores, np.float64)
        p = np.interp(s, self.x, self.y)  # +-inf land on the end values
        return np.clip(np.where(np.isnan(s), 0.0, p), 0.0, 1.0)

    def to_json(self) -> dict:
        return {"kind": "isotonic", "target": "P(grade >= 1)", "x": self.x.tolist(), "y": self.y.tolist(),
                "report": self.report}

    @classmethod
    def from_json(cls, d: dict) -> "Calibrator":
        x, y = np.asarray(d["x"], np.float64), np.asarray(d["y"], np.float64)
        if len(x) == 0 or len(x) != len(y) or (np.diff(x) <= 0).any() or (np.diff(y) < 0).any():
            raise ValueError("calibrator breakpoints must be non-empty, x increasing and y non-decreasing")
        return cls(x, y, d.get("report", {}))

    def save(self, path: Path) -> None:
        atomic_write_text(Path(path), json.dumps(self.to_json(), indent=1))

    @classmethod
    def load(cls, path: Path) -> "Calibrator":
        return cls.from_json(json.loads(Path(path).read_text()))


def fit_calibrator(scores: np.ndarray, grades: np.ndarray, min_points: int = MIN_POINTS) -> Calibrator:
    """Isotonic fit of (grades >= 1) on the finite scores; ValueError when the data cannot support one."""
    from sklearn.isotonic import IsotonicRegression

    s, rel = np.asarray(scores, np.float64), np.asarray(grades) >= 1
    if len(s) != len(rel):
        raise ValueError(f"{len(s)} scores for {len(rel)} grades")
    finite = np.isfinite(s)
    s, rel = s[finite], rel[finite]
    if len(s) < min_points:
        raise ValueError(f"calibration needs at least {min_points} finite scores, got {len(s)}")
    if rel.all() or not rel.any():
        raise ValueError(f"calibration needs relevant and irrelevant examples, got only "
                         f"{'relevant' if rel.all() else 'irrelevant'} ({len(s)} points)")
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(s, rel.astype(np.float64))
    report = {"n": int(len(s)), "n_relevant": int(rel.sum()), "n_non_finite_dropped": int((~finite).sum()),
              "breakpoints": int(len(iso.X_thresholds_))}
    # no in-sample ECE here: isotonic fits are near 0 on their own data by construction; measure held out
    return Calibrator(np.asarray(iso.X_thresholds_, np.float64), np.asarray(iso.y_thresholds_, np.float64), report)


@dataclass
class ModeCalibrator:
    calibrators: dict[str, Calibrator]  # query mode ("text", "image", "both") -> calibrator, plus "all"

    def apply(self, scores: np.ndarray, mode: str) -> np.ndarray:
        """Calibrated with the mode's own calibrator, or the "all" one when the mode had too little data."""
        return self.calibrators.get(mode, self.calibrators[FALLBACK]).apply(scores)

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


def fit_mode_calibrator(scores: np.ndarray, grades: np.ndarray, modes: np.ndarray,
                        min_points: int = MIN_POINTS) -> ModeCalibrator:
    """One calibrator over all rows (must succeed) and one per mode whose rows support a fit."""
    modes = np.asarray(modes, dtype=object)
    calibrators = {FALLBACK: fit_calibrator(scores, grades, min_points)}
    for mode in sorted(set(modes.tolist()) - {FALLBACK}):
        rows = modes == mode
        try:
            calibrators[mode] = fit_calibrator(np.asarray(scores)[rows], np.asarray(grades)[rows], min_points)
        except ValueError as e:
            log.info("calibration: mode %r uses the %r calibrator: %s", mode, FALLBACK, e)
    return ModeCalibrator(calibrators)


def _bins_of(probs: np.ndarray, labels: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p, y = np.asarray(probs, np.float64), np.asarray(labels, np.float64)
    if len(p) != len(y) or len(p) == 0:
        raise ValueError(f"need as many labels as probabilities, at least one: got {len(p)} and {len(y)}")
    if not np.isfinite(p).all() or p.min() < 0 or p.max() > 1:
        raise ValueError("probabilities must be finite and within [0, 1]")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("labels must be 0/1 (relevant = grade >= 1), not grades")
    return p, y, np.minimum((p * bins).astype(np.int64), bins - 1)  # equal width; 1.0 goes to the last bin


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """Sum over equal-width bins of (share of points) x |mean probability - observed rate|."""
    p, y, b = _bins_of(probs, labels, bins)
    gap = np.abs(np.bincount(b, p, bins) - np.bincount(b, y, bins))  # per-bin sums; |sum p - sum y| = n |mean gap|
    return float(gap.sum() / len(p))


def reliability_table(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> list[dict]:
    """Per equal-width bin: its bounds, how many points, their mean probability and observed rate."""
    p, y, b = _bins_of(probs, labels, bins)
    n = np.bincount(b, minlength=bins)
    sp, sy = np.bincount(b, p, bins), np.bincount(b, y, bins)
    return [{"lo": i / bins, "hi": (i + 1) / bins, "n": int(n[i]),
             "mean_prob": round(float(sp[i] / n[i]), 4) if n[i] else None,
             "observed_rate": round(float(sy[i] / n[i]), 4) if n[i] else None} for i in range(bins)]
