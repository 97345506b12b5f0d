"""Evaluation helpers: nDCG against a hand computation, the ideal grades, query making."""

from __future__ import annotations

import math

import numpy as np

import pytest

from listing_search.core.grading import grade, ideal_grades, ndcg_at_k, ndcg_at_k_groups, precision_at_k_groups
from listing_search.evaluate.search import query_of


def test_ndcg_hand_computed():
    assert ndcg_at_k(np.array([2, 1, 0]), np.array([0, 1, 2])) == 1.0
    got = ndcg_at_k(np.array([0, 2]), np.array([2, 0, 0]), k=2)
    assert abs(got - (3 / math.log2(3)) / 3) < 1e-12
    assert ndcg_at_k(np.array([0, 0]), np.array([0, 0])) == 0.0


def test_ideal_grades_and_grading():
    assert ideal_grades(3, 5, k=10).tolist() == [2, 2, 2, 1, 1]
    assert ideal_grades(12, 20, k=10).tolist() == [2] * 10
    assert grade("Home", "Home / Sofas", "Home", "Home / Sofas") == 2
    assert grade("Home", "Home / Sofas", "Home", "Home / Beds") == 1
    assert grade("Home", "Home / Sofas", "Toys", "Toys / Lego") == 0


def test_queries_of_each_mode():
    rng = np.random.default_rng(0)
    item = {"title": "Wooden dining table", "photo": b"jpeg", "root": "Home", "path": "Home / Tables"}
    assert query_of(item, "title", rng).text == "Wooden dining table" and query_of(item, "title", rng).image is None
    q = query_of(item, "photo_title", rng)
    assert q.text and q.image == b"jpeg"
    assert query_of(item, "photo", rng).text is None
    typo = query_of(item, "typo_title", rng).text
    assert typo != item["title"] and len(typo) == len(item["title"]) - 1
    assert query_of({**item, "photo": None}, "photo", rng) is None


def test_group_metrics_match_per_query_reference():
    scores = np.array([0.1, 0.9, 0.5, 0.3, 0.2])
    grades = np.array([2, 0, 1, 0, 1])
    groups = np.array([3, 2])
    first = ndcg_at_k(np.array([0, 1, 2]), grades[:3])
    second = ndcg_at_k(np.array([0, 1]), grades[3:])
    assert ndcg_at_k_groups(scores, grades, groups) == pytest.approx((first + second) / 2)
    assert precision_at_k_groups(scores, grades, groups, k=2) == pytest.approx((0.5 + 0.5) / 2)
    assert ndcg_at_k_groups(np.zeros(2), np.zeros(2, int), np.array([2])) == 0.0  # nothing relevant counts 0
    with pytest.raises(ValueError, match="query sizes"):
        ndcg_at_k_groups(scores, grades, np.array([2, 2]))


def test_run_mode_reports_the_share_of_titles_the_engine_rewrote():
    from collections import Counter
    from types import SimpleNamespace

    from listing_search.evaluate.search import SearchEval, run_mode
    from listing_search.search.types import Hit, Result

    sofa = SimpleNamespace(root_category="Home", category_path="Home / Sofas")

    class Engine:  # rewrites "blizzard" (a word its catalogue lacks), answers one sofa for everything
        def search(self, query):
            fixes = (("blizzard", "lizard"),) if "blizzard" in query.text.lower() else ()
            return Result([Hit(sofa, 1.0, {}, [])], total=1, corrections=fixes)

    items = [{"id": str(i), "title": t, "root": "Home", "path": "Home / Sofas", "photo": None}
             for i, t in enumerate(["Grey sofa", "Blizzard sofa", "Corner sofa", "Leather sofa"])]
    ev = SearchEval(Engine(), items)
    ev.__dict__.update(path_counts=Counter({"Home / Sofas": 1}), root_counts=Counter({"Home": 1}))
    got = run_mode(ev, "title", seed=7)
    assert got["queries"] == 4 and got["corrected_rate"] == 0.25 and got["precision_at_10"] == 1.0
    assert "corrected_rate" not in run_mode(ev, "photo", seed=7)  # no words, nothing to rewrite
