"""Saved searches, alerts and the matcher's lease in the store (both back-ends): owners apart, the
limit, the cursor moved only with the alerts by the lease's holder, expiry, backups, and the
migration runner applying a lower-numbered file that arrives after a higher one."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from listing_search.store import open_store
from listing_search.store.backup import backup, restore
from listing_search.store.blobs import LocalBlobStore
from listing_search.store.saved import LeaseLost, SavedSearchLimit
from listing_search.store.sqlite import SqliteStore
from listing_search.store.sql import SqlStore
from tests.store.test_store import M1, item, store, store_url  # noqa: F401 - fixtures

A, B = "a" * 64, "b" * 64  # owners: token hashes


def save(store: SqlStore, owner: str = A, words: str = "oak table", limit: int = 50):
    return store.save_search(owner, {"text": words, "words": words}, np.ones(3, np.float32), None, limit)


def test_a_search_is_saved_at_the_log_head_for_its_owner_only(store: SqlStore) -> None:
    store.add_listing(item("x"), M1)
    mine = save(store)
    assert mine.created_seq == store.head() == 1
    save(store, B, "bike")
    assert [s.query["words"] for s in store.saved_searches(A)] == ["oak table"]
    assert np.array_equal(store.saved_searches(A)[0].text_vector, np.ones(3)) and mine.image_vector is None
    assert not store.delete_saved_search(B, mine.id)  # not B's: nothing deleted
    assert store.delete_saved_search(A, mine.id) and store.saved_searches(A) == []


def test_the_limit_is_per_owner_and_refused_without_writing(store: SqlStore) -> None:
    for _ in range(3):
        save(store, limit=3)
    with pytest.raises(SavedSearchLimit, match="3 is the most"):
        save(store, limit=3)
    assert len(store.saved_searches(A)) == 3
    save(store, B, limit=3)  # another buyer is not counted against A


def test_alerts_move_the_cursor_with_them_only_for_the_lease_holder(store: SqlStore) -> None:
    s1 = save(store)
    key, seq = store.add_listing(item("x"), M1)
    lease = store.take_lease("r1", 30)
    assert lease.done_seq == s1.created_seq == 0 and lease.term == 1
    assert store.take_lease("r2", 30) is None  # held
    lease = store.write_alerts(lease, seq, [(s1.id, key, "x", seq)])
    assert store.matcher_lease().done_seq == seq
    lease = store.write_alerts(lease, seq, [(s1.id, key, "x", seq)])  # a redo: no second alert
    assert [(a.search_id, a.listing_id) for a in store.alerts_after(A, 0, 10)] == [(s1.id, "x")]
    assert store.alerts_after(B, 0, 10) == []
    with store.write() as con:  # the lease ran out: another replica takes it, with a higher term
        con.execute("UPDATE matcher SET expires_at = 0")
    taken = store.take_lease("r2", 30)
    assert taken.term == 2 and taken.done_seq == seq
    key2, seq2 = store.add_listing(item("y"), M1)
    with pytest.raises(LeaseLost):  # the old holder's write is refused, whole
        store.write_alerts(lease, seq2, [(s1.id, key2, "y", seq2)])
    assert store.matcher_lease().done_seq == seq and len(store.all_alerts()) == 1
    store.write_alerts(taken, seq2, [(s1.id, key2, "y", seq2)])
    assert [a.listing_id for a in store.alerts_after(A, 0, 10)] == ["x", "y"]


def test_a_failed_alert_write_leaves_the_cursor_and_writes_nothing(store: SqlStore) -> None:
    s1 = save(store)
    key, seq = store.add_listing(item("x"), M1)
    lease = store.take_lease("r1", 30)
    with pytest.raises(Exception):
        store.write_alerts(lease, seq, [(s1.id, key, "x", seq), (s1.id, key, None, seq)])  # NULL id: refused
    assert store.all_alerts() == [] and store.matcher_lease().done_seq == 0


def test_alerts_of_a_deleted_search_are_dropped_and_deleting_removes_them(store: SqlStore) -> None:
    s1, s2 = save(store), save(store, words="bike")
    key, seq = store.add_listing(item("x"), M1)
    lease = store.take_lease("r1", 30)
    store.delete_saved_search(A, s2.id)
    store.write_alerts(lease, seq, [(s1.id, key, "x", seq), (s2.id, key, "x", seq)])
    assert [a.search_id for a in store.all_alerts()] == [s1.id]
    store.delete_saved_search(A, s1.id)
    assert store.all_alerts() == []


def test_first_seqs_tell_an_add_from_an_update(store: SqlStore) -> None:
    k1, s1 = store.add_listing(item("x"), M1)
    store.merge([item("d", origin="dataset")], M1)
    k2 = store.listing("d").key
    changed = item("d", origin="dataset", title="Table")
    store.merge([changed], M1)
    assert store.first_seqs([k1, k2]) == {k1: s1, k2: 2} and store.head() == 3


def test_idle_searches_and_old_alerts_expire(store: SqlStore) -> None:
    old, fresh = save(store), save(store, B)
    key, seq = store.add_listing(item("x"), M1)
    store.write_alerts(store.take_lease("r1", 30), seq, [(old.id, key, "x", seq), (fresh.id, key, "x", seq)])
    with store.write() as con:
        con.execute(store._sql("UPDATE saved_searches SET used_at = ? WHERE id = ?"), [time.time() - 91 * 86400, old.id])
    assert store.expire_saved(90 * 86400, 30 * 86400) == (1, 1)
    assert [s.id for s in store.saved_searches(B)] == [fresh.id] and store.saved_searches(A) == []
    assert store.expire_saved(90 * 86400, 30 * 86400, now=time.time() + 31 * 86400) == (0, 1)


def test_touch_marks_a_buyer_active(store: SqlStore) -> None:
    s = save(store)
    with store.write() as con:
        con.execute(store._sql("UPDATE saved_searches SET used_at = 5 WHERE id = ?"), [s.id])
    store.touch_saved_searches(A)
    assert store.saved_searches(A)[0].used_at > time.time() - 60


def test_a_backup_keeps_saved_searches_alerts_and_the_cursor(store: SqlStore, tmp_path: Path) -> None:
    s = save(store)
    key, seq = store.add_listing(item("x", n_photos=0), M1)
    store.write_alerts(store.take_lease("r1", 30), seq, [(s.id, key, "x", seq)])
    backup(store, LocalBlobStore(tmp_path / "blobs"), tmp_path / "backup")
    target = open_store(f"sqlite:///{tmp_path / 'restored.sqlite'}")
    restore(tmp_path / "backup", target, LocalBlobStore(tmp_path / "rb"))
    assert [a.listing_id for a in target.alerts_after(A, 0, 10)] == ["x"]
    lease = target.matcher_lease()
    assert lease.done_seq == seq and lease.expires_at == 0  # nobody holds the restored store's lease
    assert save(target).id > s.id  # ids go on after the restored ones


def test_a_lower_migration_arriving_after_a_higher_one_is_applied(tmp_path: Path, monkeypatch) -> None:
    """0005 applied, then a branch's 0004 merged: the next start applies 0004 (a max-version runner skipped it)."""
    from importlib import resources

    pkg = tmp_path / "pkg" / "mig_test"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    real = Path(str(resources.files("listing_search.store.migrations.sqlite")))
    for f in real.glob("*.sql"):
        if not f.name.startswith("0004"):
            shutil.copy(f, pkg / f.name)
    monkeypatch.syspath_prepend(str(tmp_path / "pkg"))
    monkeypatch.setattr(SqliteStore, "migrations_package", "mig_test")
    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    first = open_store(url)
    top = first.schema_version()
    first.close()
    shutil.copy(next(real.glob("0004_*.sql")), pkg)  # main's 0004 (coordinates, with its Python step) merged
    sys.modules.pop("mig_test", None)
    again = open_store(url)
    assert again.schema_version() == top and again._rows("SELECT COUNT(*) FROM listings WHERE lat IS NULL") == [(0,)]
    assert sorted(v for (v,) in again._rows("SELECT version FROM schema_version")).count(4) == 1
