"""The metric registry and what every metric shares: the evaluated folder's tables and the model card.

Metrics are small functions registered by name in :data:`METRICS`, each taking the shared
:class:`EvalContext`; what several metrics need (vision outputs, the search engine) is computed
lazily, once, by the module that needs it and kept on the context.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from listing_search import schema as S
from listing_search.data.tables import Dropped, clean_images, clean_products, read_csv_strict
from listing_search.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class EvalContext:
    settings: Settings
    artifacts: Path
    data: Path
    counts: Counter = field(default_factory=Counter)

    @cached_property
    def card(self) -> dict:
        path = self.artifacts / S.MODEL_CARD
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: run `listing-search train` and `embed` first")
        return json.loads(path.read_text())

    @cached_property
    def categories(self) -> list[str]:
        return list(self.card["categories"])

    @cached_property
    def tables(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(listings with a known root category, their photo rows), dropping and counting the rest."""
        return read_eval_tables(self.data, self.categories, self.counts)



Metric = Callable[[EvalContext], Any]
METRICS: dict[str, Metric] = {}


def metric(name: str) -> Callable[[Metric], Metric]:
    """Register a metric under the key it will have in the result."""

    def wrap(fn: Metric) -> Metric:
        METRICS[name] = fn
        return fn

    return wrap



# --- readers ------------------------------------------------------------------------------------

def read_eval_tables(data: Path, categories: list[str], counts: Counter) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Listings whose root category the model knows, and the photo rows of those listings."""
    dropped = Dropped()
    raw_products = read_csv_strict(data / S.PRODUCTS_CSV, S.PRODUCTS_CSV, S.PRODUCTS_COLUMNS)
    raw_images = read_csv_strict(data / S.IMAGES_CSV, S.IMAGES_CSV, S.IMAGES_COLUMNS)
    listings = clean_products(raw_products, dropped)
    known = listings[S.ROOT_CATEGORY].isin(categories)
    if (~known).any():
        log.warning("evaluate: %d listings of unknown categories %s left out", int((~known).sum()),
                    sorted(set(listings.loc[~known, S.ROOT_CATEGORY])))
    counts["listings_unknown_category"] += int((~known).sum())
    all_photos = clean_images(raw_images, set(listings[S.LISTING_ID]), dropped)
    photos = all_photos[all_photos[S.LISTING_ID].isin(set(listings.loc[known, S.LISTING_ID]))]
    counts["photos_unknown_category"] += len(all_photos) - len(photos)
    for reason, n in dropped.counts.items():
        counts[reason] += n
    return listings[known].reset_index(drop=True), photos.reset_index(drop=True)


