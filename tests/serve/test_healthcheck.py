"""The container's health probe: the address it asks, and what it prints when the answer is not 200."""

from __future__ import annotations

import os

import pytest

from listing_search.serve.healthcheck import DEFAULT_HOST, DEFAULT_PORT, health_url, operator_key, probe, serve_address
from listing_search.settings import ServeSettings, Settings
from tests.serve.test_uvicorn import free_port

ENVIRONMENTS = [
    {},
    {"LISTING_SEARCH_SERVE__PORT": "9000"},
    {"LISTING_SEARCH_SERVE__HOST": "0.0.0.0", "LISTING_SEARCH_SERVE__PORT": "8080"},
    {"listing_search_serve__port": "9001"},
    {"LISTING_SEARCH_SERVE": '{"host": "10.0.0.5", "port": 7000}'},
]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_probe_reads_the_address_the_server_binds(env: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.upper().startswith("LISTING_SEARCH_SERVE")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    serve = Settings().serve
    assert serve_address(env) == (serve.host, serve.port)
    assert (DEFAULT_HOST, DEFAULT_PORT) == (ServeSettings().host, ServeSettings().port)


def test_probe_asks_loopback_when_the_server_binds_every_address() -> None:
    assert health_url("0.0.0.0", 9000) == "http://127.0.0.1:9000/health"
    assert health_url("::", 80) == "http://127.0.0.1:80/health"
    assert health_url("10.0.0.5", 8000) == "http://10.0.0.5:8000/health"
    assert health_url("::1", 8000) == "http://[::1]:8000/health"


def test_probe_fails_with_the_reason_when_nothing_answers() -> None:
    url = f"http://127.0.0.1:{free_port()}/health"
    healthy, message = probe(url, timeout=2)
    assert not healthy and url in message and "refused" in message.lower()


@pytest.mark.parametrize(("value", "key"), [("", None), ("op-1,op-2", "op-1"), (' ["op-3"]', "op-3"), (" , op-4", "op-4")])
def test_probe_sends_the_first_operator_key_so_docker_keeps_the_whole_reason(value: str, key: str | None) -> None:
    """Settings read the same variable: an operator key is what makes /health show its detail."""
    assert operator_key({"LISTING_SEARCH_SERVE__OPERATOR_KEYS": value}) == key
    assert operator_key({}) is None
    if key:
        assert Settings(serve=ServeSettings(operator_keys=value)).serve.health_keys()[0] == key
