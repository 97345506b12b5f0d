"""Searching near a place through HTTP: the radius changes M (totals and facets count it), distances on
every result, sort=distance pages by cursor, bad input is a 422 with the reason, and no answer or log
holds an exact position. The catalogue: 30 listings, half in Leeds, half in Bristol (~270 km apart)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from listing_search.core.near import KM_PER_MILE, haversine_km
from listing_search.serve.app import create_app
from listing_search.serve.privacy import RoundedNearFilter, private_path
from tests.serve.conftest import serve_settings

HOME = "Home & Garden"
BUYER = "53.801234,-1.549876"  # a buyer's exact position, a kilometre or so from Leeds' centre


@pytest.fixture(scope="module")
def client(ranked_artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = serve_settings(ranked_artifacts)
    settings.serve.query_log = tmp_path_factory.mktemp("log") / "queries.jsonl"
    with TestClient(create_app(settings)) as c:
        yield c


def every_listing(engine) -> list:
    return [x for batch in engine.store.iter_listings() for x in batch]


def search(client: TestClient, **form) -> dict:
    r = client.post("/v1/search", data={k: str(v) for k, v in form.items()})
    assert r.status_code == 200, r.text
    return r.json()


def within(client: TestClient, lat: float, lon: float, km: float) -> set[str]:
    """Listing ids within ``km`` of the point, by brute force over the store's rows."""
    rows = every_listing(client.app.state.engine)
    lats = np.array([np.nan if x.lat is None else x.lat for x in rows])
    lons = np.array([np.nan if x.lon is None else x.lon for x in rows])
    d = np.nan_to_num(haversine_km(lat, lon, lats, lons), nan=np.inf)
    return {x.listing_id for x, ok in zip(rows, d <= km) if ok}


def test_every_listing_is_placed_and_the_fixture_has_two_towns(client: TestClient) -> None:
    rows = every_listing(client.app.state.engine)
    assert all(x.lat is not None for x in rows)
    assert len({(x.lat, x.lon) for x in rows}) == 2


def test_browse_near_a_town_is_every_listing_within_the_radius_nearest_first(client: TestClient) -> None:
    body = search(client, near="Leeds", within_km=40, k=50)
    got = [r["id"] for r in body["results"]]
    resolved = body["near_resolved"]
    assert resolved["name"] == "Leeds" and resolved["precision"] == "town" and resolved["within_km"] == 40
    expected = within(client, resolved["lat"], resolved["lon"], 40)
    assert set(got) == expected and body["total"] == len(expected) == 15
    assert all(r["location"].startswith("Leeds") and r["distance_km"] <= 40 for r in body["results"])
    wide = search(client, near="Leeds", within_km=500, k=50)
    km = [r["distance_km"] for r in wide["results"]]
    assert wide["total"] == 30 and km == sorted(km) and km[0] < 5 and km[-1] > 200  # Leeds, then Bristol


def test_words_near_a_town_are_the_match_set_inside_the_radius(client: TestClient) -> None:
    engine = client.app.state.engine
    anywhere = search(client, text="chair", k=50)
    near = search(client, text="chair", near="Bristol", within_km=25, k=50)
    assert near["total"] == len(near["results"]) > 0
    bristol = within(client, near["near_resolved"]["lat"], near["near_resolved"]["lon"], 25)
    holders = {r["id"] for r in anywhere["results"]} & bristol
    assert {r["id"] for r in near["results"]} <= bristol
    assert holders <= {r["id"] for r in near["results"]}  # what M held inside the radius, it still holds
    assert all(r["distance_km"] is not None for r in near["results"])
    assert all(r["distance_km"] is None for r in anywhere["results"])
    assert engine is client.app.state.engine


def test_sort_by_distance_pages_by_cursor_as_one_request(client: TestClient) -> None:
    for form in ({}, {"text": "bike"}, {"category": HOME}):
        query = {**form, "near": BUYER, "within_km": 400, "sort": "distance"}
        whole = search(client, **query, k=50)
        ids = [r["id"] for r in whole["results"]]
        assert whole["total"] == len(ids) > 4
        by_cursor, cursor = [], None
        while True:
            page = search(client, **query, k=4, **({"cursor": cursor} if cursor else {}))
            by_cursor += [r["id"] for r in page["results"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert by_cursor == ids, form
        km = [r["distance_km"] for r in whole["results"]]
        assert km == sorted(km), form
        other = client.post("/v1/search", data={**query, "within_km": "300", "k": "4", "cursor":
                                                search(client, **query, k=4)["next_cursor"]})
        assert other.status_code == 400  # a cursor is bound to its point and radius


def test_distance_facets_count_without_the_radius(client: TestClient) -> None:
    body = search(client, near="Leeds", within_km=5, k=5)
    bands = {b["max_miles"]: b["count"] for b in body["facets"]["distance"]}
    lat, lon = body["near_resolved"]["lat"], body["near_resolved"]["lon"]
    for miles, count in bands.items():
        assert count == len(within(client, lat, lon, miles * KM_PER_MILE)), miles
    assert bands[5] == 15 == body["total"] and sum(body["facets"]["category"][i]["count"]
                                                    for i in range(len(body["facets"]["category"]))) == 15
    assert search(client, category=HOME, k=5)["facets"]["distance"] == []
    words = search(client, text="chair", near="Bristol", within_km=40, k=5)
    bands = {b["max_km"]: b["count"] for b in words["facets"]["distance"]}
    assert all(count >= words["total"] for km, count in bands.items() if km >= 40)  # a wider band holds M


def test_near_on_recommend_similar_and_the_listing_page(client: TestClient) -> None:
    r = client.post("/v1/recommend", json={"history": [{"listing_id": "listing-001"}], "k": 10,
                                          "near": "Bristol", "within_km": 30})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert results and all(x["location"].startswith("Bristol") and x["distance_km"] < 30 for x in results)
    s = client.get("/v1/listings/listing-002/similar", params={"k": 10, "near": "Leeds", "within_km": 20})
    assert s.status_code == 200, s.text
    assert s.json()["results"] and all(x["location"].startswith("Leeds") for x in s.json()["results"])
    one = client.get("/v1/listings/listing-002", params={"near": "Bristol"}).json()
    far = client.get("/v1/listings/listing-001", params={"near": "Bristol"}).json()
    assert one["location"].startswith("Bristol") and one["distance_km"] < 5 and far["distance_km"] > 200
    assert client.get("/v1/listings/listing-001").json()["distance_km"] is None


@pytest.mark.parametrize("form,status,reason", [
    ({"text": "chair", "sort": "distance"}, 422, "distance needs near"),
    ({"text": "chair", "near": "Leedz"}, 422, "unknown place"),
    ({"text": "chair", "near": "Leeds", "within_km": "0.5"}, 422, "within_km"),
    ({"text": "chair", "near": "Leeds", "within_km": "501"}, 422, "within_km"),
    ({"text": "chair", "within_km": "10"}, 422, "give near too"),
    ({"text": "chair", "near": "91,0"}, 422, "latitude"),
])
def test_bad_near_is_a_422_with_the_reason(client: TestClient, form: dict, status: int, reason: str) -> None:
    r = client.post("/v1/search", data=form)
    assert r.status_code == status, r.text
    assert reason in json.dumps(r.json()), r.text


def test_an_unknown_place_names_close_ones(client: TestClient) -> None:
    body = client.post("/v1/search", data={"text": "chair", "near": "Leedz"}).json()
    assert "Leeds" in body["matches"] and "did you mean" in body["detail"]
    assert client.get("/v1/places", params={"prefix": "lee"}).json()["places"][0] == {"name": "Leeds",
                                                                                       "listings": 15}


def coordinates_in(answer: dict) -> list[float]:
    """Every position or distance an answer gives: ``near_resolved``, the echoed filter, ``distance_km``."""
    out = []
    near = answer.get("near_resolved") or {}
    out += [near[k] for k in ("lat", "lon") if k in near]
    out += [float(v) for v in re.findall(r"-?\d+\.\d+", str(answer.get("filters", {}).get("near", "")))]
    out += [r["distance_km"] for r in answer.get("results", []) if r.get("distance_km") is not None]
    if answer.get("distance_km") is not None:
        out.append(answer["distance_km"])
    return out


def test_no_answer_or_log_holds_an_exact_position(client: TestClient) -> None:
    answers = [client.post("/v1/search", data={"text": "chair", "near": BUYER, "within_km": "300"}),
               client.post("/v1/search", data={"near": BUYER, "sort": "distance"}),
               client.get("/v1/listings/listing-001", params={"near": BUYER}),
               client.get("/v1/listings/listing-001/similar", params={"near": BUYER, "within_km": 300}),
               client.post("/v1/recommend", json={"history": [{"listing_id": "listing-001"}], "near": BUYER,
                                                  "within_km": 300})]
    for r in answers:
        assert r.status_code == 200, r.text
        assert "53.801" not in r.text and "1.549" not in r.text and "lat\"" not in json.dumps(r.json().get("results"))
        values = coordinates_in(r.json())
        assert values and all(round(v, 2) == v for v in values), r.text  # coordinates 0.01 deg, km 0.1
        assert all(round(v, 1) == v for v in values if v not in (53.8, -1.55)), r.text
    body = answers[0].json()
    assert body["near_resolved"]["lat"] == 53.8 and body["near_resolved"]["lon"] == -1.55
    assert body["filters"]["near"] == "53.8, -1.55"
    assert all(round(r["distance_km"], 1) == r["distance_km"] for r in body["results"])
    logged = [json.loads(x) for x in client.app.state.settings.serve.query_log.read_text().splitlines()]
    near_lines = [x for x in logged if "near" in json.dumps(x)]
    assert near_lines and "53.801" not in json.dumps(near_lines) and "1.549" not in json.dumps(near_lines)
    assert {"lat": 53.8, "lon": -1.5, "within_km": 300.0} in [x.get("near") or x["filters"].get("near")
                                                              for x in near_lines]
    # the access log's request line has near= rounded before uvicorn formats it
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1", "GET", f"/v1/listings/x?near={BUYER}&k=3", "1.1", 200), None)
    RoundedNearFilter().filter(record)
    assert "53.801" not in record.getMessage() and "near=53.8%2C-1.5" in record.getMessage()
    assert private_path("/v1/search") == "/v1/search"
    metrics = client.get("/metrics").text
    assert "53.801" not in metrics and "1.549" not in metrics and "near=" not in metrics


def test_a_price_and_a_place_typed_among_the_words_search_as_the_filters_would(client: TestClient) -> None:
    typed = search(client, text="garden chair under £5,000 near Leeds", k=50)
    asked = search(client, text="garden chair", price_max=5000, near="Leeds", k=50)
    assert [r["id"] for r in typed["results"]] == [r["id"] for r in asked["results"]]
    assert typed["total"] == asked["total"] > 0 and typed["searched"] == asked["searched"]
    assert typed["filters"] == asked["filters"] == {"price_max": 5000.0, "near": "Leeds", "within_km": 40.0}
    assert [(r["phrase"], r["filter"], r["value"]) for r in typed["read_from_words"]] == [
        ("under £5,000", "price_max", 5000.0), ("near Leeds", "near", "Leeds")]
    assert all(r["distance_km"] <= 40.0 for r in typed["results"])
    # the buyer's own filter wins: the typed place stays words, and nothing is read for it
    own = search(client, text="garden chair near Leeds", near="Bristol", k=50)
    assert own["read_from_words"] == [] and own["filters"]["near"] == "Bristol"
    # read_words=false searches every word
    plain = search(client, text="garden chair under £5,000", read_words="false", k=50)
    assert plain["read_from_words"] == [] and "price_max" not in plain["filters"]
