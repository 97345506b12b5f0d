"""LambdaMART: learns what the linear ranker cannot, round-trips exactly, refits identically, loads by kind."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from listing_search.models.ltr import LambdaMartRanker

from listing_search.fit.ranker import fit_lambdamart
from listing_search.core.grading import ndcg_at_k_groups, precision_at_k_groups
from listing_search.models.ranker import Ranker, load_ranker
from listing_search.fit.ranker import fit_ranker

FEATURES = ["f0", "f1", "f2", "f3"]
LIGHT = {"num_threads": 1, "num_iterations": 60}  # the test machine is small and shared


def synthetic(n_queries: int, per_query: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grade 2 only when f0 > 0.5 AND f1 > 0.5; grade 1 when f2 is in a middle band; 10 % random grades."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(n_queries * per_query, len(FEATURES)))
    grades = np.where((x[:, 0] > 0.5) & (x[:, 1] > 0.5), 2, np.where(np.abs(x[:, 2] - 0.5) < 0.15, 1, 0))
    noisy = rng.uniform(size=len(grades)) < 0.1
    grades[noisy] = rng.integers(0, 3, noisy.sum())
    return x, grades, np.full(n_queries, per_query)


@pytest.fixture(scope="module")
def data():
    return synthetic(60, 30, seed=0), synthetic(40, 30, seed=1)


@pytest.fixture(scope="module")
def lambdamart(data):
    (x, g, q), _ = data
    return fit_lambdamart(x, g, q, FEATURES, ["b", "a"], params=LIGHT)


def test_lambdamart_beats_the_linear_ranker_on_held_out_queries(data, lambdamart):
    (x, g, q), (vx, vg, vq) = data
    ordinal = fit_ranker(x, g, FEATURES, ["a"])
    ours, linear = ndcg_at_k_groups(lambdamart.score(vx), vg, vq), ndcg_at_k_groups(ordinal.score(vx), vg, vq)
    assert ours > linear + 0.04, (ours, linear)
    assert precision_at_k_groups(lambdamart.score(vx), vg, vq) > precision_at_k_groups(ordinal.score(vx), vg, vq)


def test_early_stopping_records_the_best_iteration_and_keeps_only_it(data):
    (x, g, q), valid = data
    ranker = fit_lambdamart(x, g, q, FEATURES, ["a"], params={**LIGHT, "num_iterations": 200}, valid=valid)
    r = ranker.report
    assert 1 <= r["best_iteration"] < r["rounds_run"] <= 200
    assert r["valid_ndcg_at_10"] == pytest.approx(ndcg_at_k_groups(ranker.score(valid[0]), valid[1], valid[2]),
                                                  abs=1e-4)
    assert ranker._booster.current_iteration() == r["best_iteration"]


def test_json_round_trip_scores_identically(data, lambdamart, tmp_path):
    _, (vx, _, _) = data
    back = LambdaMartRanker.from_json(json.loads(json.dumps(lambdamart.to_json())))
    np.testing.assert_array_equal(back.score(vx), lambdamart.score(vx))
    lambdamart.save(tmp_path / "ranker.json")
    saved = json.loads((tmp_path / "ranker.json").read_text())
    assert saved["kind"] == "lambdamart" and saved["features"] == FEATURES and saved["fit_split"] == "train"
    assert saved["fit_listing_ids"] == ["a", "b"] and saved["params"]["seed"] == 7
    np.testing.assert_array_equal(LambdaMartRanker.load(tmp_path / "ranker.json").score(vx), lambdamart.score(vx))


def test_refit_with_the_same_seed_is_identical(data, lambdamart):
    (x, g, q), (vx, _, _) = data
    again = fit_lambdamart(x, g, q, FEATURES, ["a", "b"], params=LIGHT)
    assert again.model == lambdamart.model
    np.testing.assert_array_equal(again.score(vx), lambdamart.score(vx))


def test_score_shapes(lambdamart):
    empty = lambdamart.score(np.zeros((0, len(FEATURES)), np.float32))
    assert empty.shape == (0,)
    assert lambdamart.score(np.ones((3, len(FEATURES)), np.float32)).shape == (3,)
    with pytest.raises(ValueError, match="pair features"):
        lambdamart.score(np.ones((3, 2)))


def test_concurrent_scoring_matches_serial(data, lambdamart):
    _, (vx, _, _) = data
    chunks = np.array_split(vx, 16)
    expected = [lambdamart.score(c) for c in chunks]
    got: list = [None] * len(chunks)

    def work(i: int) -> None:
        for _ in range(5):
            got[i] = lambdamart.score(chunks[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(chunks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for e, g in zip(expected, got):
        np.testing.assert_array_equal(e, g)


def test_bad_training_data_is_refused_with_the_reason(data):
    (x, g, q), _ = data
    with pytest.raises(ValueError, match="sum to"):
        fit_lambdamart(x, g, q[:-1], FEATURES, [], params=LIGHT)
    with pytest.raises(ValueError, match="grades must be"):
        fit_lambdamart(x, np.where(g == 2, 3, g), q, FEATURES, [], params=LIGHT)
    with pytest.raises(ValueError, match="pair features"):
        fit_lambdamart(x, g, q, FEATURES[:3], [], params=LIGHT)


def test_load_ranker_dispatches_on_kind(data, lambdamart, tmp_path):
    (x, g, _), (vx, _, _) = data
    ordinal = fit_ranker(x, g, FEATURES, ["a"])
    ordinal.save(tmp_path / "ordinal.json")
    lambdamart.save(tmp_path / "lambdamart.json")
    legacy = ordinal.to_json()
    del legacy["kind"]
    (tmp_path / "legacy.json").write_text(json.dumps(legacy))

    assert isinstance(load_ranker(tmp_path / "ordinal.json"), Ranker)
    assert isinstance(load_ranker(tmp_path / "legacy.json"), Ranker)
    np.testing.assert_allclose(load_ranker(tmp_path / "legacy.json").score(vx), ordinal.score(vx))
    np.testing.assert_array_equal(load_ranker(tmp_path / "lambdamart.json").score(vx), lambdamart.score(vx))
    assert isinstance(Ranker.load(tmp_path / "ordinal.json"), Ranker)
    with pytest.raises(ValueError, match="load_ranker"):
        Ranker.load(tmp_path / "lambdamart.json")
    (tmp_path / "odd.json").write_text(json.dumps({"kind": "neural"}))
    with pytest.raises(ValueError, match="unknown ranker kind 'neural'"):
        load_ranker(tmp_path / "odd.json")


def test_the_compiled_trees_score_and_order_as_lightgbm(data, lambdamart):
    _, (vx, _, _) = data
    assert lambdamart.compiled() is not None  # lleaves is a dependency: CI must compile
    lightgbm = lambdamart._booster.predict(vx, num_threads=1)
    compiled = LambdaMartRanker.from_json(lambdamart.to_json())
    compiled._booster = None  # LightGBM's predictor gone: only the compiled trees can score
    ours = compiled.score(vx)
    np.testing.assert_allclose(ours, lightgbm, rtol=0, atol=1e-12)  # a float sum's order apart
    rows = np.arange(len(vx))
    np.testing.assert_array_equal(np.lexsort((rows, -ours)), np.lexsort((rows, -lightgbm)))
    with_gaps = vx.copy()
    with_gaps[::3, 1] = np.nan  # a missing feature goes down each split's default side in both
    np.testing.assert_allclose(lambdamart.score(with_gaps), lambdamart._booster.predict(with_gaps, num_threads=1),
                               rtol=0, atol=1e-12)


def test_without_the_compiler_lightgbm_scores(data, lambdamart, monkeypatch, caplog):
    from listing_search.models import ltr

    _, (vx, _, _) = data
    monkeypatch.setenv(ltr.COMPILE_ENV, "0")
    off = LambdaMartRanker.from_json(lambdamart.to_json())
    assert off.compiled() is None
    np.testing.assert_array_equal(off.score(vx), lambdamart._booster.predict(vx, num_threads=1))
    monkeypatch.delenv(ltr.COMPILE_ENV)
    monkeypatch.setattr(ltr, "_compiled", {})  # nothing compiled yet in this process
    monkeypatch.setitem(__import__("sys").modules, "lleaves", None)  # the package missing: import fails
    broken = LambdaMartRanker.from_json(lambdamart.to_json())
    with caplog.at_level("WARNING", logger="listing_search.models.ltr"):
        assert broken.compiled() is None
    assert "not compiled" in caplog.text
    np.testing.assert_array_equal(broken.score(vx), lambdamart._booster.predict(vx, num_threads=1))
