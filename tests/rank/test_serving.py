"""Ranking inside the served API: learned re-ranking, history in /v1/search, /v1/recommend, words in
/v1/predict/category. Built on the serving tests' tiny artifacts plus real MiniLM text vectors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from listing_search.serve.app import create_app
from tests.serve.conftest import serve_settings

@pytest.fixture(scope="module")
def client(ranked_artifacts: Path) -> Iterator[TestClient]:
    with TestClient(create_app(serve_settings(ranked_artifacts))) as c:
        yield c


def _ids(resp) -> list[str]:
    assert resp.status_code == 200, resp.text
    return [r["id"] for r in resp.json()["results"]]


def test_engine_uses_the_fitted_ranker(client: TestClient):
    assert client.app.state.engine.ranking.fitted


def test_text_search_is_reranked_one_result_per_listing(client: TestClient):
    ids = _ids(client.post("/v1/search", data={"text": "laptop", "k": 10}))
    assert len(ids) == len(set(ids)) == 10
    results = client.post("/v1/search", data={"text": "laptop", "k": 10}).json()["results"]
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
    assert results[0]["category"] == "Computers & Software"


def test_search_filters_still_apply_with_history(client: TestClient):
    history = json.dumps([{"listing_id": "listing-001", "event": "liked"}])
    resp = client.post("/v1/search", data={"text": "chair", "k": 5, "price_max": 100, "history": history})
    assert resp.status_code == 200
    assert all(r["price"] <= 100 for r in resp.json()["results"])


def test_bad_history_is_a_422_with_the_reason(client: TestClient):
    resp = client.post("/v1/search", data={"text": "chair", "history": "not json"})
    assert resp.status_code == 422 and "history" in resp.json()["detail"]


def test_recommend_excludes_seen_and_reports_unknown_ids(client: TestClient):
    history = [{"listing_id": f"listing-{i:03d}", "event": "viewed", "timestamp": 1.7e9} for i in (1, 4, 7)]
    history.append({"listing_id": "no-such-listing", "event": "liked"})
    body = client.post("/v1/recommend", json={"history": history, "k": 8}).json()
    ids = [r["id"] for r in body["results"]]
    assert ids and not {"listing-001", "listing-004", "listing-007"} & set(ids)
    assert body["history_used"] == 3 and body["unknown_listing_ids"] == ["no-such-listing"]
    assert body["notes"] and len(ids) == len(set(ids))


def test_recommend_with_only_unknown_ids_is_empty_not_an_error(client: TestClient):
    body = client.post("/v1/recommend", json={"history": [{"listing_id": "x"}], "k": 5}).json()
    assert body["results"] == [] and body["history_used"] == 0 and body["notes"]


def test_recommend_with_query_blends_and_excludes_seen(client: TestClient):
    history = [{"listing_id": "listing-002", "event": "liked"}]
    ids = _ids(client.post("/v1/recommend", json={"history": history, "query": "bike", "k": 10}))
    assert "listing-002" not in ids


def test_recommend_refuses_bad_events_and_k(client: TestClient):
    assert client.post("/v1/recommend", json={"history": [{"listing_id": "a", "event": "bought"}]}).status_code == 422
    assert client.post("/v1/recommend", json={"history": [], "k": 0}).status_code == 422


def test_category_from_words(client: TestClient):
    resp = client.post("/v1/predict/category", data={"text": "gaming laptop", "top": 2})
    assert resp.status_code == 200, resp.text
    cats = resp.json()["categories"]
    assert len(cats) == 2 and cats[0]["probability"] >= cats[1]["probability"]
    assert client.post("/v1/predict/category", data={"top": 2}).status_code == 422


def test_bad_photo_with_words_gets_the_photo_status_not_a_generic_400(client: TestClient):
    resp = client.post("/v1/predict/category", data={"text": "gaming laptop"},
                       files={"image": ("x.jpg", b"not a photo", "image/jpeg")})
    assert resp.status_code == 415
    assert "not_an_image" in resp.json()["reason"]
