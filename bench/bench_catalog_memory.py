"""Claim: the in-memory catalogue view (``index.catalog.CatalogView``) takes at most 2 GB per million
listings, vectors aside, and answers filters, counts and sorted pages from memory.

A synthetic store of N listings (default 1,000,000) is written to SQLite with two photos each; each
listing's title, description, price, location and category are drawn from the real dataset's
cleaned listings (so strings have the real lengths: descriptions average ~300 characters), each
made unique by a number. The view is then built from the store exactly as a serving replica builds
it (``store.iter_listings``), and the process's resident memory is read before and after (the
store's own cache and the last batch are released first). Also timed, on the whole view: a filter
mask, counts per category, and the first page of a price sort over every listing.

    python bench/bench_catalog_memory.py --data ../shared/data/fb_marketplace [--listings 1000000]
"""

from __future__ import annotations

import gc
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import machine_state, main, parser, percentiles_ms, rss_bytes  # noqa: E402

GOAL_GB_PER_MILLION = 2.0


def real_rows(data: Path) -> list[dict]:
    from listing_search.data.tables import Dropped, clean_products, read_csv_strict
    from listing_search import schema as S

    raw = read_csv_strict(data / S.PRODUCTS_CSV, S.PRODUCTS_CSV, S.PRODUCTS_COLUMNS)
    return clean_products(raw, Dropped()).to_dict("records")


def fill(store, rows: list[dict], n: int, chunk: int = 20_000, seed: int = 0) -> None:
    """``n`` listings drawn from ``rows`` (with replacement), two photos each, in bulk transactions."""
    from listing_search.store.models import ListingIn, Models, PhotoIn

    rng = np.random.default_rng(seed)
    models = Models("bench-image")
    for start in range(0, n, chunk):
        items = []
        for i in range(start, min(n, start + chunk)):
            r = rows[int(rng.integers(len(rows)))]
            price = r.get("price")
            fields = {"title": f"{r['title']} {i}", "description": f"{r['description']} {i}",
                      "price": None if price is None or price != price else float(price),
                      "location": r["location"], "category_path": r["category_path"],
                      "root_category": r["root_category"], "label": 0, "posted_at": 1644192000.0 + (i % 3) * 86400}
            photos = [PhotoIn(f"p{i}-{j}", f"photos/p{i}-{j}.jpg", None) for j in range(2)]
            items.append(ListingIn(f"bench-{i}", fields, photos))
        with store.write() as con:
            store.insert_many(con, items, models)


def run(args) -> dict:
    from listing_search.core.query import PRICE_ASC, Filters
    from listing_search.index.catalog import CatalogView
    from listing_search.store import open_store

    before_all = machine_state()
    folder = Path(tempfile.mkdtemp(prefix="catalog-bench-"))
    store = open_store(f"sqlite:///{folder / 'store.sqlite'}")
    t0 = time.perf_counter()
    fill(store, real_rows(args.data), args.listings)
    write_s = time.perf_counter() - t0
    store.close()
    store = open_store(f"sqlite:///{folder / 'store.sqlite'}")
    gc.collect()
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    view = CatalogView.build(store.iter_listings())
    build_s = time.perf_counter() - t0
    store.close()
    gc.collect()
    held = rss_bytes() - rss0
    home = view.roots.values[0]
    filt = percentiles_ms([_timed(lambda: view.allowed(Filters(category=home, max_price=100.0)))
                           for _ in range(20)])
    rows = view.live_rows()
    counts = percentiles_ms([_timed(lambda: view.counts(rows, "path")) for _ in range(20)])
    page = percentiles_ms([_timed(lambda: _first_page(view, rows, PRICE_ASC)) for _ in range(20)])
    per_million = held / 2**30 / (args.listings / 1e6)
    return {"claim": "the catalogue view holds <= 2 GB per million listings (vectors aside)",
            "listings": len(view), "store_write_s": round(write_s, 1), "view_build_s": round(build_s, 1),
            "view_rss_gb": round(held / 2**30, 3), "gb_per_million": round(per_million, 3),
            "met": per_million <= GOAL_GB_PER_MILLION, "filter_mask": filt, "counts_per_path": counts,
            "first_page_of_price_sort": page, "machine_before": before_all}


def _first_page(view, rows: np.ndarray, sort: str) -> np.ndarray:
    sk = view.sort_key(rows, sort)
    primary = np.where(np.isnan(sk.primary), np.inf, sk.primary)
    kth = np.partition(primary, 10)[10]
    pool = np.flatnonzero(primary <= kth)
    return rows[pool[np.lexsort((sk.secondary[pool], primary[pool]))][:10]]


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    p = parser(__doc__)
    p.add_argument("--listings", type=int, default=1_000_000)
    main(run, p.parse_args())
