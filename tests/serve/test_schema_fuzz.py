"""Schemathesis against the app's own OpenAPI schema, in process: whatever a client sends, never a 5xx.

Bounded (25 derandomised examples per operation, valid and invalid) so it stays under half a minute;
writes get the key and a private copy of the artifacts, so generated listings and deletions reach the
real handlers. It guards against regressions; the known hostile inputs are in test_bad_input.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from schemathesis import GenerationMode
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from listing_search.search.engine import SearchEngine
from listing_search.serve.app import create_app
from listing_search.settings import Settings
from tests.factories import copy_artifacts
from tests.serve.conftest import API_KEY, serve_settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fuzzed_app(built_artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    root = copy_artifacts(built_artifacts, tmp_path_factory.mktemp("fuzz") / "artifacts")
    s = serve_settings(root)
    return create_app(s, engine=SearchEngine.load(s))


@pytest.fixture(scope="module")
def api_schema(fuzzed_app: FastAPI) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_asgi("/openapi.json", fuzzed_app)


def operations() -> list[tuple[str, str, GenerationMode]]:
    """(method, path, mode) of every documented operation, from an app that loads nothing; invalid
    data (the negative mode) only where an operation takes any input."""
    paths = create_app(Settings(artifacts_dir=Path("unused"))).openapi()["paths"]
    return [(m.upper(), p, mode) for p, ops in paths.items() for m, op in ops.items() for mode in GenerationMode
            if mode is GenerationMode.POSITIVE or op.get("parameters") or op.get("requestBody")]


@pytest.mark.parametrize(("method", "path", "mode"), operations())
def test_no_server_errors(api_schema: schemathesis.BaseSchema, method: str, path: str, mode: GenerationMode) -> None:
    """Parametrised by hand: schemathesis' lazy-fixture plugin does not run under pytest 9."""
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(mode))
    @settings(max_examples=25, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(headers={"X-API-Key": API_KEY}, checks=[not_a_server_error])

    check()
