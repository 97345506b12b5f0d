"""Swappable runners for batch work: the same mapper runs in local processes or on a Dask cluster.

Reader -> mapper -> writer (as in clip-retrieval's runner/distributor): stages build a list of
picklable jobs and a top-level function, and hand both to a runner. The local runner is the
default; the Dask runner sends the same jobs to a real distributed scheduler, either one given by
address (``tcp://host:8786``) or a local cluster started for the run. Jobs that name files need
workers that see the same paths; shard jobs (``distributed.shards``) name only URLs of a work area
(``s3://`` or a folder), so their workers share nothing but that.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Protocol, TypeVar

from tqdm.auto import tqdm

log = logging.getLogger(__name__)
J = TypeVar("J")
R = TypeVar("R")


class Runner(Protocol):
    def map(self, fn: Callable[[J], R], jobs: Sequence[J], progress: bool = False, desc: str = "",
            unit: str = "job") -> list[R]:
        """Results in job order; ``desc`` and ``unit`` name the progress bar ("prepare photos", "photo")."""
        ...


class LocalRunner:
    """Processes on this machine (inline for small batches, where a pool costs more than it saves)."""

    def __init__(self, workers: int = 0) -> None:
        self.workers = workers or os.cpu_count() or 1

    def map(self, fn: Callable[[J], R], jobs: Sequence[J], progress: bool = False, desc: str = "",
            unit: str = "job") -> list[R]:
        bar = tqdm(total=len(jobs), desc=desc or getattr(fn, "__name__", "jobs"), unit=unit, disable=not progress)
        results: list[R] = []
        try:
            if self.workers == 1 or len(jobs) < 32:
                for job in jobs:
                    results.append(fn(job))
                    bar.update()
                return results
            chunk = max(1, min(64, len(jobs) // (self.workers * 8)))
            with ProcessPoolExecutor(max_workers=self.workers) as pool:
                for result in pool.map(fn, jobs, chunksize=chunk):
                    results.append(result)
                    bar.update()
            return results
        finally:
            bar.close()


class DaskRunner:
    """Jobs as batched tasks on a Dask cluster; results gathered in job order."""

    def __init__(self, address: str | None = None, workers: int = 0, batch: int = 64) -> None:
        self.address, self.workers, self.batch = address, workers or os.cpu_count() or 1, batch

    def map(self, fn: Callable[[J], R], jobs: Sequence[J], progress: bool = False, desc: str = "",
            unit: str = "job") -> list[R]:
        from distributed import Client, LocalCluster, as_completed

        batches = [list(jobs[i : i + self.batch]) for i in range(0, len(jobs), self.batch)]
        cluster = None if self.address else LocalCluster(
            n_workers=self.workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
        try:
            with Client(self.address or cluster) as client:
                log.info("dask: %s, %d jobs in %d tasks", client.scheduler.address, len(jobs), len(batches))
                futures = client.map(_run_batch, [fn] * len(batches), batches, pure=False)
                order = {f.key: i for i, f in enumerate(futures)}
                out: list[list[R] | None] = [None] * len(batches)
                bar = tqdm(total=len(jobs), desc=f"{desc or 'jobs'} (dask)", unit=unit, disable=not progress)
                for future, result in as_completed(futures, with_results=True):
                    out[order[future.key]] = result
                    bar.update(len(result))
                bar.close()
        finally:
            if cluster is not None:
                cluster.close()
        return [r for batch in out for r in batch or []]


def _run_batch(fn: Callable[[J], R], batch: list[J]) -> list[R]:
    return [fn(job) for job in batch]


def get_runner(kind: str = "local", workers: int = 0, address: str | None = None, batch: int = 64) -> Runner:
    """``batch`` jobs per Dask task: many for tiny jobs (one photo), 1 for shards (each is a task)."""
    if kind == "local":
        return LocalRunner(workers)
    if kind == "dask":
        return DaskRunner(address, workers, batch)
    raise ValueError(f"unknown runner {kind!r}: expected 'local' or 'dask'")
