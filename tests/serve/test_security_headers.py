"""Issue 28 item 3: browser security headers on every answer, the page's own scripts only, docs' start-up
script allowed by its hash, CORS closed unless configured. (Chromium enforces them in tests/web.)"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from listing_search.serve.app import create_app
from tests.serve.conftest import MAX_UPLOAD, photo_bytes, serve_settings

NEVER_FRAMED = "frame-ancestors 'none'"


def directives(response) -> dict[str, str]:
    csp = response.headers["content-security-policy"]
    return {d.split()[0]: d.strip() for d in csp.split(";") if d.strip()}


def assert_secured(response) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    assert response.headers["x-frame-options"] == "DENY"
    policy = directives(response)
    assert policy["frame-ancestors"] == NEVER_FRAMED
    assert "'unsafe-inline'" not in policy.get("script-src", "") and "'unsafe-eval'" not in str(policy)


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/", 200), ("GET", "/listing/listing-001", 200), ("GET", "/listing/nope", 404),
    ("GET", "/static/app.js", 200), ("GET", "/static/style.css", 200), ("GET", "/health", 200),
    ("GET", "/metrics", 200), ("GET", "/openapi.json", 200), ("GET", "/v1/listings/listing-001", 200),
    ("GET", "/v1/images/img-001-0", 200), ("GET", "/v1/images/nope", 404), ("GET", "/nowhere", 404),
    ("POST", "/v1/search", 422), ("POST", "/v1/listings", 401), ("DELETE", "/v1/listings/x", 401),
    ("GET", "/docs", 200), ("GET", "/redoc", 200), ("GET", "/docs/oauth2-redirect", 200),
])
def test_every_answer_carries_the_headers(client: TestClient, method: str, path: str, status: int) -> None:
    r = client.request(method, path)
    assert r.status_code == status
    assert_secured(r)


def test_an_upload_refused_by_size_in_middleware_carries_them_too(client: TestClient) -> None:
    r = client.post("/v1/search", content=b"x" * (MAX_UPLOAD + 100_000),
                    headers={"content-type": "multipart/form-data; boundary=b"})
    assert r.status_code == 413
    assert_secured(r)


def test_the_page_runs_only_its_own_files(client: TestClient) -> None:
    r = client.get("/")
    policy = directives(r)
    assert policy["script-src"] == "script-src 'self'" and policy["style-src"] == "style-src 'self'"
    html = r.text
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "an inline script the CSP would block"
    assert not re.search(r"<style|\sstyle=|\son[a-z]+=", html), "an inline style or handler the CSP would block"
    assert directives(client.get("/v1/listings/listing-001"))["default-src"] == "default-src 'none'"


@pytest.mark.parametrize("path", ["/docs", "/docs/oauth2-redirect"])
def test_docs_allow_exactly_their_start_up_script_by_hash(client: TestClient, path: str) -> None:
    r = client.get(path)
    (script,) = re.findall(r"<script>(.*?)</script>", r.text, re.S)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert directives(r)["script-src"] == f"script-src 'self' 'sha256-{digest}'"


def test_cors_is_closed_unless_origins_are_configured(client: TestClient, built_artifacts: Path) -> None:
    evil = {"Origin": "https://evil.example"}
    assert "access-control-allow-origin" not in client.get("/v1/listings/listing-001", headers=evil).headers
    pre = client.options("/v1/search", headers={**evil, "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in pre.headers
    settings = serve_settings(built_artifacts)
    settings.serve.cors_origins = ["https://shop.example"]
    with TestClient(create_app(settings)) as c:
        ok = c.options("/v1/search", headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://shop.example"
        r = c.post("/v1/search", files={"image": ("p.jpg", photo_bytes(built_artifacts), "image/jpeg")},
                   headers=evil)
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
        assert_secured(r)
