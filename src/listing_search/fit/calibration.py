"""Fitting relevance calibration (``models.calibrate``): isotonic regression per query mode."""

from __future__ import annotations

import logging

import numpy as np

from listing_search.models.calibrate import FALLBACK, MIN_POINTS, Calibrator, ModeCalibrator

log = logging.getLogger(__name__)


def fit_calibrator(scores: np.ndarray, grades: np.ndarray, min_points: int = MIN_POINTS,
                   min_grade: int = 1) -> Calibrator:
    """Isotonic fit of (grades >= ``min_grade``) on the finite scores; ValueError when the data cannot
    support one. ``min_grade`` 1: P(same root category); 2: P(same full category path)."""
    from sklearn.isotonic import IsotonicRegression

    s, rel = np.asarray(scores, np.float64), np.asarray(grades) >= min_grade
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
    return Calibrator(np.asarray(iso.X_thresholds_, np.float64), np.asarray(iso.y_thresholds_, np.float64), report,
                      target=f"P(grade >= {min_grade})")


def fit_mode_calibrator(scores: np.ndarray, grades: np.ndarray, modes: np.ndarray,
                        min_points: int = MIN_POINTS, min_grade: int = 1) -> ModeCalibrator:
    """One calibrator over all rows (must succeed) and one per mode whose rows support a fit."""
    modes = np.asarray(modes, dtype=object)
    calibrators = {FALLBACK: fit_calibrator(scores, grades, min_points, min_grade)}
    for mode in sorted(set(modes.tolist()) - {FALLBACK}):
        rows = modes == mode
        try:
            calibrators[mode] = fit_calibrator(np.asarray(scores)[rows], np.asarray(grades)[rows], min_points,
                                               min_grade)
        except ValueError as e:
            log.info("calibration: mode %r uses the %r calibrator: %s", mode, FALLBACK, e)
    return ModeCalibrator(calibrators)
