"""Claim: the whole pipeline builds from the dataset in minutes on 2 cores, and an up-to-date re-run is quick.

Runs each stage verb of `listing-search` (prepare, train, embed, embed-text, tune-ranker, index:
what `listing-search run --no-serve` runs, in that order) as a child process on the full dataset
into a scratch artifacts folder, then the same verbs again (every stage should find itself up to
date), and reports each stage's wall time and peak memory (ru_maxrss of that child, from wait4).

Training is the long stage. With ``--skip-train`` (the default when ART holds a trained model),
ART/model/model.pt and model_card.json are copied into the scratch folder instead of training, and
the JSON says so; ``--train`` forces a real training run.

    python bench/bench_pipeline.py --data DIR --artifacts ART [--skip-train | --train] [--scratch DIR]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import benchlib
from listing_search import schema as S

log = logging.getLogger("bench.pipeline")

STAGES = ("prepare", "train", "embed", "embed-text", "tune-ranker", "index")


def run_stage(verb: str, data: str, scratch: Path, timeout_s: float) -> dict[str, Any]:
    """One verb as a child process: wall seconds, exit code, peak RSS (MB) of it and its children."""
    cmd = [sys.executable, "-m", "listing_search.cli", verb, "--artifacts", str(scratch)]
    if verb == "prepare":
        cmd += ["--data", data]
    env = {**os.environ, "LISTING_SEARCH_LOG_LEVEL": "WARNING"}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=benchlib.REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = start + timeout_s
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.2)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    row = {"stage": verb, "seconds": round(wall, 1), "exit_code": code,
           "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 1)}
    if code != 0:
        row["error"] = stderr.strip().splitlines()[-3:]
    log.info("%s", row)
    return row


def copy_model(artifacts: Path, scratch: Path) -> list[str]:
    """The trained model from ART, in place of training (``--skip-train``)."""
    copied = []
    for name in S.TRAINED_MODEL_FILES:
        src = artifacts / name
        if src.is_file():
            (scratch / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, scratch / name)
            copied.append(name)
    return copied


def run(args: argparse.Namespace) -> dict[str, Any]:
    state = benchlib.machine_state()
    scratch = args.scratch.resolve()
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    has_model = (args.artifacts / "model" / "model.pt").is_file()
    skip_train = args.skip_train if args.skip_train is not None else has_model
    first: list[dict[str, Any]] = []
    notes: list[str] = []
    for verb in STAGES:
        if verb == "train" and skip_train:
            copied = copy_model(args.artifacts.resolve(), scratch)
            notes.append(f"train skipped: copied {copied} from {args.artifacts}")
            first.append({"stage": "train", "skipped": True, "copied_from_art": copied})
            continue
        first.append(run_stage(verb, str(args.data), scratch, args.stage_timeout))
        if first[-1]["exit_code"] != 0 and verb in ("prepare", "train", "embed"):
            notes.append(f"{verb} failed: later stages need it; stopped")
            break
    again = [run_stage(v, str(args.data), scratch, args.stage_timeout) for v in STAGES
             if not (v == "train" and skip_train) and any(r["stage"] == v for r in first)]
    ran = [r for r in first if "seconds" in r]
    result = {
        "bench": "pipeline",
        "command": f"python bench/bench_pipeline.py {'--skip-train' if skip_train else '--train'}",
        "data": str(args.data), "scratch": str(scratch), "train_skipped": skip_train,
        "first_run": first, "first_run_total_s": round(sum(r["seconds"] for r in ran), 1),
        "peak_rss_mb": max((r["peak_rss_mb"] for r in ran), default=None),
        "up_to_date_rerun": again, "rerun_total_s": round(sum(r["seconds"] for r in again), 1),
        "notes": notes, "machine_start": state,
    }
    if not args.keep:
        shutil.rmtree(scratch, ignore_errors=True)
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = benchlib.parser(__doc__)
    p.add_argument("--scratch", type=Path, default=Path("/tmp/listing_search_bench_pipeline"))
    group = p.add_mutually_exclusive_group()
    group.add_argument("--skip-train", dest="skip_train", action="store_true", default=None,
                       help="copy ART's trained model instead of training (default when ART has one)")
    group.add_argument("--train", dest="skip_train", action="store_false", help="train for real")
    p.add_argument("--stage-timeout", type=float, default=3600.0, help="a stage running longer is killed")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    benchlib.main(run, parse_args(argv))


if __name__ == "__main__":
    main()
