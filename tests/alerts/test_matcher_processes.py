"""The matcher in real `listing-search serve` processes over one store (SQLite file, PostgreSQL): two
replicas, one matching by the lease; kill -9 of the matching replica inside its alert transaction
loses no alert (the other takes over from the stored cursor), and restarting it duplicates none
(alerts written before the kills keep their ids, and every expected alert is there exactly once)."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from listing_search.core.query import Filters
from listing_search.index.build import build_index
from listing_search.store import open_store
from listing_search.store.sql import SqlStore
from tests.alerts.fixtures import buyer, http_add
from tests.factories import copy_artifacts
from tests.serve.conftest import serve_settings
from tests.serve.test_uvicorn import free_port, serve_env, stop, wait_healthy

pytestmark = pytest.mark.slow
SETTLE_S = 30.0  # generous for a loaded machine: the takeover itself is lease_ttl_s (1.5 s) plus a poll
ROOTS = ("Home & Garden", "Computers & Software", "Sports, Leisure & Travel", "Appliances")
SEARCHES = [  # (buyer token, form): filters alone and photo-less, so any replica can check them by brute force
    ("buyerA-0123456789abcdefghijklmnop", {"category": "Home & Garden"}),
    ("buyerA-0123456789abcdefghijklmnop", {"price_max": "40"}),
    ("buyerB-ZYXWVUTSRQPONMLKJIHGFEDCBA", {"category": "Appliances", "price_min": "10"}),
    ("buyerB-ZYXWVUTSRQPONMLKJIHGFEDCBA", {"location": "leeds"}),
    ("buyerC-a1b2c3d4e5f6g7h8i9j0k1l2m3n4", {"category": "Computers & Software", "location": "Bristol"}),
]


@dataclass
class Replicas:
    artifacts: Path
    url: str
    env: dict[str, str]
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    bases: dict[str, str] = field(default_factory=dict)

    def start(self, name: str) -> str:
        port = free_port()
        cmd = [sys.executable, "-m", "listing_search.cli", "serve", "--artifacts", str(self.artifacts),
               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        proc = subprocess.Popen(cmd, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.bases[name] = base = f"http://127.0.0.1:{port}"
        wait_healthy(proc, base)
        self.procs[name] = proc
        return base

    def leader(self, store: SqlStore) -> str:
        """The replica whose process holds the matcher's lease (waits for one)."""
        deadline = time.monotonic() + SETTLE_S
        while time.monotonic() < deadline:
            lease = store.matcher_lease()
            if lease is not None and lease.holder and lease.expires_at > time.time():
                pid = int(lease.holder.split(":")[1])
                for name, proc in self.procs.items():
                    if proc.pid == pid:
                        return name
            time.sleep(0.05)
        raise AssertionError(f"no replica holds the lease: {store.matcher_lease()}")

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            stop(proc)
        self.procs.clear()


@pytest.fixture(params=["sqlite", "postgres"])
def replicas(request: pytest.FixtureRequest, built_alert_artifacts: Path, tmp_path: Path) -> Iterator[Replicas]:
    art = copy_artifacts(built_alert_artifacts, tmp_path / "artifacts")
    env = {**serve_env(), "LISTING_SEARCH_STORE__FOLLOW_INTERVAL_S": "0.1", "LISTING_SEARCH_ALERTS__LEASE_TTL_S": "1.5",
           "LISTING_SEARCH_ALERTS__POLL_S": "0.02", "LISTING_SEARCH_ALERTS__COMMIT_HOLD_S": "0.4"}
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        env["LISTING_SEARCH_STORE__URL"] = url
        settings = serve_settings(art)
        settings.store.url = url
        build_index(settings, art, force=True)  # the builder loads the dataset into PostgreSQL
    else:
        url = f"sqlite:///{art / 'store.sqlite'}"
    r = Replicas(art, url, env)
    try:
        yield r
    finally:
        r.stop_all()


def in_alert_transaction(store_url: str, store: SqlStore) -> bool:
    """Whether the matcher's alert transaction is open now (held open by ``alerts.commit_hold_s``)."""
    if store_url.startswith("sqlite"):  # the write lock held, while no add is being made
        con = sqlite3.connect(store_url[len("sqlite:///"):], timeout=0, isolation_level=None)
        try:
            con.execute("BEGIN IMMEDIATE")
            con.execute("ROLLBACK")
            return False
        except sqlite3.OperationalError:
            return True
        finally:
            con.close()
    rows = store._rows("SELECT 1 FROM pg_stat_activity WHERE state = 'idle in transaction' "
                       "AND starts_with(query, 'INSERT INTO alerts')")
    return bool(rows)


def add_and_kill_in_transaction(r: Replicas, store: SqlStore, via: str, listings: dict, n: int) -> None:
    """Add a listing that alerts, then kill -9 the matching replica while its alert transaction is open."""
    leader = r.leader(store)
    fields = {"category": "Home & Garden", "price": 20.0, "location": "Leeds, West Yorkshire"}
    resp = http_add(r.bases[via], f"kill point {n}", n, **fields)
    assert resp.status_code == 201, resp.text
    listings[resp.json()["id"]] = fields
    deadline = time.monotonic() + SETTLE_S
    while not (in_alert_transaction(r.url, store) and in_alert_transaction(r.url, store)):
        assert time.monotonic() < deadline, "the matcher never opened its alert transaction"
        time.sleep(0.02)
    r.kill(leader)


def expected(searches: dict[int, Filters], listings: dict[str, dict]) -> set[tuple[int, str]]:
    return {(sid, lid) for sid, f in searches.items() for lid, x in listings.items()
            if f.admits(x["price"], x["category"], x["location"])}


def test_kill_9_of_the_matching_replica_loses_no_alert_and_a_restart_duplicates_none(replicas: Replicas) -> None:
    r, rng = replicas, random.Random(9)
    a, b = r.start("a"), r.start("b")
    store = open_store(r.url)
    searches: dict[int, Filters] = {}
    for token, form in SEARCHES:
        resp = httpx.post(f"{a}/v1/saved-searches", data=form, headers=buyer(token), timeout=30)
        assert resp.status_code == 201, resp.text
        searches[resp.json()["id"]] = Filters(form.get("category"), _number(form, "price_min"),
                                              _number(form, "price_max"), form.get("location"))
    listings: dict[str, dict] = {}

    def add_some(count: int, start: int) -> None:
        for n in range(start, start + count):
            fields = {"category": rng.choice(ROOTS), "price": rng.choice([None, 5.0, 30.0, 80.0]),
                      "location": rng.choice(["Leeds, West Yorkshire", "Bristol, Bristol", "York"])}
            resp = http_add(r.bases[rng.choice(sorted(r.procs))], f"listing {n}", n, **fields)
            assert resp.status_code == 201, resp.text
            listings[resp.json()["id"]] = fields  # an API listing's category path is its root

    add_some(4, 0)
    first = r.leader(store)
    survivor = "b" if first == "a" else "a"
    add_and_kill_in_transaction(r, store, survivor, listings, 100)
    before = {(x.id, x.search_id, x.listing_id) for x in store.all_alerts()}
    add_some(4, 10)
    assert r.leader(store) == survivor  # took over: its lease, a new term
    r.start(first)  # the killed replica comes back as a follower
    add_some(3, 20)
    add_and_kill_in_transaction(r, store, first, listings, 200)  # now the survivor dies mid-transaction
    add_some(3, 30)
    assert r.leader(store) == first

    want = expected(searches, listings)
    deadline = time.monotonic() + SETTLE_S
    while (lease := store.matcher_lease()).done_seq < store.head() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert lease.done_seq == store.head()
    rows = store.all_alerts()
    got = [(x.search_id, x.listing_id) for x in rows]
    assert len(got) == len(set(got))  # nothing twice
    assert set(got) == want, (sorted(want - set(got)), sorted(set(got) - want))  # nothing lost, nothing extra
    assert before <= {(x.id, x.search_id, x.listing_id) for x in rows}  # written before a kill: kept as it was
    assert lease.term >= 3  # taken three times: at start, and after each kill


def _number(form: dict, name: str) -> float | None:
    return float(form[name]) if name in form else None
