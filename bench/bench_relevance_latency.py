"""Claim: the relevance-v2 channels (BM25 candidates + spelling correction) add at most 5 ms to the
p50 of a photo + words search.

The engine is loaded over built artifacts exactly as `serve` loads it (store, indexes, ranker,
calibration); queries are never-seen listings' first photo + title (a `holdout` test folder, or
any dataset folder via --data). Each configuration answers the same queries in the same order,
interleaved round by round so machine noise hits all alike:

* ``dense_only``: lexical channel and spelling off (photo + dense text candidates, same ranker);
* ``lexical``: BM25 candidates on, spelling off;
* ``lexical_spelling``: both on (the default).

    python bench/bench_relevance_latency.py --data HELDOUT/test --artifacts ART [--queries 200]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import machine_state, main, parser, percentiles_ms  # noqa: E402

CONFIGS = {"dense_only": (False, False), "lexical": (True, False), "lexical_spelling": (True, True)}


def queries(data: Path, n: int, seed: int = 0) -> list[tuple[str, bytes]]:
    import pandas as pd

    products = pd.read_csv(data / "Products.csv", lineterminator="\n", dtype=str)
    images = pd.read_csv(data / "Images.csv", lineterminator="\n", dtype=str)
    first = images.drop_duplicates("product_id").set_index("product_id")["id"]
    out = []
    for pid, title in zip(products["id"], products["product_name"]):
        image_id = first.get(pid)
        path = data / "images" / f"{image_id}.jpg"
        if image_id is not None and path.is_file() and isinstance(title, str):
            out.append((title.split("|")[0].strip(), path.read_bytes()))
    rng = np.random.default_rng(seed)
    return [out[i] for i in rng.permutation(len(out))[:n]]


def run(args) -> dict:
    from listing_search.core.query import Page, Query
    from listing_search.search.engine import SearchEngine
    from listing_search.settings import Settings

    settings = Settings(artifacts_dir=args.artifacts)
    engine = SearchEngine.load(settings, args.artifacts)
    qs = queries(args.data, args.queries)
    before = machine_state()
    times: dict[str, list[float]] = {name: [] for name in CONFIGS}
    for _ in range(2):  # warm-up round
        engine.search(Query(text=qs[0][0], image=qs[0][1], page=Page(10)))
    for text, photo in qs:
        for name, (lexical, spelling) in CONFIGS.items():
            settings.rank.lexical = lexical
            t0 = time.perf_counter()
            engine.search(Query(text=text, image=photo, page=Page(10), spelling=spelling))
            times[name].append(time.perf_counter() - t0)
    engine.close()
    result = {name: percentiles_ms(t) for name, t in times.items()}
    added = result["lexical_spelling"]["p50_ms"] - result["dense_only"]["p50_ms"]
    return {"claim": "BM25 + spelling add <= 5 ms to photo + words search p50", "queries": len(qs),
            "latency": result, "added_p50_ms": round(added, 2), "met": added <= 5.0,
            "machine_before": before, "machine_after": machine_state()}


if __name__ == "__main__":
    p = parser(__doc__)
    p.add_argument("--queries", type=int, default=200)
    main(run, p.parse_args())
