"""Category prediction for sellers: photos and words together -> root category probabilities.

A multinomial logistic regression on [text embedding, mean photo embedding, which of the two were
given]. It is fit on train-split listings, each seen three ways (both, words only, photos only), so
one model serves a seller who typed a title, uploaded photos, or both. Weights are plain arrays in
JSON: prediction needs numpy only (no scikit-learn or torch at serving time).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from listing_search.pipeline import atomic_write_text
from listing_search.rank.vectors import ListingVectors, unit_rows

log = logging.getLogger(__name__)


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def design(text: np.ndarray | None, image: np.ndarray | None, n: int, text_dim: int,
           image_dim: int) -> np.ndarray:
    """[n, Dt + Di + 2]: missing parts are zeros, and the last two columns say which parts are present."""
    t = np.zeros((n, text_dim), np.float32) if text is None else unit_rows(np.atleast_2d(text))
    i = np.zeros((n, image_dim), np.float32) if image is None or image_dim == 0 else unit_rows(np.atleast_2d(image))
    has_t = np.full((n, 1), float(text is not None), np.float32)
    has_i = np.full((n, 1), float(image is not None and image_dim > 0), np.float32)
    return np.hstack([t, i, has_t, has_i])


@dataclass
class CategoryPredictor:
    categories: list[str]
    text_dim: int
    image_dim: int
    coef: np.ndarray  # [C, F]
    intercept: np.ndarray  # [C]
    fit_split: str = "train"
    n_fit_listings: int = 0
    fit_listing_ids_sha: str = ""

    def predict_proba(self, text: np.ndarray | None = None, image: np.ndarray | None = None) -> np.ndarray:
        """[N, C] probabilities from text vectors [N, Dt] and/or mean photo vectors [N, Di]."""
        if text is None and image is None:
            return np.full((1, len(self.categories)), 1.0 / len(self.categories))
        n = len(np.atleast_2d(text if text is not None else image))
        x = design(text, image, n, self.text_dim, self.image_dim)
        return softmax(x @ self.coef.T + self.intercept)

    def predict(self, text: np.ndarray | None = None, image: np.ndarray | None = None) -> list[str]:
        return [self.categories[i] for i in self.predict_proba(text, image).argmax(1)]

    def to_json(self) -> dict:
        return {"kind": "multinomial_logistic_regression", "categories": self.categories,
                "text_dim": self.text_dim, "image_dim": self.image_dim, "coef": self.coef.tolist(),
                "intercept": self.intercept.tolist(), "fit_split": self.fit_split,
                "n_fit_listings": self.n_fit_listings, "fit_listing_ids_sha": self.fit_listing_ids_sha}

    @classmethod
    def from_json(cls, d: dict) -> "CategoryPredictor":
        return cls(list(d["categories"]), int(d["text_dim"]), int(d["image_dim"]),
                   np.asarray(d["coef"], np.float32), np.asarray(d["intercept"], np.float32),
                   d.get("fit_split", "train"), int(d.get("n_fit_listings", 0)), d.get("fit_listing_ids_sha", ""))

    def save(self, path: Path) -> None:
        atomic_write_text(Path(path), json.dumps(self.to_json()))

    @classmethod
    def load(cls, path: Path) -> "CategoryPredictor":
        return cls.from_json(json.loads(Path(path).read_text()))


def training_design(vectors: ListingVectors) -> tuple[np.ndarray, np.ndarray]:
    """Each listing three ways (both / words only / photos only), so one model serves every input."""
    n, dt, di = len(vectors), vectors.text.shape[1], vectors.photos.shape[1]
    has = vectors.has_photo if di else np.zeros(n, bool)
    img = vectors.image_mean
    blocks = [design(vectors.text[has], img[has], int(has.sum()), dt, di),
              design(vectors.text, None, n, dt, di)]
    labels = [vectors.labels[has], vectors.labels]
    if has.any():
        blocks.append(design(None, img[has], int(has.sum()), dt, di))
        labels.append(vectors.labels[has])
    return np.vstack(blocks), np.concatenate(labels)


def fit_category_predictor(vectors: ListingVectors, c: float = 4.0, max_iter: int = 500) -> CategoryPredictor:
    """Fit on exactly the listings given (the caller passes the train split)."""
    from sklearn.linear_model import LogisticRegression

    from listing_search.rank.ranker import ids_sha

    x, y = training_design(vectors)
    model = LogisticRegression(C=c, max_iter=max_iter).fit(x, y)
    n_cat = len(vectors.categories)
    coef = np.zeros((n_cat, x.shape[1]), np.float32)
    intercept = np.full(n_cat, -30.0, np.float32)  # categories absent from the fit are never predicted
    coef[model.classes_] = model.coef_
    intercept[model.classes_] = model.intercept_
    log.info("category predictor: %d listings, %d rows, %d features", len(vectors), len(y), x.shape[1])
    return CategoryPredictor(vectors.categories, vectors.text.shape[1], vectors.photos.shape[1], coef,
                             intercept, n_fit_listings=len(vectors), fit_listing_ids_sha=ids_sha(vectors.ids))
