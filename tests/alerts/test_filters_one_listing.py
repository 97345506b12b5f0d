"""``Filters.admits`` (one new listing, the matcher's check) decides as ``CatalogView.allowed`` (every
listing, the search's mask) does, on random filters over a catalogue with prices missing."""

from __future__ import annotations

import random

from listing_search.core.query import Filters
from listing_search.index.catalog import CatalogView
from listing_search.store.models import Listing

PATHS = ["Home & Garden / Sofas", "Home & Garden / Sofas / Corner", "Home & Garden", "Computers & Software / Laptops",
         "home & garden / tables", "Appliances"]


def test_one_listing_is_admitted_exactly_when_the_catalogue_mask_admits_it() -> None:
    rng = random.Random(5)
    listings = [Listing(k, f"l{k}", "t", "d", rng.choice([None, 0.0, 9.99, 10.0, 50.0, 400.0]),
                        rng.choice(["Leeds, West Yorkshire", "Bristol", "", "LEEDS"]), rng.choice(PATHS),
                        "", None) for k in range(1, 200)]
    view = CatalogView.build([listings])
    for _ in range(300):
        f = Filters(rng.choice([None, "Home & Garden", "home & garden / sofas", "Home", "Appliances / X",
                                "Computers & Software"]),
                    rng.choice([None, 0.0, 10.0, 9.99]), rng.choice([None, 10.0, 50.0, 1000.0]),
                    rng.choice([None, "", "leeds", "Bris", "York"]))
        mask = view.allowed(f)
        for x in listings:
            row = view.row_of_key(x.key)
            assert f.admits(x.price, x.category_path, x.location) == bool(mask[row]), (f, x)
