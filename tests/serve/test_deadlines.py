"""Slow clients are cut off: 20 connections trickling headers or bodies are closed after the deadline,
while normal requests are served meanwhile (latency figures belong in bench/, not here)."""

from __future__ import annotations

import select
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.serve.conftest import photo_bytes
from tests.serve.live import live_server

DEADLINE_S = 1.5
GIVE_UP_S = 12.0  # far past the deadline: a connection still open then was never cut off
TICK_S = 0.1
SLOW_HEAD = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
SLOW_BODY = (b"POST /v1/search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=zz\r\n"
             b"Content-Length: 100000\r\n\r\n--zz\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\n")


@dataclass
class Trickler:
    """One connection sending a byte per tick after its opening bytes; notes when the server closes it."""

    sock: socket.socket
    opened: float
    closed_after: float | None = None
    reply: bytes = field(default=b"")

    def tick(self) -> None:
        """Read what the server sent (EOF means closed), then send one more byte."""
        try:
            while select.select([self.sock], [], [], 0)[0]:
                chunk = self.sock.recv(4096)
                if not chunk:
                    return self._closed()
                self.reply += chunk
            self.sock.send(b"a")
        except OSError:  # reset or broken pipe: closed by the server
            self._closed()

    def _closed(self) -> None:
        self.closed_after = time.monotonic() - self.opened
        self.sock.close()


def open_tricklers(port: int, count: int) -> list[Trickler]:
    out = []
    for i in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(SLOW_HEAD if i % 2 else SLOW_BODY)
        out.append(Trickler(sock, time.monotonic()))
    return out


def trickle(tricklers: list[Trickler]) -> None:
    """Until every connection is closed or GIVE_UP_S passes: bounded in time and in ticks."""
    for _ in range(int(GIVE_UP_S / TICK_S)):
        open_ = [t for t in tricklers if t.closed_after is None]
        if not open_:
            return
        for t in open_:
            t.tick()
        time.sleep(TICK_S)


@pytest.mark.slow
def test_slow_heads_and_bodies_are_cut_off_while_others_are_served(built_artifacts: Path) -> None:
    settings = {"header_timeout_s": str(DEADLINE_S), "body_timeout_s": str(DEADLINE_S)}
    with live_server(built_artifacts, **settings) as (base, port):
        tricklers = open_tricklers(port, 20)
        worker = threading.Thread(target=trickle, args=(tricklers,), daemon=True)
        worker.start()
        with httpx.Client(base_url=base, timeout=10) as c:
            assert c.get("/health").status_code == 200
            files = {"image": ("p.jpg", photo_bytes(built_artifacts), "image/jpeg")}
            assert c.post("/v1/search", files=files, data={"k": "3"}).status_code == 200
        worker.join(GIVE_UP_S + 5)
        for t in tricklers:
            if t.closed_after is None:
                t.sock.close()
    still_open = [i for i, t in enumerate(tricklers) if t.closed_after is None]
    assert not still_open, f"connections {still_open} were never closed by the server"
    assert all(DEADLINE_S * 0.6 <= t.closed_after <= DEADLINE_S + 6 for t in tricklers), \
        [t.closed_after for t in tricklers]
    assert all(t.reply.startswith(b"HTTP/1.1 408") for t in tricklers), [t.reply[:40] for t in tricklers]
    assert b"request body not received within 1.5 s" in tricklers[0].reply
    assert b"request head not received within 1.5 s" in tricklers[1].reply
