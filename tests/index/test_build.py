"""The index stage on a tiny artifacts folder: the store of record, the snapshot, merges that never drop."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from listing_search import schema as S
from listing_search.index import snapshot
from listing_search.index.build import build_index
from listing_search.index.catalog import CatalogView
from listing_search.index.vector_index import VectorIndex
from listing_search.settings import Settings
from listing_search.store import open_storage
from listing_search.store.models import ORIGIN_API, ListingIn, PhotoIn, model_versions
from listing_search.core.query import Filters
from tests.index.tiny_artifacts import RARE, make_artifacts


@pytest.fixture(scope="module")
def art(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_artifacts(tmp_path_factory.mktemp("build") / "artifacts", n_listings=12)


def latest_image_index(art: Path) -> VectorIndex:
    data = snapshot.load_latest(art / "snapshots", model_versions(art, with_text=False))
    assert data is not None
    return VectorIndex.from_bytes(*data.image)


def test_builds_store_and_snapshot_with_infos(art: Path) -> None:
    infos = build_index(Settings(artifacts_dir=art), art, force=True)
    assert infos["kind"] == "flat" and infos["size"] == 24 and infos["recall_at_10"] == 1.0
    assert infos["catalog"] == {"listings": 12, "photos": 24} and "build_seconds" in infos
    assert latest_image_index(art).size == 24
    store, _ = open_storage(Settings(artifacts_dir=art), art)
    listing = store.listing("listing-004")
    assert (listing.title, listing.price, listing.root_category) == ("Item 4", 40.0, "Computers & Software")
    assert build_index(Settings(artifacts_dir=art), art)["up_to_date"] is True


def test_same_folder_spelled_differently_is_up_to_date(art: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build_index(Settings(artifacts_dir=art), art)
    monkeypatch.chdir(art.parent)
    relative = Path(art.name)
    assert build_index(Settings(artifacts_dir=relative), relative)["up_to_date"] is True
    assert build_index(Settings(artifacts_dir=art / "." / ".." / art.name), art / ".." / art.name)["up_to_date"]


def test_vector_ids_point_at_the_right_photos(art: Path) -> None:
    build_index(Settings(artifacts_dir=art), art)
    store, _ = open_storage(Settings(artifacts_dir=art), art)
    emb = np.load(art / S.IMAGE_EMBEDDINGS_NPY)
    order = json.loads((art / S.IMAGE_EMBEDDING_IDS).read_text())
    res = latest_image_index(art).search(emb[order.index("img-007-1")][None], 1)
    assert store.image_ids(res.ids[0].tolist())[int(res.ids[0][0])] == ("img-007-1", "listing-007")


def test_the_catalogue_view_filters_what_the_store_holds(art: Path) -> None:
    build_index(Settings(artifacts_dir=art), art)
    store, _ = open_storage(Settings(artifacts_dir=art), art)
    view = CatalogView.build(store.iter_listings())
    rare = view.live_rows()[view.allowed(Filters(category=RARE))[view.live_rows()]]
    assert len(rare) == 3 and sum(len(view.vector_ids[r]) for r in rare) == 6
    assert view.allowed(Filters(min_price=20, max_price=40)).sum() == 3
    assert view.allowed(Filters(location="bristol")).sum() == 6  # case-insensitive substring
    assert view.allowed(Filters(location="100%")).sum() == 0  # no wildcards


def test_photos_land_in_the_blob_store(art: Path) -> None:
    build_index(Settings(artifacts_dir=art), art)
    _, blobs = open_storage(Settings(artifacts_dir=art), art)
    assert blobs.get("photos/img-003-1.jpg") == (art / "images" / "img-003-1.jpg").read_bytes()


def test_missing_embeddings_are_reported(tmp_path: Path) -> None:
    art = make_artifacts(tmp_path / "artifacts", n_listings=3, embed=False)
    with pytest.raises(FileNotFoundError, match="image_embeddings.npy"):
        build_index(Settings(artifacts_dir=art), art)


def test_text_vectors_reach_the_snapshot(tmp_path: Path) -> None:
    art = make_artifacts(tmp_path / "artifacts", n_listings=6)
    (art / "text").mkdir()
    np.save(art / S.TEXT_EMBEDDINGS_NPY, np.eye(6, 4, dtype=np.float32) + 0.01)
    (art / S.TEXT_EMBEDDING_IDS).write_text(json.dumps([f"listing-{i:03d}" for i in range(6)]))
    (art / S.TEXT_MODEL_CARD).write_text(json.dumps({"version": "stand-in-v1"}))
    build_index(Settings(artifacts_dir=art), art)
    data = snapshot.load_latest(art / "snapshots", model_versions(art))
    store, _ = open_storage(Settings(artifacts_dir=art), art)
    text = VectorIndex.from_bytes(*data.text)
    assert text.size == 6 and sorted(text.all_ids().tolist()) == sorted(store.listing_ids().values())


def add_api_listing(art: Path, listing_id: str = "api-1") -> None:
    settings = Settings(artifacts_dir=art)
    store, _ = open_storage(settings, art)
    vec = np.arange(8, dtype=np.float32) + 1
    store.add_listing(ListingIn(listing_id, {"title": "Added", "root_category": RARE}, [PhotoIn(f"{listing_id}-p",
                      f"photos/{listing_id}-p.jpg", vec)], origin=ORIGIN_API), model_versions(art, with_text=False))


def test_forced_rebuild_keeps_api_listings(tmp_path: Path) -> None:
    art = make_artifacts(tmp_path / "artifacts", n_listings=5)
    build_index(Settings(artifacts_dir=art), art)
    add_api_listing(art)
    infos = build_index(Settings(artifacts_dir=art), art, force=True)
    assert infos["catalog"] == {"listings": 6, "photos": 11} and infos["merge"]["kept_api"] == 1
    assert latest_image_index(art).size == 11


def test_rebuild_that_would_delete_says_so_and_needs_prune(tmp_path: Path) -> None:
    art = make_artifacts(tmp_path / "artifacts", n_listings=5)
    build_index(Settings(artifacts_dir=art), art)
    listings = pd.read_csv(art / S.LISTINGS_CSV)
    listings[listings.listing_id != "listing-002"].to_csv(art / S.LISTINGS_CSV, index=False)
    infos = build_index(Settings(artifacts_dir=art), art)
    assert infos["merge"]["would_delete"] == ["listing-002"] and infos["catalog"]["listings"] == 5
    infos = build_index(Settings(artifacts_dir=art), art, prune=True)
    assert infos["merge"]["deleted"] == 1 and infos["catalog"]["listings"] == 4


def test_changed_title_updates_in_place(tmp_path: Path) -> None:
    art = make_artifacts(tmp_path / "artifacts", n_listings=4)
    build_index(Settings(artifacts_dir=art), art)
    store, _ = open_storage(Settings(artifacts_dir=art), art)
    key = store.listing("listing-001").key
    listings = pd.read_csv(art / S.LISTINGS_CSV)
    listings.loc[listings.listing_id == "listing-001", "title"] = "Renamed"
    listings.to_csv(art / S.LISTINGS_CSV, index=False)
    infos = build_index(Settings(artifacts_dir=art), art)
    assert (infos["merge"]["updated"], infos["merge"]["unchanged"]) == (1, 3)
    assert store.listing("listing-001").title == "Renamed" and store.listing("listing-001").key == key


def test_content_not_mtime_decides_up_to_date(tmp_path: Path) -> None:
    art = make_artifacts(tmp_path / "artifacts", n_listings=3)
    build_index(Settings(artifacts_dir=art), art)
    os.utime(art / S.LISTINGS_CSV, (1, 1))  # touched, same bytes
    assert build_index(Settings(artifacts_dir=art), art).get("up_to_date") is True


def test_a_dataset_listing_deleted_through_the_api_stays_deleted(tmp_path: Path) -> None:
    art = make_artifacts(tmp_path / "artifacts", n_listings=4)
    for photo_file in (art / "images").iterdir():  # prepared long ago (older than the sweep's grace)
        os.utime(photo_file, (time.time() - 7200,) * 2)
    settings = Settings(artifacts_dir=art)
    build_index(settings, art)
    store, blobs = open_storage(settings, art)
    _, blob_keys, _ = store.delete_listing("listing-002")
    infos = build_index(settings, art, force=True)
    assert store.listing("listing-002") is None and infos["merge"]["skipped_deleted"] == 1
    assert not any(blobs.exists(k) for k in blob_keys)  # its photos' bytes went with it (orphan sweep)


def test_orphan_photo_bytes_are_swept_after_a_grace_period(tmp_path: Path) -> None:
    from listing_search.store.gc import sweep_orphan_photos

    art = make_artifacts(tmp_path / "artifacts", n_listings=2)
    settings = Settings(artifacts_dir=art)
    build_index(settings, art)
    store, blobs = open_storage(settings, art)
    blobs.put("photos/crashed-add.jpg", b"bytes of an add that never committed")
    assert sweep_orphan_photos(store, blobs) == 0  # recent: an add may be about to commit
    old = time.time() - 7200
    os.utime(blobs.local_path("photos/crashed-add.jpg"), (old, old))
    assert sweep_orphan_photos(store, blobs) == 1 and not blobs.exists("photos/crashed-add.jpg")
    assert blobs.exists("photos/img-000-0.jpg")


def test_a_batch_naming_a_listing_twice_loads_nothing(tmp_path: Path) -> None:
    art = make_artifacts(tmp_path / "artifacts", n_listings=3)
    listings = pd.read_csv(art / S.LISTINGS_CSV)
    pd.concat([listings, listings.iloc[[1]]]).to_csv(art / S.LISTINGS_CSV, index=False)
    with pytest.raises(ValueError, match="listing id 'listing-001' twice"):
        build_index(Settings(artifacts_dir=art), art)
    store, _ = open_storage(Settings(artifacts_dir=art), art)
    assert store.counts()["listings"] == 0


def test_the_merge_writes_the_tables_coordinates_and_a_table_without_them_keeps_the_stored_ones(
        tmp_path: Path) -> None:
    """A listings table without coordinates (an older prepare): the store places the listings itself
    after the merge. With them (prepare's): the merge writes them, each listing updated once with a log
    entry (coordinates are part of its content), then unchanged. An older table merged again after that
    keeps the stored coordinates of a listing whose location it keeps, and places one it moves anew."""
    from listing_search.data.prepare import add_coordinates

    art = make_artifacts(tmp_path / "artifacts", n_listings=6)
    settings = Settings(artifacts_dir=art)
    build_index(settings, art)
    store, _ = open_storage(settings, art)
    assert {x.geo_precision for x in store.listings_by_key(store.listing_ids().values()).values()} == {"town"}
    plain = (art / S.LISTINGS_CSV).read_text()
    table = pd.read_csv(art / S.LISTINGS_CSV, dtype={S.LISTING_ID: str})
    table.loc[table[S.LISTING_ID] == "listing-002", S.LOCATION] = "Southside, Glasgow"
    add_coordinates(table)
    table.to_csv(art / S.LISTINGS_CSV, index=False)
    head = store.head()
    merge = build_index(settings, art)["merge"]
    assert merge["updated"] == 6 and store.head() == head + 6
    moved = store.listing("listing-002")
    assert (moved.location, moved.geo_precision) == ("Southside, Glasgow", "area")
    assert (round(moved.lat, 1), round(moved.lon, 1)) == (55.9, -4.3)
    assert build_index(settings, art, force=True)["merge"]["unchanged"] == 6
    table.loc[table[S.LISTING_ID] == "listing-003", S.LAT] = 0.0  # what the older table cannot overwrite
    table.to_csv(art / S.LISTINGS_CSV, index=False)
    build_index(settings, art)
    (art / S.LISTINGS_CSV).write_text(plain)  # an older prepare's table: no coordinates, listing-002 in Bristol
    build_index(settings, art)
    back, kept = store.listing("listing-002"), store.listing("listing-003")
    assert back.location == "Bristol, Bristol" and back.geo_precision == "town"  # moved: placed again
    assert (round(back.lat, 1), round(back.lon, 1)) == (51.5, -2.6)
    assert kept.lat == 0.0 and kept.geo_precision == "town"  # not moved: the stored coordinates kept
