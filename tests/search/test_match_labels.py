"""The `match` label a buyer reads: the same full category likely, and a buyer's words held."""

import numpy as np

from listing_search.fit.calibration import fit_mode_calibrator
from listing_search.models.relevance import Relevance
from listing_search.search.present import match_label


def test_good_match_needs_the_fine_category_not_only_the_department() -> None:
    # a vacuum under "sofa": surely Home & Garden (root), unlikely the sofas' own path
    assert match_label(0.97, 0.2) == "related"
    assert match_label(0.97, 0.55) == "good match"
    assert match_label(0.97, 0.9) == "great match"
    assert match_label(0.2, 0.1) == "weak match"


def test_a_listing_without_the_words_or_under_no_match_is_never_better_than_related() -> None:
    assert match_label(0.99, 0.99, related=True) == "related"
    assert match_label(None, None) is None  # before calibration: no label


def test_a_file_fit_before_the_path_calibrator_labels_from_relevance_alone() -> None:
    assert match_label(0.9, None) == "great match"
    assert match_label(0.7, None) == "good match"
    assert match_label(0.4, None) == "related"


def test_the_path_calibrator_estimates_the_share_in_the_same_path_and_round_trips() -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(size=4000)
    # grade 2 grows likelier with the score; grade 1 (root only) fills much of the rest
    grades = np.where(rng.random(4000) < 1 / (1 + np.exp(-2 * scores)), 2, rng.integers(0, 2, 4000))
    modes = np.array(["text"] * 4000, dtype=object)
    rel = Relevance(fit_mode_calibrator(scores, grades, modes),
                    path=fit_mode_calibrator(scores, grades, modes, min_grade=2))
    back = Relevance.from_json(rel.to_json())
    top = scores > 1.0
    p = back.apply_path(scores[top], "text")
    assert abs(p.mean() - (grades[top] == 2).mean()) < 0.03
    assert (back.apply_path(scores, "text") <= back.apply(scores, "text") + 1e-9).mean() > 0.99  # path within root
    assert back.path.calibrators["all"].target == "P(grade >= 2)"
