"""The saved-search API through the app with its matcher running: save, list, delete; one buyer apart
from another; the token's checks, the limit and the creation rates; alerts for listings added later
that match, once each. Every test runs on both stores of record, SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import time

import pytest
from fastapi.testclient import TestClient

from listing_search.search.engine import SearchEngine
from listing_search.serve.buyers import owner_of
from listing_search.store.models import ListingIn
from tests.alerts.fixtures import TOKEN_A, TOKEN_B, add, buyer, new_photo, wait_alerts

ALERT_WAIT_S = 10.0  # generous on a busy machine; bench/bench_alerts.py measures the real delay


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.realpart)])
def store_kind(request: pytest.FixtureRequest) -> str:
    """Overrides ``tests/alerts/conftest.py``'s: each test here on SQLite, then on PostgreSQL."""
    return request.param


@pytest.fixture(autouse=True)
def _served_from_the_chosen_store(store_kind: str, engine: SearchEngine) -> None:
    """The app's store is the back-end the test is named for (not a SQLite file left beside it)."""
    assert type(engine.store).__name__ == {"sqlite": "SqliteStore", "postgres": "PostgresStore"}[store_kind]


def save(client: TestClient, token: str = TOKEN_A, **form) -> dict:
    files = {"image": ("q.jpg", form.pop("image"), "image/jpeg")} if "image" in form else None
    r = client.post("/v1/saved-searches", data=form, files=files, headers=buyer(token))
    assert r.status_code == 201, r.text
    return r.json()


def test_a_buyer_saves_lists_and_deletes_and_never_reaches_anothers(client: TestClient) -> None:
    mine = save(client, text="oak table", location="Leeds")
    assert mine["label"] == "“oak table”, near Leeds" and mine["words"] == "oak table"
    theirs = save(client, TOKEN_B, text="bike", price_max="50")
    listed = client.get("/v1/saved-searches", headers=buyer(TOKEN_A)).json()
    assert [s["id"] for s in listed["saved_searches"]] == [mine["id"]] and listed["limit"] == 50
    r = client.delete(f"/v1/saved-searches/{theirs['id']}", headers=buyer(TOKEN_A))
    assert r.status_code == 404 and "no saved search" in r.json()["detail"]
    assert [s["id"] for s in client.get("/v1/saved-searches", headers=buyer(TOKEN_B)).json()["saved_searches"]] \
        == [theirs["id"]]  # still there
    add(client, "Oak coffee table", 1, location="Leeds, West Yorkshire")
    add(client, "BMX bike", 2, price=30.0)
    assert [a["listing"]["title"] for a in wait_alerts(client, TOKEN_A, 1)] == ["Oak coffee table"]
    assert [a["listing"]["title"] for a in wait_alerts(client, TOKEN_B, 1)] == ["BMX bike"]  # only B's
    assert client.delete(f"/v1/saved-searches/{mine['id']}", headers=buyer(TOKEN_A)).status_code == 204
    assert client.get("/v1/saved-searches", headers=buyer(TOKEN_A)).json()["saved_searches"] == []
    assert client.get("/v1/alerts", headers=buyer(TOKEN_A)).json()["alerts"] == []  # its alerts went with it


def test_a_price_and_a_place_typed_among_the_words_are_saved_as_filters(client: TestClient) -> None:
    typed = save(client, text="oak table under £100 near Leeds")
    assert typed["words"] == "oak table" and typed["label"] == "“oak table”, up to £100, near Leeds"
    own = save(client, text="bike under £50", price_max="80")  # the buyer's own filter wins
    assert own["label"] == "“bike under £50”, up to £80"
    add(client, "Oak side table", 1, price=60.0, location="Leeds, West Yorkshire")
    add(client, "Oak dining table", 2, price=400.0, location="Leeds, West Yorkshire")
    assert [a["listing"]["title"] for a in wait_alerts(client, TOKEN_A, 1)] == ["Oak side table"]


@pytest.mark.parametrize("headers, status, reason", [
    ({}, 401, "missing X-Buyer-Token"),
    ({"X-Buyer-Token": "short-token"}, 422, "at least 128 random bits"),
    ({"X-Buyer-Token": "a" * 40}, 422, "look random"),
    ({"X-Buyer-Token": "has spaces and / slashes in it, 40 chars!"}, 422, "A-Z, a-z, 0-9"),
])
def test_the_token_is_required_and_must_be_able_to_hold_128_random_bits(client: TestClient, headers, status,
                                                                        reason) -> None:
    for method, path in (("GET", "/v1/saved-searches"), ("GET", "/v1/alerts"), ("DELETE", "/v1/saved-searches/1"),
                         ("POST", "/v1/alerts/session")):
        r = client.request(method, path, headers=headers)
        assert r.status_code == status and reason in r.json()["detail"], (method, path, r.text)


@pytest.mark.parametrize("form, reason", [
    ({}, "would alert on every new listing"),
    ({"text": "   "}, "would alert on every new listing"),
    ({"text": "oak", "category": "Spaceships"}, "unknown category"),
    ({"price_min": "50", "price_max": "10"}, "above price_max"),
    ({"text": "x" * 1001}, "1000"),
])
def test_bad_searches_are_refused_with_the_reason(client: TestClient, form: dict, reason: str) -> None:
    r = client.post("/v1/saved-searches", data=form, headers=buyer(TOKEN_A))
    assert r.status_code == 422 and reason in r.text, r.text
    assert client.get("/v1/saved-searches", headers=buyer(TOKEN_A)).json()["saved_searches"] == []


def test_at_most_the_limit_per_buyer(client: TestClient, settings) -> None:
    settings.alerts.max_per_buyer = 3
    for i in range(3):
        save(client, text=f"lamp {i}")
    r = client.post("/v1/saved-searches", data={"text": "lamp 3"}, headers=buyer(TOKEN_A))
    assert r.status_code == 409 and "3 is the most" in r.json()["detail"]
    save(client, TOKEN_B, text="lamp")  # another buyer's count is their own


def test_creation_is_rate_limited_per_token_and_per_address(client: TestClient, settings) -> None:
    settings.alerts.create_per_buyer, settings.alerts.create_per_address = 2, 3
    save(client, text="kettle")
    save(client, text="kettle two")
    r = client.post("/v1/saved-searches", data={"text": "kettle three"}, headers=buyer(TOKEN_A))
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0 and "try again in" in r.json()["detail"]
    save(client, TOKEN_B, text="kettle")  # another token, same address: the address's third
    r = client.post("/v1/saved-searches", data={"text": "sofa"}, headers=buyer("C" * 11 + "0123456789abcdefghij"))
    assert r.status_code == 429  # a fresh token from the same address is refused too


def test_only_listings_added_after_saving_alert_and_once_each(client: TestClient, engine: SearchEngine) -> None:
    s = save(client, text="garden bench")  # the catalogue has "Garden bench 6", "... 16", "... 26": no alert
    browse = save(client, TOKEN_B, category="Sports, Leisure & Travel", price_max="25")
    add(client, "Teak garden bench", 1)
    add(client, "Kitchen chair", 2)
    add(client, "Tent", 3, category="Sports, Leisure & Travel", price=20.0)
    add(client, "Canoe", 4, category="Sports, Leisure & Travel", price=300.0)  # over the price filter
    got = wait_alerts(client, TOKEN_A, 1)
    assert [(a["saved_search_id"], a["listing"]["title"]) for a in got] == [(s["id"], "Teak garden bench")]
    assert [a["listing"]["title"] for a in wait_alerts(client, TOKEN_B, 1)] == ["Tent"]
    assert got[0]["saved_search"] == "“garden bench”"
    # A dataset load brings a new listing (it alerts), then updates it: its new log entry does not alert again.
    item = ListingIn("dataset-bench", {"title": "Pine garden bench", "root_category": "Home & Garden",
                                       "category_path": "Home & Garden / Sub", "price": 15.0, "location": "York"}, [])
    engine.store.merge([item], engine.live.models)
    engine.live.catch_up()
    assert [a["listing"]["title"] for a in wait_alerts(client, TOKEN_A, 2)][1] == "Pine garden bench"
    item.fields["title"] = "Pine garden bench, reduced"
    engine.store.merge([item], engine.live.models)
    engine.live.catch_up()
    add(client, "Oak garden bench", 5)  # a marker: once it alerted, the update before it was matched too
    after = wait_alerts(client, TOKEN_A, 3)
    assert [a["listing"]["title"] for a in after] == ["Teak garden bench", "Pine garden bench, reduced",
                                                       "Oak garden bench"]
    assert client.get("/v1/saved-searches", headers=buyer(TOKEN_A)).json()["saved_searches"][0]["alerts"] == 3
    assert browse["label"] == "in Sports, Leisure & Travel, up to £25"


def test_a_photo_is_saved_as_its_embedding_and_alerts_on_the_same_photo(client: TestClient,
                                                                         engine: SearchEngine) -> None:
    jpeg = new_photo(99)
    s = save(client, image=jpeg)
    assert s["photo"] and s["label"] == "your photo"
    (row,) = engine.store.saved_searches(owner_of(TOKEN_A))
    assert row.image_vector is not None and row.image_vector.shape == (engine.encoder.dim,)
    assert jpeg not in repr(row.query).encode() and "image" not in row.query
    add(client, "Some thing", 7)  # another colour: no alert (no calibrated relevance in these artifacts)
    add(client, "Same thing", 8, jpeg=jpeg)
    assert [a["listing"]["title"] for a in wait_alerts(client, TOKEN_A, 1)] == ["Same thing"]


def test_the_token_is_never_logged(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    s = save(client, text="desk lamp")
    add(client, "Brass desk lamp", 1)
    wait_alerts(client, TOKEN_A, 1)
    client.get("/v1/saved-searches", headers=buyer(TOKEN_A))
    client.post("/v1/alerts/session", headers=buyer(TOKEN_A))
    client.delete(f"/v1/saved-searches/{s['id']}", headers=buyer(TOKEN_A))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "alerts: 1 written" in logged and TOKEN_A not in logged


def test_idle_searches_expire_by_the_matcher(client: TestClient, engine: SearchEngine, settings) -> None:
    s = save(client, text="tennis racket")
    with engine.store.write() as con:
        con.execute(engine.store._sql("UPDATE saved_searches SET used_at = ? WHERE id = ?"),
                    [time.time() - 91 * 86400, s["id"]])
    matcher = client.app.state.matcher
    matcher._expired = -1e9  # due now
    deadline = time.monotonic() + ALERT_WAIT_S
    while engine.store.saved_search_ids() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine.store.saved_search_ids() == set()


def test_session_cookie_is_httponly_samesite_strict_and_scoped(client: TestClient) -> None:
    r = client.post("/v1/alerts/session", headers=buyer(TOKEN_A))
    cookie = r.headers["set-cookie"]
    assert r.status_code == 204 and "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert "Path=/v1/alerts" in cookie and TOKEN_A not in cookie
    client.cookies.clear()
    r = client.get("/v1/alerts/stream")
    assert r.status_code == 401 and "POST /v1/alerts/session" in r.json()["detail"]
    r = client.get("/v1/alerts/stream", cookies={"buyer_alerts": "0" * 64 + ".9999999999.forged"})
    assert r.status_code == 401

