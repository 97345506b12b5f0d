"""Write tests/golden/golden.json: a seeded catalogue and golden word queries from the real listings.

The real ``Products.csv`` is read and cleaned by the project's own table code (``data.tables``),
so titles lose their `` | in <place> | Gumtree`` suffix exactly as the pipeline strips it (a few
titles hold `` | `` themselves: they keep it). Listings are split by listing id, stratified by root
category with one seeded generator: ``--catalogue`` listings become the catalogue the golden test
indexes, ``--queries`` other listings become the queries (their title, and the title with one
letter dropped by ``text.typos.drop_letter``). The file keeps ids and titles only.

Floors are what the test asserts; they are measured, not chosen: run the test, then
``--floors-from '{"title_precision_at_10": 0.71, ...}'`` writes each floor as measured - 0.03,
rounded down to 2 decimals. Without it, the floors already in the file are kept.

    PYTHONPATH=src python scripts/make_golden.py [--data DIR] [--floors-from JSON]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from listing_search import schema as S
from listing_search.data.tables import Dropped, clean_products, read_csv_strict
from listing_search.text.typos import drop_letter

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "golden.json"
DATA = ROOT.parent / "shared" / "data" / "fb_marketplace"
SEED = 20220226
MARGIN = 0.03
FLOOR_KEYS = ("title_precision_at_10", "title_ndcg_at_10", "typo_title_precision_at_10")


def load_products(data: Path) -> pd.DataFrame:
    """The cleaned listings of a dataset folder, in listing-id order (the order never depends on the file's)."""
    raw = read_csv_strict(data / S.PRODUCTS_CSV, S.PRODUCTS_CSV, S.PRODUCTS_COLUMNS)
    listings = clean_products(raw, Dropped())
    listings = listings[listings[S.TITLE].str.strip() != ""]
    return listings.sort_values(S.LISTING_ID).reset_index(drop=True)


def quotas(counts: pd.Series, total: int) -> dict[str, int]:
    """``total`` spread over the roots in proportion to their sizes (largest remainders), at least 1 each."""
    share = counts / counts.sum() * total
    out = {root: max(1, int(math.floor(s))) for root, s in share.items()}
    for root in (share - share.map(math.floor)).sort_values(ascending=False).index:
        if sum(out.values()) >= total:
            break
        out[root] += 1
    return out


def split(listings: pd.DataFrame, n_catalogue: int, n_queries: int, rng: np.random.Generator
          ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(catalogue, queries): disjoint, each stratified by root category."""
    counts = listings[S.ROOT_CATEGORY].value_counts().sort_index()
    cat_q, query_q = quotas(counts, n_catalogue), quotas(counts, n_queries)
    catalogue, queries = [], []
    for root, group in listings.groupby(S.ROOT_CATEGORY, sort=True):
        order = group.iloc[rng.permutation(len(group))]
        queries.append(order.iloc[:query_q[root]])
        catalogue.append(order.iloc[query_q[root]:query_q[root] + cat_q[root]])
    return (pd.concat(catalogue).sort_values(S.LISTING_ID), pd.concat(queries).sort_values(S.LISTING_ID))


def floors_from(measured: dict[str, float], keys=FLOOR_KEYS) -> dict[str, float]:
    """Each measured number less ``MARGIN``, rounded down to 2 decimals."""
    return {k: math.floor(round((measured[k] - MARGIN) * 100, 6)) / 100 for k in keys}


def golden(data: Path, n_catalogue: int, n_queries: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    catalogue, queries = split(load_products(data), n_catalogue, n_queries, rng)
    typo_rng = np.random.default_rng(seed + 1)
    return {
        "seed": seed,
        "source": "fb_marketplace/Products.csv, cleaned by listing_search.data.tables",
        "catalogue_listing_ids": catalogue[S.LISTING_ID].tolist(),
        "queries": [{"listing_id": lid, "title": title, "typo_title": drop_letter(title, typo_rng),
                     "root": root, "path": path}
                    for lid, title, root, path in zip(queries[S.LISTING_ID], queries[S.TITLE],
                                                      queries[S.ROOT_CATEGORY], queries[S.CATEGORY_PATH])],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--out", type=Path, default=GOLDEN)
    p.add_argument("--catalogue", type=int, default=1200)
    p.add_argument("--queries", type=int, default=150)
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--floors-from", help="JSON of the measured numbers (the golden test prints them)")
    p.add_argument("--short-floors-from", help="JSON of the short queries' measured numbers (printed by "
                   "test_buyers_short_queries_stay_above_their_floors)")
    args = p.parse_args()
    out = golden(args.data, args.catalogue, args.queries, args.seed)
    old = json.loads(args.out.read_text()) if args.out.is_file() else {}
    out["floors"] = floors_from(json.loads(args.floors_from)) if args.floors_from else old.get("floors")
    if args.floors_from:
        out["measured"] = {k: round(v, 4) for k, v in json.loads(args.floors_from).items()}
    elif "measured" in old:
        out["measured"] = old["measured"]
    if args.short_floors_from:
        short = json.loads(args.short_floors_from)
        out["short_floors"], out["short_measured"] = floors_from(short, short), {k: round(v, 4) for k, v in short.items()}
    else:
        out.update({k: old[k] for k in ("short_floors", "short_measured") if k in old})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps({"catalogue": len(out["catalogue_listing_ids"]), "queries": len(out["queries"]),
                      "typo_titles": sum(q["typo_title"] is not None for q in out["queries"]),
                      "floors": out["floors"]}))


if __name__ == "__main__":
    main()
