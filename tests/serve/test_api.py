"""Happy paths of every endpoint through the FastAPI TestClient."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from tests.index.tiny_artifacts import DIM, RARE, ROOTS
from listing_search.serve.app import create_app
from tests.serve.conftest import API_KEY, photo_bytes, serve_settings


def _img(artifacts: Path, image_id: str = "img-005-0") -> dict:
    return {"image": ("photo.jpg", photo_bytes(artifacts, image_id), "image/jpeg")}


def test_health_reports_loaded_parts(client: TestClient) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["model"] is True
    assert body["listings"] == 30 and body["index"] == body["photos"] == 30 * 2 + 25
    assert body["index_type"] == "Flat" and body["text"] is False


def test_feature_embedding_original_api(client: TestClient, built_artifacts: Path) -> None:
    r = client.post("/predict/feature_embedding", files=_img(built_artifacts))
    assert r.status_code == 200
    assert len(r.json()["features"]) == DIM


def test_similar_images_finds_the_photo_itself(client: TestClient, built_artifacts: Path) -> None:
    r = client.post("/predict/similar_images", files=_img(built_artifacts), data={"k": "3"})
    body = r.json()
    assert r.status_code == 200 and len(body["similar_index"]) == 3
    assert body["image_ids"][0] in ("img-005-0", "img-005-1") and body["listing_ids"][0] == "listing-005"
    assert body["distances"][0] < 1e-4 and body["distances"] == sorted(body["distances"])


def test_search_one_result_per_listing(client: TestClient, built_artifacts: Path) -> None:
    # listing-000 has 27 near-identical photos: it must still be one result, and k listings come back.
    r = client.post("/v1/search", files=_img(built_artifacts, "img-000-0"), data={"k": "5"})
    results = r.json()["results"]
    ids = [x["id"] for x in results]
    assert r.status_code == 200 and ids[0] == "listing-000" and len(ids) == len(set(ids)) == 5
    top = results[0]
    assert top["title"] == "Item 0" and top["price"] == 0.0 and top["category"] == ROOTS[0]
    assert top["photos"][0]["url"] == f"/v1/images/{top['photos'][0]['image_id']}"
    assert len(top["matched_photos"]) >= 2 and top["score"] >= results[1]["score"]


def test_search_filters_rare_category_still_returns_k(client: TestClient, built_artifacts: Path) -> None:
    r = client.post("/v1/search", files=_img(built_artifacts, "img-000-0"), data={"k": "3", "category": RARE})
    results = r.json()["results"]
    assert r.status_code == 200 and len(results) == 3
    assert {x["category"] for x in results} == {RARE}
    assert r.json()["filters"] == {"category": RARE}


def test_search_price_and_location_filters(client: TestClient, built_artifacts: Path) -> None:
    data = {"k": "50", "price_min": "50", "price_max": "150", "location": "leeds"}
    results = client.post("/v1/search", files=_img(built_artifacts), data=data).json()["results"]
    assert results and all(50 <= x["price"] <= 150 and "Leeds" in x["location"] for x in results)
    assert len(results) == 6  # items 5, 7, ..., 15: odd ids are in Leeds, price = 10 * id


def test_listing_similar_and_image(client: TestClient) -> None:
    listing = client.get("/v1/listings/listing-003").json()
    assert listing["id"] == "listing-003" and len(listing["photos"]) == 2
    similar = client.get("/v1/listings/listing-003/similar", params={"k": 4}).json()
    ids = [x["id"] for x in similar["results"]]
    assert len(ids) == 4 and "listing-003" not in ids
    r = client.get(listing["photos"][0]["url"])
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg" and r.content[:2] == b"\xff\xd8"


def test_predict_category_probabilities(client: TestClient, built_artifacts: Path) -> None:
    r = client.post("/v1/predict/category", files=_img(built_artifacts), data={"top": "2"})
    cats = r.json()["categories"]
    assert r.status_code == 200 and len(cats) == 2 and cats[0]["probability"] >= cats[1]["probability"]
    assert all(c["category"] in ROOTS for c in cats)


def test_categories_and_metrics(client: TestClient) -> None:
    assert client.get("/v1/categories").json()["categories"] == list(ROOTS)
    client.get("/health")
    text = client.get("/metrics").text
    assert 'http_requests_total{method="GET",route="/health",status="200"}' in text
    assert 'http_request_duration_seconds_bucket{le="0.005",method="GET",route="/health"}' in text


def test_docs_and_openapi_examples(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "/v1/search" in spec["paths"] and "/v1/listings/{listing_id}/similar" in spec["paths"]
    assert "X-API-Key" in str(spec["components"]["securitySchemes"])


def test_add_then_delete_listing_live_and_persisted(rw_client: TestClient, artifacts: Path) -> None:
    from fastapi.testclient import TestClient as TC

    from listing_search.serve.app import create_app
    from tests.serve.conftest import serve_settings

    photo = ("new.jpg", photo_bytes(artifacts, "img-007-0"), "image/jpeg")
    data = {"title": "Brand new", "category": RARE, "price": "12.5", "location": "York", "description": "x"}
    r = rw_client.post("/v1/listings", data=data, files=[("photos", photo)], headers={"X-API-Key": API_KEY})
    assert r.status_code == 201, r.text
    new = r.json()
    assert new["category"] == RARE and len(new["photos"]) == 1 and new["price"] == 12.5
    hits = rw_client.post("/v1/search", files=_img(artifacts, "img-007-0"), data={"k": "3"}).json()["results"]
    assert new["id"] in [h["id"] for h in hits]
    assert rw_client.get(new["photos"][0]["url"]).status_code == 200
    with TC(create_app(serve_settings(artifacts))) as restarted:  # survives a restart
        assert restarted.get(f"/v1/listings/{new['id']}").json()["title"] == "Brand new"
        assert restarted.get("/health").json()["index"] == 86
    r = rw_client.delete(f"/v1/listings/{new['id']}", headers={"X-API-Key": API_KEY})
    assert r.status_code == 200 and r.json() == {"deleted": new["id"]}
    assert rw_client.get(f"/v1/listings/{new['id']}").status_code == 404
    with TC(create_app(serve_settings(artifacts))) as restarted:
        assert restarted.get("/health").json()["index"] == 85
        ids = [h["id"] for h in restarted.post("/v1/search", files=_img(artifacts, "img-007-0"),
                                               data={"k": "3"}).json()["results"]]
        assert new["id"] not in ids


def test_uploads_never_stored_under_the_client_name(rw_client: TestClient, artifacts: Path) -> None:
    photo = ("../../evil name.jpg", photo_bytes(artifacts, "img-002-0"), "image/jpeg")
    r = rw_client.post("/v1/listings", data={"title": "t", "category": RARE}, files=[("photos", photo)],
                       headers={"X-API-Key": API_KEY})
    assert r.status_code == 201
    image_id = r.json()["photos"][0]["image_id"]
    assert len(image_id) == 32 and all(c in "0123456789abcdef" for c in image_id)  # server-made uuid
    assert (artifacts / "blobs" / "photos" / f"{image_id}.jpg").is_file()
    assert not [p for p in artifacts.parent.rglob("*") if "evil" in p.name]


def test_the_server_reads_the_gazetteer_while_starting(built_artifacts) -> None:
    """The first search naming a place does not wait 0.6 s for the gazetteer: starting read it."""
    from listing_search.core import near

    near._population_by_key.cache_clear()
    near._by_population.cache_clear()
    with TestClient(create_app(serve_settings(built_artifacts))) as c:
        assert near._population_by_key.cache_info().currsize == 1
        assert near._by_population.cache_info().currsize == 1
        assert c.get("/health").status_code == 200
