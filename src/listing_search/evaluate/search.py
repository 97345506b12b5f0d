"""Search quality on never-seen listings, measured through the search pipeline's doors (the path users hit).

The engine is loaded over the catalogue's artifacts (store, indexes, ranker, calibration) exactly
as ``serve`` loads it; each never-seen listing of the evaluated folder becomes queries the way a
buyer would search: its title, its first photo (the file's bytes, decoded by the serving path),
title + photo, and the title with one interior letter dropped (``text.typos``, seeded). A result
counts for precision when it shares the query's root category; nDCG grades 2 for the same full
category path, 1 for the same root (``core.grading``). Keys name the model they measure: ``search_*`` the whole
ranking path, ``predictor_*`` the photo + text category predictor, ``vision_*`` (in ``evaluate``)
the vision model alone.

``own_photo_at_1`` queries every catalogue photo's stored bytes: the share whose rank-1 listing is
the photo's own or one holding a byte-identical photo.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from listing_search import schema as S
from listing_search.core.grading import expected_calibration_error, grade, ideal_grades, ndcg_at_k
from listing_search.core.query import HistoryEvent, Page, Query
from listing_search.evaluate.registry import EvalContext, Metric, metric
from listing_search.search.present import CLOSE
from listing_search.text.typos import drop_letter

log = logging.getLogger(__name__)
K = 10
MODES = ("title", "photo", "photo_title", "typo_title")
SIM_HISTORY = 3
SIM_USERS = 300
SIM_QUERY_WORDS = 2
SIM_NOW = 1_700_000_000.0  # a fixed "now" so the simulation is reproducible
REQUIRED = (S.CATEGORY_PREDICTOR_JSON, S.TEXT_ONNX)  # no ranker.json: the hand-weighted fusion is measured


# --- the engine over the catalogue, and the queries ---------------------------------------------

@dataclass
class SearchEval:
    engine: object  # search.engine.SearchEngine, loaded as `serve` loads it
    listings: list[dict]  # never-seen listings: id, title, root, path, photo (bytes or None)
    catalogue: list = field(default_factory=list)  # store.models.Listing of every catalogue listing
    runs: dict = field(default_factory=dict)

    @cached_property
    def path_counts(self) -> Counter:
        return Counter(rec.category_path for rec in self.catalogue)

    @cached_property
    def root_counts(self) -> Counter:
        return Counter(rec.root_category for rec in self.catalogue)


def search_eval(ctx: EvalContext) -> SearchEval | None:
    """Built on first use and kept on the context; None (logged) before `embed-text`/`index`/`tune-ranker`."""
    if "_search_eval" not in ctx.__dict__:
        missing = [n for n in REQUIRED if not (ctx.artifacts / n).is_file()]
        if missing:
            log.warning("evaluate: search metrics skipped, %s missing: run `embed-text`, `index` and `tune-ranker`",
                        missing)
        ctx.__dict__["_search_eval"] = None if missing else _build(ctx)
    return ctx.__dict__["_search_eval"]


def _build(ctx: EvalContext) -> SearchEval:
    from listing_search.search.engine import SearchEngine

    engine = SearchEngine.load(ctx.settings, ctx.artifacts)
    listings, photos = ctx.tables
    first_photo = photos.drop_duplicates(S.LISTING_ID).set_index(S.LISTING_ID)[S.IMAGE_ID]
    rows = []
    for lid, title, root, path in zip(listings[S.LISTING_ID], listings[S.TITLE], listings[S.ROOT_CATEGORY],
                                      listings[S.CATEGORY_PATH]):
        image_id = first_photo.get(lid)
        file = ctx.data / S.IMAGES_DIR / f"{image_id}.jpg" if image_id is not None else None
        rows.append({"id": lid, "title": str(title or ""), "root": root, "path": path,
                     "photo": file.read_bytes() if file is not None and file.is_file() else None})
    view = engine.live.catalog
    catalogue = [view.listing(int(r)) for r in view.live_rows()]
    return SearchEval(engine, rows, catalogue)


def query_of(item: dict, mode: str, rng: np.random.Generator) -> Query | None:
    """A never-seen listing as a buyer's query; None when it cannot make one (no photo, no long word)."""
    if mode in ("photo", "photo_title") and item["photo"] is None:
        return None
    if mode == "typo_title":
        text = drop_letter(item["title"], rng)
        if text is None:
            return None
    else:
        text = item["title"] if mode in ("title", "photo_title") else None
    if mode in ("title", "typo_title", "photo_title") and not (text or "").strip():
        return None
    return Query(text=text, image=item["photo"] if mode in ("photo", "photo_title") else None, page=Page(K))


def run_mode(ev: SearchEval, mode: str, seed: int) -> dict:
    """Every never-seen listing as a ``mode`` query through the engine: P@10, nDCG@10, relevance, no-match."""
    if mode in ev.runs:
        return ev.runs[mode]
    from listing_search.data.images import ImageRejected

    rng = np.random.default_rng(seed)
    precision, ndcg, probs, labels, no_match, corrected, shown, close = [], [], [], [], [], [], [], []
    for item in ev.listings:
        query = query_of(item, mode, rng)
        if query is None:
            continue
        try:
            result = ev.engine.search(query)
        except ImageRejected:
            continue
        grades = np.array([grade(item["root"], item["path"], h.listing.root_category, h.listing.category_path)
                           for h in result.hits], np.int64)
        precision.append(float((grades >= 1).mean()) if len(grades) else 0.0)
        ideal = ideal_grades(ev.path_counts[item["path"]], ev.root_counts[item["root"]])
        ndcg.append(ndcg_at_k(grades, ideal))
        probs += [h.relevance for h in result.hits if h.relevance is not None]
        labels += [int(g >= 1) for g, h in zip(grades, result.hits) if h.relevance is not None]
        close += [int(g == 2) for g, h in zip(grades, result.hits) if h.match in CLOSE]
        no_match.append(result.no_match)
        corrected.append(bool(result.corrections))
        if result.predicted_categories:  # what a photo search shows: its likeliest category and probability
            name, p = result.predicted_categories[0]
            shown.append((p, float(name == item["root"])))
    out = {"queries": len(precision), "precision_at_10": _mean(precision), "ndcg_at_10": _mean(ndcg),
           "no_match_rate": _mean(no_match), "probs": probs, "labels": labels,
           "good_match_precision": _mean(close), "good_match_share": round(len(close) / max(1, K * len(precision)), 4)}
    if shown:
        p, y = np.array(shown).T
        out["shown_category_ece"] = round(expected_calibration_error(p, y), 4)
        out["shown_category_accuracy"] = _mean(y)
    if mode in ("title", "typo_title"):
        out["corrected_rate"] = _mean(corrected)
    ev.runs[mode] = out
    return out


def _mean(values) -> float:
    return round(float(np.mean(values)), 4) if len(values) else float("nan")


def _run_value(mode: str, key: str, doc: str) -> Metric:
    """A metric reading ``key`` of :func:`run_mode`'s answer for ``mode`` (None when nothing is searchable)."""
    def value(ctx: EvalContext) -> float | None:
        ev = search_eval(ctx)
        return None if ev is None else run_mode(ev, mode, ctx.settings.rank.seed).get(key)

    value.__doc__ = doc
    return value


for _mode in MODES:
    for _key in ("precision_at_10", "ndcg_at_10", "no_match_rate", "good_match_precision"):
        metric(f"search_{_mode}_{_key}")(_run_value(_mode, _key, f"{_key} of {_mode} searches"))

for _mode in ("photo", "photo_title"):
    metric(f"search_{_mode}_shown_category_ece")(_run_value(
        _mode, "shown_category_ece",
        "Calibration error of the category a photo search shows (its top category's probability)."))
    metric(f"search_{_mode}_shown_category_accuracy")(_run_value(
        _mode, "shown_category_accuracy",
        "Share of photo searches whose shown (likeliest) category is the listing's root category."))


metric("search_typo_title_corrected_rate")(_run_value(
    "typo_title", "corrected_rate", "Share of misspelt titles where the engine corrected at least one word."))
metric("search_title_corrected_rate")(_run_value(
    "title", "corrected_rate",
    "Share of titles as their sellers wrote them that the engine rewrote: each held a word the catalogue "
    "lacks (a brand, a rarer word, or the seller's own slip, the one rewrite that is right)."))


@metric("search_relevance_ece")
def relevance_ece(ctx: EvalContext) -> float | None:
    """Expected calibration error of the results' relevance (P(same root)) over every mode's top 10."""
    ev = search_eval(ctx)
    if ev is None:
        return None
    probs, labels = [], []
    for mode in MODES:
        run = run_mode(ev, mode, ctx.settings.rank.seed)
        probs += run["probs"]
        labels += run["labels"]
    return round(expected_calibration_error(np.array(probs), np.array(labels)), 4) if probs else None


@metric("search_no_match_rate_nonsense")
def no_match_nonsense(ctx: EvalContext) -> float | None:
    """Share of the committed nonsense queries and unlike photos answered "no good match"."""
    from listing_search.fit.no_match import no_match_queries, unlike_photos

    ev = search_eval(ctx)
    if ev is None:
        return None
    flags = [ev.engine.search(Query(text=t, page=Page(K))).no_match for t in no_match_queries()]
    flags += [ev.engine.search(Query(image=p, page=Page(K))).no_match for p in unlike_photos(seed=11)]
    return _mean(flags)


@metric("own_photo_at_1")
def own_photo_at_1(ctx: EvalContext) -> float | None:
    """Every catalogue photo's stored bytes as a query: share whose rank-1 listing is its own (or one
    holding a byte-identical photo)."""
    ev = search_eval(ctx)
    if ev is None:
        return None
    engine = ev.engine
    owners: dict[str, set[str]] = {}  # photo bytes' digest -> listings holding those bytes
    answers = []  # (digest, rank-1 listing id): each photo is read once and never kept
    for rec in ev.catalogue:
        for image_id in rec.image_ids:
            data = _photo_bytes(engine, image_id)
            if data is None:
                continue
            digest = hashlib.sha256(data).hexdigest()
            owners.setdefault(digest, set()).add(rec.listing_id)
            top = engine.search(Query(image=data, page=Page(1))).hits
            answers.append((digest, top[0].listing.listing_id if top else None))
    return _mean([top in owners[digest] for digest, top in answers])


def _photo_bytes(engine, image_id: str) -> bytes | None:
    path, data = engine.photo(image_id)
    if path is not None:
        return Path(path).read_bytes()
    return data


@metric("predictor_listing_accuracy")
def predictor_listing_accuracy(ctx: EvalContext) -> float | None:
    """Root category of each never-seen listing from its first photo and title, by the engine's category
    predictor (what a photo search reports as ``predicted_categories``)."""
    ev = search_eval(ctx)
    if ev is None:
        return None
    right = []
    for item in ev.listings:
        if not item["title"]:
            continue
        cats = ev.engine.predict_category(item["photo"], item["title"], 1)
        right.append(cats[0][0] == item["root"])
    return _mean(right)


@metric("personalisation")
def personalisation(ctx: EvalContext) -> dict | None:
    """Simulated users through ``/v1/search``'s path with and without their history.

    For never-seen listing T whose category path has at least 3 catalogue listings, a user viewed 3
    random catalogue listings of that path (1, 2 and 3 days ago), then typed the first two words of
    T's title. nDCG@10 against the catalogue, graded 2 for T's path, 1 for T's root."""
    ev = search_eval(ctx)
    if ev is None:
        return None
    rng = np.random.default_rng(ctx.settings.rank.seed)
    by_path: dict[str, list[str]] = {}
    for rec in ev.catalogue:
        by_path.setdefault(rec.category_path, []).append(rec.listing_id)
    eligible = [i for i, item in enumerate(ev.listings)
                if len(by_path.get(item["path"], [])) >= SIM_HISTORY and item["title"].split()]
    users = rng.permutation(eligible)[:SIM_USERS]
    on, off = [], []
    for u in users:
        item = ev.listings[int(u)]
        seen = rng.choice(sorted(by_path[item["path"]]), size=SIM_HISTORY, replace=False)
        history = tuple(HistoryEvent(str(s), "viewed", SIM_NOW - 86400.0 * (d + 1)) for d, s in enumerate(seen))
        text = " ".join(item["title"].split()[:SIM_QUERY_WORDS])
        ideal = ideal_grades(ev.path_counts[item["path"]], ev.root_counts[item["root"]])
        for use, out in ((True, on), (False, off)):
            hits = ev.engine.search(Query(text=text, page=Page(K), history=history if use else ())).hits
            grades = [grade(item["root"], item["path"], h.listing.root_category, h.listing.category_path)
                      for h in hits]
            out.append(ndcg_at_k(np.array(grades), ideal))
    return {"ndcg_at_10_with_history": _mean(on), "ndcg_at_10_without": _mean(off), "users": len(on),
            "history_weight": ctx.settings.rank.history_weight}
