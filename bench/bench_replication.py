"""Claims: two replicas over one store apply each other's writes with p99 lag <= 1 s, and one-direction
lag p99 <= 300 ms while the watched replica serves 8 search clients and the other takes 5 adds/s;
photo-search p50 with a steady 5 adds/s stays <= 1.2x without; sustained adds/s with 2 writers;
replica start-up from snapshot + log at 10k and 100k listings.

Serving part: a fresh store (SQLite in a work folder, or --store-url postgresql://...) loaded by
the real index stage, then two `listing-search serve` processes on 127.0.0.1. Lag is measured from
a write's 201 on one replica until the other's /health shows log_seq >= the write's X-Log-Seq
(polled every 20 ms). Start-up part: synthetic 1000-d photo vectors (2 per listing) and 384-d text
vectors in a SQLite store; times a rebuild from the store and an open from snapshot + 100 log entries.

    python bench/bench_replication.py --data DIR --artifacts ART [--store-url URL] [--sizes 10000,100000]
    python bench/bench_replication.py --artifacts ART --lag-only [--store-url URL]   # the lag under load alone
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve_latency import free_port, start_server, wait_healthy  # noqa: E402
from benchlib import REPO, machine_state, main, parser, percentiles_ms, real_photos, timed  # noqa: E402

log = logging.getLogger("bench.replication")
API_KEY = "bench-key"
INPUTS = ("model", "categories.json", "listings.csv", "training_data.csv", "image_embeddings.npy",
          "image_embedding_ids.json", "images", "text", "ranker.json", "category_predictor.json")


def work_folder(art: Path, work: Path, store_url: str | None) -> Path:
    """Read-only inputs linked from ``art``; a fresh store, blob store and snapshots loaded by the index stage."""
    from listing_search.index.build import build_index
    from listing_search.settings import Settings

    work.mkdir(parents=True)
    for name in INPUTS:
        if (art / name).exists():
            os.symlink((art / name).resolve(), work / name)
    settings = Settings(artifacts_dir=work)
    settings.store.url = store_url
    with timed() as t:
        build_index(settings, work, force=True)
    log.info("index stage loaded the store in %.1fs", t["s"])
    return work


def serving_folder(args) -> tuple[Path, str]:
    """The trained artifacts when servable, else the stand-in model (bench/standin.py) on ART's tables."""
    import standin

    art = Path(args.artifacts).resolve()
    if not (art / "listings.csv").is_file():
        from listing_search.data.prepare import prepare
        from listing_search.settings import Settings

        prepare(Settings(artifacts_dir=art), str(args.data), art)
    return standin.serving_artifacts(art, REPO / ".bench" / "standin", limit=args.photos)


class Replica:
    def __init__(self, work: Path, name: str, env: dict[str, str]) -> None:
        self.port = free_port()
        env = {**env, "LISTING_SEARCH_STORE__SNAPSHOT_DIR": str(work / f"snapshots-{name}")}
        self.proc = start_server(work, self.port, env)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60)
        wait_healthy(self.client, self.proc)

    def stop(self) -> None:
        self.client.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def add(client: httpx.Client, photo: Path, n: int) -> tuple[float, int]:
    """Add one listing; returns (time of the 201, its log sequence)."""
    r = client.post("/v1/listings", data={"title": f"bench listing {n}", "category": CATEGORY[0]},
                    files=[("photos", (photo.name, photo.read_bytes(), "image/jpeg"))], headers={"X-API-Key": API_KEY})
    r.raise_for_status()
    return time.monotonic(), int(r.headers["X-Log-Seq"])


CATEGORY: list[str] = []


def watch_seq(client: httpx.Client, stop: threading.Event, seen: list[tuple[float, int]]) -> None:
    """Poll a replica's applied log sequence every 20 ms."""
    while not stop.is_set():
        seen.append((time.monotonic(), int(client.get("/health").json()["log_seq"])))
        time.sleep(0.02)


def lags(acks: list[tuple[float, int]], seen: list[tuple[float, int]]) -> list[float]:
    """For each acknowledged write: seconds until the watched replica had applied its sequence."""
    out = []
    for at, seq in acks:
        later = [t for t, s in seen if s >= seq and t >= at]
        if later:
            out.append(later[0] - at)
    return out


def writers(replicas: list[Replica], photos: list[Path], per_writer: int) -> tuple[float, list, list]:
    """Each replica adds ``per_writer`` listings as fast as it can; the other one is watched."""
    acks: list[list] = [[] for _ in replicas]
    seen: list[list] = [[] for _ in replicas]
    stop = threading.Event()
    watchers = [threading.Thread(target=watch_seq, args=(r.client, stop, seen[i])) for i, r in enumerate(replicas)]

    def write(i: int) -> None:
        client = httpx.Client(base_url=str(replicas[i].client.base_url), timeout=60)
        for n in range(per_writer):
            acks[i].append(add(client, photos[(i * per_writer + n) % len(photos)], n))

    threads = [threading.Thread(target=write, args=(i,)) for i in range(len(replicas))]
    for t in watchers:
        t.start()
    with timed() as t_all:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    time.sleep(1.5)
    stop.set()
    for t in watchers:
        t.join()
    lag = lags(acks[0], seen[1]) + lags(acks[1], seen[0])
    return len(replicas) * per_writer / t_all["s"], lag, sum(len(a) for a in acks)


def searches(client: httpx.Client, photos: list[Path], n: int) -> list[float]:
    out = []
    for i in range(n):
        photo = photos[i % len(photos)]
        start = time.perf_counter()
        r = client.post("/v1/search", files={"image": (photo.name, photo.read_bytes(), "image/jpeg")},
                        data={"k": "10"})
        out.append(time.perf_counter() - start)
        r.raise_for_status()
    return out


def searches_under_adds(reader: Replica, writer: Replica, photos: list[Path], n: int, rate: float) -> tuple[list, int]:
    """Searches on ``reader`` while ``writer`` adds ``rate`` listings a second."""
    stop, done = threading.Event(), [0]

    def steady() -> None:
        client = httpx.Client(base_url=str(writer.client.base_url), timeout=60)
        next_at = time.monotonic()
        while not stop.is_set():
            add(client, photos[(done[0] * 7) % len(photos)], 10_000 + done[0])
            done[0] += 1
            next_at += 1.0 / rate
            time.sleep(max(0.0, next_at - time.monotonic()))

    thread = threading.Thread(target=steady)
    thread.start()
    with timed() as t:
        out = searches(reader.client, photos, n)
    stop.set()
    thread.join()
    return out, round(done[0] / t["s"], 2)


def lag_under_load(reader: Replica, writer: Replica, photos: list[Path], seconds: float, rate: float,
                   clients: int) -> dict:
    """One-direction lag under load: ``writer`` adds ``rate`` listings a second for ``seconds`` while
    ``clients`` clients search ``reader`` back to back; ``reader``'s /health is asked every 20 ms.

    A write counts as seen when the first /health answer received after its 201 shows its sequence;
    lag is to the moment that answer arrived (an upper bound: it includes /health's own latency under
    the load, reported beside it). ``lag_at_request_ms`` times to when that /health was sent instead,
    as the two-writer figure does (a lower bound)."""
    stop, acks, seen, searched = threading.Event(), [], [], [0]

    def watch() -> None:
        client = httpx.Client(base_url=str(reader.client.base_url), timeout=60)
        while not stop.is_set():
            sent = time.monotonic()
            seq = int(client.get("/health").json()["log_seq"])
            seen.append((sent, time.monotonic(), seq))
            time.sleep(0.02)

    def search(i: int) -> None:
        client = httpx.Client(base_url=str(reader.client.base_url), timeout=60)
        n = i
        while not stop.is_set():
            photo = photos[n % len(photos)]
            client.post("/v1/search", files={"image": (photo.name, photo.read_bytes(), "image/jpeg")},
                        data={"k": "10"}).raise_for_status()
            searched[0] += 1
            n += clients

    threads = [threading.Thread(target=watch), *(threading.Thread(target=search, args=(i,)) for i in range(clients))]
    for t in threads:
        t.start()
    time.sleep(2.0)  # the searchers are going
    client = httpx.Client(base_url=str(writer.client.base_url), timeout=60)
    start = next_at = time.monotonic()
    while time.monotonic() - start < seconds:
        acks.append(add(client, photos[(len(acks) * 11) % len(photos)], 20_000 + len(acks)))
        next_at += 1.0 / rate
        time.sleep(max(0.0, next_at - time.monotonic()))
    elapsed = time.monotonic() - start
    time.sleep(1.5)
    stop.set()
    for t in threads:
        t.join()
    received, requested = [], []
    for at, seq in acks:
        first = next(((s, r) for s, r, n in seen if n >= seq and r >= at), None)
        if first is not None:
            received.append(first[1] - at)
            requested.append(max(0.0, first[0] - at))
    return {"clients": clients, "adds": len(acks), "adds_per_s": round(len(acks) / elapsed, 2),
            "searches_per_s": round(searched[0] / (elapsed + 3.5), 1), "seen": len(received),
            "lag": percentiles_ms(received), "lag_at_request": percentiles_ms(requested),
            "health_latency": percentiles_ms([r - s for s, r, _ in seen])}


def serving_part(args) -> dict:
    art, model = serving_folder(args)
    work = Path(tempfile.mkdtemp(prefix="bench-repl-"))
    try:
        work_folder(art, work / "art", args.store_url)
        import json

        CATEGORY[:] = json.loads((work / "art" / "categories.json").read_text())["categories"]
        env = {"LISTING_SEARCH_SERVE__API_KEYS": API_KEY, **({"LISTING_SEARCH_STORE__URL": args.store_url}
                                                          if args.store_url else {})}
        replicas = [Replica(work / "art", name, env) for name in ("a", "b")]
        photos = real_photos(args.data, 300, seed=1)
        try:
            searches(replicas[1].client, photos, 10)  # warm-up
            loaded = lag_under_load(replicas[1], replicas[0], photos, args.load_seconds, 5.0, args.load_clients)
            if args.lag_only:
                return {"model": model, "store": _store_name(args), "lag_under_load": loaded,
                        "goals": {"lag_under_load_p99_ms": 300}}
            quiet = searches(replicas[1].client, photos, args.searches)
            busy, rate = searches_under_adds(replicas[1], replicas[0], photos, args.searches, 5.0)
            adds_per_s, lag, n_adds = writers(replicas, photos, args.adds)
        finally:
            for r in replicas:
                r.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    q, b = percentiles_ms(quiet), percentiles_ms(busy)
    return {"model": model, "store": _store_name(args),
            "adds_per_s_2_writers": round(adds_per_s, 2), "adds": n_adds,
            "replication_lag": percentiles_ms(lag), "lag_under_load": loaded, "search_quiet": q,
            "search_with_adds": b, "adds_per_s_during_search": rate,
            "p50_ratio_with_adds": round(b["p50_ms"] / q["p50_ms"], 3),
            "goals": {"lag_p99_ms": 1000, "lag_under_load_p99_ms": 300, "p50_ratio": 1.2}}


def _store_name(args) -> str:
    return "postgresql" if args.store_url else "sqlite (default)"


def startup_part(sizes: list[int], tail: int = 100) -> list[dict]:
    """Rebuild-from-store vs snapshot + ``tail`` log entries, on synthetic stores of ``sizes`` listings."""
    from listing_search.index.live import IMAGE, TEXT, LiveIndexes
    from listing_search.settings import IndexSettings
    from listing_search.store import open_store
    from listing_search.store.models import ListingIn, Models, PhotoIn

    models, dims, rng = Models("bench-img", "bench-txt"), {IMAGE: 1000, TEXT: 384}, np.random.default_rng(0)
    out = []
    for size in sizes:
        tmp = Path(tempfile.mkdtemp(prefix="bench-startup-"))
        try:
            store = open_store(f"sqlite:///{tmp / 'store.sqlite'}")

            def item(i: int) -> ListingIn:
                photos = [PhotoIn(f"p{i}-{j}", f"photos/p{i}-{j}.jpg", rng.standard_normal(1000).astype(np.float32))
                          for j in range(2)]
                return ListingIn(f"l{i}", {"title": f"t{i}", "root_category": "c"}, photos,
                                 rng.standard_normal(384).astype(np.float32))

            with timed() as t_load:
                for start in range(0, size, 5000):
                    store.merge([item(i) for i in range(start, min(size, start + 5000))], models, chunk=5000)
            with timed() as t_rebuild:
                live = LiveIndexes.rebuild(store, models, dims, IndexSettings(), fresh_choice=True)
            live.write_snapshot(tmp / "snaps")
            for i in range(size, size + tail):
                store.add_listing(item(i), models)
            del live
            with timed() as t_open:
                opened = LiveIndexes.open(store, models, dims, tmp / "snaps", IndexSettings())
            out.append({"listings": size, "photos": 2 * size, "index": opened.image.infos.get("factory"),
                        "store_load_s": round(t_load["s"], 1), "rebuild_from_store_s": round(t_rebuild["s"], 2),
                        "startup_snapshot_plus_log_s": round(t_open["s"], 2), "log_entries_applied": tail,
                        "snapshot_seq": opened.snapshot_seq, "seq": opened.seq})
            log.info("start-up at %d listings: %s", size, out[-1])
            del opened
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def run(args) -> dict:
    result = {"bench": "replication", "machine_start": machine_state()}
    if not args.skip_serving:
        result |= serving_part(args)
    if not args.lag_only:
        result["startup"] = startup_part([int(s) for s in args.sizes.split(",") if s])
    return result


if __name__ == "__main__":
    p = parser(__doc__)
    p.add_argument("--store-url", default=None, help="postgresql://... (default: SQLite in a work folder)")
    p.add_argument("--adds", type=int, default=40, help="Listings each of the 2 writers adds.")
    p.add_argument("--searches", type=int, default=150)
    p.add_argument("--photos", type=int, default=2000, help="Catalogue photos for a stand-in model.")
    p.add_argument("--sizes", default="10000,100000", help="Listing counts for the start-up measurement.")
    p.add_argument("--skip-serving", action="store_true")
    p.add_argument("--load-seconds", type=float, default=30.0, help="Length of the lag-under-load run.")
    p.add_argument("--load-clients", type=int, default=8, help="Search clients on the watched replica.")
    p.add_argument("--lag-only", action="store_true", help="Only the lag under load (no start-up part either).")
    args = p.parse_args()
    random.seed(0)
    main(run, args)
