"""The tune-ranker stage: fit the category predictor, the re-ranker and its calibration, through the engine.

Queries are made from catalogue listings the way users search: the title as words, one photo, the
title and one photo, or the title with one letter dropped (``text.typos``). Each runs through the
serving engine's own path (spelling, retrieval from the photo, dense text and BM25 channels,
``rank.features``) with the other split's listings and the query listing itself excluded, so the
ranker is fit on exactly the candidates and features it will score when serving.

* Train-split queries (candidates: other train listings) fit the rankers; the category
  probabilities they carry come from a predictor fit on the OTHER half of the train split, so the
  ranker learns how much a prediction on unseen listings is worth.
* Val-split queries (candidates: train listings) choose between LambdaMART and the ordinal logistic
  model (``rank.settings.ranker = auto``), calibrate the chosen one's scores into P(same root
  category) per query mode, and, with the committed nonsense queries and unlike photos, set the
  "no good match" threshold. Nothing is fit on val listings' features except the calibration.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from listing_search import schema as S
from listing_search.pipeline import file_sha, fingerprint, is_up_to_date, write_stamp
from listing_search.rank.candidates import SearchQuery
from listing_search.rank.category import (
    CategoryPredictor, fit_category_predictor, fit_temperature, temper, top_calibration_error,
)
from listing_search.rank.features import FEATURES
from listing_search.rank.hashed_words import N_CHAR_BUCKETS
from listing_search.rank.ltr import DEFAULT_PARAMS, fit_lambdamart
from listing_search.rank.ranker import fit_ranker, load_ranker
from listing_search.rank.vectors import ListingVectors, load_listing_vectors
from listing_search.settings import Settings
from listing_search.text.typos import drop_letter

log = logging.getLogger(__name__)
STAGE = "tune_ranker"
MODES = ("text", "image", "both", "typo")
MIN_TEMPERATURE_QUERIES = 20
TRAIN_K = 60  # results asked per training query: the engine fetches max(4k, rank.candidates) per channel
CALIBRATE_TOP = 20  # calibration uses each val query's top results: the scores users see
UNLIKE_PHOTOS = 24
NEW = ".new"  # suffix of fitted files written beside the ones in use (publish_fit)
NO_MATCH_QUANTILE = 0.95


@dataclass
class QuerySet:
    """Pair features of many queries, grouped by query (LightGBM's ``group``), with their modes."""

    x: np.ndarray
    grades: np.ndarray
    groups: np.ndarray
    modes: list[str]

    def split(self, pick: np.ndarray) -> "QuerySet":
        starts = np.r_[0, np.cumsum(self.groups)]
        rows = np.concatenate([np.arange(starts[q], starts[q + 1]) for q in np.flatnonzero(pick)]) \
            if pick.any() else np.zeros(0, np.int64)
        return QuerySet(self.x[rows], self.grades[rows], self.groups[pick], [m for m, p in zip(self.modes, pick) if p])


def tune_ranker(settings: Settings, artifacts: Path, force: bool = False, progress: bool = False) -> dict:
    """Write category_predictor.json, ranker.json and relevance.json; skipped when nothing changed.

    Needs the store and indexes of ``index`` (the engine they serve)."""
    artifacts = Path(artifacts)
    fp = ranker_fingerprint(settings, artifacts)
    outputs = [artifacts / S.RANKER_JSON, artifacts / S.CATEGORY_PREDICTOR_JSON]  # relevance.json when calibrated
    if not force and is_up_to_date(artifacts, STAGE, outputs, fp):
        log.info("tune-ranker: up to date in %s", artifacts)
        return {**load_ranker(artifacts / S.RANKER_JSON).report, "up_to_date": True}

    from listing_search.rank.engine import SearchEngine

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
        engine.ranking.predictor = predictor
        maker = QueryMaker(engine, vectors, rs.seed)
        half, halves = cross_fitted_predictors(train, rs.category_c, rs.seed, rs.category_image_weight, titles,
                                               start=predictor, n_char_buckets=chars)
        q_train, rng = ranker_train_queries(vectors.splits, rs)
        fit_pairs = maker.pairs(q_train, [halves[1 - half[np.searchsorted(train_rows, r)]] for r in q_train],
                                exclude_split="val", progress=progress, desc="ranker train queries")
        val_rows = np.flatnonzero(vectors.splits == "val")
        q_val = rng.choice(val_rows, size=min(rs.val_queries, len(val_rows)), replace=False)
        val_pairs = maker.pairs(q_val, [predictor] * len(q_val), exclude_split="val", progress=progress,
                                desc="ranker val queries")
        engine.ranking.predictor = predictor
        predictor.temperatures, temperature_report = fit_shown_temperatures(engine, vectors, q_val, rs.seed)
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
            engine.use_ranking(ranker, predictor, relevance)
            relevance.no_match_below, relevance.report["no_match"] = no_match_threshold(engine, maker, q_val)
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


def fit_shown_temperatures(engine, vectors: ListingVectors, rows: np.ndarray, seed: int) -> tuple[dict, dict]:
    """Per query mode, the temperature making the shown category probability honest on val queries.

    Each of the val listings ``rows`` (``rank.val_queries`` of them) is asked as words, photo and both
    through ``SearchEngine.understand`` (the shown belief: predictor x neighbour vote x photo vote, val
    listings left out); a mode with fewer than ``MIN_TEMPERATURE_QUERIES`` answers gets no temperature. The
    temperature is chosen on one half of the queries and its calibration error reported on the
    other, then refit on all."""
    maker = QueryMaker(engine, vectors, seed + 7)  # its own photo draws: the ranker's queries stay as they were
    temps, report = {}, {}
    for mode in ("text", "image", "both"):
        answered = []  # (belief, true label) of each val listing asked this way
        for row in rows:
            query = maker.query(int(row), mode, "val")
            if query is not None:
                engine.understand(query)
                shown = query.shown_belief
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


def ranker_train_queries(splits: np.ndarray, rs) -> tuple[np.ndarray, np.random.Generator]:
    """The train-split rows ``tune-ranker`` asks as its training queries (seeded by ``rank.seed``), and
    the generator that drew them (it goes on to draw the val queries). ``embed-text`` keeps these
    listings out of the text model's fine-tuning: the ranker then learns from queries the encoder
    never saw, as every user's query is."""
    train_rows = np.flatnonzero(np.asarray(splits) == "train")
    rng = np.random.default_rng(rs.seed)
    return rng.choice(train_rows, size=min(rs.train_queries, len(train_rows)), replace=False), rng


def ranker_fingerprint(settings: Settings, artifacts: Path) -> str:
    """What the fit depends on: the catalogue's vectors, the rank settings, the features and the
    LambdaMART parameters (a new release's recipe re-fits an existing artifacts folder)."""
    inputs = [Path(artifacts) / n for n in (S.LISTINGS_CSV, S.TRAINING_CSV, S.TEXT_EMBEDDINGS_NPY,
                                            S.IMAGE_EMBEDDINGS_NPY)]
    recipe = json.dumps({"features": FEATURES, "lambdamart": DEFAULT_PARAMS, "shown_temperatures": True},
                        sort_keys=True)
    return fingerprint(inputs, settings.section_json("rank") + recipe)


class QueryMaker:
    """Catalogue listings as queries through the engine, with the features and grades of their candidates."""

    def __init__(self, engine, vectors: ListingVectors, seed: int) -> None:
        self.engine, self.vectors = engine, vectors
        self.rng = np.random.default_rng(seed + 1)
        key_of = engine.store.listing_ids()
        self.key_of = key_of
        self.split_keys = {s: frozenset(key_of[str(i)] for i, sp in zip(vectors.ids, vectors.splits)
                                        if sp == s and str(i) in key_of) for s in ("train", "val")}

    def query(self, row: int, mode: str, exclude_split: str, k: int = TRAIN_K) -> SearchQuery | None:
        """Listing ``row`` as a ``mode`` query; None when it cannot be one (no photo, no long word)."""
        v = self.vectors
        title = v.titles[row]
        photos = v.photos_of(row)
        own = self.key_of.get(str(v.ids[row]))
        exclude = self.split_keys[exclude_split] | ({own} if own is not None else set())
        if mode in ("image", "both") and not len(photos):
            return None
        text = drop_letter(title, self.rng) if mode == "typo" else (title if mode != "image" else None)
        if mode == "typo" and text is None:
            return None
        image_vec = photos[self.rng.integers(len(photos))] if mode in ("image", "both") else None
        return SearchQuery(text=text, image_vec=image_vec, k=k, exclude_listing_keys=frozenset(exclude))

    def features(self, query: SearchQuery, predictor: CategoryPredictor | None = None):
        """(candidates, features, listing cards) exactly as the engine ranks them."""
        if predictor is not None:
            self.engine.ranking.predictor = predictor
        self.engine.understand(query, show=False)  # the ranker reads category_probs, never what is shown
        cands = self.engine.retrieve(query, query.k)
        x, listings = self.engine.ranking.features(query, cands)
        return cands, x, listings

    def grades(self, row: int, cands, cards) -> np.ndarray:
        """2 = same category path, 1 = same root category, 0 = otherwise (a vanished listing: 0)."""
        root, path = self.vectors.categories[self.vectors.labels[row]], self.vectors.paths[row]
        out = []
        for c in cands:
            card = cards.get(c.listing_key)
            out.append(0 if card is None else 2 if card.path == path else 1 if card.root == root else 0)
        return np.array(out, np.int64)

    def pairs(self, rows: np.ndarray, predictors: list, exclude_split: str, progress: bool = False,
              desc: str = "queries") -> QuerySet:
        from tqdm import tqdm

        xs, gs, groups, modes = [], [], [], []
        for j, (row, predictor) in enumerate(tqdm(list(zip(rows, predictors)), disable=not progress, desc=desc,
                                                  unit="query")):
            mode = MODES[j % len(MODES)]
            query = self.query(int(row), mode, exclude_split)
            if query is None:
                continue
            cands, x, listings = self.features(query, predictor)
            if not cands:
                continue
            xs.append(x)
            gs.append(self.grades(int(row), cands, listings))
            groups.append(len(cands))
            modes.append("text" if mode == "typo" else mode)
        if not xs:
            raise ValueError("no usable ranker queries: is the catalogue indexed (`listing-search index`)?")
        return QuerySet(np.vstack(xs), np.concatenate(gs), np.array(groups, np.int64), modes)


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


def choose_ranker(fit: QuerySet, val: QuerySet, fit_ids: list[str], kind: str, seed: int):
    """Fit both kinds on the train queries, compare on the val queries, keep the better (or the asked one)."""
    from listing_search.rank.metrics import ndcg_at_k_groups, precision_at_k_groups

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
    from listing_search.rank.calibrate import expected_calibration_error, fit_mode_calibrator, reliability_table
    from listing_search.rank.relevance import Relevance

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
    return Relevance(fit_mode_calibrator(s, g, m), report=report)


def no_match_queries() -> list[str]:
    """The committed nonsense queries (one per line) that must come back as no good match."""
    text = resources.files("listing_search.rank").joinpath("no_match_queries.txt").read_text()
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def unlike_photos(n: int = UNLIKE_PHOTOS, seed: int = 7) -> list[bytes]:
    """Photos of nothing a marketplace sells: flat colours, noise, gradients, stripes (seeded)."""
    from io import BytesIO

    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            arr = np.broadcast_to(rng.integers(0, 256, 3, dtype=np.uint8), (224, 224, 3))
        elif kind == 1:
            arr = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
        elif kind == 2:
            ramp = np.linspace(0, 255, 224, dtype=np.float64)
            arr = np.stack([np.add.outer(ramp * c, ramp * (1 - c)) / 2 for c in rng.uniform(0, 1, 3)], -1)
        else:
            arr = np.where((np.arange(224)[:, None] // rng.integers(4, 32)) % 2 == 0, 255, 0)[..., None] \
                * np.ones((1, 224, 3))
        buf = BytesIO()
        Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8)).save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def no_match_threshold(engine, maker: QueryMaker, val_rows: np.ndarray) -> tuple[dict[str, float], dict]:
    """Per query mode: just above the best relevance of 95% of the nonsense inputs of that kind
    (nonsense words for text, unlike photos for photos; the lower of the two for both), but never
    above the best relevance of the 5% weakest real val queries of that mode, so that one nonsense
    word corrected to a real one cannot drag the threshold over real searches.

    Words alone that the catalogue never uses (after correction) are "no match" whatever the
    threshold (``SearchResult.unknown_words``); the report's flagged shares count both rules."""
    from listing_search.rank.candidates import SearchQuery as Q

    def best(query) -> tuple[float, bool]:
        result = engine.search_result(query)
        return result.best_relevance or 0.0, result.unknown_words

    nonsense = {"text": [best(Q(text=t, k=10)) for t in no_match_queries()],
                "image": [best(Q(image=p, k=10)) for p in unlike_photos()]}
    real: dict[str, list[tuple[float, bool]]] = {}
    for j, row in enumerate(val_rows[:400]):
        mode = MODES[j % len(MODES)]
        query = maker.query(int(row), mode, "val", k=10)
        if query is not None:
            real.setdefault("text" if mode == "typo" else mode, []).append(best(query))
    above = {m: float(np.quantile([b for b, _ in v], NO_MATCH_QUANTILE)) + 0.01 for m, v in nonsense.items() if v}
    above["both"] = min(above.values()) if above else 0.0
    thresholds, report = {}, {}
    for mode in ("text", "image", "both"):
        cap = float(np.quantile([b for b, _ in real[mode]], 1 - NO_MATCH_QUANTILE)) if real.get(mode) else 1.0
        thresholds[mode] = float(np.floor(min(above.get(mode, 0.0), cap) * 1e4) / 1e4)  # never above the cap

        def flagged(items: list[tuple[float, bool]], t: float = thresholds[mode]) -> float:
            return round(float(np.mean([b < t or unknown for b, unknown in items])), 4) if items else float("nan")

        noise = nonsense.get(mode, nonsense["text"] + nonsense["image"])
        report[mode] = {"threshold": thresholds[mode], "nonsense_inputs": len(noise),
                        "nonsense_flagged": flagged(noise), "real_val_queries": len(real.get(mode, [])),
                        "real_val_flagged": flagged(real.get(mode, []))}
    return thresholds, report
