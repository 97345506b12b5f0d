"""The serving process's one photo queue: bounded admission for decode + model, and micro-batching.

Every photo a request brings (search, ``/predict/*``, a listing add) is one job. A job is admitted when
fewer than ``in_flight`` jobs are running and its decode (estimated from the photo's header) fits the
memory budget; otherwise it waits up to ``wait_s`` and is refused with :class:`PhotoQueueFull` (503).
A photo whose decode alone would exceed the whole budget is refused at once (413, ``too_large``).
An admitted job decodes in its caller's thread (decoders release the GIL, so decodes run in parallel),
then its model input joins a batch: one worker thread runs up to ``batch_max`` inputs through the model
in one call, waiting at most ``batch_wait_s`` for more only while other admitted jobs are still decoding.
So decode memory and CPU are bounded in total, and the model sees batches under concurrency.
"""

from __future__ import annotations

import ctypes
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from listing_search.data.images import TOO_LARGE, ImageRejected
from listing_search.errors import PhotoQueueFull
from listing_search.settings import ServeSettings

log = logging.getLogger(__name__)

Output = tuple[np.ndarray, np.ndarray | None]
# After a decode this big, hand freed memory back to the OS: glibc keeps freed heap pages in its
# arenas otherwise (measured: 4.3 GB still held 10 s after the 16-upload attack).
TRIM_ABOVE = 16 * 2**20


class Model(Protocol):
    def run(self, batch: np.ndarray) -> Output: ...


@dataclass(frozen=True)
class QueueLimits:
    in_flight: int = 8
    budget_bytes: int = 480 * 2**20
    wait_s: float = 2.0
    batch_max: int = 8
    batch_wait_s: float = 0.002

    @classmethod
    def of(cls, serve: ServeSettings) -> "QueueLimits":
        return cls(serve.photo_in_flight, serve.photo_decode_budget_mb * 2**20, serve.photo_queue_wait_s,
                   serve.photo_batch_max, serve.photo_batch_wait_ms / 1000)


@dataclass(frozen=True)
class QueueStats:
    waiting: int
    in_flight: int
    decode_bytes: int
    rejected: int
    batches: int
    batched_jobs: int


@dataclass
class _Job:
    x: np.ndarray
    done: Future


class PhotoQueue:
    """Bounded, batching access to one vision model; thread-safe. ``embed`` is the only entry."""

    def __init__(self, model: Model, limits: QueueLimits = QueueLimits()) -> None:
        self.model, self.limits = model, limits
        self._cond = threading.Condition()
        self._running = self._bytes = self._waiting = self._rejected = self._batches = self._batched = 0
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None

    def embed(self, prepare: Callable[[], np.ndarray], cost: int = 0) -> Output:
        """Run ``prepare`` (the decode, bounded by admission) then the model; one photo's outputs.

        Raises :class:`PhotoQueueFull` when not admitted within ``wait_s``, ``ImageRejected`` when ``cost``
        alone exceeds the budget (running it, even alone, would break the bound), and whatever ``prepare``
        raises.
        """
        if cost > self.limits.budget_bytes:
            raise ImageRejected(TOO_LARGE, f"decoding it would take about {cost / 2**20:.0f} MB, more than the "
                                           f"{self.limits.budget_bytes / 2**20:.0f} MB photo decode budget")
        with self._admitted(cost):
            x = prepare()
            job = _Job(x, Future())
            self._ensure_worker()
            self._jobs.put(job)
            out = job.done.result()
        if cost > TRIM_ABOVE:
            release_freed_memory()
        return out

    def stats(self) -> QueueStats:
        with self._cond:
            return QueueStats(self._waiting, self._running, self._bytes, self._rejected, self._batches,
                              self._batched)

    def close(self) -> None:
        """Stop the worker after the batches already queued."""
        if self._worker is not None:
            self._jobs.put(None)
            self._worker.join(timeout=5)
            self._worker = None

    # ------------------------------------------------------------- admission
    @contextmanager
    def _admitted(self, cost: int) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            try:
                admitted = self._cond.wait_for(lambda: self._fits(cost), timeout=self.limits.wait_s)
            finally:
                self._waiting -= 1
            if not admitted:
                self._rejected += 1
                raise PhotoQueueFull(self._busy_reason(), retry_after=max(1, round(self.limits.wait_s)))
            self._running += 1
            self._bytes += cost
        try:
            yield
        finally:
            with self._cond:
                self._running -= 1
                self._bytes -= cost
                self._cond.notify_all()

    def _fits(self, cost: int) -> bool:
        if self._running >= self.limits.in_flight:
            return False
        return self._running == 0 or self._bytes + cost <= self.limits.budget_bytes

    def _busy_reason(self) -> str:
        return (f"photo queue full: {self._running} photos in progress, {self._waiting} waiting, "
                f"none finished within {self.limits.wait_s:g} s")

    # --------------------------------------------------------------- batching
    def _ensure_worker(self) -> None:
        with self._cond:
            if self._worker is None:
                self._worker = threading.Thread(target=self._serve_batches, name="photo-batcher", daemon=True)
                self._worker.start()

    def _serve_batches(self) -> None:
        while (first := self._jobs.get()) is not None:
            batch = [first, *self._more_jobs()]
            self._run(batch)
        log.debug("photo batcher stopped")

    def _more_jobs(self) -> list[_Job]:
        """Jobs queued now, and those still decoding for up to ``batch_wait_s``; never a wait for nobody."""
        jobs: list[_Job] = []
        deadline = time.monotonic() + self.limits.batch_wait_s
        while len(jobs) + 1 < self.limits.batch_max:
            expecting = self._running > len(jobs) + 1  # admitted jobs not yet in this batch
            timeout = deadline - time.monotonic() if expecting else 0.0
            try:
                job = self._jobs.get(timeout=max(timeout, 0.0)) if timeout > 0 else self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is None:  # close(): finish this batch, then stop
                self._jobs.put(None)
                break
            jobs.append(job)
        return jobs

    def _run(self, batch: list[_Job]) -> None:
        try:
            emb, probs = self.model.run(np.stack([j.x for j in batch]))
        except BaseException as exc:  # every waiting request gets the model's error
            for job in batch:
                job.done.set_exception(exc)
            return
        with self._cond:
            self._batches += 1
            self._batched += len(batch)
        for i, job in enumerate(batch):
            job.done.set_result((emb[i], None if probs is None else probs[i]))


def release_freed_memory() -> None:
    """Return freed heap pages to the OS (glibc ``malloc_trim``); a no-op where libc has none."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


_TRIM: list[Callable[[int], int] | None] = []


def _malloc_trim() -> Callable[[int], int] | None:
    if not _TRIM:
        try:
            _TRIM.append(ctypes.CDLL("libc.so.6").malloc_trim)
        except (OSError, AttributeError):
            _TRIM.append(None)
    return _TRIM[0]
