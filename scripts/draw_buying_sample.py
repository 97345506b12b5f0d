"""Draw the listings judged for buying-ad recognition (``evaluate`` key ``buying_ads``).

Every listing whose title or description has a loose cue of buying (``CUES``: "wanted", "looking
for", "buy", "cash", "paid", "swap", …) is taken, with ``--random`` (default 100) other listings
drawn with ``--seed``: the buying ads, the sale ads that sound like them, and plain sale ads. The
``buying`` column is left empty for a person to fill in by the rule in the labels' README.

    python scripts/draw_buying_sample.py --data DATA --out buying.csv
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import pandas as pd

from listing_search import schema as S
from listing_search.data.tables import Dropped, clean_products, read_csv_strict

CUES = re.compile(r"wanted|looking for|\bbuying\b|\b(?:we|i|will|to) buy\b|cash (?:for|paid|waiting)|"
                  r"prices? paid|swap|anyone|\bwtb\b|\bsell (?:us|me|to)", re.IGNORECASE)
SEED = 30


def draw(data: Path, n_random: int = 100, seed: int = SEED) -> pd.DataFrame:
    listings = clean_products(read_csv_strict(data / S.PRODUCTS_CSV, S.PRODUCTS_CSV, S.PRODUCTS_COLUMNS), Dropped())
    text = listings[S.TITLE].fillna("") + " \n " + listings[S.DESCRIPTION].fillna("")
    cued = text.str.contains(CUES)
    others = np.flatnonzero(~cued.to_numpy())
    picks = np.random.default_rng(seed).choice(others, min(n_random, len(others)), replace=False)
    sample = listings[cued.to_numpy()].assign(drawn="cue")
    sample = pd.concat([sample, listings.iloc[np.sort(picks)].assign(drawn="random")])
    return pd.DataFrame({"listing_id": sample[S.LISTING_ID], "drawn": sample["drawn"], "buying": "",
                         "title": sample[S.TITLE], "description": sample[S.DESCRIPTION].str.slice(0, 200)})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="a dataset folder (Products.csv)")
    ap.add_argument("--random", type=int, default=100)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    draw(args.data, args.random, args.seed).to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
