"""The seeded misspelling generator: deterministic, exactly one interior letter of one long word."""

from __future__ import annotations

import numpy as np

from listing_search.text.typos import candidate_words, drop_letter, misspell_all

TITLES = ["Grey corner sofa", "Office chair, black", "iphone 12 pro 256gb", "a b c", "Wardrobe", "", "tv 4k",
          "Kids' bunk-bed (pine)", "LEGO 42100 Liebherr"]


def is_interior_drop(original: str, typo: str) -> bool:
    """True when ``typo`` is ``original`` without one letter that is interior to a qualifying word."""
    return any(original[:i] + original[i + 1:] == typo
               for word in candidate_words(original) for i in range(word.start() + 1, word.end() - 1))


def test_every_typo_drops_exactly_one_interior_letter_of_a_long_word():
    typos = misspell_all(TITLES * 20, seed=3)
    for original, typo in zip(TITLES * 20, typos):
        if typo is None:
            continue
        assert len(typo) == len(original) - 1
        assert is_interior_drop(original, typo)


def test_none_when_no_word_qualifies():
    rng = np.random.default_rng(0)
    for text in ["a b c", "", "tv 4k", "256gb 1234", "abc-def 12345"]:
        assert drop_letter(text, rng) is None
    assert misspell_all(["a b c", "sofa"])[0] is None


def test_deterministic_per_seed_and_different_across_seeds():
    titles = TITLES * 20
    assert misspell_all(titles, seed=7) == misspell_all(titles, seed=7)
    assert misspell_all(titles) == misspell_all(titles, seed=7)
    assert misspell_all(titles, seed=7) != misspell_all(titles, seed=8)


def test_words_and_positions_are_all_used():
    rng = np.random.default_rng(1)
    seen = {drop_letter("sofa chair", rng) for _ in range(200)}
    assert seen == {"sfa chair", "soa chair", "sofa cair", "sofa chir", "sofa char"}
