"""Claim: a search near a place filters the in-memory catalogue by radius without a store round trip,
equal to brute-force haversine, in a few milliseconds on 1M listings (issue 32).

A synthetic catalogue view (``index.catalog.CatalogView``) of N listings (default 1,000,000) is built
in memory, each placed as real listings are: at a Great Britain gazetteer town (``core.places``: the
real catalogue's 6,441 listings sit at ~1,100 distinct points), with ``--own-points`` of them at a
position of their own (a worst case for ``index.points``: more distinct positions). One in 20 has no
coordinates. For random towns and radii (5 to 160 km) it times:

* ``radius``: ``CatalogView.allowed(Filters(near=...))``, the filter mask a search or browse reads;
* ``distance_page``: the first page of 20 sorted by distance over the rows inside the radius
  (``search.paging.cut_page``), what ``sort=distance`` adds;
* ``brute_force``: numpy haversine over every row's lat/lon, the baseline the radius must equal
  (checked for every query: ``mismatches`` must be 0).

    python bench/bench_radius.py [--listings 1000000] [--queries 200] [--own-points 0.01]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import machine_state, main, parser, percentiles_ms, rss_bytes  # noqa: E402

RADII_KM = (5.0, 16.09, 40.0, 80.0, 160.0)


def towns() -> np.ndarray:
    from listing_search.core.places import gazetteer

    return np.unique(np.array([(e.lat, e.lon) for e in gazetteer().entries], np.float64), axis=0)


def build(n: int, own: float, seed: int, chunk: int = 50_000):
    from listing_search.index.catalog import CatalogView
    from listing_search.store.models import Listing

    rng = np.random.default_rng(seed)
    places = towns()
    view = CatalogView(n)
    for start in range(0, n, chunk):
        batch = []
        for i in range(start, min(n, start + chunk)):
            u = rng.random()
            if u < 0.05:
                lat = lon = None
            elif u < 0.05 + own:
                lat, lon = float(rng.uniform(50.0, 58.6)), float(rng.uniform(-6.0, 1.7))
            else:
                lat, lon = (float(x) for x in places[int(rng.integers(len(places)))])
            batch.append(Listing(i, f"b{i}", "", "", float(i % 997), "Town, Area", "Home / Sofas", "Home", 0, [],
                                 float(i), [], lat, lon, None if lat is None else "town"))
        view.upsert(batch)
    return view, places


def run(args) -> dict:
    from listing_search.core.near import Near, haversine_km
    from listing_search.core.query import DISTANCE, Filters, Page, Query
    from listing_search.search.paging import cut_page

    rss0 = rss_bytes()
    t0 = time.perf_counter()
    view, places = build(args.listings, args.own_points, args.seed)
    built_s = time.perf_counter() - t0
    rss1 = rss_bytes()
    n = view.n
    lats, lons = view.lat[:n], view.lon[:n]
    rng = np.random.default_rng(args.seed + 1)
    radius, page, brute, inside, mismatches = [], [], [], [], 0
    for q in range(args.queries):
        lat, lon = (float(x) for x in places[int(rng.integers(len(places)))])
        near = Near(lat, lon, RADII_KM[q % len(RADII_KM)])
        t = time.perf_counter()
        mask = view.allowed(Filters(near=near))
        radius.append(time.perf_counter() - t)
        rows = np.flatnonzero(mask)
        t = time.perf_counter()
        cut_page(view, None, rows, Query(filters=Filters(near=near), sort=DISTANCE, page=Page(20)), DISTANCE)
        page.append(time.perf_counter() - t)
        t = time.perf_counter()
        expected = np.nan_to_num(haversine_km(lat, lon, lats, lons), nan=np.inf) <= near.within_km
        brute.append(time.perf_counter() - t)
        mismatches += int((expected != mask).sum())
        inside.append(len(rows))
    return {"bench": "radius", "listings": n, "distinct_points": len(view.points), "queries": args.queries,
            "radii_km": list(RADII_KM), "own_points": args.own_points, "build_s": round(built_s, 2),
            "view_mb": round((rss1 - rss0) / 2**20, 1), "mismatches": mismatches,
            "inside_median": int(np.median(inside)), "inside_max": int(np.max(inside)),
            "radius": percentiles_ms(radius), "distance_page": percentiles_ms(page),
            "brute_force": percentiles_ms(brute), "machine": machine_state()}


if __name__ == "__main__":
    p = parser(__doc__)
    p.add_argument("--listings", type=int, default=1_000_000)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--own-points", type=float, default=0.01, help="fraction of listings at a position of their own")
    p.add_argument("--seed", type=int, default=0)
    main(run, p.parse_args())
