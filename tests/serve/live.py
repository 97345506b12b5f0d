"""A real ``listing-search serve`` process on 127.0.0.1 with extra settings, for socket-level tests."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.serve.test_uvicorn import free_port, serve_env, stop, wait_healthy


@contextmanager
def live_server(artifacts: Path, **settings: str) -> Iterator[tuple[str, int]]:
    """``(base_url, port)`` of a served copy; ``settings`` are ``LISTING_SEARCH_SERVE__*`` values."""
    port = free_port()
    env = {**serve_env(), **{f"LISTING_SEARCH_SERVE__{k.upper()}": v for k, v in settings.items()}}
    cmd = [sys.executable, "-m", "listing_search.cli", "serve", "--artifacts", str(artifacts),
           "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(proc, base)
        yield base, port
    finally:
        stop(proc)


def read_reply(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes or ``timeout`` passes (bounded in time and size)."""
    sock.settimeout(0.2)
    deadline, data = time.monotonic() + timeout, b""
    while time.monotonic() < deadline and len(data) < 1 << 20:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            if b"\r\n\r\n" in data and data.endswith(b"}"):
                break
            continue
        except ConnectionError:
            break
        if not chunk:
            break
        data += chunk
    return data
