"""A served catalogue for the saved-search tests: readable titles, a torch-free word-hash text encoder,
the tiny photo model; and helpers to add listings and wait for alerts."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from listing_search import schema as S
from listing_search.index.build import build_index
from listing_search.text.encoder import listing_text
from tests.factories import jpeg_bytes, photo
from tests.index.tiny_artifacts import make_artifacts
from tests.serve.conftest import API_KEY, serve_settings
from tests.factories import READABLE_TITLES as TITLES
from tests.factories import WordHashEncoder as HashWords

TOKEN_A = "tokenA-" + "0123456789abcdefghijklmnopqrstuv"
TOKEN_B = "tokenB-" + "ZYXWVUTSRQPONMLKJIHGFEDCBA987654"



def alert_artifacts(root: Path) -> Path:
    """The serving tests' tiny artifacts (30 listings, 4 categories) with readable titles, text vectors
    from :class:`HashWords` and the indexes built."""
    make_artifacts(root)
    listings = pd.read_csv(root / S.LISTINGS_CSV, dtype={S.LISTING_ID: str})
    listings[S.TITLE] = [f"{TITLES[i % len(TITLES)]} {i}" for i in range(len(listings))]
    listings[S.DESCRIPTION] = [f"{t}, used but in good condition." for t in listings[S.TITLE]]
    listings.to_csv(root / S.LISTINGS_CSV, index=False)
    texts = [listing_text(t, d) for t, d in zip(listings[S.TITLE], listings[S.DESCRIPTION])]
    (root / "text").mkdir(exist_ok=True)
    np.save(root / S.TEXT_EMBEDDINGS_NPY, HashWords().encode(texts))
    (root / S.TEXT_EMBEDDING_IDS).write_text(json.dumps(listings[S.LISTING_ID].tolist()))
    (root / S.TEXT_MODEL_CARD).write_text(json.dumps({"version": "hash-words-v1"}))
    build_index(serve_settings(root), root)
    return root


def buyer(token: str) -> dict[str, str]:
    return {"X-Buyer-Token": token}


def new_photo(n: int) -> bytes:
    rng = np.random.default_rng(7000 + n)
    return jpeg_bytes(photo(tuple(int(c) for c in rng.integers(0, 256, 3)), seed=n), quality=95)


def add_form(title: str, category: str = "Home & Garden", price: float | None = 20.0,
             location: str = "Leeds, West Yorkshire") -> dict:
    form = {"title": title, "category": category, "location": location}
    if price is not None:
        form["price"] = str(price)
    return form


def add(client, title: str, n: int, jpeg: bytes | None = None, **fields) -> str:
    """Add a listing through the API; its id."""
    r = client.post("/v1/listings", data=add_form(title, **fields),
                    files=[("photos", (f"{n}.jpg", jpeg or new_photo(n), "image/jpeg"))],
                    headers={"X-API-Key": API_KEY})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def wait_alerts(client, token: str, count: int, timeout: float = 10.0, after: int = 0) -> list[dict]:
    """The buyer's alerts once there are at least ``count`` (fails after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/v1/alerts?after={after}&limit=100", headers=buyer(token)).json()
        if len(body["alerts"]) >= count or time.monotonic() > deadline:
            return body["alerts"]
        time.sleep(0.05)


def http_add(base: str, title: str, n: int, **fields) -> httpx.Response:
    return httpx.post(f"{base}/v1/listings", data=add_form(title, **fields),
                      files=[("photos", (f"{n}.jpg", new_photo(n), "image/jpeg"))],
                      headers={"X-API-Key": API_KEY}, timeout=30)


@contextmanager
def served(app) -> Iterator[str]:
    """``app`` under uvicorn on a free port of 127.0.0.1, in a thread of this process; its base URL."""
    import socket
    import threading

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
