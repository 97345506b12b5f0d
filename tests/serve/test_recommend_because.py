"""``POST /v1/recommend`` names, for each result, the history listing it is most like (``because``),
checked against a brute-force reference over the photo embeddings the artifacts were built from."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient


def listing_photo_means(artifacts: Path) -> dict[str, np.ndarray]:
    """Each listing's mean unit photo vector, from image_embeddings.npy (photo ``img-007-1`` is listing-007's)."""
    vectors = np.load(artifacts / "image_embeddings.npy")
    ids = json.loads((artifacts / "image_embedding_ids.json").read_text())
    vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    by_listing: dict[str, list[np.ndarray]] = {}
    for image_id, vec in zip(ids, vectors):
        by_listing.setdefault("listing-" + image_id.split("-")[1], []).append(vec)
    means = {lid: np.mean(vs, axis=0) for lid, vs in by_listing.items()}
    return {lid: m / np.linalg.norm(m) for lid, m in means.items()}


def test_each_result_names_the_history_listing_it_is_most_like(client: TestClient, built_artifacts: Path) -> None:
    history = [{"listing_id": "listing-001", "event": "viewed", "timestamp": 1.7e9},
               {"listing_id": "listing-014", "event": "viewed", "timestamp": 1.7e9},
               {"listing_id": "listing-022", "event": "viewed", "timestamp": 1.7e9},
               {"listing_id": "listing-022", "event": "liked", "timestamp": 1.7e9},
               {"listing_id": "no-such-listing", "event": "liked"}]
    resp = client.post("/v1/recommend", json={"history": history, "k": 10})
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    assert results

    means = listing_photo_means(built_artifacts)
    past = ["listing-001", "listing-014", "listing-022"]
    named = set()
    for r in results:
        expected = max(past, key=lambda lid: float(means[r["id"]] @ means[lid]))
        because = r["because"]
        assert because is not None, r["id"]
        assert because["listing_id"] == expected, (r["id"], because, expected)
        assert because["title"] == client.get(f"/v1/listings/{expected}").json()["title"]
        assert because["event"] == ("liked" if expected == "listing-022" else "viewed")
        named.add(expected)
    assert len(named) > 1, "every result named the same history listing: the reference would not tell"


def test_results_keep_the_search_hit_fields(client: TestClient) -> None:
    """Clients written before ``because`` see every field they knew, with the same meaning."""
    hit = client.post("/v1/recommend", json={"history": [{"listing_id": "listing-003"}], "k": 3}).json()["results"][0]
    search_hit = client.post("/v1/search", data={"category": "Home & Garden", "k": "1"}).json()["results"][0]
    assert set(search_hit) <= set(hit) and set(hit) - set(search_hit) == {"because"}
    assert hit["because"] == {"listing_id": "listing-003", "title": "Item 3", "event": "viewed"}


def test_no_usable_history_names_nothing(client: TestClient) -> None:
    body = client.post("/v1/recommend", json={"history": [{"listing_id": "nope"}], "k": 3}).json()
    assert body["results"] == [] and body["unknown_listing_ids"] == ["nope"]
