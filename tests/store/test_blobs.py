"""The blob store, local folder and S3 (moto's real server on loopback), through the same tests.

Storage failures are real ones: a tiny tmpfs that fills up, then is remounted read-only.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from listing_search.errors import BlobNotFound, StorageFull, StorageUnavailable
from listing_search.store.blobs import BlobStore, LocalBlobStore, S3BlobStore, open_blobstore
from tests.realparts import mount_tmpfs


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.realpart)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    bucket = request.getfixturevalue("s3_bucket")
    return S3BlobStore(f"s3://{bucket}/photos/v1", endpoint_url=request.getfixturevalue("s3_endpoint"))


def test_put_get_exists(store: BlobStore) -> None:
    assert not store.exists("a/b.jpg")
    store.put("a/b.jpg", b"\xff\xd8 jpeg bytes")
    store.put("empty", b"")
    assert store.exists("a/b.jpg")
    assert store.get("a/b.jpg") == b"\xff\xd8 jpeg bytes"
    assert store.get("empty") == b""


def test_overwrite_replaces_the_bytes(store: BlobStore) -> None:
    store.put("x.jpg", b"old" * 1000)
    store.put("x.jpg", b"new")
    assert store.get("x.jpg") == b"new"
    assert list(store.keys()) == ["x.jpg"]


def test_delete_and_missing_blobs(store: BlobStore) -> None:
    store.put("gone.jpg", b"1")
    store.delete("gone.jpg")
    store.delete("gone.jpg")  # missing is fine
    store.delete("never/was.jpg")
    assert not store.exists("gone.jpg")
    with pytest.raises(BlobNotFound) as info:
        store.get("gone.jpg")
    assert isinstance(info.value, KeyError)
    assert info.value.args == ("gone.jpg",)


def test_keys_lists_every_key_under_a_prefix(store: BlobStore) -> None:
    for key in ("p/1/a.jpg", "p/1/b.jpg", "p/2/c.jpg", "pq.jpg", "other/d.jpg"):
        store.put(key, key.encode())
    assert sorted(store.keys()) == ["other/d.jpg", "p/1/a.jpg", "p/1/b.jpg", "p/2/c.jpg", "pq.jpg"]
    assert sorted(store.keys("p/")) == ["p/1/a.jpg", "p/1/b.jpg", "p/2/c.jpg"]
    assert sorted(store.keys("p")) == ["p/1/a.jpg", "p/1/b.jpg", "p/2/c.jpg", "pq.jpg"]
    assert sorted(store.keys("p/1/b")) == ["p/1/b.jpg"]
    assert list(store.keys("nothing/")) == []


@pytest.mark.parametrize(("key", "reason"), [
    ("", "empty"),
    ("/etc/passwd", "relative"),
    ("../escape.jpg", r"'\.\.'"),
    ("a/../../b.jpg", r"'\.\.'"),
    ("a\\b.jpg", "backslash"),
    ("sp ace.jpg", "may only use"),
    ("caf\u00e9.jpg", "may only use"),
    ("a//b.jpg", "empty segment"),
    ("a/", "empty segment"),
    (".hidden.jpg", "starting with '.'"),
    ("a/.b.jpg.x1.tmp", "starting with '.'"),
])
def test_bad_keys_are_refused_with_the_reason(store: BlobStore, key: str, reason: str) -> None:
    for call in (lambda: store.put(key, b"x"), lambda: store.get(key), lambda: store.exists(key),
                 lambda: store.delete(key), lambda: store.local_path(key)):
        with pytest.raises(ValueError, match=reason):
            call()
    assert list(store.keys()) == []


def test_probe_works_and_leaves_nothing(store: BlobStore) -> None:
    assert store.probe() is None
    assert list(store.keys()) == []
    assert store.sweep_temp() == 0


def test_local_path(store: BlobStore) -> None:
    store.put("a/b.jpg", b"bytes")
    path = store.local_path("a/b.jpg")
    if isinstance(store, S3BlobStore):
        assert path is None
    else:
        assert path is not None and path.read_bytes() == b"bytes"
    assert store.local_path("a/missing.jpg") is None


def test_sweep_removes_only_temp_files_and_keys_never_list_them(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    store.put("a/b.jpg", b"kept")
    (tmp_path / "a" / ".b.jpg.k3x9q1.tmp").write_bytes(b"half a pho")
    (tmp_path / ".c.jpg.zz.tmp").write_bytes(b"")
    assert list(store.keys()) == ["a/b.jpg"]
    assert store.sweep_temp() == 0  # fresh: another process may still be writing them
    for tmp in (tmp_path / "a" / ".b.jpg.k3x9q1.tmp", tmp_path / ".c.jpg.zz.tmp"):
        os.utime(tmp, (time.time() - 3600,) * 2)
    assert store.sweep_temp() == 2
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["b.jpg"]
    assert store.get("a/b.jpg") == b"kept"


def test_s3_store_without_its_bucket_is_unavailable(s3_endpoint: str) -> None:
    store = S3BlobStore("s3://no-such-bucket/x", endpoint_url=s3_endpoint)
    reason = store.probe()
    assert reason is not None and "NoSuchBucket" in reason
    with pytest.raises(StorageUnavailable, match="put a.jpg: NoSuchBucket"):
        store.put("a.jpg", b"x")
    with pytest.raises(StorageUnavailable, match="NoSuchBucket"):
        store.get("a.jpg")


def test_open_blobstore_picks_the_implementation(tmp_path: Path) -> None:
    s3 = open_blobstore("s3://bucket/some/prefix/", endpoint_url="http://127.0.0.1:9")
    assert isinstance(s3, S3BlobStore) and s3.url == "s3://bucket/some/prefix/"
    for url in (tmp_path / "b", str(tmp_path / "b"), (tmp_path / "b").as_uri()):
        local = open_blobstore(url)
        assert isinstance(local, LocalBlobStore) and local.root == tmp_path / "b"
    assert not (tmp_path / "b").exists()  # created on the first put, not on open
    with pytest.raises(ValueError, match="no bucket"):
        open_blobstore("s3:///prefix")


# --- Real storage failures on a tiny tmpfs -------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs mounted for the test (needs root)."""
    with mount_tmpfs(tmp_path / "tiny", "64k") as mnt:
        yield mnt


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_full_disk_is_storage_full_and_leaves_no_temp(tiny_disk: Path) -> None:
    store = LocalBlobStore(tiny_disk / "blobs")
    store.put("a/1.jpg", b"1" * 1000)
    store.put("a/2.jpg", b"2" * 1000)
    with pytest.raises(StorageFull, match="put a/3.jpg: No space left on device") as info:
        store.put("a/3.jpg", os.urandom(200_000))
    assert info.value.status == 507
    with pytest.raises(StorageFull):
        store.put("a/1.jpg", os.urandom(200_000))  # an overwrite that does not fit keeps the old bytes
    assert _files(tiny_disk) == ["blobs/a/1.jpg", "blobs/a/2.jpg"]
    assert store.get("a/1.jpg") == b"1" * 1000 and store.get("a/2.jpg") == b"2" * 1000
    assert store.probe() is None  # small writes still fit


def test_read_only_disk_is_storage_unavailable(tiny_disk: Path) -> None:
    store = LocalBlobStore(tiny_disk / "blobs")
    store.put("a/1.jpg", b"kept")
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_disk)], check=True)
    with pytest.raises(StorageUnavailable, match="put a/2.jpg: Read-only file system") as info:
        store.put("a/2.jpg", b"x")
    assert info.value.status == 503
    with pytest.raises(StorageUnavailable, match="delete a/1.jpg: Read-only"):
        store.delete("a/1.jpg")
    reason = store.probe()
    assert reason is not None and "Read-only file system" in reason
    assert store.get("a/1.jpg") == b"kept"
    assert _files(tiny_disk) == ["blobs/a/1.jpg"]
