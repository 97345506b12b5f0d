"""How many listings of a whole dataset are copies of one ad, and how many are buying ads, as served.

Loads the engine of a built catalogue (``ARTIFACTS``: e.g. the held-out build), adds the listings of a
second folder (``--data``: e.g. ``heldout/test``) through the catalogue writer the API uses, so the
catalogue holds the whole dataset, then counts the near-duplicate groups (``index.duplicates``) and
the buying ads (``core.ads``) of the catalogue view. It writes to the artifacts' store: run it on a copy.
Listings without a photo cannot be added through the API and are counted apart.

    cp -a ART /tmp/art-copy
    python scripts/count_real_data.py --artifacts /tmp/art-copy --data heldout/test
"""

from __future__ import annotations

import argparse
import json
import logging
from collections import Counter
from pathlib import Path

import numpy as np

from listing_search import schema as S
from listing_search.core.ads import is_buying_ad
from listing_search.evaluate.registry import read_eval_tables
from listing_search.search.engine import SearchEngine
from listing_search.serve.writes import CatalogWriter
from listing_search.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="listings to add (a raw dataset folder)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    engine = SearchEngine.load(Settings(artifacts_dir=args.artifacts))
    writer = CatalogWriter(engine)
    counts: Counter = Counter()
    listings, photos = read_eval_tables(args.data, list(engine.categories), counts)
    photos_of = photos.groupby(S.LISTING_ID)[S.IMAGE_ID].apply(list).to_dict()
    no_photo = []
    for rec in listings.to_dict("records"):
        files = [args.data / S.IMAGES_DIR / f"{i}.jpg" for i in photos_of.get(rec[S.LISTING_ID], [])]
        data = [f.read_bytes() for f in files if f.is_file()]
        if engine.live.catalog.row_of_id(rec[S.LISTING_ID]) >= 0:
            counts["already_in_catalogue"] += 1
            continue
        if not data:
            no_photo.append(rec)
            continue
        price = rec.get(S.PRICE)
        writer.add_listing({"listing_id": rec[S.LISTING_ID], "title": rec[S.TITLE],
                            "description": rec.get(S.DESCRIPTION) or "",
                            "price": None if price is None or np.isnan(price) else float(price),
                            "location": rec.get(S.LOCATION) or "", "root_category": rec[S.ROOT_CATEGORY],
                            "category_path": rec.get(S.CATEGORY_PATH) or rec[S.ROOT_CATEGORY]}, data[:10])
        counts["added"] += 1
    view = engine.live.catalog
    rows = view.live_rows()
    groups = view.duplicates.groups()
    in_groups = int(sum(len(g) for g in groups))
    print(json.dumps({
        "listings_in_catalogue": int(len(rows)),
        "added": counts["added"], "not_added_without_photo": len(no_photo),
        "groups": len(groups), "listings_in_groups": in_groups,
        "listings_collapsed": in_groups - len(groups),  # shown as a result's duplicates, not as results
        "largest_group": max((len(g) for g in groups), default=0),
        "group_sizes": dict(sorted(Counter(len(g) for g in groups).items())),
        "buying_ads": int(view.buying[rows].sum()),
        "buying_ads_without_photo": sum(is_buying_ad(r[S.TITLE], r.get(S.DESCRIPTION)) for r in no_photo),
        "skipped": {k: v for k, v in counts.items() if k != "added"},
    }))


if __name__ == "__main__":
    main()
