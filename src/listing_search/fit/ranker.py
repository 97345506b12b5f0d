"""Fitting the re-rankers of ``models.ranker``'s kinds on pair features (offline only).

The ordinal logistic model is linear in the features, so it cannot learn "grade 2 only when the
text AND the photo agree"; LambdaMART (LightGBM ``lambdarank``) can, and optimises nDCG@10 directly
with gains [0, 1, 3] (= 2^grade - 1, the gain ``core.grading.ndcg_at_k`` uses).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from listing_search.core.grading import ndcg_at_k_groups, precision_at_k_groups
from listing_search.models.ltr import KIND, LambdaMartRanker
from listing_search.models.ranker import Ranker

log = logging.getLogger(__name__)

LABEL_GAIN = [0, 1, 3]  # 2^grade - 1
EARLY_STOPPING_ROUNDS = 20
# Small trees with many rows per leaf: on the held-out catalogue's val queries (1,483 train queries,
# 598 val) they beat the earlier 15 leaves x 20 rows in every query mode (nDCG@10 0.619 -> 0.628).
DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "lambdarank", "metric": "ndcg", "eval_at": [10], "label_gain": LABEL_GAIN,
    "num_iterations": 200, "learning_rate": 0.05, "num_leaves": 7, "min_data_in_leaf": 100,
    "deterministic": True, "force_row_wise": True, "num_threads": 2, "verbosity": -1,
}


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


def check_ranking_data(x: np.ndarray, grades: np.ndarray, groups: np.ndarray, features: list[str]) -> None:
    """Raise ValueError with the reason when rows, grades, groups and feature names disagree."""
    if x.ndim != 2 or x.shape[1] != len(features):
        raise ValueError(f"expected pair features [N, {len(features)}], got shape {x.shape}")
    if len(grades) != len(x):
        raise ValueError(f"{len(grades)} grades for {len(x)} rows")
    if len(groups) == 0 or int(np.sum(groups)) != len(x) or np.min(groups) < 1:
        raise ValueError(f"query sizes must be >= 1 and sum to the {len(x)} rows (got sum {int(np.sum(groups))})")
    if not np.isin(grades, (0, 1, 2)).all():
        raise ValueError(f"grades must be 0, 1 or 2, got {sorted(set(np.unique(grades).tolist()))}")


def fit_lambdamart(x: np.ndarray, grades: np.ndarray, groups: np.ndarray, features: list[str],
                   fit_listing_ids: list[str], params: dict | None = None, seed: int = 7,
                   valid: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> LambdaMartRanker:
    """Fit LambdaMART on pair features [N, F], grades [N] in {0, 1, 2} and query sizes ``groups``
    (rows of one query contiguous, in row order). With ``valid``, stop when its nDCG@10 has not
    improved for 20 rounds and keep the best iteration only."""
    import lightgbm

    x, grades, groups = np.asarray(x, np.float64), np.asarray(grades), np.asarray(groups, np.int64)
    check_ranking_data(x, grades, groups, features)
    p = {**DEFAULT_PARAMS, **(params or {}), "seed": seed}
    train = lightgbm.Dataset(x, grades.astype(np.int32), group=groups, feature_name=list(features),
                             params={"verbosity": -1}, free_raw_data=False)
    sets, evals = [train], {}
    callbacks = [lightgbm.record_evaluation(evals)]
    if valid is not None:
        vx, vg, vq = np.asarray(valid[0], np.float64), np.asarray(valid[1]), np.asarray(valid[2], np.int64)
        check_ranking_data(vx, vg, vq, features)
        sets.append(lightgbm.Dataset(vx, vg.astype(np.int32), group=vq, reference=train))
        callbacks.append(lightgbm.early_stopping(EARLY_STOPPING_ROUNDS, first_metric_only=True, verbose=False))
    started = time.perf_counter()
    booster = lightgbm.train(p, train, valid_sets=sets[1:], valid_names=["valid"][:len(sets) - 1],
                             callbacks=callbacks)
    # after early stopping ``train`` keeps only the best iterations, so the rounds run come from ``evals``
    rounds = len(next(iter(evals["valid"].values()))) if evals else booster.current_iteration()
    best = booster.best_iteration if booster.best_iteration > 0 else booster.current_iteration()
    report = {"model": KIND, "n_pairs": len(x), "n_queries": len(groups), "rounds_run": rounds,
              "best_iteration": best, "fit_seconds": round(time.perf_counter() - started, 3)}
    ranker = LambdaMartRanker(list(features), booster.model_to_string(num_iteration=best), p, "train",
                              sorted(map(str, fit_listing_ids)), report)
    if valid is not None:
        report.update(_valid_report(ranker, vx, vg, vq))
    log.info("lambdamart: %s", report)
    return ranker


def _valid_report(ranker: LambdaMartRanker, x: np.ndarray, grades: np.ndarray, groups: np.ndarray) -> dict:
    s = ranker.score(x)
    return {"valid_ndcg_at_10": round(ndcg_at_k_groups(s, grades, groups), 4),
            "valid_precision_at_10": round(precision_at_k_groups(s, grades, groups), 4)}
