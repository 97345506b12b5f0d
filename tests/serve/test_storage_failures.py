"""Writes say what happened when storage fails (a real full or read-only tmpfs): 507/503 naming the kind
of storage and how it failed (never where), the store unchanged, no orphan files, /health degraded, and
reads still served."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from listing_search.serve.app import create_app
from listing_search.store import open_store
from tests.factories import copy_artifacts
from tests.index.tiny_artifacts import RARE
from tests.realparts import mount_tmpfs
from tests.serve.conftest import API_KEY, photo_bytes, serve_settings

pytestmark = pytest.mark.slow


@pytest.fixture
def disk(tmp_path: Path, built_artifacts: Path) -> Iterator[Path]:
    """The served artifacts copied onto an 8 MB tmpfs."""
    with mount_tmpfs(tmp_path / "disk", "8m") as mnt:
        yield copy_artifacts(built_artifacts, mnt / "artifacts")


def fill(folder: Path) -> Path:
    """Write until the disk is full; returns the filler file."""
    filler = folder / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


def files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def post(client: TestClient, artifacts: Path) -> object:
    return client.post("/v1/listings", data={"title": "disk test", "category": RARE},
                       files=[("photos", ("p.jpg", photo_bytes(artifacts, "img-003-0"), "image/jpeg"))],
                       headers={"X-API-Key": API_KEY})


def snapshot_of(url: str) -> tuple[int, dict]:
    store = open_store(url)
    return store.head(), store.counts()


def search_ok(client: TestClient, artifacts: Path) -> bool:
    r = client.post("/v1/search", files={"image": ("q.jpg", photo_bytes(artifacts), "image/jpeg")}, data={"k": "3"})
    return r.status_code == 200 and len(r.json()["results"]) == 3


def test_full_disk_is_507_and_changes_nothing(disk: Path) -> None:
    settings = serve_settings(disk)
    with TestClient(create_app(settings)) as client:
        url = settings.store.resolved_url(disk)
        before, before_files = snapshot_of(url), files(disk / "blobs")
        filler = fill(disk)
        r = post(client, disk)
        assert r.status_code == 507 and r.json() == {"detail": "not written: storage is full", "reason": "storage"}
        assert snapshot_of(url) == before and files(disk / "blobs") == before_files  # nothing half-written
        health = client.get("/health").json()
        assert health["status"] == "degraded" and health["writes"] == "storage is full"
        assert search_ok(client, disk)  # reads go on
        filler.unlink()
        client.app.state.writer._probe = (0.0, None)  # re-probe now rather than in 2 s
        assert post(client, disk).status_code == 201 and client.get("/health").json()["status"] == "ok"


def test_full_store_disk_leaves_no_orphan_photo(tmp_path: Path, disk: Path) -> None:
    """The photo bytes are written first (elsewhere); the store's commit fails; the bytes go again."""
    settings = serve_settings(disk)
    settings.store.blob_url = str(tmp_path / "blobs")
    shutil.copytree(disk / "blobs", tmp_path / "blobs")
    with TestClient(create_app(settings)) as client:
        before = files(tmp_path / "blobs")
        fill(disk)
        r = post(client, disk)
        assert r.status_code in (503, 507) and r.json()["reason"] == "database", r.text
        assert r.json()["detail"] in ("not written: the database is full", "not written: the database is unavailable")
        assert files(tmp_path / "blobs") == before
        assert search_ok(client, disk)


def test_read_only_photo_storage_is_503_and_reads_go_on(tmp_path: Path, built_artifacts: Path) -> None:
    """The photo store's disk turns read-only (remounted; a busy SQLite file cannot be, so it stays apart)."""
    import subprocess

    art = copy_artifacts(built_artifacts, tmp_path / "artifacts")
    with mount_tmpfs(tmp_path / "photos", "8m") as mnt:
        shutil.copytree(art / "blobs", mnt / "blobs")
        settings = serve_settings(art)
        settings.store.blob_url = str(mnt / "blobs")
        with TestClient(create_app(settings)) as client:
            url = settings.store.resolved_url(art)
            before = snapshot_of(url)
            subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
            try:
                r = post(client, art)
                assert r.status_code == 503 and r.json()["detail"] == "not written: storage is read-only", r.text
                health = client.get("/health").json()
                assert health["status"] == "degraded" and health["writes"] == "storage is read-only"
                assert search_ok(client, art)
                assert client.get("/v1/images/img-004-0").status_code == 200
            finally:
                subprocess.run(["mount", "-o", "remount,rw", str(mnt)], check=True)
            assert snapshot_of(url) == before
