"""A price and a place typed among a buyer's words are read into filters; everything else stays words."""

from __future__ import annotations

import pytest

from listing_search.search.asks import MAX_PRICE, MIN_PRICE, NEAR, read_asks

TOWNS = {"glasgow": 626_410, "leeds": 536_280, "manchester": 552_000, "bath": 101_557, "stock": 1_579,
         "stoke on trent": 258_366, "sale": 62_550, "reading": 318_014}


def place(text: str, strict: bool) -> str | None:
    people = TOWNS.get(text.casefold())
    if people is None or (strict and people < 50_000):
        return None
    return text.title()


@pytest.mark.parametrize("typed, words, low, high, where", [
    ("sofa under £50 near Glasgow", "sofa", None, 50.0, "Glasgow"),
    ("under £50 near Glasgow", None, None, 50.0, "Glasgow"),
    ("sofa for under £50", "sofa", None, 50.0, None),
    ("sofa under 50", "sofa", None, 50.0, None),
    ("laptop up to 300 pounds", "laptop", None, 300.0, None),
    ("pram under £1.5k", "pram", None, 1500.0, None),
    ("desk over £100", "desk", 100.0, None, None),
    ("bike £100-£300", "bike", 100.0, 300.0, None),
    ("oak table from £50 to £80", "oak table", 50.0, 80.0, None),
    ("bike between £1,000 and £2,500 in Leeds", "bike", 1000.0, 2500.0, "Leeds"),
    ("wardrobe in Manchester", "wardrobe", None, None, "Manchester"),
    ("bike nr leeds", "bike", None, None, "Leeds"),  # the place as the resolver names it
    ("boots near Stoke on Trent", "boots", None, None, "Stoke On Trent"),
    ("sofa under 50 near Glasgow", "sofa", None, 50.0, "Glasgow"),  # a bare price ending the words before a place
    ("£20-80 lamp", "lamp", 20.0, 80.0, None),
    ("between 20 and £80 lamp", "lamp", 20.0, 80.0, None),
    ("mens jacket under £50", "mens jacket", None, 50.0, None),
    ("under £50 mens jacket", "mens jacket", None, 50.0, None),
    ("shoes size 9 under £20 in london", "shoes size 9 in london", None, 20.0, None),
])
def test_prices_and_places_are_read_out_of_the_words(typed, words, low, high, where):
    asks = read_asks(typed, place)
    assert (asks.words, asks.price_min, asks.price_max, asks.place) == (words, low, high, where)
    said = {r.filter for r in asks.read}
    assert said == {f for f, v in ((MIN_PRICE, low), (MAX_PRICE, high), (NEAR, where)) if v is not None}
    assert all(r.phrase.casefold() in typed.casefold() for r in asks.read)


@pytest.mark.parametrize("typed", [
    "toys under 5",  # an age, not a price: a bare number under 20
    "iphone 12-13",  # models, not prices: no currency
    "table in stock",  # Stock is a village: after "in" only a big town is a place
    "chair in grey", "lamp near me", "near mint vinyl", "Under Armour jacket", "2 to 3 seater sofa",
    "tv 50 inch under 30 cm",  # a bare number not ending the words
    "over £80 under £20",  # no price is both: left as words
    "nike air max 90", "iphone 14 pro max 256",  # "max" before a bare number is a model
    "sofa under 100 in stock",  # a bare number not ending the words, and no place after it
    "iphone 11 - £300",  # a range needs its first number marked (or "between" / "from")
    "toys £5 to 10 years", "monitor under £24 inch",  # an age or a size, not money
    "dress in sale", "lamp in reading",  # towns that are everyday words stay words after "in"
    "Gazebo for hire from £75",  # a seller's own price in a title ("from £50 to £80" is a range)
])
def test_words_that_only_look_like_a_price_or_a_place_stay_words(typed):
    asks = read_asks(typed, place)
    assert asks.read == () and asks.words == typed


def test_a_filter_the_buyer_set_wins_and_nothing_is_read_for_it():
    asks = read_asks("sofa under £50 near Glasgow", place, prices=False)
    assert asks.words == "sofa under £50" and asks.price_max is None and asks.place == "Glasgow"
    asks = read_asks("sofa under £50 near Glasgow", place, places=False)
    assert asks.words == "sofa near Glasgow" and asks.price_max == 50.0 and asks.place is None
    assert read_asks("   ", place).words is None and read_asks(None, place).read == ()
