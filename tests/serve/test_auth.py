"""Writes need a configured key, checked from the headers before the body is read; no default key."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from listing_search.serve import auth
from listing_search.serve.app import create_app
from listing_search.settings import Settings
from tests.serve.conftest import API_KEY, photo_bytes, serve_settings
from tests.serve.live import live_server, read_reply


def keyless(artifacts: Path) -> Settings:
    s = serve_settings(artifacts)
    s.serve.api_key, s.serve.api_keys = None, []
    return s


def test_no_key_configured_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LISTING_SEARCH_SERVE__API_KEY", "LISTING_SEARCH_SERVE__API_KEYS"):
        monkeypatch.delenv(name, raising=False)
    assert Settings().serve.write_keys() == ()


@pytest.mark.parametrize(("value", "keys"), [("a,b", ("a", "b")), ('["a", "b"]', ("a", "b")),
                                             (" a , ,b", ("a", "b"))])
def test_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch, value: str, keys: tuple[str, ...]) -> None:
    monkeypatch.setenv("LISTING_SEARCH_SERVE__API_KEYS", value)
    monkeypatch.setenv("LISTING_SEARCH_SERVE__API_KEY", "old")
    assert Settings().serve.write_keys() == (*keys, "old")


def test_writes_are_refused_until_a_key_is_configured(built_artifacts: Path) -> None:
    photo = [("photos", ("x.jpg", photo_bytes(built_artifacts), "image/jpeg"))]
    with TestClient(create_app(keyless(built_artifacts))) as c:
        for key in (None, "", "change-me", "anything"):
            headers = {"X-API-Key": key} if key is not None else {}
            r = c.post("/v1/listings", data={"title": "t", "category": "Appliances"}, files=photo, headers=headers)
            assert r.status_code == 403 and "writes are disabled: no API key is configured" in r.json()["detail"]
            r = c.delete("/v1/listings/listing-001", headers=headers)
            assert r.status_code == 403 and "writes are disabled" in r.json()["detail"]
        assert c.get("/v1/listings/listing-001").status_code == 200


def test_every_configured_key_works(built_artifacts: Path) -> None:
    s = serve_settings(built_artifacts)
    s.serve.api_keys, s.serve.api_key = ["old-key", "new-key"], "legacy-key"
    with TestClient(create_app(s)) as c:
        for key in ("old-key", "new-key", "legacy-key"):  # past the check: an unknown id is a 404
            assert c.delete("/v1/listings/no-such-listing", headers={"X-API-Key": key}).status_code == 404
        for key in ("new-key ", "NEW-KEY", "new", API_KEY):
            assert c.delete("/v1/listings/no-such-listing", headers={"X-API-Key": key}).status_code == 403


def test_every_key_is_compared(monkeypatch: pytest.MonkeyPatch) -> None:
    """No early exit: a match on the first key costs as many comparisons as no match at all."""
    calls: list[int] = []
    real = auth.secrets.compare_digest
    monkeypatch.setattr(auth.secrets, "compare_digest", lambda a, b: calls.append(1) or real(a, b))
    assert auth.key_matches(b"k1", ("k1", "k2", "k3"))
    assert not auth.key_matches(b"zz", ("k1", "k2", "k3"))
    assert len(calls) == 6


def test_start_up_log_says_whether_writes_are_enabled(built_artifacts: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="listing_search.serve.auth"):
        create_app(keyless(built_artifacts))
        create_app(serve_settings(built_artifacts))
    assert "writes are disabled" in caplog.text and "writes are enabled: 1 API key(s)" in caplog.text
    assert API_KEY not in caplog.text


@pytest.mark.parametrize(("headers", "status"), [([], 401), ([(b"x-api-key", b"wrong")], 403)])
def test_key_is_checked_before_the_body_is_read(built_artifacts: Path, headers: list, status: int) -> None:
    """The app itself, driven over ASGI: a refused write never calls ``receive``."""
    app = create_app(serve_settings(built_artifacts))
    sent: list[dict] = []

    async def receive() -> dict:
        raise AssertionError("the body was read")

    async def send(message: dict) -> None:
        sent.append(message)

    headers = [(b"content-type", b"multipart/form-data; boundary=b"), (b"content-length", b"500000"), *headers]
    scope = {"type": "http", "method": "POST", "path": "/v1/listings", "raw_path": b"/v1/listings",
             "query_string": b"", "root_path": "", "headers": headers, "http_version": "1.1",
             "scheme": "http", "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1)}
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == status


@pytest.mark.slow
def test_real_server_refuses_a_wrong_key_without_waiting_for_the_body(built_artifacts: Path) -> None:
    """Headers of a 500 KB form (under the upload limit) and no body: the 403 comes at once."""
    head = (b"POST /v1/listings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 500000\r\n"
            b"Content-Type: multipart/form-data; boundary=b0undary\r\nX-API-Key: wrong\r\n\r\n")
    with live_server(built_artifacts) as (_, port), socket.create_connection(("127.0.0.1", port), 5) as sock:
        sock.sendall(head)
        reply = read_reply(sock, timeout=3.0)
    assert reply.startswith(b"HTTP/1.1 403"), reply[:200]
    assert b"invalid API key" in reply
