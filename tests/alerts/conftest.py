"""Fixtures of the saved-search tests: the catalogue built once, a private copy served per test with
the alert matcher running in the app (as ``make run`` serves it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

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
def settings(alert_art: Path) -> Settings:
    return alert_settings(alert_art)


@pytest.fixture
def engine(settings: Settings) -> Iterator[SearchEngine]:
    e = SearchEngine.load(settings, text_encoder=HashWords())
    yield e
    e.close()


@pytest.fixture
def client(settings: Settings, engine: SearchEngine) -> Iterator[TestClient]:
    with TestClient(create_app(settings, engine=engine, matcher=True)) as c:
        yield c
