"""Writes through the API: Idempotency-Key retries, and a lost PostgreSQL connection (503, then a safe retry)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from listing_search.index.build import build_index
from listing_search.serve.app import create_app
from listing_search.settings import Settings
from listing_search.store import open_store
from tests.index.tiny_artifacts import RARE
from tests.serve.conftest import API_KEY, photo_bytes, serve_settings


def post(client: TestClient, artifacts: Path, key: str | None, title: str = "idempotent chair") -> object:
    headers = {"X-API-Key": API_KEY, **({"Idempotency-Key": key} if key else {})}
    return client.post("/v1/listings", data={"title": title, "category": RARE}, headers=headers,
                       files=[("photos", ("p.jpg", photo_bytes(artifacts, "img-003-0"), "image/jpeg"))])


def listings_titled(settings: Settings, artifacts: Path, title: str) -> int:
    store = open_store(settings.store.resolved_url(artifacts))
    return sum(x.title == title for x in store.listings_by_key(store.listing_ids().values()).values())


def test_same_key_and_body_returns_the_first_201_and_adds_nothing(rw_client: TestClient, artifacts: Path) -> None:
    first = post(rw_client, artifacts, "order-1")
    again = post(rw_client, artifacts, "order-1")
    assert first.status_code == again.status_code == 201 and again.json()["id"] == first.json()["id"]
    assert again.headers.get("Idempotent-Replayed") == "true" and "Idempotent-Replayed" not in first.headers
    assert int(first.headers["X-Log-Seq"]) == rw_client.get("/health").json()["log_seq"]
    assert listings_titled(serve_settings(artifacts), artifacts, "idempotent chair") == 1
    other = post(rw_client, artifacts, "order-1", title="another chair")
    assert other.status_code == 422 and "different request body" in other.json()["detail"]
    assert post(rw_client, artifacts, None).json()["id"] != first.json()["id"]  # no key: a new listing


@pytest.fixture
def pg_client(artifacts: Path, postgres_url: str) -> Iterator[tuple[TestClient, Settings]]:
    settings = serve_settings(artifacts)
    settings.store.url = postgres_url
    build_index(settings, artifacts, force=True)
    with TestClient(create_app(settings)) as client:
        yield client, settings


def terminate_connections(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as con:
        rows = con.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchall()
    return len(rows)


def test_lost_database_connection_is_503_then_a_retry_writes_once(pg_client, artifacts: Path) -> None:
    client, settings = pg_client
    assert terminate_connections(settings.store.url) >= 1
    first = post(client, artifacts, "retry-1", title="pg chair")
    assert first.status_code in (201, 503), first.text
    if first.status_code == 503:
        assert "unreachable" in first.json()["detail"] and first.headers["Retry-After"]
    retry = post(client, artifacts, "retry-1", title="pg chair")
    assert retry.status_code == 201
    assert listings_titled(settings, artifacts, "pg chair") == 1
    terminate_connections(settings.store.url)
    assert client.get(f"/v1/listings/{retry.json()['id']}").status_code == 200  # reads reconnect by themselves


def test_delete_removes_the_photos_bytes_and_metrics_show_the_log(rw_client: TestClient, artifacts: Path) -> None:
    r = post(rw_client, artifacts, None, title="short-lived")
    image_id, seq = r.json()["photos"][0]["image_id"], int(r.headers["X-Log-Seq"])
    blob = artifacts / "blobs" / "photos" / f"{image_id}.jpg"
    assert blob.is_file()
    gone = rw_client.delete(f"/v1/listings/{r.json()['id']}", headers={"X-API-Key": API_KEY})
    assert gone.status_code == 200 and int(gone.headers["X-Log-Seq"]) == seq + 1
    assert not blob.exists() and rw_client.get(f"/v1/images/{image_id}").status_code == 404
    metrics = rw_client.get("/metrics").text
    assert f"replica_log_seq {float(seq + 1)}" in metrics and "replica_log_lag_entries 0.0" in metrics
    assert "replica_snapshot_age_seconds" in metrics


def test_an_added_listing_is_placed_by_town_area_or_its_areas_centroid(artifacts: Path) -> None:
    """Every API write carries coordinates: the town, else the area, else the centroid of the area's
    listings placed by town in the catalogue (the write before it counts: read-your-writes); the
    store and the in-memory catalogue hold the same. The dataset's listings were placed by ``index``
    (its tables have no coordinates: the store placed them after the merge)."""
    from listing_search.core.places import distance_km
    from listing_search.index.catalog import PRECISION_CODE
    from listing_search.search.engine import SearchEngine
    from listing_search.serve.writes import CatalogWriter

    engine = SearchEngine.load(serve_settings(artifacts))
    catalog = engine.live.catalog
    assert (catalog.geo[catalog.live_rows()] == PRECISION_CODE["town"]).all()  # Leeds, Bristol
    writer = CatalogWriter(engine)
    expected = {  # location -> precision, where (checked by hand)
        "Delph, Manchester": ("town", (53.57, -2.02)),
        "Southside, Glasgow": ("area", (55.86, -4.25)),
        "Leeds, Leeds Borough": ("town", (53.80, -1.55)),
        "Quarry Mount Estate, Leeds Borough": ("area_centroid", (53.80, -1.55)),
        "Nowhere, Atlantis": ("none", None),
    }
    for n, (location, (precision, where)) in enumerate(expected.items()):
        written = writer.add_listing({"title": f"chair {n}", "root_category": RARE, "location": location},
                                     [photo_bytes(artifacts, "img-003-0")])
        stored = engine.store.listing(written.listing.listing_id)
        view = engine.live.catalog
        in_view = view.listing(view.row_of_id(written.listing.listing_id))
        assert stored.geo_precision == in_view.geo_precision == written.listing.geo_precision == precision, location
        assert (stored.lat, stored.lon) == (in_view.lat, in_view.lon)
        if where is None:
            assert stored.lat is None and stored.lon is None
        else:
            assert distance_km(stored.lat, stored.lon, *where) < 5, (location, stored.lat, stored.lon)
