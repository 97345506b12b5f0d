"""Pages and totals that hold, through HTTP on the golden catalogue (~1,200 real listings).

For every sort and every kind of query, six pages of 10 (by offset, and by cursor) are exactly one
request of 60; ``total`` counts M's results (a group of near-duplicate listings is one), the same for
any k and sort, and equal to M counted by brute force from the match set's definition
(``search.match``), each listing of M shown once: as a result or as a result's duplicate."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from listing_search import schema as S
from listing_search.core.near import Near, haversine_km
from listing_search.core.query import Filters, Page, Query
from listing_search.core.text import match_terms
from listing_search.search.match import holds
from listing_search.serve.app import create_app
from tests.golden.conftest import golden_settings

pytestmark = [pytest.mark.realdata, pytest.mark.slow]
SORTS = ("relevance", "newest", "price_asc", "price_desc")
HOME = "Home & Garden"
NEAR = {"near": "Manchester", "within_km": "80"}  # the golden catalogue's listings are all over Great Britain


@pytest.fixture(scope="module")
def client(golden_artifacts: Path) -> Iterator[TestClient]:
    with TestClient(create_app(golden_settings(golden_artifacts))) as c:
        yield c


def queries(artifacts: Path) -> dict[str, tuple[dict, str | None]]:
    """words, photo, both and filters only: (form fields, photo id)."""
    photo = sorted((artifacts / S.CLEAN_IMAGES_DIR).iterdir())[7].stem
    return {"words": ({"text": "chair"}, None), "two words": ({"text": "mens jacket"}, None),
            "photo": ({}, photo), "both": ({"text": "sofa"}, photo), "filters": ({"category": HOME}, None),
            "words and filters": ({"text": "bike", "price_max": "300"}, None)}


def ask(client: TestClient, artifacts: Path, form: dict, photo: str | None, **more) -> dict:
    files = None
    if photo is not None:
        files = {"image": ("q.jpg", (artifacts / S.CLEAN_IMAGES_DIR / f"{photo}.jpg").read_bytes(), "image/jpeg")}
    r = client.post("/v1/search", data={**form, **{k: str(v) for k, v in more.items()}}, files=files)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("sort", SORTS)
def test_six_pages_are_one_request_of_sixty(client: TestClient, golden_artifacts: Path, sort: str) -> None:
    for name, (form, photo) in queries(golden_artifacts).items():
        whole = ask(client, golden_artifacts, form, photo, k=60, sort=sort)
        ids = [r["id"] for r in whole["results"]]
        assert len(ids) == min(60, whole["total"]) and len(set(ids)) == len(ids), (name, sort)
        by_offset = [r["id"] for i in range(6)
                     for r in ask(client, golden_artifacts, form, photo, k=10, offset=10 * i, sort=sort)["results"]]
        assert by_offset == ids, (name, sort)
        by_cursor, cursor = [], None
        for _ in range(6):
            page = ask(client, golden_artifacts, form, photo, k=10, sort=sort, **({"cursor": cursor} if cursor else {}))
            by_cursor += [r["id"] for r in page["results"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert by_cursor == ids, (name, sort)
        if sort.startswith("price"):
            prices = [r["price"] if r["price"] is not None else np.inf for r in whole["results"]]
            sign = 1 if sort == "price_asc" else -1
            finite = [sign * p for p in prices if np.isfinite(p)]
            assert finite == sorted(finite) and prices[len(finite):] == [np.inf] * (len(prices) - len(finite))
        if sort == "newest":
            posted = [r["posted_at"] for r in whole["results"]]
            assert all(p is not None for p in posted) and posted == sorted(posted, reverse=True)


@pytest.mark.parametrize("sort", ("distance", "relevance"))
def test_six_pages_near_a_place_are_one_request_of_sixty(client: TestClient, golden_artifacts: Path,
                                                         sort: str) -> None:
    """Near a place: a radius in M, distance_km on every result; by distance, nearest first across pages."""
    for name, (form, photo) in queries(golden_artifacts).items():
        form = {**form, **NEAR}
        whole = ask(client, golden_artifacts, form, photo, k=60, sort=sort)
        ids = [r["id"] for r in whole["results"]]
        assert len(ids) == min(60, whole["total"]) and len(set(ids)) == len(ids) and ids, (name, sort)
        km = [r["distance_km"] for r in whole["results"]]
        assert all(d is not None and d <= 80 for d in km), (name, sort)
        if sort == "distance":
            assert km == sorted(km), name
        by_cursor, cursor = [], None
        for _ in range(6):
            page = ask(client, golden_artifacts, form, photo, k=10, sort=sort, **({"cursor": cursor} if cursor else {}))
            by_cursor += [r["id"] for r in page["results"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert by_cursor == ids, (name, sort)
        by_offset = [r["id"] for i in range(6)
                     for r in ask(client, golden_artifacts, form, photo, k=10, offset=10 * i, sort=sort)["results"]]
        assert by_offset == ids, (name, sort)


def test_total_is_the_match_set_whatever_k_offset_or_sort(client: TestClient, golden_artifacts: Path) -> None:
    for name, (form, photo) in queries(golden_artifacts).items():
        totals = {ask(client, golden_artifacts, form, photo, k=k, sort=sort)["total"]
                  for k in (10, 100) for sort in SORTS}
        assert len(totals) == 1, (name, totals)
        total = totals.pop()
        past = ask(client, golden_artifacts, form, photo, k=10, offset=total)
        assert past["results"] == [] and past["total"] == total and past["next_cursor"] is None


def brute_force_m(engine, query: Query) -> set[str]:
    """M from its definition (``search.match``): every listing passing the filters that holds the words
    (scanning every listing's title and description), plus the ranked candidates whose relevance
    reaches the threshold, hold a near-identical photo, or are among the 10 best ranked."""
    from listing_search.search.match import MIN_SHOWN
    from listing_search.search.rank import NEAR_DUPLICATE, calibration_mode
    from listing_search.search.types import IMAGE

    store, f = engine.store, query.filters
    everything = [x for batch in store.iter_listings() for x in batch]
    passing = [x for x in everything
               if (f.category is None or x.root_category == f.category)
               and (f.max_price is None or (x.price is not None and x.price <= f.max_price))
               and (f.near is None or within(f.near, x))]
    scored = engine.pipeline.scored(query)
    u, ranked, view = scored.understanding, scored.ranked, scored.catalog
    terms = match_terms(u.words)
    held = {x.listing_id for x in passing if holds(terms, x.title, x.description)}
    held_rows = np.array([view.row_of_id(i) for i in held], np.int64)
    if u.unknown_words:
        return set()
    threshold = engine.models.no_match_below(calibration_mode(u))
    rel, rows, image = ranked.relevance, scored.candidates.rows, scored.candidates.score(IMAGE)
    best = set(rows[ranked.order[:MIN_SHOWN]].tolist())
    ranked_in = {view.listing_id[r] for i, r in enumerate(rows)
                 if rel is None or rel[i] >= threshold or image[i] >= NEAR_DUPLICATE or r in best}
    return held | ranked_in


def within(near: Near, listing) -> bool:
    """Haversine from the point to the listing's stored coordinates, written out per listing."""
    if listing.lat is None or listing.lon is None:
        return False
    km = float(haversine_km(near.lat, near.lon, np.array([listing.lat]), np.array([listing.lon]))[0])
    return km <= near.within_km


@pytest.mark.parametrize("words", ["chair", "sofa", "mens jacket", "garden table", "kids bike", "iphone",
                                   "wardrobe", "lawn mower", "tv", "dinning table"])
def test_total_equals_the_match_set_counted_by_brute_force(client: TestClient, words: str) -> None:
    engine = client.app.state.engine
    leeds = engine.resolve_near("Leeds", 40.0)
    for filters in (Filters(), Filters(category=HOME), Filters(max_price=50.0), Filters(near=leeds)):
        query = Query(text=words, filters=filters, page=Page(100))
        result = engine.search(query)
        expected = brute_force_m(engine, query)
        assert result.total == results_of(engine, expected), (words, filters)
        shown = [h.listing.listing_id for h in result.hits] + [i for h in result.hits for i in h.duplicates]
        assert len(shown) == len(set(shown)) and set(shown) <= expected
        assert len(result.hits) == min(100, result.total) and (result.total > 100 or set(shown) == expected)


def results_of(engine, listing_ids: set[str]) -> int:
    """How many results these listings make: one per group of near-duplicates (``index.duplicates``)."""
    view = engine.live.catalog
    return len(set(view.group_of(np.array([view.row_of_id(i) for i in listing_ids], np.int64)).tolist()))


def test_browsing_total_counts_every_listing_passing_the_filters(client: TestClient) -> None:
    engine = client.app.state.engine
    everything = [x for batch in engine.store.iter_listings() for x in batch]
    for filters in (Filters(category=HOME), Filters(max_price=20.0), Filters(location="london"),
                    Filters(category=HOME, min_price=100.0), Filters(near=engine.resolve_near("London", 25.0)),
                    Filters(category=HOME, near=engine.resolve_near("53.48,-2.24", 60.0))):
        expected = [x for x in everything
                    if (filters.category is None or x.root_category == filters.category)
                    and (filters.min_price is None or (x.price is not None and x.price >= filters.min_price))
                    and (filters.max_price is None or (x.price is not None and x.price <= filters.max_price))
                    and (filters.location is None or filters.location in x.location.lower())
                    and (filters.near is None or within(filters.near, x))]
        assert engine.search(Query(filters=filters)).total == results_of(engine, {x.listing_id for x in expected}) > 0, \
            filters


def test_a_cursor_of_another_search_or_a_broken_one_is_refused(client: TestClient, golden_artifacts: Path) -> None:
    first = ask(client, golden_artifacts, {"text": "chair"}, None, k=5, sort="price_asc")
    cursor = first["next_cursor"]
    assert cursor
    other = client.post("/v1/search", data={"text": "sofa", "k": "5", "sort": "price_asc", "cursor": cursor})
    assert other.status_code == 400 and "another search" in other.json()["detail"]
    resorted = client.post("/v1/search", data={"text": "chair", "k": "5", "sort": "newest", "cursor": cursor})
    assert resorted.status_code == 400 and "sorted by price_asc" in resorted.json()["detail"]
    for broken in ("not-a-cursor", cursor[:-7], "e30", json.dumps({"v": 1})):
        r = client.post("/v1/search", data={"text": "chair", "k": "5", "sort": "price_asc", "cursor": broken})
        assert r.status_code == 400, (broken, r.text)
    both = client.post("/v1/search", data={"text": "chair", "k": "5", "sort": "price_asc", "cursor": cursor,
                                           "offset": "5"})
    assert both.status_code == 422 and "offset or cursor" in both.json()["detail"]
