"""Shared fixtures: tiny seeded datasets of the input's shape, made fresh for each test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.factories import make_dataset

REAL_DATA = Path(os.environ.get("DATA_DIR", Path(__file__).resolve().parents[2] / "shared/data/fb_marketplace"))


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    """A dataset folder with 3 categories, 12 listings, 2 photos each, and the CSV's traps."""
    return make_dataset(tmp_path / "dataset", n_listings=12, seed=0)


@pytest.fixture
def real_data() -> Path:
    if not (REAL_DATA / "Products.csv").is_file():
        pytest.skip(f"real dataset not found at {REAL_DATA}")
    return REAL_DATA


# --- Real parts (PostgreSQL, S3): shared fixtures, and no silent skips under CI=true -------------

from tests.realparts import (  # noqa: E402,F401 - fixtures shared with every test
    REALPART_FIXTURES,
    in_ci,
    moto_server,
    own_postgres,
    postgres_server,
    postgres_url,
    s3_bucket,
    s3_endpoint,
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "realpart: needs a real part (PostgreSQL, S3 server, Chromium, Dask); skips with the reason "
        "when it is missing, fails instead when CI=true",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that use a real-part fixture are marked ``realpart`` (select them with ``-m realpart``)."""
    for item in items:
        if REALPART_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.realpart)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Under CI=true a ``realpart`` test may not skip, even through a plain ``pytest.skip``."""
    outcome = yield
    report = outcome.get_result()
    if (in_ci() and report.skipped and not hasattr(report, "wasxfail")
            and item.get_closest_marker("realpart") is not None):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        report.outcome = "failed"
        report.longrepr = f"CI=true and a real part is missing: {reason}"
