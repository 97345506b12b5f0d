"""A search reads memory only: no statement reaches the store from any door, on SQLite or PostgreSQL,
and searches keep answering while PostgreSQL is down (only writes are refused)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from listing_search.index.build import build_index
from listing_search.serve.app import create_app
from listing_search.store.postgres import PostgresStore
from listing_search.store.sqlite import SqliteStore
from tests.factories import copy_artifacts
from tests.serve.conftest import API_KEY, photo_bytes, serve_settings


class Statements:
    """Every statement sent to the store, with the thread that sent it."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def note(self, sql: object) -> None:
        with self._lock:
            self.sent.append((threading.current_thread().name, str(sql)[:200]))


class CountedConnection:
    """A PostgreSQL connection that notes each statement, COPY and transaction it is asked for."""

    def __init__(self, con, statements: Statements) -> None:
        self._con, self._statements = con, statements

    def execute(self, sql, *args, **kwargs):
        self._statements.note(sql)
        return self._con.execute(sql, *args, **kwargs)

    def cursor(self, *args, **kwargs):
        self._statements.note("cursor")
        return self._con.cursor(*args, **kwargs)

    def transaction(self, *args, **kwargs):
        self._statements.note("transaction")
        return self._con.transaction(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._con, name)


@contextmanager
def counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[Statements]:
    """Count the statements of every store connection opened from now on: SQLite's trace hook, a
    counted connection on PostgreSQL."""
    statements = Statements()
    sqlite_connect, pg_connect = SqliteStore._connect, PostgresStore._connect

    def sqlite(self):
        con = sqlite_connect(self)
        con.set_trace_callback(statements.note)
        return con

    monkeypatch.setattr(SqliteStore, "_connect", sqlite)
    monkeypatch.setattr(PostgresStore, "_connect", lambda self: CountedConnection(pg_connect(self), statements))
    yield statements


def mixed_searches(artifacts: Path) -> list[tuple[str, str, dict, dict | None]]:
    """(method, path, form or json, files): 100 searches through every door a buyer uses."""
    photo = photo_bytes(artifacts, "img-004-0")
    history = json.dumps([{"listing_id": "listing-001", "event": "liked"}, {"listing_id": "listing-009"}])
    kinds = [
        ("POST", "/v1/search", {"text": "laptop", "k": "5"}, None),
        ("POST", "/v1/search", {"k": "5"}, {"image": ("q.jpg", photo, "image/jpeg")}),
        ("POST", "/v1/search", {"text": "chair", "k": "5"}, {"image": ("q.jpg", photo, "image/jpeg")}),
        ("POST", "/v1/search", {"text": "mountian bike", "k": "5", "price_max": "150", "location": "leeds"}, None),
        ("POST", "/v1/search", {"text": "chair", "k": "3", "sort": "price_desc", "offset": "3"}, None),
        ("POST", "/v1/search", {"text": "laptop", "k": "3", "sort": "newest", "history": history}, None),
        ("POST", "/v1/search", {"category": "Home & Garden", "k": "4", "sort": "price_asc"}, None),
        ("POST", "/v1/recommend", {"history": json.loads(history), "k": 5}, None),
        ("POST", "/v1/recommend", {"history": json.loads(history), "k": 5, "query": "bike"}, None),
        ("GET", "/v1/listings/listing-004/similar?k=5", {}, None),
        ("POST", "/predict/similar_images", {"k": "3"}, {"image": ("q.jpg", photo, "image/jpeg")}),
    ]
    return [kinds[i % len(kinds)] for i in range(100)]


def ask(client: TestClient, method: str, path: str, body: dict, files: dict | None):
    if method == "GET":
        return client.get(path)
    if path == "/v1/recommend":
        return client.post(path, json=body)
    return client.post(path, data=body, files=files)


@pytest.fixture(params=["sqlite", "postgres"])
def store_settings(request: pytest.FixtureRequest, ranked_artifacts: Path, tmp_path: Path):
    art = copy_artifacts(ranked_artifacts, tmp_path / "art")
    settings = serve_settings(art)
    settings.store.follow_interval_s = 60  # the log follower applies nothing during the test
    if request.param == "postgres":
        settings.store.url = request.getfixturevalue("postgres_url")
        build_index(settings, art, force=True)  # the catalogue loaded into PostgreSQL
    return settings


FOLLOWER = "log-follower"  # index.live.Follower's thread: it reads the log, searches do not
MATCHER = "alert-matcher"  # serve.matcher's thread: it holds its lease and writes alerts, searches do not
BACKGROUND = (FOLLOWER, MATCHER)


def test_a_hundred_mixed_searches_send_no_statement_to_the_store(store_settings, monkeypatch):
    art = store_settings.artifacts_dir
    with counted(monkeypatch) as statements, TestClient(create_app(store_settings)) as client:
        ask(client, "POST", "/v1/search", {"text": "warm up", "k": "1"}, None)
        started = len(statements.sent)
        assert started > 0, "the counter sees the statements of start-up: it would see a search's"
        cursor_pages = 0
        for method, path, body, files in mixed_searches(art):
            r = ask(client, method, path, body, files)
            assert r.status_code == 200, (path, body, r.text)
            cursor = r.json().get("next_cursor") if path == "/v1/search" else None
            if cursor:  # the next page by cursor as well
                again = client.post("/v1/search", data={**body, "offset": "0", "cursor": cursor}, files=files)
                assert again.status_code == 200, again.text
                cursor_pages += 1
        assert cursor_pages > 0
        from_requests = [(thread, sql) for thread, sql in statements.sent[started:] if thread not in BACKGROUND]
        assert from_requests == []


def test_searches_answer_while_postgresql_is_down_and_only_writes_are_refused(
        ranked_artifacts: Path, tmp_path: Path, own_postgres) -> None:
    art = copy_artifacts(ranked_artifacts, tmp_path / "art")
    settings = serve_settings(art)
    settings.store.url = f"{own_postgres.url}/postgres"
    build_index(settings, art, force=True)
    searches = mixed_searches(art)[:22]
    with TestClient(create_app(settings)) as client:
        assert all(ask(client, *s).status_code == 200 for s in searches)
        own_postgres.stop()
        for s in searches:
            r = ask(client, *s)
            assert r.status_code == 200, (s[1], s[2], r.text)
        write = client.post("/v1/listings", data={"title": "while down", "category": "Home & Garden"},
                            files=[("photos", ("a.jpg", photo_bytes(art, "img-004-0"), "image/jpeg"))],
                            headers={"X-API-Key": API_KEY})
        assert write.status_code == 503, write.text
        own_postgres.start()
        assert ask(client, *searches[0]).status_code == 200
