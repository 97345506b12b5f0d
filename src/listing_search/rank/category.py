"""Category prediction for sellers: photos and words together -> root category probabilities.

A multinomial logistic regression on [text embedding, mean photo embedding, which of the two were
given, hashed words of the text and its hashed character n-grams (``rank.hashed_words``)]. It is fit on train-split listings, each seen three ways (both, words only, photos only), so
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
from listing_search.rank.calibrate import expected_calibration_error
from listing_search.rank.hashed_words import N_BUCKETS, char_idf, hashed_matrix, sparse_dot
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


TEMPERATURES = np.exp(np.linspace(np.log(0.5), np.log(5.0), 47))


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The temperature (of a log-spaced grid, 0.5 to 5) with the least log loss of the true labels."""
    probs, labels = np.asarray(probs, np.float64), np.asarray(labels, np.int64)
    rows = np.arange(len(labels))
    loss = [-np.log(temper(probs, t)[rows, labels] + 1e-12).mean() for t in TEMPERATURES]
    return float(TEMPERATURES[int(np.argmin(loss))])


def top_calibration_error(probs: np.ndarray, labels: np.ndarray) -> float:
    """Expected calibration error of the shown (top) category: its probability vs whether it is right."""
    probs = np.asarray(probs, np.float64)
    return expected_calibration_error(probs.max(1), (probs.argmax(1) == np.asarray(labels)).astype(np.float64))


def words_of(vectors: ListingVectors, rows) -> list[str] | None:
    """The listing texts at ``rows`` for word features; None when the vectors carry no texts."""
    return [vectors.texts[int(r)] for r in rows] if vectors.texts else None


def training_design(vectors: ListingVectors, title_vecs: np.ndarray | None = None
                    ) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Each listing several ways (both / words only / photos only / title only), so one model serves
    every input: a buyer's search is usually a short title, not a listing's whole text.

    Returns the dense design, the text behind each row ("" for photo-only rows) and the labels.
    """
    n, dt, di = len(vectors), vectors.text.shape[1], vectors.photos.shape[1]
    has = vectors.has_photo if di else np.zeros(n, bool)
    img = vectors.image_mean
    texts = vectors.texts or [""] * n
    blocks = [design(vectors.text[has], img[has], int(has.sum()), dt, di),
              design(vectors.text, None, n, dt, di)]
    words = [t for t, h in zip(texts, has) if h] + list(texts)
    labels = [vectors.labels[has], vectors.labels]
    if has.any():
        blocks.append(design(None, img[has], int(has.sum()), dt, di))
        words += [""] * int(has.sum())
        labels.append(vectors.labels[has])
    if title_vecs is not None:
        blocks.append(design(title_vecs, None, n, dt, di))
        words += list(vectors.titles)
        labels.append(vectors.labels)
    return np.vstack(blocks), words, np.concatenate(labels)


def fit_category_predictor(vectors: ListingVectors, c: float = 4.0, max_iter: int = 300,
                           n_buckets: int = N_BUCKETS, image_weight: float = 0.3,
                           title_vecs: np.ndarray | None = None,
                           start: CategoryPredictor | None = None,
                           n_char_buckets: int = 0) -> CategoryPredictor:
    """Fit on exactly the listings given (the caller passes the train split); ``title_vecs`` (the
    titles' own text vectors, row-aligned) add a title-only view of each listing. ``start``: a
    predictor of the same design to start the solver from (the cross-fitted halves start from the
    whole split's: the same optimum is reached in fewer iterations, and they keep its character
    n-gram weights, which see no labels). ``n_char_buckets``: character n-gram buckets (0: none, the
    default, as ``rank.category_char_grams``; ``N_CHAR_BUCKETS`` when it is on)."""
    import scipy.sparse as sp
    from sklearn.linear_model import LogisticRegression

    from listing_search.rank.ranker import ids_sha

    dense, words, y = training_design(vectors, title_vecs)
    use_words = bool(vectors.texts)
    idf = None
    if use_words and n_char_buckets:
        idf = start.chars_idf if start is not None and start.chars_idf is not None \
            and len(start.chars_idf) == n_char_buckets else char_idf([w for w in words if w], n_char_buckets)
    blocks = [sp.csr_matrix(dense)]
    if use_words:
        blocks.append(hashed_matrix(words, n_buckets))
    if idf is not None:
        blocks.append(hashed_matrix(words, idf=idf))
    x = sp.hstack(blocks).tocsr() if use_words else dense
    model = LogisticRegression(C=c, max_iter=max_iter)
    classes = np.unique(y)
    if start is not None:
        parts = [start.coef] + [w for w in (start.words_coef, start.chars_coef) if w is not None and use_words]
        coef = np.hstack(parts)
        if coef.shape[1] == x.shape[1]:
            model.set_params(warm_start=True)
            model.coef_, model.intercept_ = coef[classes].astype(np.float64), start.intercept[classes].astype(np.float64)
    model.fit(x, y)
    n_cat, d = len(vectors.categories), dense.shape[1]
    coef = np.zeros((n_cat, x.shape[1]), np.float32)
    intercept = np.full(n_cat, -30.0, np.float32)  # categories absent from the fit are never predicted
    coef[model.classes_] = model.coef_
    intercept[model.classes_] = model.intercept_
    log.info("category predictor: %d listings, %d rows, %d features", len(vectors), len(y), x.shape[1])
    return CategoryPredictor(vectors.categories, vectors.text.shape[1], vectors.photos.shape[1], coef[:, :d],
                             intercept, coef[:, d:d + n_buckets] if use_words else None,
                             coef[:, d + n_buckets:] if idf is not None else None, idf, image_weight,
                             n_fit_listings=len(vectors),
                             fit_listing_ids_sha=ids_sha(vectors.ids))
