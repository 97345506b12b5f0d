"""Whether a change leaves search answers as they were: run the same searches on two checkouts and
compare every field a buyer or the API sees (pages, scores, relevance, totals, labels, highlights,
matched photos, facets, categories, no-match, cursors). For speed work meant to change nothing.

    PYTHONPATH=OLD/src python scripts/same_answers.py dump --artifacts ART --data HELDOUT/test --out old.json
    PYTHONPATH=NEW/src python scripts/same_answers.py dump --artifacts ART --data HELDOUT/test --out new.json
    python scripts/same_answers.py compare old.json new.json     # exit 1 when any answer differs

The searches: 150 listing titles of ``--data`` and 20 buyer queries, each by relevance and by price;
8 of those filtered by category and price; 40 photos alone and with a word.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

BUYER = ["sofa", "wardrobe", "iphone", "kids bike", "garden table", "mens jacket", "chair", "oak table", "ps4", "pram",
         "sofa under £50 near Glasgow", "tv", "lamp", "drawers", "chairs", "dining table and chairs", "ikea",
         "bed frame", "fridge freezer", "xbox"]


def dump(args: argparse.Namespace) -> None:
    import pandas as pd

    from listing_search.core.query import Filters, Page, Query
    from listing_search.search.engine import SearchEngine
    from listing_search.settings import Settings

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    import benchlib

    engine = SearchEngine.load(Settings(artifacts_dir=args.artifacts), args.artifacts)
    products = pd.read_csv(args.data / "Products.csv", lineterminator="\n", dtype=str)
    titles = [t.split("|")[0].strip() for t in products["product_name"].dropna()][:150]
    photos = [p.read_bytes() for p in benchlib.real_photos(args.data, 40)]

    def seen(r) -> dict:
        return {"ids": [h.listing.listing_id for h in r.hits], "scores": [round(h.score, 5) for h in r.hits],
                "relevance": [None if h.relevance is None else round(h.relevance, 5) for h in r.hits],
                "total": r.total, "labels": [h.match for h in r.hits],
                "highlights": [None if h.highlight is None else (h.highlight.title, h.highlight.snippet_spans)
                               for h in r.hits],
                "photos": [h.matched_image_ids for h in r.hits],
                "facets": None if r.facets is None else [r.facets.category, r.facets.price, r.facets.buying],
                "categories": r.predicted_categories, "no_match": r.no_match, "cursor": r.next_cursor}

    out = []
    for q in titles + BUYER:
        out.append(seen(engine.search(Query(text=q, page=Page(10)))))
        out.append(seen(engine.search(Query(text=q, page=Page(10), sort="price_asc"))))
    for q in BUYER[:8]:
        out.append(seen(engine.search(Query(text=q, page=Page(10), filters=Filters(category="Home & Garden",
                                                                                  max_price=200)))))
    for b in photos:
        out.append(seen(engine.search(Query(image=b, page=Page(10)))))
        out.append(seen(engine.search(Query(image=b, text="table", page=Page(10)))))
    args.out.write_text(json.dumps(out, default=str))
    print(json.dumps({"searches": len(out), "out": str(args.out)}))


def compare(args: argparse.Namespace) -> int:
    a, b = json.loads(args.old.read_text()), json.loads(args.new.read_text())
    if len(a) != len(b):
        print(json.dumps({"same": False, "why": f"{len(a)} searches against {len(b)}"}))
        return 1
    differing: dict[str, int] = {}
    for x, y in zip(a, b):
        for field in x:
            if x[field] != y.get(field):
                differing[field] = differing.get(field, 0) + 1
    print(json.dumps({"same": not differing, "searches": len(a), "differing_fields": differing}))
    return 0 if not differing else 1


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump")
    d.add_argument("--artifacts", type=Path, required=True)
    d.add_argument("--data", type=Path, required=True)
    d.add_argument("--out", type=Path, required=True)
    c = sub.add_parser("compare")
    c.add_argument("old", type=Path)
    c.add_argument("new", type=Path)
    a = p.parse_args()
    if a.cmd == "dump":
        dump(a)
    else:
        sys.exit(compare(a))
