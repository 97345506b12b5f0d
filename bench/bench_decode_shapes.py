"""Claim: 16 concurrent uploads of any hostile photo shape keep the server's peak memory within its
idle resident memory (model, indexes) plus the photo decode budget (480 MB by default).

Each shape is a small file that decodes to the most memory the limits allow: tall and wide (1 x 39 M
pixels), huge-declared (the largest square under the pixel limit, as PNG and WebP), many-frame (an
animated GIF of that square), 16-bit greyscale and palette-with-transparency squares, and the most
elongated shapes still accepted (1:20). For each, a fresh `listing-search serve` gets 3 normal
searches, then 16 `/v1/search` uploads of the shape at once; its RSS is sampled every 10 ms.

    python bench/bench_decode_shapes.py --artifacts ART [--shapes tall,palette] [--clients 16]
"""

from __future__ import annotations

import io
import logging
import math
import struct
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve_latency import free_port, start_server, wait_healthy  # noqa: E402
from benchlib import machine_state, main, parser, real_photos  # noqa: E402

log = logging.getLogger("bench.decode_shapes")
MB = 2**20


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width: int, height: int, depth: int = 8, colour: int = 0, bytes_per_pixel: float = 1,
        extra: bytes = b"") -> bytes:
    """A PNG of zero rows, compressed in one call; ``extra`` chunks (PLTE, tRNS) go before the data."""
    raw = bytes((1 + math.ceil(width * bytes_per_pixel)) * height)
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + extra + _chunk(b"IDAT", zlib.compress(raw, 9))
            + _chunk(b"IEND", b""))


def pillow_bytes(save: Callable[[io.BytesIO], None]) -> bytes:
    buf = io.BytesIO()
    save(buf)
    return buf.getvalue()


def shapes(max_pixels: int) -> dict[str, Callable[[], bytes]]:
    """Shape name -> a maker of its file bytes."""
    from PIL import Image

    side = math.isqrt(max_pixels - 1)
    short20 = math.isqrt(max_pixels // 20)
    long20 = 20 * short20
    palette = _chunk(b"PLTE", bytes(3 * 256)) + _chunk(b"tRNS", bytes(256))
    frames = [Image.new("P", (side, side), i % 2) for i in range(10)]
    return {
        "tall_1x39M_grey": lambda: png(1, 39_000_000),
        "wide_39Mx1_grey": lambda: png(39_000_000, 1),
        "huge_declared_rgb_png": lambda: png(side, side, colour=2, bytes_per_pixel=3),
        "huge_declared_webp": lambda: pillow_bytes(lambda b: Image.new("RGB", (side, side)).save(b, "WEBP",
                                                                                               lossless=True)),
        "many_frame_gif": lambda: pillow_bytes(lambda b: frames[0].save(b, "GIF", save_all=True,
                                                                        append_images=frames[1:])),
        "grey_16bit": lambda: png(side, side, depth=16, bytes_per_pixel=2),
        "palette_transparent": lambda: png(side, side, colour=3, extra=palette),
        "rgba": lambda: png(side, side, colour=6, bytes_per_pixel=4),
        "tall_1to20_grey16": lambda: png(short20, long20, depth=16, bytes_per_pixel=2),
        "wide_1to20_rgba16": lambda: png(long20, short20, depth=16, colour=6, bytes_per_pixel=8),
    }


class RssSampler(threading.Thread):
    """A process's peak resident memory, sampled every 10 ms."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc, self.peak, self.done = psutil.Process(pid), 0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.01)


def attack(artifacts: Path, data: bytes, normal: bytes, clients: int) -> dict:
    """A fresh server: idle RSS after 3 normal searches, then ``clients`` uploads of ``data`` at once."""
    port = free_port()
    proc = start_server(artifacts, port)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300)
    try:
        wait_healthy(client, proc)
        for _ in range(3):
            client.post("/v1/search", files={"image": ("n.jpg", normal, "image/jpeg")}).raise_for_status()
        server = psutil.Process(proc.pid)
        idle, sampler = server.memory_info().rss, RssSampler(proc.pid)
        sampler.start()
        with ThreadPoolExecutor(clients) as pool:
            codes = list(pool.map(lambda _: _post(client, data), range(clients)))
        sampler.done.set()
        sampler.join()
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=30)
    return {"idle_mb": round(idle / MB), "peak_mb": round(sampler.peak / MB),
            "over_idle_mb": round((sampler.peak - idle) / MB), "answers": dict(Counter(codes))}


def _post(client: httpx.Client, data: bytes) -> str:
    r = client.post("/v1/search", files={"image": ("x", data, "application/octet-stream")})
    reason = r.json().get("reason") if r.headers.get("content-type", "").startswith("application/json") else None
    return f"{r.status_code} {reason}" if reason else str(r.status_code)


def run(args) -> dict:
    from listing_search.settings import Settings

    settings = Settings()
    budget_mb = settings.serve.photo_decode_budget_mb
    made = shapes(settings.data.max_image_pixels)
    wanted = [s for s in args.shapes.split(",") if s] or list(made)
    normal = real_photos(args.data, 1)[0].read_bytes()
    result: dict = {"bench": "decode_shapes", "machine_start": machine_state(), "clients": args.clients,
                    "budget_mb": budget_mb, "shapes": {}}
    for name in wanted:
        data = made[name]()
        out = {"file_bytes": len(data), **attack(Path(args.artifacts), data, normal, args.clients)}
        out["within_budget"] = out["over_idle_mb"] <= budget_mb
        result["shapes"][name] = out
        log.info("%s: %s", name, out)
    result["all_within_budget"] = all(s["within_budget"] for s in result["shapes"].values())
    return result


if __name__ == "__main__":
    p = parser(__doc__)
    p.add_argument("--shapes", default="", help="Comma-separated shape names (default: all).")
    p.add_argument("--clients", type=int, default=16)
    main(run, p.parse_args())
