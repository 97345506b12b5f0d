"""Fixtures of the saved-search tests: the catalogue built once, a private copy served per test with
the alert matcher running in the app (as ``make run`` serves it). The store of record is the copy's
SQLite file unless a module overrides ``store_kind`` to run on PostgreSQL too (a throwaway server's
fresh database, the catalogue loaded into it by the index builder)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from listing_search.index.build import build_index
from listing_search.search.engine import SearchEngine
from listing_search.serve.app import create_app
from listing_search.settings import Settings
from tests.alerts.fixtures import HashWords, alert_artifacts
from tests.factories import copy_artifacts
from tests.serve.conftest import serve_settings


@pytest.fixture(scope="session")
def built_alert_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return alert_artifacts(tmp_path_factory.mktemp("alerts") / "artifacts")


@pytest.fixture
def alert_art(built_alert_artifacts: Path, tmp_path: Path) -> Path:
    return copy_artifacts(built_alert_artifacts, tmp_path / "artifacts")


def alert_settings(artifacts: Path) -> Settings:
    s = serve_settings(artifacts)
    s.alerts.lease_ttl_s, s.alerts.poll_s = 2.0, 0.02
    return s


@pytest.fixture
def store_kind() -> str:
    """The back-end of the store of record: ``sqlite`` here; a module may parametrise it."""
    return "sqlite"


@pytest.fixture
def settings(request: pytest.FixtureRequest, store_kind: str, alert_art: Path) -> Settings:
    s = alert_settings(alert_art)
    if store_kind == "postgres":
        s.store.url = request.getfixturevalue("postgres_url")  # skips, or fails under CI=true, without one
        build_index(s, alert_art, force=True)  # the builder loads the catalogue into PostgreSQL
    else:
        assert store_kind == "sqlite", store_kind
    return s


@pytest.fixture
def engine(settings: Settings) -> Iterator[SearchEngine]:
    e = SearchEngine.load(settings, text_encoder=HashWords())
    yield e
    e.close()


@pytest.fixture
def client(settings: Settings, engine: SearchEngine) -> Iterator[TestClient]:
    with TestClient(create_app(settings, engine=engine, matcher=True)) as c:
        yield c
