"""Tune the history's path lean (``search.rank``: PATH_LEAN, PATH_POWER, PROMOTE) on catalogue
listings, never on the held-out test: each sampled catalogue listing T of a path with at least 14
listings becomes a one-word search (its head noun) leaned by 3 other viewed listings of T's path, and
pairs of a history and a word of another root category count how much of the top 10 the history
changes (the shape of ``evaluate``'s ``personal`` metric, which measures the held-out test).

    python scripts/tune_history_lean.py --artifacts ART --seed 11 --lean 4 --power 4 --promote 0.5

Prints one JSON line: feed precision in T's path, the one-word search's precision with and without
the history, the lift, and for the unrelated pairs the mean / max changed and how many changed > 1.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from listing_search.core.query import HistoryEvent, Page, Query
from listing_search.fit.buyer_queries import head
from listing_search.search import rank
from listing_search.search.engine import SearchEngine
from listing_search.settings import get_settings

NOW = 1_700_000_000.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--artifacts", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--pairs", type=int, default=100)
    ap.add_argument("--lean", type=float, default=rank.PATH_LEAN)
    ap.add_argument("--power", type=float, default=rank.PATH_POWER)
    ap.add_argument("--promote", type=float, default=rank.PROMOTE, help="over 1: never promote")
    args = ap.parse_args()
    rank.PATH_LEAN, rank.PATH_POWER, rank.PROMOTE = args.lean, args.power, args.promote
    engine = SearchEngine.load(get_settings(), args.artifacts)
    view = engine.live.catalog
    catalogue = [view.listing(int(r)) for r in view.live_rows()]
    paths: dict[str, list[str]] = {}
    for rec in catalogue:
        paths.setdefault(rec.category_path, []).append(rec.listing_id)
    rng = np.random.default_rng(args.seed)
    eligible = [i for i, r in enumerate(catalogue) if len(paths[r.category_path]) >= 14 and head(r.title)]

    def history(path: str, exclude: str | None):
        seen = rng.choice(sorted(x for x in paths[path] if x != exclude), size=3, replace=False)
        return tuple(HistoryEvent(str(x), "viewed", NOW - 86400.0 * (d + 1)) for d, x in enumerate(seen))

    def in_path(hits, path: str) -> float:
        return float(np.mean([h.listing.category_path == path for h in hits])) if hits else 0.0

    started = time.time()
    feed, with_h, without = [], [], []
    for u in rng.permutation(eligible)[:args.users]:
        t = catalogue[int(u)]
        h = history(t.category_path, t.listing_id)
        feed.append(in_path(engine.recommend(h, 10).hits, t.category_path))
        word = head(t.title)
        with_h.append(in_path(engine.search(Query(text=word, page=Page(10), history=h)).hits, t.category_path))
        without.append(in_path(engine.search(Query(text=word, page=Page(10))).hits, t.category_path))
    changed = []
    for _ in range(args.pairs * 4):
        if len(changed) >= args.pairs:
            break
        a, b = (catalogue[int(i)] for i in rng.choice(eligible, size=2, replace=False))
        if a.root_category == b.root_category:
            continue
        word = head(b.title)
        plain = {x.listing.listing_id for x in engine.search(Query(text=word, page=Page(10))).hits}
        leaned = {x.listing.listing_id for x in engine.search(
            Query(text=word, page=Page(10), history=history(a.category_path, None))).hits}
        changed.append(len(plain - leaned))
    print(json.dumps({"lean": args.lean, "power": args.power, "promote": args.promote, "seed": args.seed,
                      "feed": round(float(np.mean(feed)), 4), "with": round(float(np.mean(with_h)), 4),
                      "without": round(float(np.mean(without)), 4),
                      "lift": round(float(np.mean(with_h) - np.mean(without)), 4),
                      "unrelated_mean": round(float(np.mean(changed)), 3), "unrelated_max": int(max(changed)),
                      "unrelated_over_1": int(sum(c > 1 for c in changed)), "pairs": len(changed),
                      "seconds": round(time.time() - started)}))


if __name__ == "__main__":
    main()
