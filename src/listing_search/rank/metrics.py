"""Ranking, text and personalisation metrics on never-seen listings, registered into ``evaluate``.

All use the ranker and category predictor fit on the catalogue's train split (``tune-ranker``);
the evaluated folder's listings are only ever queries (or, in the personalisation simulation,
extra candidates), never fitted on.

Personalisation simulation (``personalised_ndcg_at_10``): for each never-seen listing T whose
category path has at least 3 catalogue listings, a user viewed 3 random catalogue listings of
that path (1, 2 and 3 days ago) and then typed the first two words of T's title. Candidates are
the catalogue plus every never-seen listing; grades are 2 for T's category path, 1 for its root
category. The same queries without the history give ``personalised_ndcg_at_10_off``;
``personalised_target_hit_at_10[_off]`` is the share of users whose T itself is in the top 10.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from listing_search import schema as S
from listing_search.evaluate import EvalContext, metric
from listing_search.rank.category import CategoryPredictor, words_of
from listing_search.rank.features import Query
from listing_search.rank.personalise import HistoryEvent, build_profile, recommend
from listing_search.rank.ranker import Ranker
from listing_search.rank.search import rank
from listing_search.settings import RankSettings
from listing_search.rank.vectors import ListingVectors, load_listing_vectors, tokens, unit_rows
from listing_search.text.encoder import TextEncoder, listing_text

log = logging.getLogger(__name__)
K = 10
SIM_HISTORY = 3
SIM_USERS = 400
SIM_QUERY_WORDS = 2
SIM_NOW = 1_700_000_000.0  # a fixed "now" so the simulation is reproducible


# --- pure functions (tested on hand-made arrays) ------------------------------------------------

def dcg(grades: np.ndarray) -> float:
    grades = np.asarray(grades, np.float64)
    return float(((2.0 ** grades - 1.0) / np.log2(np.arange(2, len(grades) + 2))).sum())


def ndcg_at_k(ranked_grades: np.ndarray, all_grades: np.ndarray, k: int = K) -> float:
    """DCG of the first k ranked grades over the DCG of the best possible k (0 when nothing is relevant)."""
    ideal = dcg(np.sort(np.asarray(all_grades))[::-1][:k])
    return dcg(np.asarray(ranked_grades)[:k]) / ideal if ideal > 0 else 0.0


def _ranked_groups(scores: np.ndarray, grades: np.ndarray, groups: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(grades by descending score, all grades) per query; rows of a query are contiguous, ties keep row order."""
    scores, grades, groups = np.asarray(scores), np.asarray(grades), np.asarray(groups, np.int64)
    if len(scores) != len(grades) or int(groups.sum()) != len(scores):
        raise ValueError(f"{len(scores)} scores, {len(grades)} grades, query sizes summing to {int(groups.sum())}")
    out = []
    for lo, hi in zip(np.r_[0, np.cumsum(groups)[:-1]], np.cumsum(groups)):
        g = grades[lo:hi]
        out.append((g[np.argsort(-scores[lo:hi], kind="stable")], g))
    return out


def ndcg_at_k_groups(scores: np.ndarray, grades: np.ndarray, groups: np.ndarray, k: int = K) -> float:
    """Mean ``ndcg_at_k`` over queries given as contiguous row groups (LightGBM's ``group``)."""
    per = [ndcg_at_k(ranked, all_g, k) for ranked, all_g in _ranked_groups(scores, grades, groups)]
    return float(np.mean(per)) if per else float("nan")


def precision_at_k_groups(scores: np.ndarray, grades: np.ndarray, groups: np.ndarray, k: int = K) -> float:
    """Mean share of each query's top k (fewer when it has fewer rows) with grade >= 1."""
    per = [float((ranked[:k] >= 1).mean()) for ranked, _ in _ranked_groups(scores, grades, groups)]
    return float(np.mean(per)) if per else float("nan")


def graded(vectors: ListingVectors, rows: np.ndarray, label: int, path: str) -> np.ndarray:
    """2 = same category path, 1 = same root category, 0 = otherwise."""
    same_root = vectors.labels[rows] == label
    return np.where(vectors.paths[rows] == path, 2, np.where(same_root, 1, 0))


def concat_vectors(a: ListingVectors, b: ListingVectors) -> ListingVectors:
    """One pool of listings: ``a``'s rows, then ``b``'s."""
    return ListingVectors(
        ids=np.concatenate([a.ids, b.ids]), labels=np.concatenate([a.labels, b.labels]),
        paths=np.concatenate([a.paths, b.paths]), titles=a.titles + b.titles,
        prices=np.concatenate([a.prices, b.prices]), text=np.vstack([a.text, b.text]),
        photos=np.vstack([a.photos, b.photos]), photo_row=np.concatenate([a.photo_row, b.photo_row + len(a)]),
        categories=a.categories, texts=a.texts + b.texts,
    )


def listing_query(vectors: ListingVectors, row: int, predictor: CategoryPredictor) -> Query:
    """A listing used as a query: its photos and whole text, price, and the predicted category."""
    photos = vectors.photos_of(row)
    image = vectors.image_mean[row] if len(photos) else None
    price = float(vectors.prices[row]) if np.isfinite(vectors.prices[row]) else None
    return Query.from_text(vectors.titles[row], vectors.text[row], image_vecs=photos if len(photos) else None,
                           price=price, category_probs=predictor.predict_proba(
                               vectors.text[row], image, words_of(vectors, [row]))[0])


# --- what the metrics share, computed once per evaluation ------------------------------------------

@dataclass
class RankEval:
    catalogue: ListingVectors
    queries: ListingVectors  # the evaluated (never-seen) listings
    ranker: Ranker
    predictor: CategoryPredictor
    encoder: TextEncoder
    candidates: int


REQUIRED = (S.RANKER_JSON, S.CATEGORY_PREDICTOR_JSON, S.TEXT_ONNX, S.TEXT_EMBEDDINGS_NPY)


def rank_eval(ctx: EvalContext) -> RankEval | None:
    """Built on first use and kept on the context; None (logged) before `embed-text`/`tune-ranker`."""
    if "_rank_eval" not in ctx.__dict__:
        missing = [n for n in REQUIRED if not (ctx.artifacts / n).is_file()]
        if missing:
            log.warning("evaluate: ranking metrics skipped, %s missing: run `embed-text` and `tune-ranker`", missing)
        ctx.__dict__["_rank_eval"] = None if missing else _build_rank_eval(ctx)
    return ctx.__dict__["_rank_eval"]


def _build_rank_eval(ctx: EvalContext) -> RankEval:
    ranker = Ranker.load(ctx.artifacts / S.RANKER_JSON)
    if ranker.fit_split != "train":
        raise ValueError(f"ranker was fit on {ranker.fit_split!r}, not the train split")
    encoder = TextEncoder.from_artifacts(ctx.artifacts)
    catalogue = load_listing_vectors(ctx.artifacts)
    return RankEval(catalogue, _evaluated_vectors(ctx, encoder, catalogue.categories), ranker,
                    CategoryPredictor.load(ctx.artifacts / S.CATEGORY_PREDICTOR_JSON), encoder,
                    ctx.settings.rank.candidates)


def _evaluated_vectors(ctx: EvalContext, encoder: TextEncoder, categories: list[str]) -> ListingVectors:
    listings, _ = ctx.tables
    v = ctx.vision
    index = {c: i for i, c in enumerate(categories)}
    row_of = {lid: r for r, lid in enumerate(listings[S.LISTING_ID])}
    texts = [listing_text(t, d) for t, d in zip(listings[S.TITLE], listings[S.DESCRIPTION])]
    log.info("evaluate: embedding the text of %d listings", len(texts))
    return ListingVectors(
        ids=listings[S.LISTING_ID].to_numpy(dtype=object),
        labels=listings[S.ROOT_CATEGORY].map(index).to_numpy(np.int64),
        paths=listings[S.CATEGORY_PATH].to_numpy(dtype=object), titles=listings[S.TITLE].tolist(),
        prices=listings[S.PRICE].astype(float).to_numpy(), text=encoder.encode(texts),
        photos=unit_rows(v.embeddings), photo_row=np.array([row_of[i] for i in v.listing_ids], np.int64),
        categories=categories, texts=texts,
    )


# --- registered metrics ------------------------------------------------------------------------------

@metric("n_listings_ranked")
def n_listings_ranked(ctx: EvalContext) -> int | None:
    """Never-seen listings used by the metrics below (with or without usable photos)."""
    r = rank_eval(ctx)
    return None if r is None else len(r.queries)


@metric("listing_accuracy_fused")
def listing_accuracy_fused(ctx: EvalContext) -> float | None:
    """Root category of each never-seen listing from its photos (when any) and its text."""
    r = rank_eval(ctx)
    if r is None:
        return None
    q = r.queries
    has = q.has_photo if q.photos.shape[1] else np.zeros(len(q), bool)
    pred = np.empty(len(q), np.int64)
    if has.any():
        words = words_of(q, np.flatnonzero(has))
        pred[has] = r.predictor.predict_proba(q.text[has], q.image_mean[has], words).argmax(1)
    if (~has).any():
        words = words_of(q, np.flatnonzero(~has))
        pred[~has] = r.predictor.predict_proba(text=q.text[~has], words=words).argmax(1)
    return round(float((pred == q.labels).mean()), 4) if len(q) else float("nan")


@metric("listing_precision_at_10")
def listing_precision_at_10(ctx: EvalContext) -> float | None:
    """Each never-seen listing (photos + text) as a query: share of its top 10 in the same root category."""
    r = rank_eval(ctx)
    if r is None:
        return None
    hits = []
    for row in range(len(r.queries)):
        top = rank(listing_query(r.queries, row, r.predictor), r.catalogue, r.ranker, K, r.candidates).rows
        hits.append(float((r.catalogue.labels[top] == r.queries.labels[row]).mean()) if len(top) else 0.0)
    return round(float(np.mean(hits)), 4) if hits else float("nan")


@metric("text_ndcg_at_10")
def text_ndcg_at_10(ctx: EvalContext) -> float | None:
    """Never-seen listings' titles as text queries; graded: same path 2, same root 1."""
    r = rank_eval(ctx)
    if r is None:
        return None
    q, cat = r.queries, r.catalogue
    title_vecs = r.encoder.encode(q.titles)
    scores = []
    for row in range(len(q)):
        query = Query.from_text(q.titles[row], title_vecs[row],
                                category_probs=r.predictor.predict_proba(text=title_vecs[row],
                                                                         words=[q.titles[row]])[0])
        top = rank(query, cat, r.ranker, K, r.candidates).rows
        all_grades = graded(cat, np.arange(len(cat)), q.labels[row], q.paths[row])
        scores.append(ndcg_at_k(graded(cat, top, q.labels[row], q.paths[row]), all_grades))
    return round(float(np.mean(scores)), 4) if scores else float("nan")


@metric("personalised_ndcg_at_10")
def personalised_ndcg_at_10(ctx: EvalContext) -> float | None:
    """nDCG@10 of the simulated users' searches with their history (see the module docstring)."""
    return personalisation(ctx).get("on")


@metric("personalised_ndcg_at_10_off")
def personalised_ndcg_at_10_off(ctx: EvalContext) -> float | None:
    """The same searches with personalisation off (no history)."""
    return personalisation(ctx).get("off")


@metric("personalisation_simulation")
def personalisation_simulation(ctx: EvalContext) -> dict:
    """How the simulation was made, and how often the target itself reached the top 10."""
    return {k: v for k, v in personalisation(ctx).items() if k not in ("on", "off")}


def personalisation(ctx: EvalContext) -> dict:
    if "_personalisation" not in ctx.__dict__:
        r = rank_eval(ctx)
        ctx.__dict__["_personalisation"] = {} if r is None else _simulate(r, ctx.settings.rank)
    return ctx.__dict__["_personalisation"]


def _simulate(r: RankEval, rs: RankSettings) -> dict:
    pool = concat_vectors(r.catalogue, r.queries)
    users = simulated_users(r.catalogue, r.queries, rs.seed)
    short = [" ".join(r.queries.titles[t].split()[:SIM_QUERY_WORDS]) for t, _ in users]
    vecs = r.encoder.encode(short)
    out: dict[bool, tuple[list[float], list[float]]] = {True: ([], []), False: ([], [])}
    for (target, history), text, vec in zip(users, short, vecs):
        query = Query.from_text(text, vec, category_probs=r.predictor.predict_proba(text=vec, words=[text])[0])
        all_grades = graded(pool, np.arange(len(pool)), r.queries.labels[target], r.queries.paths[target])
        for use_history, (nd, hit) in out.items():
            profile = build_profile(history if use_history else [], pool, now=SIM_NOW,
                                    half_life_days=rs.half_life_days)
            top = recommend(profile, pool, r.ranker, K, query, rs.history_weight, r.candidates).rows
            nd.append(ndcg_at_k(all_grades[top], all_grades))
            hit.append(float(len(r.catalogue) + target in set(top.tolist())))
    return {"on": _mean(out[True][0]), "off": _mean(out[False][0]),
            "target_hit_at_10_on": _mean(out[True][1]), "target_hit_at_10_off": _mean(out[False][1]),
            "users": len(users), "history_weight": rs.history_weight,
            "design": f"history = {SIM_HISTORY} catalogue listings of the target's category path, viewed 1-3 days "
                      f"ago; query = first {SIM_QUERY_WORDS} words of the target's title; candidates = "
                      "catalogue + evaluated listings; grades: same path 2, same root 1"}


def simulated_users(catalogue: ListingVectors, queries: ListingVectors, seed: int,
                    n_users: int = SIM_USERS) -> list[tuple[int, list[HistoryEvent]]]:
    """(target row in ``queries``, history of SIM_HISTORY catalogue listings of the target's path)."""
    rng = np.random.default_rng(seed)
    by_path: dict[str, np.ndarray] = {}
    for path in set(queries.paths):
        by_path[path] = np.flatnonzero(catalogue.paths == path)
    eligible = [t for t in range(len(queries)) if len(by_path[queries.paths[t]]) >= SIM_HISTORY]
    chosen = rng.permutation(eligible)[:n_users]
    users = []
    for t in chosen:
        rows = rng.choice(by_path[queries.paths[t]], size=SIM_HISTORY, replace=False)
        users.append((int(t), [HistoryEvent(str(catalogue.ids[r]), "viewed", SIM_NOW - 86400.0 * (d + 1))
                               for d, r in enumerate(rows)]))
    return users


def _mean(values: list[float]) -> float:
    return round(float(np.mean(values)), 4) if values else float("nan")
