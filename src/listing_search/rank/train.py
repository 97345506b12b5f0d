"""The tune-ranker stage: fit the category predictor and the re-ranker on the TRAIN split only.

Training queries are made from train listings the way users search: the title as words, one photo,
or photos plus the whole text (a listing used as a query). Candidates come from the other train
listings by the same retrieval that serving uses, plus a few random ones; grades are 2 for the same
category path, 1 for the same root category. The category probabilities a training query carries
come from a predictor fit on the OTHER half of the train split, so the ranker learns how much a
prediction on unseen listings is worth, not how well the predictor remembers its own fit.
Val-split listings are only used for the report, never for a fit.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from listing_search import schema as S
from listing_search.pipeline import fingerprint, is_up_to_date, write_stamp
from listing_search.rank.category import CategoryPredictor, fit_category_predictor, words_of
from listing_search.rank.features import FEATURES, Query, pair_features
from listing_search.rank.ranker import Ranker, fit_ranker
from listing_search.rank.search import rank, retrieve
from listing_search.rank.vectors import ListingVectors, load_listing_vectors
from listing_search.settings import Settings
from listing_search.text.encoder import TextEncoder

log = logging.getLogger(__name__)
STAGE = "tune_ranker"
MODES = ("text", "image", "both")
RANDOM_NEGATIVES = 20
TRAIN_CANDIDATES = 60


def tune_ranker(settings: Settings, artifacts: Path, force: bool = False, progress: bool = False) -> dict:
    """Write ranker.json and category_predictor.json; skipped when inputs and settings are unchanged."""
    artifacts = Path(artifacts)
    inputs = [artifacts / n for n in (S.LISTINGS_CSV, S.TRAINING_CSV, S.TEXT_EMBEDDINGS_NPY,
                                      S.IMAGE_EMBEDDINGS_NPY)]
    fp = fingerprint(inputs, settings.section_json("rank"))
    outputs = [artifacts / S.RANKER_JSON, artifacts / S.CATEGORY_PREDICTOR_JSON]
    if not force and is_up_to_date(artifacts, STAGE, outputs, fp):
        log.info("tune-ranker: up to date in %s", artifacts)
        return {**Ranker.load(artifacts / S.RANKER_JSON).report, "up_to_date": True}

    t0 = time.perf_counter()
    vectors = load_listing_vectors(artifacts)
    train_rows = np.flatnonzero(vectors.splits == "train")
    train = vectors.subset(train_rows)
    rs = settings.rank
    predictor = fit_category_predictor(train, rs.category_c, image_weight=rs.category_image_weight)
    predictor.save(artifacts / S.CATEGORY_PREDICTOR_JSON)

    encoder = TextEncoder.from_artifacts(artifacts)
    x, grades = training_pairs(train, encoder, rs.train_queries, rs.category_c, rs.seed, progress,
                               rs.category_image_weight)
    ranker = fit_ranker(x, grades, list(FEATURES), train.ids.tolist())
    ranker.report = {
        "pairs": int(len(grades)), "grade_counts": np.bincount(grades, minlength=3).tolist(),
        "train_listings": len(train), "weights": dict(zip(FEATURES, ranker.weights[0].round(4).tolist())),
        **validation_report(vectors, predictor, ranker, rs.candidates, rs.seed),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    ranker.save(artifacts / S.RANKER_JSON)
    write_stamp(artifacts, STAGE, fp)
    log.info("tune-ranker: %s", json.dumps(ranker.report))
    return ranker.report


def grades_against(vectors: ListingVectors, query_row: int, rows: np.ndarray) -> np.ndarray:
    """2 = same category path, 1 = same root category, 0 = otherwise."""
    same_root = vectors.labels[rows] == vectors.labels[query_row]
    same_path = vectors.paths[rows] == vectors.paths[query_row]
    return np.where(same_path, 2, np.where(same_root, 1, 0)).astype(np.int64)


def cross_fitted_predictors(train: ListingVectors, c: float, seed: int, image_weight: float = 0.3
                            ) -> tuple[np.ndarray, list[CategoryPredictor]]:
    """Two predictors, each fit on one half of ``train``; ``half[r]`` says which half row r is in."""
    half = np.random.default_rng(seed).permutation(len(train)) % 2
    predictors = [fit_category_predictor(train.subset(np.flatnonzero(half == h)), c, image_weight=image_weight)
                  for h in (0, 1)]
    return half, predictors


def make_query(vectors: ListingVectors, row: int, mode: str, title_vec: np.ndarray,
               predictor: CategoryPredictor, rng: np.random.Generator) -> Query:
    """A training query from listing ``row``: its title, one of its photos, or photos + full text."""
    title = vectors.titles[row]
    photos = vectors.photos_of(row)
    if mode == "text" or not len(photos):
        return Query.from_text(title, title_vec,
                               category_probs=predictor.predict_proba(text=title_vec, words=[title])[0])
    if mode == "image":
        photo = photos[rng.integers(len(photos))][None, :]
        return Query(image_vecs=photo, category_probs=predictor.predict_proba(image=photo)[0])
    text_vec, mean = vectors.text[row], vectors.image_mean[row]
    price = float(vectors.prices[row]) if np.isfinite(vectors.prices[row]) else None
    return Query.from_text(title, text_vec, image_vecs=photos, price=price,
                           category_probs=predictor.predict_proba(text_vec, mean, words_of(vectors, [row]))[0])


def training_pairs(train: ListingVectors, encoder: TextEncoder, n_queries: int, c: float, seed: int,
                   progress: bool = False, image_weight: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Pair features and grades for ``n_queries`` train listings, each in one of the three modes."""
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    half, predictors = cross_fitted_predictors(train, c, seed, image_weight)
    query_rows = rng.choice(len(train), size=min(n_queries, len(train)), replace=False)
    title_vecs = encoder.encode([train.titles[r] for r in query_rows])
    xs, gs = [], []
    for j, row in enumerate(tqdm(query_rows, disable=not progress, desc="ranker queries")):
        query = make_query(train, int(row), MODES[j % 3], title_vecs[j], predictors[1 - half[row]], rng)
        allowed = np.ones(len(train), bool)
        allowed[row] = False
        cand, t, i = retrieve(query, train, TRAIN_CANDIDATES, allowed)
        extra = rng.choice(np.flatnonzero(allowed), size=min(RANDOM_NEGATIVES, int(allowed.sum())), replace=False)
        cand = np.union1d(cand, extra)
        xs.append(pair_features(query, train, cand, t, i))
        gs.append(grades_against(train, int(row), cand))
    return np.vstack(xs), np.concatenate(gs)


def validation_report(vectors: ListingVectors, predictor: CategoryPredictor, ranker: Ranker, candidates: int,
                      seed: int, n: int = 300) -> dict:
    """Val-split numbers for the log only (never used to fit): category accuracy, precision@10."""
    val = np.flatnonzero(vectors.splits == "val")
    if not len(val):
        return {}
    has = vectors.has_photo[val] if vectors.photos.shape[1] else np.zeros(len(val), bool)
    words = words_of(vectors, val)
    probs_text = predictor.predict_proba(text=vectors.text[val], words=words)
    report = {"val_category_accuracy_text": round(float((probs_text.argmax(1) == vectors.labels[val]).mean()), 4)}
    if has.any():
        fused = predictor.predict_proba(vectors.text[val[has]], vectors.image_mean[val[has]],
                                        words_of(vectors, val[has]))
        report["val_category_accuracy_fused"] = round(float((fused.argmax(1) == vectors.labels[val[has]]).mean()), 4)
    report["val_precision_at_10"] = _val_precision(vectors, predictor, ranker, candidates, seed, n)
    return report


def _val_precision(vectors: ListingVectors, predictor: CategoryPredictor, ranker: Ranker, candidates: int,
                   seed: int, n: int) -> float:
    """Val listings as queries (photos + text) against the train listings: share of top 10 in the same root."""
    rng = np.random.default_rng(seed)
    val = np.flatnonzero(vectors.splits == "val")
    allowed = vectors.splits == "train"
    hits = []
    for row in rng.choice(val, size=min(n, len(val)), replace=False):
        q = make_query(vectors, int(row), "both", vectors.text[row], predictor, rng)
        top = rank(q, vectors, ranker, 10, candidates, allowed).rows
        hits.append(float((vectors.labels[top] == vectors.labels[row]).mean()) if len(top) else 0.0)
    return round(float(np.mean(hits)), 4)

