"""Claim: a new user's first `make run` reaches a served search in <= 10 minutes (speed issue, item 4).

Clones this repository's committed HEAD into a scratch folder, installs its venv there (``make
install``, not timed: the goal counts from a clone whose venv ``make test`` already installed), then
times ``make run DATA_DIR=... PORT=...`` from its start to the first ``POST /v1/search`` that answers
200 with results, polling every second. Reports the total, each stage's time as the run's log prints
it ("done <stage> in ..."), the validation accuracy line, and the machine state; stops the server.

    python bench/bench_first_run.py --data DIR [--work /tmp/listing_search_first_run] [--timeout-s 1800]

``--artifacts`` is ignored: the run builds its own in the clone, as a new user's would.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402
from bench_serve_latency import free_port  # noqa: E402

log = logging.getLogger("bench.first_run")
GOAL_S = 600
STAGE_LINE = re.compile(r"^done (?P<stage>[\w-]+) in (?P<took>[^:]+?):", re.M)


def answered(port: int) -> bool:
    try:
        r = httpx.post(f"http://127.0.0.1:{port}/v1/search", data={"text": "sofa", "k": "3"}, timeout=5)
    except httpx.HTTPError:
        return False
    return r.status_code == 200 and bool(r.json().get("results"))


def stop(proc: subprocess.Popen) -> None:
    """``make run`` and everything in its process group (uvicorn, its workers): SIGINT first, as Ctrl-C
    would, then SIGKILL for whatever is left (``make`` may exit before its children do)."""
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    time.sleep(1)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


def run(args) -> dict:
    clone = args.work / "clone"
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=benchlib.REPO, check=True, capture_output=True,
                            text=True).stdout.strip()
    subprocess.run(["git", "clone", "-q", str(benchlib.REPO), str(clone)], check=True)
    t = time.perf_counter()
    subprocess.run(["make", "install"], cwd=clone, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    install_s = time.perf_counter() - t
    log.info("clone of %s installed in %.0f s; timing make run", commit[:12], install_s)

    port, run_log = free_port(), args.work / "make_run.log"
    start_state = benchlib.machine_state()
    with open(run_log, "wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(["make", "run", f"DATA_DIR={args.data.resolve()}", f"PORT={port}"], cwd=clone,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "COLUMNS": "200"})
        try:
            while not answered(port):
                if proc.poll() is not None:
                    raise RuntimeError(f"make run exited with {proc.returncode} before serving; see {run_log}")
                if time.perf_counter() - t0 > args.timeout_s:
                    raise TimeoutError(f"no answered search after {args.timeout_s} s; see {run_log}")
                time.sleep(1)
            seconds = time.perf_counter() - t0
        finally:
            stop(proc)
    text = run_log.read_text(errors="replace")
    accuracy = re.search(r"validation photo accuracy\s+([\d.]+)", text)
    return {
        "bench": "first_run", "commit": commit, "data": str(args.data), "install_s_not_timed": round(install_s, 1),
        "first_answered_search_s": round(seconds, 1), "goal_s": GOAL_S, "met": seconds <= GOAL_S,
        "stages": {m["stage"]: m["took"].strip() for m in STAGE_LINE.finditer(text)},
        "val_photo_accuracy": float(accuracy.group(1)) if accuracy else None,
        "log": str(run_log), "machine_start": start_state,
    }


if __name__ == "__main__":
    p = benchlib.parser(__doc__)
    p.add_argument("--work", type=Path, default=Path("/tmp/listing_search_first_run"))
    p.add_argument("--timeout-s", type=float, default=1800)
    benchlib.main(run, p.parse_args())
