"""Calibration: isotonic breakpoints served with np.interp, ECE against hand-made cases, per-mode fallback."""

from __future__ import annotations

import json

import numpy as np
import pytest

from listing_search.core.grading import expected_calibration_error, reliability_table
from listing_search.fit.calibration import fit_calibrator, fit_mode_calibrator
from listing_search.models.calibrate import Calibrator, ModeCalibrator


def scored(n: int, seed: int, slope: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Raw scores whose true P(grade >= 1) is sigmoid(slope * score); grades 0, 1 or 2."""
    rng = np.random.default_rng(seed)
    s = rng.normal(size=n)
    relevant = rng.uniform(size=n) < 1 / (1 + np.exp(-slope * s))
    return s, np.where(relevant, rng.integers(1, 3, n), 0)


def test_calibrated_probabilities_beat_a_miscalibrated_sigmoid_on_held_out_data():
    cal = fit_calibrator(*scored(3000, seed=0))
    s, g = scored(3000, seed=1)
    labels = g >= 1
    ours = expected_calibration_error(cal.apply(s), labels)
    overconfident = expected_calibration_error(1 / (1 + np.exp(-(6 * s + 1))), labels)
    assert ours < 0.04 and overconfident > 0.1 and ours < overconfident / 3, (ours, overconfident)


def test_monotone_bounded_never_nan_and_equal_to_sklearn():
    from sklearn.isotonic import IsotonicRegression

    s, g = scored(500, seed=2)
    cal = fit_calibrator(s, g)
    grid = np.linspace(-6, 6, 2001)
    p = cal.apply(grid)
    assert (np.diff(p) >= 0).all() and p.min() >= 0 and p.max() <= 1
    reference = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(s, g >= 1).predict(grid)
    np.testing.assert_allclose(p, reference, atol=1e-12)
    odd = cal.apply(np.array([np.nan, np.inf, -np.inf]))
    assert odd.tolist() == [0.0, cal.y[-1], cal.y[0]]
    assert cal.apply(np.zeros(0)).shape == (0,)


def test_fit_drops_non_finite_scores_and_refuses_what_it_cannot_fit():
    s, g = scored(200, seed=3)
    s[:5] = np.nan
    assert fit_calibrator(s, g).report["n_non_finite_dropped"] == 5
    with pytest.raises(ValueError, match="only irrelevant"):
        fit_calibrator(s, np.zeros_like(g))
    with pytest.raises(ValueError, match="only relevant"):
        fit_calibrator(s, np.full_like(g, 2))
    with pytest.raises(ValueError, match="at least 50 finite scores, got 40"):
        fit_calibrator(s[5:45], g[5:45])


def test_json_round_trip(tmp_path):
    cal = fit_calibrator(*scored(400, seed=4))
    cal.save(tmp_path / "calibrator.json")
    back = Calibrator.load(tmp_path / "calibrator.json")
    grid = np.linspace(-4, 4, 101)
    np.testing.assert_array_equal(back.apply(grid), cal.apply(grid))
    with pytest.raises(ValueError, match="x increasing"):
        Calibrator.from_json({"x": [1.0, 0.0], "y": [0.1, 0.2]})


def test_mode_calibrators_differ_by_mode_and_fall_back_to_all(tmp_path):
    ts, tg = scored(600, seed=5, slope=1.0)  # text scores: weak evidence
    is_, ig = scored(600, seed=6, slope=6.0)  # image scores: strong evidence
    bs, bg = scored(30, seed=7)  # too few "both" queries to fit their own
    modes = np.array(["text"] * 600 + ["image"] * 600 + ["both"] * 30, dtype=object)
    mc = fit_mode_calibrator(np.r_[ts, is_, bs], np.r_[tg, ig, bg], modes)
    assert set(mc.calibrators) == {"all", "text", "image"}
    assert mc.apply(np.array([1.0]), "image")[0] > mc.apply(np.array([1.0]), "text")[0] + 0.1
    np.testing.assert_array_equal(mc.apply(ts, "both"), mc.calibrators["all"].apply(ts))
    np.testing.assert_array_equal(mc.apply(ts, "voice"), mc.calibrators["all"].apply(ts))
    mc.save(tmp_path / "calibration.json")
    back = ModeCalibrator.load(tmp_path / "calibration.json")
    for mode in ("text", "image", "both"):
        np.testing.assert_array_equal(back.apply(ts, mode), mc.apply(ts, mode))
    with pytest.raises(ValueError, match="fallback"):
        ModeCalibrator.from_json({"calibrators": {"text": mc.calibrators["text"].to_json()}})


def test_ece_of_a_perfect_construction_is_zero_and_of_a_constant_wrong_one_large():
    centres = np.arange(10) / 10 + 0.05  # each bin's points carry its centre; exactly that share is relevant
    probs = np.repeat(centres, 100)
    labels = np.concatenate([np.arange(100) < round(c * 100) for c in centres])
    assert expected_calibration_error(probs, labels) == pytest.approx(0.0, abs=1e-12)
    assert expected_calibration_error(np.full(200, 0.9), np.zeros(200)) == pytest.approx(0.9)
    half = np.r_[np.full(100, 0.0), np.full(100, 1.0)]
    assert expected_calibration_error(half, np.r_[np.ones(100), np.zeros(100)]) == pytest.approx(1.0)


def test_reliability_table_bins():
    probs = np.array([0.0, 0.05, 0.35, 1.0])
    table = reliability_table(probs, np.array([0, 1, 1, 1]), bins=4)
    assert [(r["lo"], r["hi"], r["n"]) for r in table] == [(0.0, 0.25, 2), (0.25, 0.5, 1), (0.5, 0.75, 0),
                                                          (0.75, 1.0, 1)]
    assert table[0]["mean_prob"] == 0.025 and table[0]["observed_rate"] == 0.5
    assert table[2]["mean_prob"] is None and table[2]["observed_rate"] is None
    json.dumps(table)
    with pytest.raises(ValueError, match="within"):
        expected_calibration_error(np.array([1.5]), np.array([1]))
    with pytest.raises(ValueError, match="not grades"):
        expected_calibration_error(np.array([0.5]), np.array([2]))
