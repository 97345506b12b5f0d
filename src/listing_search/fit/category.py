"""Fitting the category predictor (``models.category``) and the temperature of the category shown."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from listing_search import schema as S
from listing_search.fit.vectors import ListingVectors
from listing_search.models.category import CategoryPredictor, design, temper
from listing_search.models.hashed_words import N_BUCKETS, char_idf, hashed_matrix
from listing_search.core.splits import ids_sha

log = logging.getLogger(__name__)


TEMPERATURES = np.exp(np.linspace(np.log(0.5), np.log(5.0), 47))


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The temperature (of a log-spaced grid, 0.5 to 5) with the least log loss of the true labels."""
    probs, labels = np.asarray(probs, np.float64), np.asarray(labels, np.int64)
    rows = np.arange(len(labels))
    loss = [-np.log(temper(probs, t)[rows, labels] + 1e-12).mean() for t in TEMPERATURES]
    return float(TEMPERATURES[int(np.argmin(loss))])


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
def cross_fitted_predictors(train: ListingVectors, c: float, seed: int, image_weight: float = 0.3,
                            title_vecs: np.ndarray | None = None,
                            start: CategoryPredictor | None = None,
                            n_char_buckets: int = 0) -> tuple[np.ndarray, list[CategoryPredictor]]:
    """Two predictors, each fit on one half of ``train``; ``half[r]`` says which half row r is in.
    ``start``: the predictor fit on all of ``train``, where both solvers start."""
    half = np.random.default_rng(seed).permutation(len(train)) % 2
    predictors = []
    for h in (0, 1):
        rows = np.flatnonzero(half == h)
        predictors.append(fit_category_predictor(train.subset(rows), c, image_weight=image_weight,
                                                 title_vecs=None if title_vecs is None else title_vecs[rows],
                                                 start=start, n_char_buckets=n_char_buckets))
    return half, predictors


def title_vectors(artifacts: Path, listings: ListingVectors) -> np.ndarray | None:
    """The listings' titles alone through the serving text encoder (buyers type titles, not descriptions).

    Measured on 966 never-seen titles: the category of a title alone, 0.766 -> 0.784 with this view."""
    if not (artifacts / S.TEXT_ONNX).is_file():
        return None
    from listing_search.text.encoder import TextEncoder

    return TextEncoder.from_artifacts(artifacts).encode(list(listings.titles))


