"""What kind of ad, measured on labelled samples of the real listings (``evaluate/labels/README.md``).

``duplicate_groups``: the judged pairs of ``labels/duplicate_pairs.csv`` against the near-duplicate
groups of the engine's catalogue (``index.duplicates``, built as ``serve`` builds them): precision
and recall of "in one group" over the pairs whose two listings the catalogue holds, overall and per
stratum. ``buying_ads``: the judged listings of ``labels/buying_ads.csv`` against the catalogue
view's ``buying`` flag (``core.ads``), the same rule applied to the evaluated folder's text for
listings the catalogue does not hold.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from listing_search import schema as S
from listing_search.core.ads import is_buying_ad
from listing_search.evaluate.registry import EvalContext, metric
from listing_search.evaluate.search import search_eval
from listing_search.index.catalog import NONE

LABELS = Path(__file__).with_name("labels")
DUPLICATE_PAIRS = LABELS / "duplicate_pairs.csv"
BUYING_ADS = LABELS / "buying_ads.csv"


def precision_recall(truth: np.ndarray, predicted: np.ndarray) -> dict:
    truth, predicted = np.asarray(truth, bool), np.asarray(predicted, bool)
    tp = int((truth & predicted).sum())
    return {"labelled": int(len(truth)), "positive": int(truth.sum()), "predicted": int(predicted.sum()),
            "precision": round(tp / predicted.sum(), 4) if predicted.any() else None,
            "recall": round(tp / truth.sum(), 4) if truth.any() else None}


def grouped_pairs(view, pairs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(covered: both listings in the catalogue, together: in one near-duplicate group) per pair."""
    rows_a = np.array([view.row_of_id(i) for i in pairs["listing_a"]], np.int64)
    rows_b = np.array([view.row_of_id(i) for i in pairs["listing_b"]], np.int64)
    covered = (rows_a != NONE) & (rows_b != NONE)
    together = np.zeros(len(pairs), bool)
    together[covered] = view.group_of(rows_a[covered]) == view.group_of(rows_b[covered])
    return covered, together


@metric("duplicate_groups")
def duplicate_groups(ctx: EvalContext) -> dict | None:
    """Precision and recall of the grouping on the judged pairs (all, and per stratum), and the groups held."""
    ev = search_eval(ctx)
    if ev is None:
        return None
    view = ev.engine.live.catalog
    pairs = pd.read_csv(DUPLICATE_PAIRS, dtype={"listing_a": str, "listing_b": str})
    covered, together = grouped_pairs(view, pairs)
    ctx.counts["duplicate_pairs_not_in_catalogue"] += int((~covered).sum())
    judged, same = pairs[covered], pairs["same_ad"].to_numpy(bool)[covered]
    strata = {name: precision_recall(same[judged["stratum"].to_numpy() == name],
                                     together[covered][judged["stratum"].to_numpy() == name])
              for name in dict.fromkeys(judged["stratum"])}
    groups = view.duplicates.groups()
    return {**precision_recall(same, together[covered]), "per_stratum": strata, "groups": len(groups),
            "listings_in_groups": int(sum(len(g) for g in groups))}


@metric("buying_ads")
def buying_ads(ctx: EvalContext) -> dict | None:
    """Precision and recall of the buying-ad flag on the judged listings."""
    labels = pd.read_csv(BUYING_ADS, dtype={"listing_id": str})
    ev = search_eval(ctx)
    view = ev.engine.live.catalog if ev is not None else None
    listings, _ = ctx.tables
    text = dict(zip(listings[S.LISTING_ID], zip(listings[S.TITLE], listings[S.DESCRIPTION])))
    flags = []
    for lid in labels["listing_id"]:
        row = view.row_of_id(lid) if view is not None else NONE
        if row != NONE:
            flags.append(bool(view.buying[row]))
        elif lid in text:
            flags.append(is_buying_ad(*text[lid]))
        else:
            flags.append(None)
    known = np.array([f is not None for f in flags])
    ctx.counts["buying_labels_not_found"] += int((~known).sum())
    predicted = np.array([bool(f) for f in flags])[known]
    return precision_recall(labels["buying"].to_numpy(bool)[known], predicted)
