"""The store of record on both back-ends: one transaction per write with its log entry, ids never
reused, idempotency keys, merges, vectors per encoder version, migrations, backup and restore."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from listing_search.core.places import distance_km
from listing_search.errors import IdempotencyConflict, StoreVersionError
from listing_search.store import open_store
from listing_search.store.backup import backup, restore
from listing_search.store.blobs import LocalBlobStore
from listing_search.store.gc import delete_photo_bytes, sweep_orphan_photos
from listing_search.store.models import DELETE, ORIGIN_API, UPSERT, ListingIn, Models, PhotoIn
from listing_search.store.sql import IdempotentReplay, SqlStore

M1 = Models("img-v1", "txt-v1")
M2 = Models("img-v2", "txt-v2")


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(store_url: str) -> SqlStore:
    s = open_store(store_url)
    yield s
    s.close()


def item(listing_id: str, n_photos: int = 2, title: str = "Chair", seed: int = 0, origin: str = ORIGIN_API) -> ListingIn:
    rng = np.random.default_rng(seed)
    photos = [PhotoIn(f"{listing_id}-{j}", f"photos/{listing_id}-{j}.jpg", rng.standard_normal(4).astype(np.float32))
              for j in range(n_photos)]
    return ListingIn(listing_id, {"title": title, "price": 10.0, "root_category": "Home", "label": 0,
                                  "location": "Leeds"}, photos, rng.standard_normal(3).astype(np.float32), origin)


def test_a_write_is_rows_vectors_and_one_log_entry(store: SqlStore) -> None:
    key, seq = store.add_listing(item("a"), M1)
    assert store.head() == seq == 1
    (change,) = store.changes_since(0)
    assert (change.op, change.listing_key, change.listing_id) == (UPSERT, key, "a")
    lv = store.listing_vectors([key], M1)[key]
    assert lv.photo_vectors.shape == (2, 4) and lv.text_vector.shape == (3,)
    assert store.listing("a").image_ids == ["a-0", "a-1"]


def test_log_sequence_follows_commit_order_and_ids_are_never_reused(store: SqlStore) -> None:
    k1, _ = store.add_listing(item("a"), M1)
    vids = store.photo_vector_ids_many([k1])[k1]
    _, _, del_seq = store.delete_listing("a")
    k2, seq2 = store.add_listing(item("a"), M1)  # same listing id again: a new key and new photo ids
    assert k2 > k1 and min(store.photo_vector_ids_many([k2])[k2]) > max(vids) and seq2 > del_seq
    assert [c.op for c in store.changes_since(0)] == [UPSERT, DELETE, UPSERT]
    assert store.listing_vectors([k1], M1) == {}


def test_failed_write_leaves_nothing(store: SqlStore) -> None:
    store.add_listing(item("a"), M1)
    dup = item("b")
    dup.photos[0].image_id = "a-0"  # unique photo id taken: the whole write must roll back
    with pytest.raises(Exception):
        store.add_listing(dup, M1)
    assert store.listing("b") is None and store.head() == 1 and store.counts() == {"listings": 1, "photos": 2}


def test_idempotency_key_replays_or_conflicts(store: SqlStore) -> None:
    store.add_listing(item("a"), M1, ("key-1", "hash-a"))
    with pytest.raises(IdempotentReplay) as replay:
        store.add_listing(item("b"), M1, ("key-1", "hash-a"))
    assert replay.value.listing_id == "a" and store.listing("b") is None
    with pytest.raises(IdempotencyConflict):
        store.add_listing(item("c"), M1, ("key-1", "hash-other"))
    assert store.idempotent_listing("key-1", "hash-a") == "a" and store.head() == 1


def test_merge_inserts_updates_and_never_touches_api_listings(store: SqlStore) -> None:
    store.add_listing(item("api"), M1)
    first = store.merge([item("d1", origin="dataset"), item("d2", origin="dataset")], M1)
    assert (first.inserted, first.kept_api) == (2, 1)
    again = store.merge([item("d1", title="Table", origin="dataset"), item("d2", origin="dataset"),
                         item("api", title="hijack", origin="dataset")], M1)
    assert (again.inserted, again.updated, again.unchanged) == (0, 1, 1)
    assert store.listing("d1").title == "Table" and store.listing("api").title == "Chair"
    gone = store.merge([item("d1", title="Table", origin="dataset")], M1)
    assert gone.would_delete == ["d2"] and store.listing("d2") is not None
    pruned = store.merge([item("d1", title="Table", origin="dataset")], M1, prune=True)
    assert pruned.deleted == 1 and store.listing("d2") is None and store.listing("api") is not None


def test_merge_inserts_new_listings_in_bulk_with_vectors_and_log(store: SqlStore, monkeypatch) -> None:
    """New dataset listings go in as a few bulk statements per chunk (COPY on PostgreSQL), with the same
    rows, vectors and one log entry each as single inserts; ids and sequences continue, never reused."""
    old_key, _ = store.add_listing(item("old", seed=99), M1)
    store.delete_listing("old")
    calls: list[tuple[str, int]] = []
    insert_rows = store._insert_rows
    monkeypatch.setattr(store, "_insert_rows", lambda con, t, c, rows: (calls.append((t, len(rows))),
                                                                        insert_rows(con, t, c, rows))[1])
    report = store.merge([item(f"d{i}", seed=i, origin="dataset") for i in range(300)], M1, chunk=200)
    assert report.inserted == 300 and report.last_seq == store.head() == 302
    assert calls == _bulk_calls(200) + _bulk_calls(100)
    changes = store.changes_since(2)
    keys = store.listing_ids()
    assert [(c.seq, c.op, c.listing_key) for c in changes] == \
        [(3 + i, UPSERT, keys[f"d{i}"]) for i in range(300)] and min(keys.values()) > old_key
    one = store.listing_vectors([keys["d7"]], M1)[keys["d7"]]
    want = item("d7", seed=7)
    np.testing.assert_array_equal(one.photo_vectors, np.stack([p.vector for p in want.photos]))
    np.testing.assert_array_equal(one.text_vector, want.text_vector)
    assert store.listing("d7").image_ids == ["d7-0", "d7-1"] and store.listing("d7").price == 10.0
    again = store.merge([item(f"d{i}", seed=i, origin="dataset") for i in range(300)], M1)
    assert (again.inserted, again.unchanged, store.head()) == (0, 300, 302)  # same content hashes
    key, seq = store.add_listing(item("after"), M1)
    assert key > max(keys.values()) and seq == 303
    assert min(store.photo_vector_ids_many([key])[key]) > max(v for vs in store.photo_vector_ids_many(
        keys.values()).values() for v in vs)


def _bulk_calls(n: int) -> list[tuple[str, int]]:
    return [("listings", n), ("photos", 2 * n), ("photo_vectors", 2 * n), ("text_vectors", n), ("changes", n)]


def test_a_failed_bulk_merge_writes_nothing(store: SqlStore) -> None:
    store.add_listing(item("a"), M1)  # photos a-0, a-1
    clash = ListingIn("d1", {"title": "x"}, [PhotoIn("a-0", "photos/a-0.jpg", np.ones(4, np.float32))], None, "dataset")
    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        store.merge([item("d0", origin="dataset"), clash], M1)
    assert store.head() == 1 and store.counts() == {"listings": 1, "photos": 2} and store.listing("d0") is None


def test_vectors_are_kept_per_encoder_version(store: SqlStore) -> None:
    key, _ = store.add_listing(item("a"), M1)
    assert [v for v, _, _ in store.stale_photos(M2.image)] == store.photo_vector_ids_many([key])[key]
    vids = store.photo_vector_ids_many([key])[key]
    store.set_vectors({v: np.ones(6, np.float32) for v in vids}, {key: np.ones(5, np.float32)}, M2)
    assert store.listing_vectors([key], M1)[key].photo_vectors.shape == (2, 4)  # old version still served
    assert store.listing_vectors([key], M2)[key].photo_vectors.shape == (2, 6)
    assert store.stale_photos(M2.image) == [] and store.stale_texts(M2.text) == []
    assert store.drop_other_models(M2) == 3 and store.vector_models() == {"image": {"img-v2": 2}, "text": {"txt-v2": 1}}


def test_newer_schema_is_refused(store_url: str) -> None:
    s = open_store(store_url)
    with s.write() as con:
        con.execute("INSERT INTO schema_version (version) VALUES (999)")
    s.close()
    with pytest.raises(StoreVersionError, match="999"):
        open_store(store_url)


def test_backup_restores_into_an_empty_store_with_every_id(store: SqlStore, tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    for lid in ("a", "b", "c"):
        listing = item(lid, seed=ord(lid))
        for p in listing.photos:
            blobs.put(p.blob_key, f"bytes of {p.image_id}".encode())
        store.add_listing(listing, M1)
    store.delete_listing("b")
    manifest = backup(store, blobs, tmp_path / "backup")
    assert manifest["seq"] == store.head() == 4 and manifest["missing_blobs"] == []
    target, target_blobs = open_store(f"sqlite:///{tmp_path / 'restored.sqlite'}"), LocalBlobStore(tmp_path / "rb")
    restore(tmp_path / "backup", target, target_blobs)
    assert target.head() == 4 and target.listing_ids() == store.listing_ids()
    key = store.listing("c").key
    assert np.array_equal(target.listing_vectors([key], M1)[key].photo_vectors,
                          store.listing_vectors([key], M1)[key].photo_vectors)
    assert target_blobs.get("photos/c-1.jpg") == b"bytes of c-1"
    new_key, seq = target.add_listing(item("d"), M1)
    assert new_key > key and seq == 5  # id generators continue after the restored ids
    with pytest.raises(ValueError, match="not empty"):
        restore(tmp_path / "backup", target, target_blobs)


def as_older_store(store: SqlStore, version: int) -> None:
    """The store as one made at schema ``version`` looks: the later migrations' columns dropped, the
    migrations not recorded (so opening it again applies them)."""
    with store.write() as con:
        if version < 5:
            for table in ("alerts", "matcher", "saved_searches"):
                con.execute(f"DROP TABLE {table}")
            con.execute("DROP INDEX changes_listing")
        if version < 4:
            con.execute("DROP INDEX listings_unplaced")
            for column in ("lat", "lon", "geo_precision"):
                con.execute(f"ALTER TABLE listings DROP COLUMN {column}")
        if version < 3:
            con.execute("ALTER TABLE listings DROP COLUMN posted_at")
        con.execute(f"DELETE FROM schema_version WHERE version > {int(version)}")


def test_an_older_store_gains_posted_at_from_its_change_log(store_url: str) -> None:
    """Migration 0003 on a store made before it: each listing's posted_at is the time of its first
    log entry; later writes set their own (a new listing: now; a dataset one: its photos' date)."""
    import time

    store = open_store(store_url)
    key, _ = store.add_listing(item("old"), M1)
    logged = store.changes_since(0)[0].at
    as_older_store(store, 2)  # no posted_at yet, the migrations after 2 not applied
    store.close()
    migrated = open_store(store_url)
    assert migrated.schema_version() == 5
    assert migrated.listing("old").posted_at == pytest.approx(logged)
    before = time.time()
    migrated.add_listing(item("new"), M1)
    assert migrated.listing("new").posted_at >= before
    dated = item("dated", origin="dataset")
    dated.fields["posted_at"] = 1645833600.0
    migrated.merge([dated], M1)
    assert migrated.listing("dated").posted_at == 1645833600.0
    dated.fields["posted_at"] = float("nan")  # a later load without dates keeps the one it had
    dated.fields["title"] = "Chair, now cheaper"
    migrated.merge([dated], M1)
    assert migrated.listing("dated").posted_at == 1645833600.0 and migrated.listing("dated").title.endswith("cheaper")


def test_photo_bytes_deleted_during_a_backup_stay_until_it_ends(store: SqlStore, tmp_path: Path) -> None:
    """A backup's lease keeps deleted photos' bytes (its snapshot may name them); the sweep after it
    removes them; an expired lease (a killed backup) holds nothing back."""
    blobs = LocalBlobStore(tmp_path / "blobs")
    for lid in ("a", "b"):
        for p in item(lid).photos:
            blobs.put(p.blob_key, b"jpeg")
        store.add_listing(item(lid), M1)
    store.hold_backup("x", ttl_s=60)
    assert store.backup_in_progress()
    _, keys, _ = store.delete_listing("a")
    assert delete_photo_bytes(store, blobs, keys) == 0 and all(blobs.exists(k) for k in keys)
    assert sweep_orphan_photos(store, blobs, grace_s=0) == 0, "no sweep while a backup runs"
    store.release_backup("x")
    assert not store.backup_in_progress()
    assert sweep_orphan_photos(store, blobs, grace_s=0) == 2 and not any(blobs.exists(k) for k in keys)
    store.hold_backup("killed", ttl_s=-1)
    _, keys, _ = store.delete_listing("b")
    assert delete_photo_bytes(store, blobs, keys) == 2 and not any(blobs.exists(k) for k in keys)


# (location, expected precision, expected (lat, lon) within 5 km, or None); checked by hand
OLD_ROWS = [
    ("Leeds, West Yorkshire", "town", (53.80, -1.55)),
    ("Newport, Shropshire", "town", (52.77, -2.38)),
    ("Newport, Gwent", "town", (51.59, -3.00)),
    ("Southside, Glasgow", "area", (55.86, -4.26)),  # a suburb the gazetteer lacks: the city's point
    ("Quarry Mount Estate, Leeds Borough", "area_centroid", (53.80, -1.55)),  # an unknown area: its placed listings' mean
    ("Leeds, Leeds Borough", "town", (53.80, -1.55)),
    ("Nowhere, Atlantis", "none", None),
]


def test_an_older_store_gains_coordinates_with_log_entries(store_url: str) -> None:
    """Migration 0004 on a store made before it: every listing is placed from its location in the
    migration's transaction (its Python step), with one log entry each so replicas re-read them;
    opening it again changes nothing; a row written later without coordinates (a replica on older
    code) is placed by ``fill_coordinates``, its area's centroid counting the rows already placed."""
    store = open_store(store_url)
    keys = {}
    for n, (location, _, _) in enumerate(OLD_ROWS):
        it = item(f"old-{n}", n_photos=1, seed=n)
        it.fields["location"] = location
        keys[location] = store.add_listing(it, M1)[0]
    as_older_store(store, 3)
    head = store.head()
    store.close()

    migrated = open_store(store_url)
    assert migrated.schema_version() == 5
    for n, (location, precision, where) in enumerate(OLD_ROWS):
        got = migrated.listing(f"old-{n}")
        assert got.geo_precision == precision, location
        if where is None:
            assert got.lat is None and got.lon is None
        else:
            assert distance_km(got.lat, got.lon, *where) < 5, (location, got.lat, got.lon)
    logged = migrated.changes_since(head)
    assert sorted(c.listing_key for c in logged) == sorted(keys.values()) and {c.op for c in logged} == {UPSERT}
    migrated.close()
    again = open_store(store_url)
    assert again.head() == head + len(OLD_ROWS) and again.fill_coordinates() == 0

    late = item("late", n_photos=1, seed=99)
    late.fields["location"] = "Little Quarry Estate, Leeds Borough"  # written by older code: no coordinates
    again.add_listing(late, M1)
    assert again.listing("late").geo_precision is None
    before = again.head()
    assert again.fill_coordinates() == 1 and again.head() == before + 1
    placed = again.listing("late")
    assert placed.geo_precision == "area_centroid" and distance_km(placed.lat, placed.lon, 53.80, -1.55) < 5


def test_a_store_with_saved_searches_but_not_coordinates_gains_them(store_url: str) -> None:
    """Migrations landing out of number order (the alerts branch's 0005 applied before main's 0004
    arrived): opening the store applies 0004 with its Python step and keeps the saved searches."""
    store = open_store(store_url)
    old = item("old", n_photos=1, seed=1)
    old.fields["location"] = "Leeds, West Yorkshire"
    store.add_listing(old, M1)
    saved = store.save_search("a" * 64, {"text": "oak", "words": "oak"}, None, None, 50)
    with store.write() as con:  # as 0005 without 0004 left it
        con.execute("DROP INDEX listings_unplaced")
        for column in ("lat", "lon", "geo_precision"):
            con.execute(f"ALTER TABLE listings DROP COLUMN {column}")
        con.execute("DELETE FROM schema_version WHERE version = 4")
    head = store.head()
    store.close()

    migrated = open_store(store_url)
    assert migrated._applied_versions() == {1, 2, 3, 4, 5} and migrated.schema_version() == 5
    placed = migrated.listing("old")  # by 0004's step
    assert placed.geo_precision == "town" and distance_km(placed.lat, placed.lon, 53.80, -1.55) < 5
    assert [s.id for s in migrated.saved_searches("a" * 64)] == [saved.id]
    assert migrated.head() == head + 1  # one log entry for the placed listing
    migrated.close()
