"""Draw the pairs of listings judged for the duplicate grouping (``evaluate`` key ``duplicate_groups``).

Reproducible from a dataset folder and a seed: every pair is drawn from one of five strata, each a
kind of pair where grouping can go right or wrong, and written with the fields a judge reads (titles,
places, prices, the start of the descriptions). ``same_ad`` is left empty for a person to fill in by
the rule in the CSV's README (src/listing_search/evaluate/labels/README.md).

* ``same_photo``: the listings share a byte-identical photo file (copies, and traders' shared photos);
* ``near_photo``: a photo cosine >= 0.90 in ``--embeddings`` but no byte-identical file (re-encoded copies);
* ``title_place``: same location, title terms Jaccard >= 0.5 (reposts, and one trader's other products);
* ``trader_other``: same location, description terms Jaccard >= 0.5, title Jaccard < 0.5 (one trader,
  other products: the hard negatives);
* ``title_elsewhere``: title terms Jaccard >= 0.6 from different places (a trader's copies in other
  towns, and different sellers of the same model);
* ``same_path``: random pairs of the same full category path (easy negatives).

    python scripts/draw_duplicate_pairs.py --data DATA --embeddings ART --out pairs.csv
"""

from __future__ import annotations

import argparse
import hashlib
import json
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from listing_search import schema as S
from listing_search.core.text import match_terms
from listing_search.data.tables import Dropped, clean_images, clean_products, read_csv_strict

QUOTAS = {"same_photo": 60, "near_photo": 25, "title_place": 60, "trader_other": 40, "title_elsewhere": 40,
          "same_path": 25}
SEED = 30


def jaccard(a: frozenset, b: frozenset) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


def tables(data: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    dropped = Dropped()
    listings = clean_products(read_csv_strict(data / S.PRODUCTS_CSV, S.PRODUCTS_CSV, S.PRODUCTS_COLUMNS), dropped)
    raw = read_csv_strict(data / S.IMAGES_CSV, S.IMAGES_CSV, S.IMAGES_COLUMNS)
    return listings.reset_index(drop=True), clean_images(raw, set(listings[S.LISTING_ID]), dropped)


def photo_pairs(data: Path, photos: pd.DataFrame) -> set[tuple[str, str]]:
    """Listing pairs sharing a byte-identical photo file."""
    by_hash: dict[str, set[str]] = {}
    for image_id, lid in zip(photos[S.IMAGE_ID], photos[S.LISTING_ID]):
        path = data / S.IMAGES_DIR / f"{image_id}.jpg"
        if path.is_file():
            by_hash.setdefault(hashlib.md5(path.read_bytes()).hexdigest(), set()).add(lid)
    return {tuple(sorted(p)) for owners in by_hash.values() for p in combinations(sorted(owners), 2)}


def near_photo_pairs(art: Path, photos: pd.DataFrame, threshold: float = 0.90) -> set[tuple[str, str]]:
    """Listing pairs with a photo cosine >= ``threshold`` in a build's photo embeddings."""
    x = np.load(art / S.IMAGE_EMBEDDINGS_NPY).astype(np.float32)
    ids = json.loads((art / S.IMAGE_EMBEDDING_IDS).read_text())
    owner = dict(zip(photos[S.IMAGE_ID], photos[S.LISTING_ID]))
    keep = [i for i, image_id in enumerate(ids) if image_id in owner]
    x = x[keep] / np.linalg.norm(x[keep], axis=1, keepdims=True)
    own = np.array([owner[ids[i]] for i in keep])
    out = set()
    for start in range(0, len(x), 2000):
        a, b = np.nonzero(x[start:start + 2000] @ x.T >= threshold)
        a += start
        out |= {tuple(sorted((own[i], own[j]))) for i, j in zip(a, b) if own[i] != own[j]}
    return out


def text_pairs(listings: pd.DataFrame) -> dict[str, set[tuple[str, str]]]:
    """title_place, trader_other and title_elsewhere candidates (pairs sharing a title or description term)."""
    ids = listings[S.LISTING_ID].tolist()
    title = [frozenset(match_terms(t)) for t in listings[S.TITLE]]
    desc = [frozenset(match_terms(d)) for d in listings[S.DESCRIPTION]]
    place = listings[S.LOCATION].tolist()
    out: dict[str, set[tuple[str, str]]] = {"title_place": set(), "trader_other": set(), "title_elsewhere": set()}
    by_place: dict[str, list[int]] = {}
    for i, p in enumerate(place):
        by_place.setdefault(p, []).append(i)
    for rows in by_place.values():
        for i, j in combinations(rows, 2):
            tj = jaccard(title[i], title[j])
            if tj >= 0.5:
                out["title_place"].add(tuple(sorted((ids[i], ids[j]))))
            elif len(desc[i]) >= 8 and jaccard(desc[i], desc[j]) >= 0.5:
                out["trader_other"].add(tuple(sorted((ids[i], ids[j]))))
    by_term: dict[str, list[int]] = {}
    for i, terms in enumerate(title):
        for t in terms:
            by_term.setdefault(t, []).append(i)
    for rows in by_term.values():
        if len(rows) > 60:  # a common word: pairs sharing only it are far from 0.6
            continue
        for i, j in combinations(rows, 2):
            if place[i] != place[j] and jaccard(title[i], title[j]) >= 0.6:
                out["title_elsewhere"].add(tuple(sorted((ids[i], ids[j]))))
    return out


def same_path_pairs(listings: pd.DataFrame, rng: np.random.Generator, n: int) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    groups = [g for _, g in listings.groupby(S.CATEGORY_PATH) if len(g) > 1]
    while len(out) < n:
        g = groups[int(rng.integers(len(groups)))]
        a, b = rng.choice(len(g), 2, replace=False)
        out.add(tuple(sorted((g[S.LISTING_ID].iloc[a], g[S.LISTING_ID].iloc[b]))))
    return out


def draw(data: Path, embeddings: Path | None, seed: int = SEED) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    listings, photos = tables(data)
    strata = {"same_photo": photo_pairs(data, photos)}
    if embeddings is not None:
        strata["near_photo"] = near_photo_pairs(embeddings, photos) - strata["same_photo"]
    strata |= text_pairs(listings)
    strata["same_path"] = same_path_pairs(listings, rng, QUOTAS["same_path"])
    taken: set[tuple[str, str]] = set()
    rows = []
    for name, quota in QUOTAS.items():
        pool = sorted(strata.get(name, set()) - taken)
        picks = [pool[i] for i in sorted(rng.choice(len(pool), min(quota, len(pool)), replace=False))] if pool else []
        taken |= set(picks)
        rows += [(name, a, b) for a, b in picks]
    by_id = listings.set_index(S.LISTING_ID)
    out = []
    for name, a, b in rows:
        x, y = by_id.loc[a], by_id.loc[b]
        out.append({"stratum": name, "listing_a": a, "listing_b": b, "same_ad": "",
                    "title_a": x[S.TITLE], "title_b": y[S.TITLE], "location_a": x[S.LOCATION],
                    "location_b": y[S.LOCATION], "price_a": x[S.PRICE], "price_b": y[S.PRICE],
                    "description_a": str(x[S.DESCRIPTION])[:160], "description_b": str(y[S.DESCRIPTION])[:160]})
    return pd.DataFrame(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="a dataset folder (Products.csv, Images.csv, images/)")
    ap.add_argument("--embeddings", type=Path, help="an artifacts folder with image_embeddings.npy (near_photo)")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    draw(args.data, args.embeddings, args.seed).to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
