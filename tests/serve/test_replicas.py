"""Several real `listing-search serve` processes over one store (a shared SQLite folder, or PostgreSQL):
a write accepted by any replica is searchable on every replica and survives restarts; kill -9 at
random moments loses no acknowledged write, duplicates none and files no vector under another listing."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from listing_search.index.build import build_index
from listing_search.store import open_store
from tests.factories import copy_artifacts, jpeg_bytes, photo
from tests.index.tiny_artifacts import RARE
from tests.serve.conftest import API_KEY, serve_settings
from tests.serve.test_uvicorn import free_port, serve_env, stop, wait_healthy

pytestmark = pytest.mark.slow
VISIBLE_WITHIN_S = 10.0  # generous for a loaded CI machine; bench/bench_replication.py measures the real lag


@dataclass
class Cluster:
    artifacts: Path
    store_url: str
    env: dict[str, str]
    shared_folder: bool = False  # SQLite: separate servers over one artifacts folder, snapshots and all
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    bases: dict[str, str] = field(default_factory=dict)

    def start(self, name: str, snapshot_dir: Path | None = None, workers: int = 1) -> str:
        port = free_port()
        env = dict(self.env)
        if snapshot_dir is not None and not self.shared_folder:
            env["LISTING_SEARCH_STORE__SNAPSHOT_DIR"] = str(snapshot_dir)
        cmd = [sys.executable, "-m", "listing_search.cli", "serve", "--artifacts", str(self.artifacts),
               "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        base = f"http://127.0.0.1:{port}"
        wait_healthy(proc, base)
        self.procs[name], self.bases[name] = proc, base
        return base

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            stop(proc)
        self.procs.clear()


@pytest.fixture(params=["sqlite", "postgres"])
def cluster(request: pytest.FixtureRequest, built_artifacts: Path, tmp_path: Path) -> Iterator[Cluster]:
    art = copy_artifacts(built_artifacts, tmp_path / "artifacts")
    env = {**serve_env(), "LISTING_SEARCH_STORE__FOLLOW_INTERVAL_S": "0.1"}
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        env["LISTING_SEARCH_STORE__URL"] = url
        settings = serve_settings(art)
        settings.store.url = url
        build_index(settings, art, force=True)  # the builder loads the dataset into PostgreSQL
    else:
        url = f"sqlite:///{art / 'store.sqlite'}"
    c = Cluster(art, url, env, shared_folder=request.param == "sqlite")
    try:
        yield c
    finally:
        c.stop_all()


def new_photo(n: int) -> bytes:
    """A colour no catalogue listing has, different for every n."""
    rng = random.Random(n)
    return jpeg_bytes(photo((rng.randrange(256), rng.randrange(256), rng.randrange(256)), seed=n), quality=95)


def add(base: str, n: int, key: str | None = None, timeout: float = 20) -> httpx.Response:
    headers = {"X-API-Key": API_KEY, **({"Idempotency-Key": key} if key else {})}
    return httpx.post(f"{base}/v1/listings", data={"title": f"replica test {n}", "category": RARE},
                      files=[("photos", (f"{n}.jpg", new_photo(n), "image/jpeg"))], headers=headers, timeout=timeout)


def top_image(base: str, jpeg: bytes) -> tuple[str, str]:
    """(image id, listing id) of the nearest catalogue photo."""
    r = httpx.post(f"{base}/predict/similar_images", files={"image": ("q.jpg", jpeg, "image/jpeg")},
                   data={"k": "1"}, timeout=10)
    r.raise_for_status()
    body = r.json()
    assert len(body["image_ids"]) == 1, body
    return body["image_ids"][0], body["listing_ids"][0]


def stored_photo(base: str, image_id: str) -> bytes:
    r = httpx.get(f"{base}/v1/images/{image_id}", timeout=10)
    r.raise_for_status()
    return r.content


def wait_searchable(base: str, listing_id: str, image_id: str, jpeg: bytes) -> float:
    """Seconds until ``base`` finds the photo as its own nearest neighbour, filed under its listing."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < VISIBLE_WITHIN_S:
        if top_image(base, jpeg) == (image_id, listing_id):
            return time.monotonic() - t0
        time.sleep(0.05)
    raise AssertionError(f"{listing_id} not searchable on {base} after {VISIBLE_WITHIN_S}s")


def test_a_write_on_any_replica_is_searchable_on_every_replica(cluster: Cluster, tmp_path: Path) -> None:
    names = ["a", "b", "c"]
    for name in names:
        cluster.start(name, tmp_path / f"snaps-{name}")
    added = []
    for n, name in enumerate(names):
        r = add(cluster.bases[name], n)
        assert r.status_code == 201, r.text
        listing_id, image_id = r.json()["id"], r.json()["photos"][0]["image_id"]
        added.append((listing_id, image_id, stored_photo(cluster.bases[name], image_id)))
    for listing_id, image_id, jpeg in added:
        for name in names:
            wait_searchable(cluster.bases[name], listing_id, image_id, jpeg)
    r = httpx.delete(f"{cluster.bases['c']}/v1/listings/{added[0][0]}", headers={"X-API-Key": API_KEY})
    assert r.status_code == 200
    deadline = time.monotonic() + VISIBLE_WITHIN_S
    while top_image(cluster.bases["a"], added[0][2])[1] == added[0][0]:
        assert time.monotonic() < deadline, "a delete on c never reached a"
        time.sleep(0.05)
    cluster.stop_all()  # graceful: each writes a last snapshot
    base = cluster.start("a", tmp_path / "snaps-a")  # restart: nothing acknowledged is lost
    for listing_id, image_id, jpeg in added[1:]:
        assert top_image(base, jpeg) == (image_id, listing_id)
    health = httpx.get(f"{base}/health").json()
    assert health["log_seq"] == open_store(cluster.store_url).head() and health["lag_entries"] == 0


@contextmanager
def writer(cluster: Cluster, names: list[str], acked: dict, stop: threading.Event) -> Iterator[None]:
    """Adds listings round-robin with Idempotency-Keys, retrying each on the next replica until acknowledged."""
    def run() -> None:
        n = 1000
        while not stop.is_set():
            key = uuid.uuid4().hex
            for attempt in range(40):
                base = cluster.bases.get(names[(n + attempt) % len(names)])
                try:
                    r = add(base, n, key, timeout=10) if base else None
                except httpx.TransportError:
                    r = None
                if r is not None and r.status_code == 201:
                    acked[n] = (r.json()["id"], r.json()["photos"][0]["image_id"])
                    break
                time.sleep(0.1)
            n += 1

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=60)


def test_kill_9_during_writes_loses_nothing_acknowledged(cluster: Cluster, tmp_path: Path) -> None:
    names = ["a", "b"]
    for name in names:
        cluster.start(name, tmp_path / f"snaps-{name}")
    acked: dict[int, tuple[str, str]] = {}
    rng = random.Random(7)
    stop_writing = threading.Event()
    with writer(cluster, names, acked, stop_writing):
        for round_ in range(3):
            time.sleep(rng.uniform(0.3, 1.5))
            victim = names[round_ % 2]
            cluster.kill(victim)
            time.sleep(rng.uniform(0.0, 0.5))
            cluster.start(victim, tmp_path / f"snaps-{victim}")
        time.sleep(0.5)
    assert len(acked) >= 3, f"too few writes went through: {acked}"
    store = open_store(cluster.store_url)
    titles = Counter(x.title for x in store.listings_by_key(store.listing_ids().values()).values())
    assert all(titles[f"replica test {n}"] == 1 for n in acked), "a retried write was stored twice"
    for n, (listing_id, image_id) in acked.items():
        assert store.listing(listing_id) is not None, f"acknowledged listing {n} lost"
        jpeg = stored_photo(cluster.bases["a"], image_id)
        for name in names:
            wait_searchable(cluster.bases[name], listing_id, image_id, jpeg)


def test_workers_of_one_server_all_see_every_write(cluster: Cluster) -> None:
    """uvicorn worker processes answer at random: each must have applied the others' writes."""
    base = cluster.start("w", workers=2)
    added = []
    for n in range(4):
        r = add(base, 500 + n)
        assert r.status_code == 201, r.text
        image_id = r.json()["photos"][0]["image_id"]
        added.append((r.json()["id"], image_id, stored_photo(base, image_id)))
    for listing_id, image_id, jpeg in added:
        wait_searchable(base, listing_id, image_id, jpeg)
    time.sleep(1.0)  # every worker has polled the log by now
    for _ in range(3):
        for listing_id, image_id, jpeg in added:
            assert top_image(base, jpeg) == (image_id, listing_id)
