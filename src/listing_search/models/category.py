"""Category prediction for sellers: photos and words together -> root category probabilities.

A multinomial logistic regression on [text embedding, mean photo embedding, which of the two were
given, hashed words of the text and its hashed character n-grams (``models.hashed_words``)]. ``fit.category`` fits it on train-split listings, each seen several ways (both,
words only, photos only, title only), so one model serves a seller who typed a title, uploaded photos, or both. Weights are plain arrays in
JSON: prediction needs numpy only (no scikit-learn or torch at serving time).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from listing_search.core.maths import softmax, unit_rows
from listing_search.models.hashed_words import sparse_dot
from listing_search.pipeline import atomic_write_text

log = logging.getLogger(__name__)


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
    coef: np.ndarray  # [C, Dt + Di + 2] on :func:`design`
    intercept: np.ndarray  # [C]
    words_coef: np.ndarray | None = None  # [C, B] on the hashed words of the text
    chars_coef: np.ndarray | None = None  # [C, Bc] on the text's character n-grams, weighted by ``chars_idf``
    chars_idf: np.ndarray | None = None  # [Bc]
    image_weight: float = 0.3  # photos + words: log P(words) + w * log P(photos), see predict_proba
    photo_vote_weight: float = 0.0  # the shown belief's exponent of the photo vote (set by tune-ranker, not fit)
    temperatures: dict[str, float] | None = None  # per query mode (text, image, both): see calibrated()
    fit_split: str = "train"
    n_fit_listings: int = 0
    fit_listing_ids_sha: str = ""

    def predict_proba(self, text: np.ndarray | None = None, image: np.ndarray | None = None,
                      words: list[str] | None = None) -> np.ndarray:
        """[N, C] from text vectors [N, Dt] (with the raw ``words`` they came from, when known)
        and/or mean photo vectors [N, Di]."""
        if text is None and image is None:
            return np.full((1, len(self.categories)), 1.0 / len(self.categories))
        if text is not None and image is not None and self.image_dim:
            # A product of experts rather than the joint model: the photo vectors of train listings
            # come from a vision model fit on them, so a joint fit over-trusts photos (val: joint
            # 0.800, words alone 0.816, product with w = 0.3 0.825 on the held-out catalogue).
            log_t = np.log(self._proba(text, None, words) + 1e-12)
            log_i = np.log(self._proba(None, image, None) + 1e-12)
            return softmax(log_t + self.image_weight * log_i)
        return self._proba(text, image, words)

    def _proba(self, text: np.ndarray | None, image: np.ndarray | None, words: list[str] | None) -> np.ndarray:
        n = len(np.atleast_2d(text if text is not None else image))
        x = design(text, image, n, self.text_dim, self.image_dim)
        logits = x @ self.coef.T + self.intercept
        if words is not None and text is not None:
            if self.words_coef is not None:
                logits = logits + sparse_dot(list(words), self.words_coef)
            if self.chars_coef is not None:
                logits = logits + sparse_dot(list(words), self.chars_coef, self.chars_idf)
        return softmax(logits)

    def calibrated(self, probs: np.ndarray, mode: str) -> np.ndarray:
        """``probs`` (the shown belief: predictor x neighbour vote x photo vote) at the temperature fit on the val
        split for ``mode``, so a shown "73%" is right about 73% of the time; unchanged when none was fit.
        Only what is shown is tempered: the ranker's features read the belief it was fit on."""
        t = (self.temperatures or {}).get(mode)
        return np.asarray(probs, np.float64) if not t else temper(probs, t)

    def to_json(self) -> dict:
        def rounded(a: np.ndarray | None) -> list | None:  # float64 first: a rounded float32 prints 17 digits
            return None if a is None else np.round(np.asarray(a, np.float64), 4).tolist()

        return {"kind": "multinomial_logistic_regression", "categories": self.categories,
                "features": "[text embedding, mean photo embedding, has_text, has_image] + hashed words"
                            + (" + hashed character n-grams" if self.chars_coef is not None else ""),
                "text_dim": self.text_dim, "image_dim": self.image_dim, "coef": self.coef.tolist(),
                "intercept": self.intercept.tolist(), "words_coef": rounded(self.words_coef),
                "chars_coef": rounded(self.chars_coef), "chars_idf": rounded(self.chars_idf),
                "image_weight": self.image_weight, "photo_vote_weight": self.photo_vote_weight,
                "temperatures": self.temperatures,
                "fit_split": self.fit_split,
                "n_fit_listings": self.n_fit_listings, "fit_listing_ids_sha": self.fit_listing_ids_sha}

    @classmethod
    def from_json(cls, d: dict) -> "CategoryPredictor":
        def array(key: str) -> np.ndarray | None:
            return None if d.get(key) is None else np.asarray(d[key], np.float32)

        return cls(list(d["categories"]), int(d["text_dim"]), int(d["image_dim"]),
                   np.asarray(d["coef"], np.float32), np.asarray(d["intercept"], np.float32),
                   array("words_coef"), array("chars_coef"), array("chars_idf"), float(d.get("image_weight", 0.3)),
                   float(d.get("photo_vote_weight", 0.0)), d.get("temperatures"), d.get("fit_split", "train"),
                   int(d.get("n_fit_listings", 0)), d.get("fit_listing_ids_sha", ""))

    def save(self, path: Path) -> None:
        atomic_write_text(Path(path), json.dumps(self.to_json()))

    @classmethod
    def load(cls, path: Path) -> "CategoryPredictor":
        return cls.from_json(json.loads(Path(path).read_text()))


def temper(probs: np.ndarray, t: float) -> np.ndarray:
    """softmax(log p / t) along the last axis: t > 1 softens an over-confident belief."""
    return softmax(np.log(np.maximum(np.asarray(probs, np.float64), 1e-12)) / t)
