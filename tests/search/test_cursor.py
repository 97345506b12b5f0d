"""Paging by cursor while the catalogue changes: a listing added between two pages neither shifts nor
repeats what follows (sorted orders), and nothing already shown comes again (relevance)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from listing_search.serve.app import create_app
from tests.factories import copy_artifacts
from tests.serve.conftest import API_KEY, photo_bytes, serve_settings


@pytest.fixture
def client(ranked_artifacts: Path, tmp_path: Path) -> Iterator[TestClient]:
    art = copy_artifacts(ranked_artifacts, tmp_path / "art")
    with TestClient(create_app(serve_settings(art))) as c:
        c.artifacts = art
        yield c


def page(client: TestClient, **form) -> dict:
    r = client.post("/v1/search", data={k: str(v) for k, v in form.items()})
    assert r.status_code == 200, r.text
    return r.json()


def add(client: TestClient, title: str, price: float) -> str:
    r = client.post("/v1/listings", headers={"X-API-Key": API_KEY},
                    data={"title": title, "category": "Home & Garden", "price": str(price)},
                    files=[("photos", ("a.jpg", photo_bytes(client.artifacts, "img-004-0"), "image/jpeg"))])
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.mark.parametrize("sort,price", [("price_asc", 0.5), ("price_desc", 1e6), ("newest", 5.0)])
def test_a_listing_added_between_pages_neither_shifts_nor_repeats_the_next(client: TestClient, sort: str,
                                                                          price: float) -> None:
    query = {"category": "Home & Garden", "sort": sort}
    before = [r["id"] for r in page(client, **query, k=30)["results"]]
    first = page(client, **query, k=4)
    assert [r["id"] for r in first["results"]] == before[:4] and first["next_cursor"]
    new = add(client, "chair added meanwhile", price)  # sorts into page one: an offset page shifts by one
    assert [r["id"] for r in page(client, **query, k=30)["results"]].index(new) < 4
    second = page(client, **query, k=4, cursor=first["next_cursor"])
    assert [r["id"] for r in second["results"]] == before[4:8]
    shifted = page(client, **query, k=4, offset=4)
    assert [r["id"] for r in shifted["results"]] == before[3:7]  # what the cursor avoids


def test_relevance_pages_never_repeat_a_listing_after_the_catalogue_changes(client: TestClient) -> None:
    first = page(client, text="chair", k=3)
    shown = [r["id"] for r in first["results"]]
    add(client, "wooden garden chair chair chair", 20.0)  # a strong match joins M after page one
    seen, cursor = list(shown), first["next_cursor"]
    while cursor:
        nxt = page(client, text="chair", k=3, cursor=cursor)
        ids = [r["id"] for r in nxt["results"]]
        assert not set(ids) & set(seen), ids
        seen += ids
        cursor = nxt["next_cursor"]
    assert len(seen) >= page(client, text="chair", k=3)["total"] - 1  # all of M but at most the newcomer
