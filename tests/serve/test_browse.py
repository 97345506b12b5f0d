"""Browsing without a query (filters, sort, paging) and near-duplicate photos first."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

import numpy as np

from listing_search.core.query import Page, Query
from listing_search.search.engine import SearchEngine
from listing_search.search.features import FEATURES
from tests.index.tiny_artifacts import RARE, ROOTS
from tests.serve.conftest import photo_bytes, serve_settings


def ids(r) -> list[str]:
    assert r.status_code == 200, r.text
    return [x["id"] for x in r.json()["results"]]


def test_filters_alone_browse_newest_first_with_paging(client: TestClient) -> None:
    first = client.post("/v1/search", data={"category": ROOTS[0], "k": "4"})
    body = first.json()
    assert body["total"] == 9 and len(body["results"]) == 4
    assert {x["category"] for x in body["results"]} == {ROOTS[0]}
    nums = [int(i.split("-")[1]) for i in ids(first)]
    assert nums == sorted(nums, reverse=True)  # newest (last stored) first
    rest = ids(client.post("/v1/search", data={"category": ROOTS[0], "k": "10", "offset": "4"}))
    assert len(rest) == 5 and not set(rest) & set(ids(first))


def test_browse_sorted_by_price(client: TestClient) -> None:
    r = client.post("/v1/search", data={"location": "Leeds", "sort": "price_asc", "k": "20"})
    prices = [x["price"] for x in r.json()["results"]]
    assert len(prices) == r.json()["total"] and prices == sorted(prices)
    # every Leeds listing once: as a result, or as a copy of one (the tiny catalogue's "Item 1" and
    # "Item 3" share a word, a place and a near-identical photo: index.duplicates groups them)
    shown = [x["id"] for x in r.json()["results"]] + [i for x in r.json()["results"]
                                                      for i in (x["duplicates"] or {}).get("listing_ids", [])]
    assert len(shown) == len(set(shown)) == 15
    r = client.post("/v1/search", data={"price_max": "100", "sort": "price_desc", "k": "3"})
    assert [x["price"] for x in r.json()["results"]] == [100.0, 90.0, 80.0]


def test_nothing_to_search_or_browse_by_is_422(client: TestClient) -> None:
    r = client.post("/v1/search", data={"k": "3"})
    assert r.status_code == 422 and "filters to browse by" in r.json()["detail"]
    assert client.post("/v1/search", data={"category": RARE, "sort": "cheapest"}).status_code == 422


def test_a_query_can_be_sorted_by_price(client: TestClient, built_artifacts: Path) -> None:
    files = {"image": ("p.jpg", photo_bytes(built_artifacts), "image/jpeg")}
    r = client.post("/v1/search", files=files, data={"k": "5", "sort": "price_desc"})
    prices = [x["price"] for x in r.json()["results"]]
    assert len(prices) == min(5, r.json()["total"]) >= 3 and prices == sorted(prices, reverse=True)


def test_a_near_duplicate_photo_brings_its_listing_first(built_artifacts: Path) -> None:
    engine = SearchEngine.load(serve_settings(built_artifacts))

    class LeastSimilarFirst:  # a ranker that ignores visual identity entirely
        name, features = "least-similar", list(FEATURES)

        def score(self, x: np.ndarray) -> np.ndarray:
            return -x[:, FEATURES.index("image_cos")]

    engine.use_models(engine.models.with_models(ranker=LeastSimilarFirst(), fitted=True))
    for i in (4, 13, 22):
        hits = engine.search(Query(image=photo_bytes(built_artifacts, f"img-{i:03d}-1"), page=Page(5))).hits
        assert hits[0].listing.listing_id == f"listing-{i:03d}"
