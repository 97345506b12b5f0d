"""The catalogue of an artifacts folder as aligned numpy arrays (fitting only): one row per listing,
its text vector, its photos' vectors; the category predictor is fit on these.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from listing_search import schema as S
from listing_search.core.maths import unit_rows
from listing_search.text.encoder import listing_text

if TYPE_CHECKING:  # pandas only where the catalogue is read from tables (build stages): serving never imports it
    import pandas as pd

log = logging.getLogger(__name__)

@dataclass
class ListingVectors:
    """Row-aligned listing arrays; photos are grouped by listing row (``photo_row`` is sorted)."""

    ids: np.ndarray  # object [L]
    labels: np.ndarray  # int [L], index into ``categories``
    paths: np.ndarray  # object [L], full category path
    titles: list[str]
    prices: np.ndarray  # float [L], NaN when unknown
    text: np.ndarray  # [L, Dt] unit rows
    photos: np.ndarray  # [P, Di] unit rows
    photo_row: np.ndarray  # int [P], listing row of each photo, ascending
    categories: list[str]
    splits: np.ndarray | None = None  # object [L] "train"/"val" for the catalogue, None otherwise
    texts: list[str] = field(default_factory=list)  # what was embedded (title + description), for word features
    _row_of: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        order = np.argsort(self.photo_row, kind="stable")
        self.photos, self.photo_row = self.photos[order], self.photo_row[order]
        self._row_of = {str(i): r for r, i in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def row_of(self, listing_id: str) -> int | None:
        return self._row_of.get(str(listing_id))

    @cached_property
    def image_mean(self) -> np.ndarray:
        """[L, Di] unit mean of each listing's photo vectors (zero rows for listings without photos)."""
        out = np.zeros((len(self), self.photos.shape[1]), np.float32)
        np.add.at(out, self.photo_row, self.photos)
        return unit_rows(out) * self.has_photo[:, None]

    @cached_property
    def has_photo(self) -> np.ndarray:
        return np.bincount(self.photo_row, minlength=len(self)) > 0

    def photos_of(self, row: int) -> np.ndarray:
        lo, hi = np.searchsorted(self.photo_row, [row, row + 1])
        return self.photos[lo:hi]

    def subset(self, rows: np.ndarray) -> "ListingVectors":
        """The listings at ``rows`` (and their photos), in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        new_of_old = np.full(len(self), -1, np.int64)
        new_of_old[rows] = np.arange(len(rows))
        keep = new_of_old[self.photo_row] >= 0
        return ListingVectors(
            ids=self.ids[rows], labels=self.labels[rows], paths=self.paths[rows],
            titles=[self.titles[r] for r in rows], prices=self.prices[rows], text=self.text[rows],
            photos=self.photos[keep], photo_row=new_of_old[self.photo_row[keep]], categories=self.categories,
            splits=None if self.splits is None else self.splits[rows],
            texts=[self.texts[r] for r in rows] if self.texts else [],
        )


def load_listing_vectors(artifacts: Path) -> ListingVectors:
    """The catalogue of an artifacts folder: listings, text embeddings, photo embeddings (when built)."""
    import pandas as pd

    from listing_search.data.prepare import load_listings, load_training

    artifacts = Path(artifacts)
    listings = load_listings(artifacts)
    categories = json.loads((artifacts / S.CATEGORIES_JSON).read_text())["categories"]
    text = _aligned_text(artifacts, listings)
    photos, photo_row = _photo_vectors(artifacts, listings, load_training(artifacts))
    return ListingVectors(
        ids=listings[S.LISTING_ID].to_numpy(dtype=object),
        labels=listings[S.LABEL].to_numpy(np.int64),
        paths=listings[S.CATEGORY_PATH].to_numpy(dtype=object),
        titles=listings[S.TITLE].tolist(),
        prices=pd.to_numeric(listings[S.PRICE], errors="coerce").to_numpy(np.float64),
        text=text, photos=photos, photo_row=photo_row, categories=list(categories),
        splits=listings[S.SPLIT].to_numpy(dtype=object),
        texts=[listing_text(t, d) for t, d in zip(listings[S.TITLE], listings[S.DESCRIPTION])],
    )


def _aligned_text(artifacts: Path, listings: pd.DataFrame) -> np.ndarray:
    import pandas as pd

    ids = json.loads((artifacts / S.TEXT_EMBEDDING_IDS).read_text())
    vectors = np.load(artifacts / S.TEXT_EMBEDDINGS_NPY)
    pos = pd.Series(np.arange(len(ids)), index=ids).reindex(listings[S.LISTING_ID])
    if pos.isna().any():
        raise ValueError(f"{int(pos.isna().sum())} listings have no text embedding: run `listing-search embed-text`")
    return unit_rows(vectors[pos.to_numpy(np.int64)])


def _photo_vectors(artifacts: Path, listings: pd.DataFrame, training: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Photo vectors with their listing row; empty (0 x 0) when image embeddings are not built yet."""
    import pandas as pd

    ids_path = artifacts / S.IMAGE_EMBEDDING_IDS
    if not ids_path.is_file():
        log.warning("no image embeddings in %s: image features will be 0", artifacts)
        return np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
    ids = json.loads(ids_path.read_text())
    vectors = np.load(artifacts / S.IMAGE_EMBEDDINGS_NPY)
    listing_of = training.set_index(S.IMAGE_ID)[S.LISTING_ID]
    row_of = pd.Series(np.arange(len(listings)), index=listings[S.LISTING_ID])
    rows = row_of.reindex(listing_of.reindex(ids).to_numpy())
    known = rows.notna().to_numpy()
    return unit_rows(vectors[known]), rows[known].to_numpy(np.int64)
