"""The one place relevance is graded and ranking and calibration quality are measured.

A result's grade for a query made from a listing: 2 for the same full category path, 1 for the
same root category, 0 otherwise (nDCG's gain is 2^grade - 1; precision counts grade >= 1). The
buyer grade, for queries as buyers type them: 2 when the result holds the words and is in the right
root category, 1 for one of the two. Fitting
(``fit``), evaluation (``evaluate``) and the golden tests all grade with :func:`grade`. Pure numpy.
"""

from __future__ import annotations

import numpy as np

K = 10


def grade(root: str, path: str, hit_root: str | None, hit_path: str | None) -> int:
    """2 = same category path, 1 = same root category, 0 otherwise (or a vanished listing)."""
    return 2 if hit_path is not None and hit_path == path else 1 if hit_root is not None and hit_root == root else 0


def buyer_grade(holds_words: bool, same_root: bool) -> int:
    """The buyer grade of a result for a buyer's query: 2 = holds the words and is in the right root
    category, 1 = one of the two, 0 = neither (``search.match.holds`` says what holding means)."""
    return int(bool(holds_words)) + int(bool(same_root))


def ideal_from_counts(n_two: int, n_one: int, k: int = K) -> np.ndarray:
    """The best k grades a catalogue with ``n_two`` results of grade 2 and ``n_one`` of grade 1 allows."""
    twos = min(n_two, k)
    return np.array([2] * twos + [1] * min(n_one, k - twos), np.int64)


def dcg(grades: np.ndarray) -> float:
    grades = np.asarray(grades, np.float64)
    return float(((2.0 ** grades - 1.0) / np.log2(np.arange(2, len(grades) + 2))).sum())


def ndcg_at_k(ranked_grades: np.ndarray, all_grades: np.ndarray, k: int = K) -> float:
    """DCG of the first k ranked grades over the DCG of the best possible k (0 when nothing is relevant)."""
    ideal = dcg(np.sort(np.asarray(all_grades))[::-1][:k])
    return dcg(np.asarray(ranked_grades)[:k]) / ideal if ideal > 0 else 0.0


def ideal_grades(n_path: int, n_root: int, k: int = K) -> np.ndarray:
    """The best k grades a catalogue with ``n_path`` listings of the path and ``n_root`` of the root allows."""
    return np.array([2] * min(n_path, k) + [1] * max(0, min(n_root - n_path, k - min(n_path, k))), np.int64)


def _ranked_groups(scores: np.ndarray, grades: np.ndarray, groups: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(grades by descending score, all grades) per query; rows of a query are contiguous, ties keep row order."""
    scores, grades, groups = np.asarray(scores), np.asarray(grades), np.asarray(groups, np.int64)
    if len(scores) != len(grades) or int(groups.sum()) != len(scores):
        raise ValueError(f"{len(scores)} scores, {len(grades)} grades, query sizes summing to {int(groups.sum())}")
    out = []
    for lo, hi in zip(np.r_[0, np.cumsum(groups)[:-1]], np.cumsum(groups)):
        g = grades[lo:hi]
        out.append((g[np.argsort(-scores[lo:hi], kind="stable")], g))
    return out


def ndcg_at_k_groups(scores: np.ndarray, grades: np.ndarray, groups: np.ndarray, k: int = K) -> float:
    """Mean ``ndcg_at_k`` over queries given as contiguous row groups (LightGBM's ``group``)."""
    per = [ndcg_at_k(ranked, all_g, k) for ranked, all_g in _ranked_groups(scores, grades, groups)]
    return float(np.mean(per)) if per else float("nan")


def precision_at_k_groups(scores: np.ndarray, grades: np.ndarray, groups: np.ndarray, k: int = K) -> float:
    """Mean share of each query's top k (fewer when it has fewer rows) with grade >= 1."""
    per = [float((ranked[:k] >= 1).mean()) for ranked, _ in _ranked_groups(scores, grades, groups)]
    return float(np.mean(per)) if per else float("nan")


# --- probabilities ------------------------------------------------------------------------------

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


def top_calibration_error(probs: np.ndarray, labels: np.ndarray) -> float:
    """Expected calibration error of the shown (top) category: its probability vs whether it is right."""
    probs = np.asarray(probs, np.float64)
    return expected_calibration_error(probs.max(1), (probs.argmax(1) == np.asarray(labels)).astype(np.float64))
