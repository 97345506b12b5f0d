"""The hand check of listing coordinates on the real data (100 placed listings, at least 95 within
10 km of the real place): ``geocoding_check.json`` holds the sample with where each place really is,
checked by hand. The sample is drawn again here and every distance measured again, so a change of the
placing rules that moves a checked listing away from its real place, or changes the sample, fails."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from listing_search import schema as S
from listing_search.core import places
from listing_search.data.tables import Dropped, clean_products, read_csv_strict

pytestmark = pytest.mark.realdata
CHECK = Path(__file__).with_name("geocoding_check.json")
WITHIN_KM = 10.0


def draw(real_data: Path, seed: int, n: int) -> list[tuple[str, str, places.Place]]:
    """(listing id, location, place) of ``n`` placed listings drawn at random, in table order, as the
    prepare stage places them."""
    listings = clean_products(read_csv_strict(real_data / S.PRODUCTS_CSV, S.PRODUCTS_CSV, S.PRODUCTS_COLUMNS),
                              Dropped())
    locations, ids = listings[S.LOCATION].tolist(), listings[S.LISTING_ID].tolist()
    placed = places.place_all(locations)
    candidates = [i for i, p in enumerate(placed) if p.precision != places.NONE]
    picked = sorted(np.random.default_rng(seed).choice(len(candidates), n, replace=False).tolist())
    return [(ids[candidates[i]], locations[candidates[i]], placed[candidates[i]]) for i in picked]


def test_at_least_95_of_100_hand_checked_listings_are_within_10_km_of_the_real_place(real_data: Path) -> None:
    check = json.loads(CHECK.read_text())
    drawn = draw(real_data, check["seed"], len(check["sample"]))
    assert [(lid, loc) for lid, loc, _ in drawn] == [(s["listing_id"], s["location"]) for s in check["sample"]], \
        "the sample changed: draw it again and check it by hand"
    verdicts = Counter()
    for (_, location, place), s in zip(drawn, check["sample"]):
        if s["real_lat"] is None:
            verdicts["uncertain"] += 1
            continue
        km = places.distance_km(place.lat, place.lon, s["real_lat"], s["real_lon"])
        verdict = "within" if km < WITHIN_KM else "beyond"
        assert verdict == s["verdict"], f"{location}: now {km:.1f} km from the real place"
        verdicts[verdict] += 1
    assert dict(verdicts) == check["verdicts"] and verdicts["within"] >= 95
