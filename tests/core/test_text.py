"""The tokenizers: what "holds the words" compares, checked by hand."""

from __future__ import annotations

from listing_search.core.text import content_words, fold_plural, match_terms, words
from listing_search.search.match import holds


def test_plurals_fold_onto_their_singular_on_both_sides():
    pairs = [("chairs", "chair"), ("benches", "bench"), ("glasses", "glass"), ("boxes", "box"),
             ("batteries", "battery"), ("cookies", "cookie"), ("shoes", "shoe"), ("tables", "table")]
    for plural, singular in pairs:
        assert fold_plural(plural) == fold_plural(singular), (plural, singular)
    for kept in ("glass", "cactus", "tennis", "bus", "ps4", "dress"):
        assert fold_plural(kept) == kept or fold_plural(kept + "es") == fold_plural(kept), kept


def test_match_terms_fold_case_accents_and_function_words():
    assert match_terms("Café TABLE and Chairs, for the garden") == ["cafe", "table", "chair", "garden"]
    assert match_terms("the and of") == []
    assert words("iPhone 13-Pro") == ["iphone", "13", "pro"]
    assert content_words("The NEW Sofa, for sale!") == frozenset({"sofa"})


def test_holds_needs_every_term_in_the_title_or_the_description():
    terms = match_terms("garden chairs")
    assert holds(terms, "Garden chair", "")
    assert holds(terms, "Chair", "lovely for the garden")
    assert not holds(terms, "Garden table", "")
    assert not holds([], "anything", "at all")


def test_buyer_grades_and_their_ideal():
    from listing_search.core.grading import buyer_grade, ideal_from_counts

    assert [buyer_grade(h, r) for h, r in ((True, True), (True, False), (False, True), (False, False))] == [2, 1, 1, 0]
    assert ideal_from_counts(3, 20, k=10).tolist() == [2, 2, 2] + [1] * 7
    assert ideal_from_counts(12, 0, k=10).tolist() == [2] * 10 and ideal_from_counts(0, 2).tolist() == [1, 1]
