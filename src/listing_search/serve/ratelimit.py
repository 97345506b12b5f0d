"""Sliding-window rate limits kept in this process (each replica counts its own requests)."""

from __future__ import annotations

import math
import threading
import time
from collections import deque


class WindowLimit:
    """At most ``limit`` events per key in any ``window_s`` seconds."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit, self.window_s = int(limit), float(window_s)
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._swept = time.monotonic()

    def wait_s(self, key: str, now: float | None = None) -> int:
        """Whole seconds until ``key`` may have one more event (0: now)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            events = self._fresh(key, now)
            return 0 if len(events) < self.limit else max(1, math.ceil(events[0] + self.window_s - now))

    def record(self, key: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._fresh(key, now).append(now)
            if now - self._swept > self.window_s:  # forget keys with nothing in the window
                self._events = {k: v for k, v in self._events.items() if v and v[-1] > now - self.window_s}
                self._swept = now

    def _fresh(self, key: str, now: float) -> deque[float]:
        events = self._events.setdefault(key, deque())
        while events and events[0] <= now - self.window_s:
            events.popleft()
        return events
