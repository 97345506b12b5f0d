"""Served artifacts built once per session (tiny ONNX model, 30 listings); mutating tests get a copy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from listing_search.index.build import build_index
from listing_search.serve.app import create_app
from listing_search.settings import Settings
from tests.factories import copy_artifacts
from tests.index.tiny_artifacts import make_artifacts

API_KEY = "test-key"
MAX_UPLOAD = 64 * 1024


def serve_settings(artifacts: Path) -> Settings:
    s = Settings(artifacts_dir=artifacts)
    s.serve.api_key, s.serve.max_upload_bytes, s.serve.max_k = API_KEY, MAX_UPLOAD, 50
    s.rank.candidates = 10
    return s


@pytest.fixture(scope="session")
def built_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_artifacts(tmp_path_factory.mktemp("served") / "artifacts", dupes=25)
    build_index(serve_settings(root), root)
    return root


@pytest.fixture
def artifacts(built_artifacts: Path, tmp_path: Path) -> Path:
    """A private copy, for tests that add or delete listings."""
    return copy_artifacts(built_artifacts, tmp_path / "artifacts")


@pytest.fixture(scope="session")
def client(built_artifacts: Path) -> Iterator[TestClient]:
    """Read-only client over the shared artifacts."""
    with TestClient(create_app(serve_settings(built_artifacts))) as c:
        yield c


@pytest.fixture
def rw_client(artifacts: Path) -> Iterator[TestClient]:
    with TestClient(create_app(serve_settings(artifacts))) as c:
        yield c


def photo_bytes(artifacts: Path, image_id: str = "img-005-0") -> bytes:
    return (artifacts / "images" / f"{image_id}.jpg").read_bytes()
