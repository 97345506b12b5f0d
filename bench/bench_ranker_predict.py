"""Claim: the LambdaMART ranker compiled by lleaves scores a search's candidates at least 5x faster
than LightGBM's ``Booster.predict``, and orders every search's candidates exactly as it does.

The engine is loaded over built artifacts as `serve` loads it; the features the ranker is asked to
score are captured from real searches (never-seen listings' titles, and their first photos, through
the search pipeline); then each captured matrix is scored by both predictors, interleaved, one thread
each (as serving scores). Reported: per-search scoring time (p50 over the captured searches), the
largest score difference, and how many searches' candidate orders (by score, ties by position) differ.

    python bench/bench_ranker_predict.py --data HELDOUT/test --artifacts ART [--queries 120]
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import machine_state, main, parser, real_photos  # noqa: E402


def run(args) -> dict:
    import pandas as pd

    from listing_search.core.query import Page, Query
    from listing_search.search.engine import SearchEngine
    from listing_search.settings import Settings

    engine = SearchEngine.load(Settings(artifacts_dir=args.artifacts), args.artifacts)
    ranker = engine.models.ranker
    if not hasattr(ranker, "compiled") or ranker.compiled() is None:
        raise SystemExit("the artifacts' ranker is not a LambdaMART ranker that compiles (run tune-ranker; "
                         "lleaves installed?)")
    captured: list[np.ndarray] = []
    score = ranker.score
    ranker.score = lambda x: (captured.append(np.array(x, np.float64)), score(x))[1]
    products = pd.read_csv(args.data / "Products.csv", lineterminator="\n", dtype=str)
    titles = [t.split("|")[0].strip() for t in products["product_name"].dropna()][:args.queries]
    for title in titles:
        engine.search(Query(text=title, page=Page(10)))
    for photo in real_photos(args.data, args.queries // 2):
        engine.search(Query(image=photo.read_bytes(), page=Page(10)))
    ranker.score = score
    engine.close()
    booster, forest = ranker._booster, ranker.compiled()
    before = machine_state()
    lightgbm_s, compiled_s, worst, reordered = [], [], 0.0, 0
    for x in captured:
        for _ in range(3):  # warm, then the last of three timed runs each
            t0 = time.perf_counter()
            a = booster.predict(x, num_threads=1)
            t1 = time.perf_counter()
            b = forest.predict(x, n_jobs=1)
            t2 = time.perf_counter()
        lightgbm_s.append(t1 - t0)
        compiled_s.append(t2 - t1)
        worst = max(worst, float(np.abs(a - b).max()) if len(x) else 0.0)
        rows = np.arange(len(x))
        reordered += int(not np.array_equal(np.lexsort((rows, -a)), np.lexsort((rows, -b))))
    lgb, comp = statistics.median(lightgbm_s) * 1e6, statistics.median(compiled_s) * 1e6
    return {"claim": "the compiled ranker scores a search's candidates >= 5x faster, in the same order",
            "searches": len(captured), "candidates_p50": int(statistics.median(len(x) for x in captured)),
            "lightgbm_p50_us": round(lgb, 1), "compiled_p50_us": round(comp, 1), "speedup": round(lgb / comp, 1),
            "max_abs_score_difference": worst, "searches_reordered": reordered,
            "met": lgb / comp >= 5 and reordered == 0,
            "machine_before": before, "machine_after": machine_state()}


if __name__ == "__main__":
    p = parser(__doc__)
    p.add_argument("--queries", type=int, default=120)
    main(run, p.parse_args())
