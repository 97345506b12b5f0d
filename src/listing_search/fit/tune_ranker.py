"""The tune-ranker stage: fit the category predictor, the re-ranker and its calibration, through the
search pipeline.

Queries are made from catalogue listings the way users search (``fit.queries``): the title as words,
one photo, the title and one photo, or the title with one letter dropped. Each runs through the
serving stages (``SearchPipeline.scored``: spelling, the photo, dense text and BM25 channels and the
listings holding the words, ``search.features``) with the other split's listings and the query
listing itself excluded, so the ranker is fit on exactly the candidates and features it scores.

* Train-split queries (candidates: other train listings) fit the rankers; the category
  probabilities they carry come from a predictor fit on the OTHER half of the train split, so the
  ranker learns how much a prediction on unseen listings is worth.
* Val-split queries (candidates: train listings) choose between LambdaMART and the ordinal logistic
  model (setting ``rank.ranker = auto``), calibrate the chosen one's scores into P(same root
  category) per query mode, and, with the committed nonsense queries and unlike photos, set the
  "no good match" threshold. Nothing is fit on val listings' features except the calibration.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from listing_search import schema as S
from listing_search.core.grading import (
    expected_calibration_error, ndcg_at_k_groups, precision_at_k_groups, reliability_table, top_calibration_error,
)
from listing_search.core.query import MODES
from listing_search.core.splits import ranker_train_queries
from listing_search.fit.calibration import fit_mode_calibrator
from listing_search.fit.category import (
    cross_fitted_predictors, fit_category_predictor, fit_temperature, title_vectors,
)
from listing_search.fit.no_match import no_match_threshold
from listing_search.fit.queries import BUYER_KINDS, SELLER_KINDS, QueryMaker, QuerySet, calibration_mode_of
from listing_search.fit.ranker import DEFAULT_PARAMS, fit_lambdamart, fit_ranker
from listing_search.fit.vectors import ListingVectors, load_listing_vectors
from listing_search.models.category import CategoryPredictor, temper
from listing_search.models.hashed_words import N_CHAR_BUCKETS
from listing_search.models.ranker import load_ranker
from listing_search.models.relevance import Relevance
from listing_search.pipeline import file_sha, fingerprint, is_up_to_date, write_stamp
from listing_search.search.features import FEATURES
from listing_search.search.pipeline import SearchPipeline
from listing_search.settings import Settings

log = logging.getLogger(__name__)
STAGE = "tune_ranker"
MIN_TEMPERATURE_QUERIES = 20
CALIBRATE_TOP = 20  # calibration uses each val query's top results: the scores users see
NO_MATCH_VAL_QUERIES = 400  # val queries whose best relevance caps the no-match threshold
NEW = ".new"  # suffix of fitted files written beside the ones in use (publish_fit)
# What the fit's queries and features are: a change here re-fits an existing artifacts folder.
RECIPE = {"queries": "search.pipeline.scored with the match set's holders as candidates; buyers' words apart",
          "version": 5}


def tune_ranker(settings: Settings, artifacts: Path, force: bool = False, progress: bool = False) -> dict:
    """Write category_predictor.json, ranker.json and relevance.json; skipped when nothing changed.

    Needs the store and indexes of ``index`` (the engine they serve)."""
    artifacts = Path(artifacts)
    fp = ranker_fingerprint(settings, artifacts)
    outputs = [artifacts / S.RANKER_JSON, artifacts / S.CATEGORY_PREDICTOR_JSON]  # relevance.json when calibrated
    if not force and is_up_to_date(artifacts, STAGE, outputs, fp):
        log.info("tune-ranker: up to date in %s", artifacts)
        return {**load_ranker(artifacts / S.RANKER_JSON).report, "up_to_date": True}

    from listing_search.search.engine import SearchEngine

    t0 = time.perf_counter()
    rs = settings.rank
    vectors = load_listing_vectors(artifacts)
    train_rows = np.flatnonzero(vectors.splits == "train")
    train = vectors.subset(train_rows)
    titles = title_vectors(artifacts, train)
    chars = N_CHAR_BUCKETS if rs.category_char_grams else 0
    predictor = fit_category_predictor(train, rs.category_c, image_weight=rs.category_image_weight,
                                       title_vecs=titles, n_char_buckets=chars)
    predictor.photo_vote_weight = rs.photo_vote_weight  # only what photo searches show reads it

    # Fitted through the serving engine with hand weights and the new predictor held in memory: the
    # files a server starts from are replaced only once every part of the fit has succeeded.
    engine = SearchEngine.load(settings, artifacts, hand_weighted=True)
    try:
        serving = engine.pipeline.with_models(engine.models.with_models(predictor=predictor))
        maker = QueryMaker(serving, vectors, rs.seed)
        half, halves = cross_fitted_predictors(train, rs.category_c, rs.seed, rs.category_image_weight, titles,
                                               start=predictor, n_char_buckets=chars)
        crossed = [serving.with_models(serving.models.with_models(predictor=h)) for h in halves]
        q_train, rng = ranker_train_queries(vectors.splits, rs.seed, rs.train_queries)
        q_buyer = rng.choice(train_rows, size=min(rs.buyer_train_queries, len(train_rows)), replace=False)

        def crossed_of(rows: np.ndarray) -> list:  # each train query ranked with the predictor of the other half
            return [crossed[1 - half[np.searchsorted(train_rows, r)]] for r in rows]

        fit_pairs = maker.pairs(q_train, crossed_of(q_train), exclude_split="val", progress=progress,
                                desc="ranker train queries")
        fit_pairs = fit_pairs + maker.pairs(q_buyer, crossed_of(q_buyer), exclude_split="val", progress=progress,
                                            desc="ranker train queries (buyers' words)", kinds=BUYER_KINDS,
                                            required=False)
        val_rows = np.flatnonzero(vectors.splits == "val")
        q_val = rng.choice(val_rows, size=min(rs.val_queries, len(val_rows)), replace=False)
        q_val_buyer = rng.choice(val_rows, size=min(rs.val_queries // 2, len(val_rows)), replace=False)
        val_pairs = maker.pairs(q_val, [serving] * len(q_val), exclude_split="val", progress=progress,
                                desc="ranker val queries")
        val_pairs = val_pairs + maker.pairs(q_val_buyer, [serving] * len(q_val_buyer), exclude_split="val",
                                            progress=progress, desc="ranker val queries (buyers' words)",
                                            kinds=BUYER_KINDS, required=False)
        predictor.temperatures, temperature_report = fit_shown_temperatures(serving, vectors, q_val, rs.seed)
        ranker, comparison = choose_ranker(fit_pairs, val_pairs, train.ids.tolist(), rs.ranker, rs.seed)
        ranker.report = {"pairs": int(len(fit_pairs.grades)), "queries": int(len(fit_pairs.groups)),
                         "category_temperatures": temperature_report,
                         "grade_counts": np.bincount(fit_pairs.grades, minlength=3).tolist(),
                         "train_listings": len(train), "comparison_on_val": comparison}
        try:
            relevance = calibrate(ranker, val_pairs, rs.seed)
        except ValueError as exc:  # a tiny catalogue: too few val results to calibrate on
            log.warning("tune-ranker: relevance not calibrated (%s); results carry no relevance", exc)
            relevance = None
        if relevance is not None:  # the chosen ranker with the calibration just fit, through the served path
            fitted = serving.with_models(serving.models.with_models(ranker=ranker, fitted=True, calibration=relevance))
            real = real_val_queries(maker, q_val[:NO_MATCH_VAL_QUERIES], SELLER_KINDS)
            for mode, queries in real_val_queries(maker, q_val_buyer, BUYER_KINDS).items():
                real.setdefault(mode, []).extend(queries)
            relevance.no_match_below, relevance.cosine_below, relevance.report["no_match"] = no_match_threshold(
                fitted, real)
    finally:
        engine.close()
    ranker.report["seconds"] = round(time.perf_counter() - t0, 1)
    if relevance is not None:
        ranker.report["calibration"] = {k: v for k, v in relevance.report.items() if k != "reliability"}
    publish_fit(artifacts, predictor, ranker, relevance)
    write_stamp(artifacts, STAGE, fp)
    log.debug("tune-ranker: %s", json.dumps(ranker.report))
    return ranker.report


def publish_fit(artifacts: Path, predictor: CategoryPredictor, ranker, relevance) -> None:
    """Write the fitted files beside the ones in use, then swap each in (``os.replace``: a reader sees
    the old file or the new one, never part of one). The ranker goes last: until it is swapped, a
    server starting meanwhile loads the old ranker, and the relevance file calibrated for the new
    one is refused by its hash rather than misapplied."""
    art = Path(artifacts)
    staged = {S.CATEGORY_PREDICTOR_JSON: art / (S.CATEGORY_PREDICTOR_JSON + NEW),
              S.RANKER_JSON: art / (S.RANKER_JSON + NEW)}
    predictor.save(staged[S.CATEGORY_PREDICTOR_JSON])
    ranker.save(staged[S.RANKER_JSON])
    if relevance is not None:
        relevance.ranker_sha = file_sha(staged[S.RANKER_JSON])
        staged[S.RELEVANCE_JSON] = art / (S.RELEVANCE_JSON + NEW)
        relevance.save(staged[S.RELEVANCE_JSON])
    for name in (S.CATEGORY_PREDICTOR_JSON, S.RELEVANCE_JSON, S.RANKER_JSON):
        if name in staged:
            os.replace(staged[name], art / name)
        else:
            (art / name).unlink(missing_ok=True)  # no calibration for the new ranker: none for the old either


def real_val_queries(maker: QueryMaker, rows: np.ndarray, kinds: tuple[str, ...]) -> dict[str, list]:
    """Val listings asked in turn as each of ``kinds`` (a page of 10), by the mode relevance is calibrated for."""
    real: dict[str, list] = {}
    for j, row in enumerate(rows):
        query = maker.query(int(row), kinds[j % len(kinds)], "val", k=10)
        if query is not None:
            real.setdefault(calibration_mode_of(query), []).append(query)
    return real


def fit_shown_temperatures(pipeline: SearchPipeline, vectors: ListingVectors, rows: np.ndarray, seed: int
                           ) -> tuple[dict, dict]:
    """Per query mode, the temperature making the shown category probability honest on val queries.

    Each of the val listings ``rows`` (``rank.val_queries`` of them) is asked as words, photo and both
    through the pipeline's ``understand`` (the shown belief: predictor x neighbour vote x photo vote, val
    listings left out); a mode with fewer than ``MIN_TEMPERATURE_QUERIES`` answers gets no temperature. The
    temperature is chosen on one half of the queries and its calibration error reported on the
    other, then refit on all."""
    maker = QueryMaker(pipeline, vectors, seed + 7)  # its own photo draws: the ranker's queries stay as they were
    temps, report = {}, {}
    for mode in MODES:
        answered = []  # (belief, true label) of each val listing asked this way
        for row in rows:
            query = maker.query(int(row), mode, "val")
            if query is not None:
                shown = pipeline.understand(query).shown_belief
                if shown is not None:
                    answered.append((shown, int(vectors.labels[row])))
        if len(answered) < MIN_TEMPERATURE_QUERIES:
            continue
        p, y = np.array([a for a, _ in answered]), np.array([b for _, b in answered])
        half = np.random.default_rng(seed).permutation(len(y)) % 2 == 0
        t_half = fit_temperature(p[half], y[half])
        temps[mode] = round(fit_temperature(p, y), 4)
        report[mode] = {"temperature": temps[mode], "queries": int(len(y)),
                        "top_ece_held_out_half": round(top_calibration_error(p[~half], y[~half]), 4),
                        "top_ece_held_out_half_tempered":
                            round(top_calibration_error(temper(p[~half], t_half), y[~half]), 4)}
    log.info("shown category temperatures: %s", report)
    return temps, report


def ranker_fingerprint(settings: Settings, artifacts: Path) -> str:
    """What the fit depends on: the catalogue's vectors, the rank settings, the features and the
    LambdaMART parameters (a new release's recipe re-fits an existing artifacts folder)."""
    inputs = [Path(artifacts) / n for n in (S.LISTINGS_CSV, S.TRAINING_CSV, S.TEXT_EMBEDDINGS_NPY,
                                            S.IMAGE_EMBEDDINGS_NPY)]
    recipe = json.dumps({"features": FEATURES, "lambdamart": DEFAULT_PARAMS, "shown_temperatures": True,
                         "recipe": RECIPE}, sort_keys=True)
    return fingerprint(inputs, settings.section_json("rank") + recipe)


def choose_ranker(fit: QuerySet, val: QuerySet, fit_ids: list[str], kind: str, seed: int):
    """Fit both kinds on the train queries, compare on the val queries, keep the better (or the asked one)."""
    logistic = fit_ranker(fit.x, fit.grades, list(FEATURES), fit_ids)
    lambdamart = fit_lambdamart(fit.x, fit.grades, fit.groups, list(FEATURES), fit_ids, seed=seed,
                                params={"num_threads": 1})  # 2 threads: 4x slower on 2 shared cores
    comparison = {}
    for name, model in (("logistic", logistic), ("lambdamart", lambdamart)):
        scores = model.score(val.x)
        comparison[name] = {"ndcg_at_10": round(ndcg_at_k_groups(scores, val.grades, val.groups, 10), 4),
                            "precision_at_10": round(precision_at_k_groups(scores, val.grades, val.groups, 10), 4)}
        for mode in sorted(set(val.modes)):
            part = val.split(np.array([m == mode for m in val.modes]))
            s = model.score(part.x)
            comparison[name][f"ndcg_at_10_{mode}"] = round(ndcg_at_k_groups(s, part.grades, part.groups, 10), 4)
    if kind == "auto":
        kind = max(("logistic", "lambdamart"), key=lambda n: comparison[n]["ndcg_at_10"])
    comparison["chosen"] = kind
    log.info("tune-ranker: val comparison %s", comparison)
    return (lambdamart if kind == "lambdamart" else logistic), comparison


def top_of_groups(scores: np.ndarray, groups: np.ndarray, top: int) -> np.ndarray:
    """Row indices of each group's ``top`` best scores."""
    rows, start = [], 0
    for g in groups:
        s = scores[start:start + g]
        rows.append(start + np.argsort(-s, kind="stable")[:top])
        start += g
    return np.concatenate(rows) if rows else np.zeros(0, np.int64)


def calibrate(ranker, val: QuerySet, seed: int):
    """Relevance per query mode from the val queries' top results; ECE measured on the half not fit on."""
    scores = ranker.score(val.x)
    top = top_of_groups(scores, val.groups, CALIBRATE_TOP)
    mode_of_row = np.repeat(np.array(val.modes, dtype=object), val.groups)
    query_of_row = np.repeat(np.arange(len(val.groups)), val.groups)
    s, g, m, q = scores[top], val.grades[top], mode_of_row[top], query_of_row[top]
    y = (g >= 1).astype(np.int64)
    fold = np.random.default_rng(seed).permutation(len(val.groups)) % 2  # by query, never by row
    a, b = fold[q] == 0, fold[q] == 1
    held = fit_mode_calibrator(s[a], g[a], m[a])
    probs_b = np.zeros(int(b.sum()))
    for mode in set(m[b]):
        rows = m[b] == mode
        probs_b[rows] = held.apply(s[b][rows], mode)
    report = {"fit": f"isotonic per query mode on val queries' top {CALIBRATE_TOP} results",
              "ece_held_out_half": round(expected_calibration_error(probs_b, y[b]), 4),
              "ece_by_mode_held_out_half": {mode: round(expected_calibration_error(probs_b[m[b] == mode],
                                                                                 y[b][m[b] == mode]), 4)
                                            for mode in sorted(set(m[b]))},
              "reliability": reliability_table(probs_b, y[b]), "pairs": int(len(s))}
    path, path_report = calibrate_path(s, g, m, a, b)
    report["same_path"] = path_report
    return Relevance(fit_mode_calibrator(s, g, m), report=report, path=path)


def calibrate_path(s: np.ndarray, g: np.ndarray, m: np.ndarray, a: np.ndarray, b: np.ndarray):
    """P(same full category path) per query mode (what ``match`` names), ECE on the half not fit on;
    (None, reason) when the val results hold too few of one kind to fit it."""
    try:
        held = fit_mode_calibrator(s[a], g[a], m[a], min_grade=2)
        path = fit_mode_calibrator(s, g, m, min_grade=2)
    except ValueError as exc:
        log.warning("tune-ranker: no same-path calibration (%s); match labels fall back to relevance", exc)
        return None, {"skipped": str(exc)}
    y = (g[b] >= 2).astype(np.int64)
    probs = np.zeros(int(b.sum()))
    for mode in set(m[b]):
        rows = m[b] == mode
        probs[rows] = held.apply(s[b][rows], mode)
    return path, {"target": "P(same full category path)", "ece_held_out_half": round(
        expected_calibration_error(probs, y), 4), "ece_by_mode_held_out_half": {
        mode: round(expected_calibration_error(probs[m[b] == mode], y[m[b] == mode]), 4)
        for mode in sorted(set(m[b]))}}
