"""The BM25 channel: ranking, stemming, live updates, filters, per-key scores, hostile input, threads."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from listing_search.index import lexical
from listing_search.index.lexical import LexicalIndex

ITEMS = [
    (10, "Grey corner sofa", "three seater, collection only"),
    (11, "Oak dining table", "seats six, goes well with a sofa"),
    (12, "Office chair", "adjustable height, black mesh"),
    (13, "Two leather sofas", "brown, some wear on the arms"),
    (14, "Wardrobe", "double doors, white"),
]


@pytest.fixture
def index() -> LexicalIndex:
    return LexicalIndex.build(ITEMS)


def keys(hits: list[tuple[int, float]]) -> list[int]:
    return [key for key, _ in hits]


def test_title_match_outranks_body_only_match_and_non_matches_are_absent(index):
    hits = index.search("sofa", k=10)
    assert set(keys(hits)) == {10, 11, 13}
    assert keys(hits)[-1] == 11  # body-only
    assert all(score > 0 for _, score in hits)
    assert [score for _, score in hits] == sorted((score for _, score in hits), reverse=True)


def test_stemming_plural_query_finds_singular_and_back(index):
    assert 10 in keys(index.search("sofas", k=10))
    assert 13 in keys(index.search("sofa", k=10))
    assert keys(index.search("WARDROBES", k=10)) == [14]


def test_upsert_replaces_and_remove_removes(index):
    assert len(index) == 5
    index.upsert([(14, "Bookcase", "pine, five shelves")])
    assert index.search("wardrobe", k=10) == []
    assert keys(index.search("bookcase", k=10)) == [14]
    assert index.size == 5
    index.remove([14, 999])
    assert index.search("bookcase", k=10) == []
    assert len(index) == 4


def test_a_key_repeated_in_one_batch_keeps_its_last_version():
    index = LexicalIndex.build([(1, "lamp", ""), (1, "kettle", "")])
    assert len(index) == 1
    assert index.search("lamp", k=5) == [] and keys(index.search("kettle", k=5)) == [1]


def test_allowed_and_exclude_are_respected_in_both_filter_paths(index, monkeypatch):
    for density in (1.0, 0.0):  # every allowed set in the query, then none
        monkeypatch.setattr(lexical, "FILTER_IN_QUERY_DENSITY", density)
        assert keys(index.search("sofa", k=10, allowed={11, 12})) == [11]
        assert keys(index.search("sofa", k=1, allowed={11, 13})) == [13]
        assert index.search("sofa", k=10, allowed=set()) == []
        assert set(keys(index.search("sofa", k=10, exclude={10, 13}))) == {11}
        assert keys(index.search("sofa", k=10, allowed={10, 11}, exclude={10})) == [11]


def test_filtered_scores_are_the_unfiltered_scores(index, monkeypatch):
    full = dict(index.search("grey sofa", k=10))
    for density in (1.0, 0.0):
        monkeypatch.setattr(lexical, "FILTER_IN_QUERY_DENSITY", density)
        assert dict(index.search("grey sofa", k=10, allowed={10, 11})) == {key: full[key] for key in (10, 11)}


def test_scores_equal_search_scores_and_zero_for_non_matches(index):
    full = dict(index.search("sofa chair", k=10))
    got = index.scores("sofa chair", [14, 13, 12, 11, 10, 999, 13])
    expected = np.array([0.0, full[13], full[12], full[11], full[10], 0.0, full[13]], dtype=np.float32)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert (got[[1, 2, 3, 4]] > 0).all()
    assert index.scores("", [10]).tolist() == [0.0] and index.scores("sofa", []).shape == (0,)


@pytest.mark.parametrize("text", ['"a:b (c" AND -', "title:sofa^3", "*", "~2", "[1 TO 3]", "sofa)", "'", "\\",
                                  "", "   ", "!!!", "NOT", "x" * 500, "sofa " * 200])
def test_hostile_queries_do_not_raise(index, text):
    hits = index.search(text, k=5)
    assert isinstance(hits, list)
    index.scores(text, [10, 11])


def test_query_syntax_is_treated_as_words(index):
    assert keys(index.search("title:sofa", k=10)) == keys(index.search("title sofa", k=10))
    assert index.search("!!! ... ---", k=5) == []


def test_concurrent_searches_during_upserts_do_not_crash():
    index = LexicalIndex.build(ITEMS)
    errors: list[BaseException] = []
    stop = threading.Event()

    def searcher() -> None:
        try:
            while not stop.is_set():
                index.search("sofa table", k=3)
                index.scores("sofa", [10, 11])
        except BaseException as error:  # noqa: BLE001 - the test reports whatever a thread hit
            errors.append(error)

    threads = [threading.Thread(target=searcher) for _ in range(3)]
    for thread in threads:
        thread.start()
    for i in range(30):
        index.upsert([(100 + i, f"sofa number {i}", "")])
        index.remove([100 + i - 1])
    stop.set()
    for thread in threads:
        thread.join()
    assert errors == []
    assert keys(index.search("number", k=10)) == [129]


def test_cooccurrence_counts_documents_with_the_word_and_another():
    index = LexicalIndex.build([(1, "oak chair", "dining"), (2, "chip fryer", ""), (3, "chair", "garden")])
    assert index.cooccurrence("chair", ["oak"]) == 1
    assert index.cooccurrence("chair", ["oak", "garden"]) == 2
    assert index.cooccurrence("chip", ["oak"]) == 0
    assert index.cooccurrence("chair", []) == 0
