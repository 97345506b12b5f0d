"""The rules that make buyers' queries from titles, by hand."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from listing_search.fit.buyer_queries import (
    BRAND_HEAD, HEAD, HEAD_TYPO, MODIFIER_HEAD, PAIR_TYPO, RARE_PAIR, buyer_query, intended,
)

DF = Counter({"mens": 50, "blizzard": 3, "parka": 5, "size": 100, "worn": 20, "twice": 10, "rare": 1})


@pytest.mark.parametrize("title,kind,expected", [
    ("Mens Blizzard Parka - size L, worn twice", HEAD, "parka"),
    ("Mens Blizzard Parka - size L, worn twice", MODIFIER_HEAD, "blizzard parka"),
    ("Mens Blizzard Parka - size L, worn twice", BRAND_HEAD, "mens parka"),
    ("Mens Blizzard Parka - size L, worn twice", RARE_PAIR, "blizzard parka"),  # df 3 and 5, in title order
    ("IKEA HEMNES wardrobe (white)", HEAD, "wardrobe"),  # cut at the bracket
    ("Childs bike with 18 inch wheels", HEAD, "bike"),  # cut at the digit; "with" is no word a buyer types
    ("Wardrobe", MODIFIER_HEAD, None), ("Wardrobe", BRAND_HEAD, None),  # one word: no pair
    ("Rare parka", RARE_PAIR, None),  # "rare" is used once: under MIN_DF
    ("2019 - 3 for 2", HEAD, None),  # no words at all
])
def test_rules_by_hand(title, kind, expected):
    assert buyer_query(title, kind, DF, np.random.default_rng(0)) == expected


def test_misspelt_kinds_drop_one_letter_and_know_what_was_meant():
    title = "Mens Blizzard Parka - size L"
    typo = buyer_query(title, HEAD_TYPO, DF, np.random.default_rng(3))
    assert typo != "parka" and len(typo) == 4 and intended(title, HEAD_TYPO, DF) == "parka"
    pair = buyer_query(title, PAIR_TYPO, DF, np.random.default_rng(3))
    assert pair != "blizzard parka" and len(pair) == len("blizzard parka") - 1
    assert intended(title, PAIR_TYPO, DF) == "blizzard parka"
