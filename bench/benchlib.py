"""Helpers shared by the bench scripts (not a bench itself: `make bench` runs only bench_*.py).

Every bench prints exactly one JSON line on stdout; progress goes to stderr through logging.
Each line carries the machine state when it was measured, because on a shared 2-core machine
the same command gives different numbers at different times.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

log = logging.getLogger("bench")

REPO = Path(__file__).resolve().parents[1]


def setup_logging(verbose: bool = True) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise


def parser(doc: str | None) -> argparse.ArgumentParser:
    """The arguments every bench takes (`make bench` passes both); each script adds its own."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=REPO.parent / "shared/data/fb_marketplace")
    p.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    return p


def main(run: Callable[[argparse.Namespace], dict[str, Any]], args: argparse.Namespace) -> None:
    """Run one bench and print its one JSON line."""
    setup_logging()
    emit(run(args))


def machine_state() -> dict[str, Any]:
    """What else the machine was doing: load averages against the core count, and the time."""
    load1, load5, _ = os.getloadavg()
    state: dict[str, Any] = {
        "utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cpus": os.cpu_count(),
        "load1": round(load1, 2),
        "load5": round(load5, 2),
    }
    try:
        import psutil

        state["mem_available_gb"] = round(psutil.virtual_memory().available / 2**30, 1)
    except ImportError:  # pragma: no cover - psutil is a test/bench dependency
        pass
    return state


def rss_bytes() -> int:
    """Resident memory of this process now."""
    import psutil

    return int(psutil.Process().memory_info().rss)


def emit(result: dict[str, Any]) -> None:
    """The one JSON line a bench prints, with the machine state at the end of the run."""
    result = {**result, "machine_end": machine_state()}
    sys.stdout.write(json.dumps(result, sort_keys=False, default=_jsonable) + "\n")
    sys.stdout.flush()


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


@contextmanager
def timed() -> Iterator[dict[str, float]]:
    """``with timed() as t: ...`` then ``t["s"]`` holds the wall seconds of the block."""
    out: dict[str, float] = {}
    start = time.perf_counter()
    try:
        yield out
    finally:
        out["s"] = time.perf_counter() - start


def percentiles_ms(samples_s: Sequence[float]) -> dict[str, float]:
    """p50 / p95 / p99 / mean of durations given in seconds, in milliseconds."""
    xs = sorted(samples_s)
    if not xs:
        return {}

    def pct(p: float) -> float:
        return xs[min(len(xs) - 1, max(0, round(p / 100 * len(xs)) - 1))] * 1000

    return {
        "p50_ms": round(pct(50), 3),
        "p95_ms": round(pct(95), 3),
        "p99_ms": round(pct(99), 3),
        "mean_ms": round(statistics.fmean(xs) * 1000, 3),
        "n": len(xs),
    }


def repeat_timed(fn: Callable[[], Any], repeats: int) -> list[float]:
    """Durations in seconds of ``repeats`` calls of ``fn``."""
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def real_photos(data_dir: Path, limit: int | None = None, seed: int = 0) -> list[Path]:
    """JPEG files of the dataset's images folder, a seeded sample of ``limit`` of them."""
    import random

    photos = sorted((Path(data_dir) / "images").glob("*.jpg"))
    if limit is not None and limit < len(photos):
        photos = random.Random(seed).sample(photos, limit)
    return photos
