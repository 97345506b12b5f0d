"""Markdown tables from the JSON lines the benches print (for docs/performance.md).

    for f in bench/bench_*.py; do python $f --data DIR --artifacts ART >> results.jsonl; done
    python bench/report.py results.jsonl
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _machine(r: dict[str, Any]) -> str:
    s, e = r.get("machine_start", {}), r.get("machine_end", {})
    return (f"_Measured {s.get('utc', '?')} → {e.get('utc', '?')}, {s.get('cpus')} cores, load average "
            f"{s.get('load1')} at start / {e.get('load1')} at end._")


def index_scale(r: dict[str, Any]) -> list[str]:
    out = [f"### Index at scale: {r['n']:,} x {r['dim']}-d ({r['distribution']}), recall@{r['k']} on "
           f"{r['queries']} queries", "", _machine(r), "",
           "| index | knob | recall@10 | ms/query batch 1 (p99) | ms/query batched | index GB | RSS +GB | "
           "build s | goal |", "|---|---|---|---|---|---|---|---|---|"]
    for x in r["results"]:
        knob = ", ".join(f"{k} {v}" for k, v in x["params"].items()) or "-"
        extra = " (on {:,}, extrapolated)".format(x["measured_on_n"]) if "measured_on_n" in x else ""
        out.append(f"| {x['name']}: `{x['index']}` | {knob} | {x['recall_at_k']:.3f} | "
                   f"{x['batch1_ms_per_query']:.2f} ({x['batch1_p99_ms']:.1f}) | {x['batched_ms_per_query']:.3f} | "
                   f"{x['index_gb']:.2f} | {x['rss_delta_gb']:.2f} | {x['build_s']:.0f}{extra} | "
                   f"{'met' if x['meets_goal'] else 'missed'} |")
    sel = r.get("selector") or {}
    out += ["", f"Selector (`listing_search.index.select.choose_index`) picks `{sel.get('factory')}` "
            f"({sel.get('reason')}). Best meeting the goal: `{r.get('best_meeting_goal')}`."]
    return out


def embed(r: dict[str, Any]) -> list[str]:
    pre = r["preprocess_single_thread"]
    out = [f"### Photo embedding ({r['model']}, {r['input_size']} px, {r['photos']} real photos)", "",
           _machine(r), "", "Decode + preprocess alone, one thread (photos/s):", "",
           "| photos | with reduced-size decode (PIL draft) | full decode |", "|---|---|---|",
           f"| dataset (224 px JPEG) | {pre['dataset_photos_per_s']} | {pre['dataset_photos_no_draft_per_s']} |",
           f"| uploads ({r['upload_size']} px JPEG) | {pre['upload_photos_per_s']} | "
           f"{pre['upload_photos_no_draft_per_s']} |", "",
           "Network alone (photos/s):", "", "| runtime | threads | batch | graph opt. | photos/s |",
           "|---|---|---|---|---|"]
    for x in r["network"]:
        out.append(f"| {x['runtime']} | {x['threads']} | {x['batch']} | {x.get('graph_optimization', '-')} | "
                   f"{x['photos_per_s']} |")
    out += ["", "Full path, photo bytes → embedding (photos/s):", "", "| path | photos/s |", "|---|---|"]
    out += [f"| {x['path']} | {x['photos_per_s']} |" for x in r["full_path"]]
    out += ["", "int8 vs fp32 on validation photos:", "",
            "| graph | photos | category agreement | 1000-way top-1 agreement | embedding cosine mean (min) | "
            "max abs diff | accuracy loss (points) |", "|---|---|---|---|---|---|---|"]
    for name, a in r["int8_vs_fp32"].items():
        out.append(f"| {name} | {a['photos']} | {a['category_agreement']:.3f} | {a['imagenet_top1_agreement']:.3f} | "
                   f"{a['embedding_cosine_mean']:.4f} ({a['embedding_cosine_min']:.3f}) | "
                   f"{a['embedding_max_abs_diff']} (of {a['embedding_max_abs_fp32']}) | "
                   f"{a.get('accuracy_loss_points', 'n/a (no trained model)')} |")
    return out


def serve(r: dict[str, Any]) -> list[str]:
    out = [f"### Serving ({r['artifacts']}; {r['catalogue_vectors']:,} photo vectors)", "", _machine(r), "",
           "| server | endpoint | concurrency | p50 ms | p95 ms | p99 ms | req/s | non-200 |",
           "|---|---|---|---|---|---|---|---|"]
    servers = [k for k in ("ours", "ours_int8_vision", "reference_torch_default_threads",
                           "reference_torch_1_thread") if r.get(k)] or ["ours", "reference"]
    for server in servers:
        for endpoint, rows in (r.get(server) or {}).items():
            for c, x in rows.items():
                out.append(f"| {server} | {endpoint} | {x['concurrency']} | {x['p50_ms']:.1f} | {x['p95_ms']:.1f} | "
                           f"{x['p99_ms']:.1f} | {x['req_per_s']} | {x['non_200']} |")
    out += ["", "| goal | measured (fp32) | met | measured (int8 vision) | met |", "|---|---|---|---|---|"]
    g8 = r.get("goals_int8_vision") or {}
    for name, g in r["goals"].items():
        h = g8.get(name, {})
        out.append(f"| {name} | {g['value']} | {g['met']} | {h.get('value')} | {h.get('met')} |")
    return out


def pipeline(r: dict[str, Any]) -> list[str]:
    out = [f"### Pipeline (`{r['command']}`)", "", _machine(r), "",
           "| stage | first run s | peak RSS MB | up-to-date re-run s |", "|---|---|---|---|"]
    again = {x["stage"]: x for x in r["up_to_date_rerun"]}
    for x in r["first_run"]:
        if x.get("skipped"):
            out.append(f"| {x['stage']} | skipped (model copied from ART) | - | - |")
            continue
        a = again.get(x["stage"], {})
        status = "" if x["exit_code"] == 0 else f" (exit {x['exit_code']})"
        out.append(f"| {x['stage']} | {x['seconds']}{status} | {x['peak_rss_mb']} | {a.get('seconds', '-')} |")
    out.append(f"| **total** | {r['first_run_total_s']} | {r['peak_rss_mb']} | {r['rerun_total_s']} |")
    return out + [""] + [f"- {n}" for n in r.get("notes", [])]


def summary(records: list[dict[str, Any]]) -> list[str]:
    """One row per goal of issue 7: the goal, the best measured figure, met or not, the run's load."""
    by = {r["bench"]: r for r in records}
    rows: list[tuple[str, str, str, Any, str]] = []

    def add(goal: str, value: str, met: bool | None, r: dict[str, Any], how: str) -> None:
        load = r.get("machine_start", {}).get("load1")
        rows.append((goal, value, "met" if met else ("missed" if met is not None else "n/a"), load, how))

    if "index_candidates" in by:
        r = by["index_candidates"]
        res = {x["name"]: x for x in r["results"]}
        sel = res.get("selector") or {}
        best = res.get(r.get("best_meeting_goal") or "", {})
        for label, x in (("selector's pick", sel), ("best measured", best)):
            if x:
                add(f"1M x 1000-d index, {label}: recall@10 >= 0.95, <= 2 ms/query, <= 1.5 GB",
                    f"`{x['index']}`: recall {x['recall_at_k']:.3f}, {x['batch1_ms_per_query']:.2f} ms, "
                    f"{x['index_gb']:.2f} GB", x["meets_goal"], r, "bench_index_candidates.py")
    if "embed" in by:
        r = by["embed"]
        best = r["best_full_path"]
        add(">= 300 photos/s, decode + preprocess + embed, 2 cores", f"{best['photos_per_s']} ({best['path']}); "
            f"original way {r['full_path'][0]['photos_per_s']}", best["photos_per_s"] >= 300, r, "bench_embed.py")
        acc = r["int8_vs_fp32"].get("ort_int8_static", {})
        loss = acc.get("accuracy_loss_points")
        add("int8: <= 0.5 accuracy points lost", f"{loss} points; category agreement "
            f"{acc.get('category_agreement')}, cosine {acc.get('embedding_cosine_mean')}",
            None if loss is None else loss <= 0.5, r, "bench_embed.py")
    if "serve" in by:
        r = by["serve"]
        for name, g in r["goals"].items():
            h = (r.get("goals_int8_vision") or {}).get(name, {})
            extra = f" (int8 vision: {h['value']})" if h.get("value") is not None else ""
            add(name.replace("_", " "), f"{g['value']}{extra}", g["met"], r, "bench_serve.py")
    if "pipeline" in by:
        r = by["pipeline"]
        add("pipeline: first run / up-to-date re-run", f"{r['first_run_total_s']} s / {r['rerun_total_s']} s, "
            f"peak RSS {r['peak_rss_mb']} MB{' (training skipped)' if r['train_skipped'] else ''}", None, r,
            "bench_pipeline.py")
    out = ["| goal | measured | | load avg at start | script |", "|---|---|---|---|---|"]
    return out + [f"| {g} | {v} | {m} | {lo} | `{h}` |" for g, v, m, lo, h in rows]


RENDER: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "index_candidates": index_scale, "embed": embed, "serve": serve, "pipeline": pipeline}


def main() -> None:
    records = [json.loads(line) for path in sys.argv[1:] for line in Path(path).read_text().splitlines()
               if line.strip().startswith("{")]
    sys.stdout.write("\n".join(summary(records)) + "\n\n")
    for r in records:
        if r.get("bench") in RENDER:
            sys.stdout.write("\n".join(RENDER[r["bench"]](r)) + "\n\n")


if __name__ == "__main__":
    main()
