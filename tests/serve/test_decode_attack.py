"""Issue 12 goal: 16 concurrent worst-case uploads under the limits keep a real server's memory bounded.

The uploads are the cheapest way to make a server decode the most pixels: a ~100 KB PNG declaring the
largest allowed dimensions, and large progressive JPEGs. RSS must stay under 1.5 GB during the attack,
come back to within idle + 100 MB 10 s later, and normal photo searches must keep answering 200.
"""

from __future__ import annotations

import io
import logging
import math
import struct
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import pytest
from PIL import Image

from listing_search.settings import Settings
from tests.serve.conftest import API_KEY, photo_bytes
from tests.serve.live import live_server

log = logging.getLogger(__name__)
UPLOAD_LIMIT = 10 * 1024 * 1024
PEAK_LIMIT, SETTLE_SLACK = 1536 * 2**20, 100 * 2**20


def largest_side() -> int:
    """The side of the largest square photo the default settings accept."""
    return math.isqrt(Settings().data.max_image_pixels - 1)


def png_bomb(side: int) -> bytes:
    """A black RGB PNG of ``side`` x ``side``, compressed row by row (never held decoded here)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    comp, row, idat = zlib.compressobj(9), b"\0" * (1 + 3 * side), []
    idat += [comp.compress(row) for _ in range(side)] + [comp.flush()]
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(idat)) + chunk(b"IEND", b"")


def grey_png(width: int, height: int) -> bytes:
    """A black 8-bit greyscale PNG, compressed in one call (the raw rows are zeros)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(bytes((1 + width) * height), 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def big_jpeg(side: int) -> bytes:
    """A smooth progressive JPEG of the largest allowed size (progressive: the decoder buffers it all)."""
    img = Image.radial_gradient("L").resize((side, side)).convert("RGB")
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85, progressive=True)
    return buf.getvalue()


class RssSampler(threading.Thread):
    """The server's peak resident memory, sampled every 20 ms."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc, self.peak, self.done = psutil.Process(pid), 0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.02)


def attack(base: str, png: bytes, jpeg: bytes) -> list[int]:
    """16 uploads at once: PNG bombs to both photo APIs and a listing add, big JPEGs to search."""
    def send(i: int) -> int:
        if i < 10:
            files = {"image": ("a.png", png, "image/png")}
            return httpx.post(f"{base}/predict/similar_images", files=files, timeout=60).status_code
        if i < 12:
            return httpx.post(f"{base}/v1/listings", data={"title": "x", "category": "Appliances"},
                              files=[("photos", ("a.png", png, "image/png"))], headers={"X-API-Key": API_KEY},
                              timeout=60).status_code
        files = {"image": ("a.jpg", jpeg, "image/jpeg")}
        return httpx.post(f"{base}/v1/search", files=files, data={"k": "3"}, timeout=60).status_code

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(send, range(16)))


def searches_until(base: str, photo: bytes, stop: threading.Event) -> list[int]:
    codes = []
    while not stop.is_set() or len(codes) < 3:
        r = httpx.post(f"{base}/v1/search", files={"image": ("p.jpg", photo, "image/jpeg")}, data={"k": "3"},
                       timeout=60)
        codes.append(r.status_code)
    return codes


def server_pid(port: int) -> int:
    for conn in psutil.net_connections("tcp"):
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
            return conn.pid
    raise LookupError(f"no process listens on {port}")


@pytest.mark.slow
def test_sixteen_worst_case_uploads_keep_memory_bounded(artifacts: Path) -> None:
    side = largest_side()
    png, jpeg, normal = png_bomb(side), big_jpeg(side), photo_bytes(artifacts)
    with live_server(artifacts, max_upload_bytes=str(UPLOAD_LIMIT)) as (base, port):
        proc = psutil.Process(server_pid(port))
        for _ in range(5):
            assert httpx.post(f"{base}/v1/search", files={"image": ("p.jpg", normal, "image/jpeg")},
                              timeout=30).status_code == 200
        idle = proc.memory_info().rss
        sampler, stop = RssSampler(proc.pid), threading.Event()
        sampler.start()
        with ThreadPoolExecutor(1) as pool:
            normal_codes = pool.submit(searches_until, base, normal, stop)
            attack_codes = attack(base, png, jpeg)
            stop.set()
            normal_codes = normal_codes.result()
        sampler.done.set()
        sampler.join()
        time.sleep(10)
        settled = proc.memory_info().rss
    log.warning("side %d (png %d B, jpeg %d B): idle %.0f MB, peak %.0f MB, 10 s later %.0f MB; attack %s; "
                "normal %s", side, len(png), len(jpeg), idle / 2**20, sampler.peak / 2**20, settled / 2**20,
                attack_codes, normal_codes)
    assert set(attack_codes) <= {200, 201, 503}, attack_codes
    assert set(normal_codes) == {200}, normal_codes
    assert sampler.peak < PEAK_LIMIT, f"peak RSS {sampler.peak / 2**20:.0f} MB"
    assert settled < idle + SETTLE_SLACK, f"idle {idle / 2**20:.0f} MB, 10 s later {settled / 2**20:.0f} MB"


@pytest.mark.slow
def test_sixteen_tall_pngs_at_once_stay_within_the_decode_budget(artifacts: Path) -> None:
    """The issue's 76 KB PNG of 1 x 39,000,000 pixels, 16 at once: each was estimated at 39 MB and cost
    about 334 MB (Pillow's row table), 2.9 GB in all against the 480 MB budget. Peak RSS must stay
    within idle (the resident model and indexes) + the budget, and each upload is refused by shape."""
    tall, budget = grey_png(1, 39_000_000), Settings().serve.photo_decode_budget_mb * 2**20
    with live_server(artifacts, max_upload_bytes=str(UPLOAD_LIMIT)) as (base, port):
        proc = psutil.Process(server_pid(port))
        normal = photo_bytes(artifacts)
        for _ in range(3):
            httpx.post(f"{base}/v1/search", files={"image": ("p.jpg", normal, "image/jpeg")}, timeout=30)
        idle, sampler = proc.memory_info().rss, RssSampler(proc.pid)
        sampler.start()

        def send(_: int) -> httpx.Response:
            return httpx.post(f"{base}/v1/search", files={"image": ("t.png", tall, "image/png")}, timeout=120)

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(send, range(16)))
        sampler.done.set()
        sampler.join()
    log.warning("16 tall PNGs (%d B): idle %.0f MB, peak %.0f MB; %s", len(tall), idle / 2**20,
                sampler.peak / 2**20, [r.status_code for r in answers])
    assert sampler.peak < idle + budget, f"peak {sampler.peak / 2**20:.0f} MB, idle {idle / 2**20:.0f} MB"
    assert {r.status_code for r in answers} == {422}, [r.text for r in answers]
    assert {r.json()["reason"] for r in answers} == {"too_elongated"}
