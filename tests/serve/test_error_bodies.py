"""Issue 28 item 4: 4xx/5xx bodies and /health name the kind of failure (``storage``, ``database``) and
never an absolute path, a blob key or the database's host:port; those go to the log, and to
operators asking /health with one of ``serve.operator_keys`` (a write key does not show them)."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from urllib.parse import urlparse

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql

from listing_search.index.build import build_index
from listing_search.serve.app import create_app
from tests.index.tiny_artifacts import RARE
from tests.serve.conftest import API_KEY, photo_bytes, serve_settings

OPERATOR_KEY = "operator-key"
ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])/(?:[\w.-]+/)+[\w.-]*")
BLOB_KEY = re.compile(r"photos/[\w.-]+")


def assert_discreet(body: str, *secrets: str) -> None:
    """No absolute path, blob key or any of ``secrets`` (a host, a port, a folder) in ``body``."""
    assert not ABSOLUTE_PATH.search(body), f"an absolute path in {body}"
    assert not BLOB_KEY.search(body), f"a blob key in {body}"
    for secret in secrets:
        assert secret not in body, f"{secret!r} in {body}"


def add(client: TestClient, artifacts: Path):
    return client.post("/v1/listings", data={"title": "error test", "category": RARE},
                       files=[("photos", ("p.jpg", photo_bytes(artifacts, "img-003-0"), "image/jpeg"))],
                       headers={"X-API-Key": API_KEY})


def with_operator(settings):
    settings.serve.operator_keys = [OPERATOR_KEY]
    return settings


def test_a_broken_photo_store_names_storage_not_where(artifacts: Path, tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """The blob folder lies under a file: every put fails with ENOTDIR, a reason naming its key."""
    (tmp_path / "a-file").write_text("not a folder")
    settings = with_operator(serve_settings(artifacts))
    settings.store.blob_url = str(tmp_path / "a-file" / "blobs")
    with TestClient(create_app(settings)) as client, caplog.at_level(logging.WARNING):
        r = add(client, artifacts)
        assert r.status_code == 503 and r.json()["reason"] == "storage", r.text
        assert r.json()["detail"] == "not written: storage is unavailable" and r.headers["Retry-After"]
        assert_discreet(r.text, str(tmp_path))
        assert re.search(r"photos/\w+\.jpg: Not a directory", caplog.text), "the detail goes to the log"

        health = client.get("/health")
        assert health.json()["status"] == "degraded" and health.json()["writes"] == "storage is unavailable"
        assert health.json()["detail"] is None
        assert_discreet(health.text, str(tmp_path))
        assert client.get("/health", headers={"X-API-Key": API_KEY}).json()["detail"] is None, "a write key"
        detail = client.get("/health", headers={"X-API-Key": OPERATOR_KEY}).json()["detail"]
        assert str(tmp_path / "a-file") in detail["writes"] and detail["blob_store"].startswith("file://")


@pytest.fixture
def pg_settings(artifacts: Path, postgres_url: str):
    settings = with_operator(serve_settings(artifacts))
    settings.store.url = postgres_url
    build_index(settings, artifacts, force=True)
    return settings


def drop_database(url: str) -> None:
    where = urlparse(url)
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as con:
        con.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(where.path.lstrip("/"))))


def test_a_read_refused_with_the_database_gone_says_it_could_not_be_served(pg_settings) -> None:
    where = urlparse(pg_settings.store.url)
    secrets = (where.hostname, f"{where.port}", where.path.lstrip("/"), "postgresql://")
    with TestClient(create_app(pg_settings)) as client:
        assert client.get("/v1/listings/listing-001").status_code == 200
        drop_database(pg_settings.store.url)
        r = client.get("/v1/listings/listing-001")
        assert r.status_code == 503 and r.json() == {"detail": "could not be served: the database is unreachable",
                                                     "reason": "database"}
        assert_discreet(r.text, *secrets)
        w = client.delete("/v1/listings/listing-001", headers={"X-API-Key": API_KEY})
        assert w.status_code == 503 and w.json()["detail"] == "not written: the database is unreachable"
        assert_discreet(w.text, *secrets)
        s = client.post("/v1/search", data={"text": "", "category": RARE})  # browsing reads memory only
        assert s.status_code == 200 and s.json()["total"] == 3, s.text

        health = client.get("/health")
        assert health.status_code == 503 and health.json()["detail"] == "the database is unreachable"
        assert_discreet(health.text, *secrets)
        assert "error" not in client.get("/health", headers={"X-API-Key": API_KEY}).json()
        operator = client.get("/health", headers={"X-API-Key": OPERATOR_KEY}).json()
        assert where.hostname in operator["error"] and f"{where.port}" in operator["error"]


def test_an_engine_that_did_not_load_says_what_is_missing_not_where(tmp_path: Path) -> None:
    settings = with_operator(serve_settings(tmp_path / "empty-artifacts"))
    with TestClient(create_app(settings)) as client:
        for r in (client.get("/health"), client.get("/v1/listings/x"), client.get("/v1/categories")):
            assert r.status_code == 503 and "artifacts missing: model/vision.onnx" in r.text, r.text
            assert_discreet(r.text, str(tmp_path))
        operator = client.get("/health", headers={"X-API-Key": OPERATOR_KEY}).json()
        assert str(tmp_path / "empty-artifacts") in operator["error"]


def test_a_broken_artifact_is_named_by_its_file_not_its_folder(artifacts: Path) -> None:
    (artifacts / "model" / "vision.onnx").write_bytes(b"not an onnx model")
    with TestClient(create_app(with_operator(serve_settings(artifacts)))) as client:
        r = client.get("/health")
        assert r.status_code == 503 and "…/vision.onnx" in r.json()["detail"], r.text
        assert_discreet(r.text, str(artifacts))
        assert str(artifacts) in client.get("/health", headers={"X-API-Key": OPERATOR_KEY}).json()["error"]
