"""A radius search in memory equals brute-force haversine over every listing, and a sort by distance
pages by its keyset cursor exactly as one large page, nearest first."""

from __future__ import annotations

import numpy as np
import pytest

from listing_search.core.near import KM_PER_MILE, Near, haversine_km
from listing_search.core.query import DISTANCE, Filters, Page, Query
from listing_search.index.catalog import CatalogView
from listing_search.index.points import Points
from listing_search.search.facets import DISTANCE_BANDS_MILES, distance_facet
from listing_search.search.paging import cut_page
from listing_search.store.models import Listing


def brute_km(lat: float, lon: float, lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
    """Haversine written out independently (scalar math), NaN for no position."""
    import math
    out = []
    for a, b in zip(lats.tolist(), lons.tolist()):
        if math.isnan(a):
            out.append(math.nan)
            continue
        p1, p2, dl = math.radians(lat), math.radians(a), math.radians(b - lon)
        h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
        out.append(2 * 6371.0088 * math.asin(min(1.0, math.sqrt(h))))
    return np.array(out)


def catalogue(n: int, seed: int, lat_range=(49.9, 58.7), lon_range=(-8.0, 1.8), shared: int = 300):
    """``n`` listings at ``shared`` distinct towns (listings share positions as real ones do) plus a few
    at their own points; one in 13 without coordinates."""
    rng = np.random.default_rng(seed)
    towns = np.column_stack([rng.uniform(*lat_range, shared), rng.uniform(*lon_range, shared)])
    out = []
    for i in range(n):
        if i % 13 == 0:
            lat = lon = None
        elif i % 7 == 0:
            lat, lon = float(rng.uniform(*lat_range)), float(rng.uniform(*lon_range))
        else:
            lat, lon = (float(x) for x in towns[rng.integers(shared)])
        out.append(Listing(i, f"l{i:05d}", f"thing {i}", "", float(i % 50), "Town, Area", "A / B", "A", 0, [],
                           float(i), [], lat, lon, None if lat is None else "town"))
    return out


def positions(listings: list[Listing]) -> tuple[np.ndarray, np.ndarray]:
    lats = np.array([np.nan if x.lat is None else x.lat for x in listings])
    lons = np.array([np.nan if x.lon is None else x.lon for x in listings])
    return lats, lons


def test_the_earth_radius_matches_core_places() -> None:
    from listing_search.core.places import EARTH_RADIUS_KM
    assert EARTH_RADIUS_KM == pytest.approx(6371.0088, abs=0.01)


@pytest.mark.parametrize("seed", range(5))
def test_radius_membership_equals_brute_force_haversine(seed: int) -> None:
    listings = catalogue(3000, seed)
    view = CatalogView.build([listings])
    lats, lons = positions(listings)
    rng = np.random.default_rng(100 + seed)
    found = 0
    for _ in range(40):
        lat, lon = float(rng.uniform(49, 59)), float(rng.uniform(-9, 3))
        km = float(rng.choice([1, 5, 16.09, 40, 80, 250, 500]))
        mask = view.allowed(Filters(near=Near(lat, lon, km)))
        expected = np.nan_to_num(brute_km(lat, lon, lats, lons), nan=np.inf) <= km
        assert np.array_equal(mask, expected), (lat, lon, km)
        found += bool(mask.any())
    assert found >= 20  # radii that find nothing would make the test vacuous


def test_a_radius_around_a_listing_holds_it_and_an_edge_point_is_kept() -> None:
    listings = catalogue(500, 9)
    view = CatalogView.build([listings])
    x = next(x for x in listings if x.lat is not None)
    assert view.allowed(Filters(near=Near(x.lat, x.lon, 1.0)))[view.row_of_id(x.listing_id)]
    # a point exactly on the circle: its own distance as the radius
    y = next(y for y in listings if y.lat is not None and y.listing_id != x.listing_id and y.lat != x.lat)
    d = float(haversine_km(x.lat, x.lon, np.array([y.lat]), np.array([y.lon]))[0])
    assert view.allowed(Filters(near=Near(x.lat, x.lon, d)))[view.row_of_id(y.listing_id)]


@pytest.mark.parametrize("lat,lon,lon_range", [(0.0, 179.9, (170.0, 180.0)), (0.0, -179.9, (-180.0, -170.0)),
                                               (89.9, 10.0, (-180.0, 180.0)), (-89.5, 0.0, (-180.0, 180.0))])
def test_points_near_the_antimeridian_and_the_poles_equal_brute_force(lat, lon, lon_range) -> None:
    rng = np.random.default_rng(3)
    pts = Points()
    lat_range = (max(-90.0, lat - 5), min(90.0, lat + 5))
    lats = rng.uniform(*lat_range, 2000)
    lons = np.concatenate([rng.uniform(*lon_range, 1000), rng.uniform(-180, 180, 1000)])
    for a, b in zip(lats, lons):
        pts.code(float(a), float(b))
    for km in (50.0, 300.0, 500.0):
        got = pts.distances(lat, lon, km)[:-1]
        want = brute_km(lat, lon, lats, lons)
        assert np.array_equal(np.isfinite(got), want <= km), km
        assert np.allclose(got[np.isfinite(got)], want[want <= km])


def test_moves_and_removals_follow_the_radius() -> None:
    listings = catalogue(400, 1)
    view = CatalogView.build([listings])
    near = Near(53.8, -1.55, 30.0)
    moved = listings[5]
    view.upsert([Listing(moved.key, moved.listing_id, moved.title, "", 1.0, "Leeds", "A / B", "A", 0, [], 1.0, [],
                         53.8, -1.55, "town")])
    view.remove([listings[6].key])
    allowed = {view.listing_id[r] for r in np.flatnonzero(view.allowed(Filters(near=near)))}
    assert moved.listing_id in allowed and listings[6].listing_id not in allowed
    lats, lons = positions([view.listing(int(r)) for r in view.live_rows()])
    ids = [view.listing_id[int(r)] for r in view.live_rows()]
    expected = {i for i, d in zip(ids, brute_km(53.8, -1.55, lats, lons)) if d <= 30.0}
    assert allowed == expected


@pytest.mark.parametrize("k", [1, 7, 25])
def test_distance_pages_by_cursor_are_one_large_page_nearest_first(k: int) -> None:
    listings = catalogue(1500, 2)
    view = CatalogView.build([listings])
    near = Near(54.0, -2.0, 150.0)
    rows = np.flatnonzero(view.allowed(Filters(near=near)))
    assert len(rows) > 3 * k

    def ask(page: Page):
        return cut_page(view, None, rows, Query(filters=Filters(near=near), sort=DISTANCE, page=page), DISTANCE)

    whole = ask(Page(len(rows))).rows.tolist()
    assert sorted(whole) == sorted(rows.tolist())
    by_cursor, cursor = [], None
    while True:
        page = ask(Page(k, 0, cursor))
        by_cursor += page.rows.tolist()
        cursor = page.next_cursor
        if cursor is None:
            break
    by_offset = [r for i in range(0, len(rows), k) for r in ask(Page(k, i)).rows.tolist()]
    assert by_cursor == whole == by_offset
    km = view.distance_to(np.array(whole), near)
    assert np.all(np.diff(km) >= 0)
    keys = view.key[np.array(whole)]
    ties = np.diff(km) == 0
    assert np.all(np.diff(keys)[ties] > 0)  # equal distances: the earliest added first


def test_a_listing_added_between_distance_pages_neither_shifts_nor_repeats_the_next() -> None:
    listings = catalogue(800, 4)
    view = CatalogView.build([listings])
    near = Near(54.0, -2.0, 200.0)

    def ask(page: Page):
        rows = np.flatnonzero(view.allowed(Filters(near=near)))
        return cut_page(view, None, rows, Query(filters=Filters(near=near), sort=DISTANCE, page=page), DISTANCE)

    before = ask(Page(30)).rows.tolist()
    first = ask(Page(5))
    view.upsert([Listing(99_999, "new", "new", "", 1.0, "Here", "A / B", "A", 0, [], 1.0, [], 54.0, -2.0, "town")])
    assert view.listing_id[ask(Page(5)).rows[0]] == "new"  # nearest of all: an offset page shifts by one
    second = ask(Page(5, 0, first.next_cursor)).rows.tolist()
    assert [view.listing_id[r] for r in second] == [view.listing_id[r] for r in before[5:10]]


def test_distance_facets_count_the_bands_by_brute_force() -> None:
    listings = catalogue(2000, 5)
    view = CatalogView.build([listings])
    lats, lons = positions(listings)
    near = Near(53.5, -2.2, 16.0)
    rows = view.live_rows()
    bands = distance_facet(view, rows, near)
    km = brute_km(53.5, -2.2, lats, lons)
    assert [b["max_miles"] for b in bands] == list(DISTANCE_BANDS_MILES)
    for band in bands:
        assert band["count"] == int(np.sum(np.nan_to_num(km, nan=np.inf) <= band["max_miles"] * KM_PER_MILE))
    counts = [b["count"] for b in bands]
    assert counts == sorted(counts) and counts[-1] > counts[2] > 0
    assert distance_facet(view, rows, None) == []
