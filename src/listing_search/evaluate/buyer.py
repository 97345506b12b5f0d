"""Search quality for queries as buyers type them (``fit.buyer_queries``), beside plain BM25.

Each never-seen listing of the evaluated folder gives, by fixed rules, the short queries a buyer
looking for it might type: its head noun, modifier + head noun, first word + head noun, its two
rarest words, and the head noun and the rare pair misspelt. Each runs through the search pipeline
(what ``/v1/search`` answers) and through plain BM25 (``bm25s`` over each catalogue listing's title +
description, its defaults) on the same catalogue. Three measures per kind of query, for both:

* ``held_share``: the share of the top 10 holding every intended word (``search.match.holds``: the
  query's words before any typo), of min(10, catalogue listings that hold them);
* ``precision_at_10``: the share of the top 10 in the query listing's root category;
* ``buyer_ndcg_at_10``: nDCG@10 with the buyer grade (``core.grading.buyer_grade``: 2 = holds the
  words and the right root category, 1 = one of the two) against the best the catalogue allows;
* ``good_match_precision``: of the engine's top-10 results labelled "great match" or "good match",
  the share a buyer wants: holding the intended words and in the query listing's full category path
  (``good_match_share``: those labels' share of the top 10);
* the engine's root-category belief for the words (``category_belief_accuracy``, ``_ece``), and for
  misspelt kinds the share of queries whose words were corrected to the intended ones.

Whole titles are measured by ``evaluate.search`` (``search_title_*``).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

import numpy as np

from listing_search.core.grading import buyer_grade, ideal_from_counts, ndcg_at_k, top_calibration_error
from listing_search.core.query import Page, Query
from listing_search.core.text import match_terms
from listing_search.evaluate.registry import EvalContext, metric
from listing_search.evaluate.search import SearchEval, search_eval
from listing_search.fit.buyer_queries import SHORT_KINDS, buyer_query, document_frequency, intended
from listing_search.search.present import CLOSE

log = logging.getLogger(__name__)
K = 10


@dataclass
class Catalogue:
    """The catalogue as the buyer measures need it: listing ids, roots, term sets, a BM25 index."""

    ids: list[str]
    roots: np.ndarray
    paths: np.ndarray
    terms: list[frozenset[str]]
    texts: list[str]
    df: Counter

    def holders(self, words: str) -> np.ndarray:
        want = set(match_terms(words))
        return np.array([bool(want) and want <= t for t in self.terms], bool)


def catalogue_of(ev: SearchEval) -> Catalogue:
    if "_buyer_catalogue" not in ev.__dict__:
        recs = ev.catalogue
        texts = [f"{r.title} {r.description}" for r in recs]
        ev.__dict__["_buyer_catalogue"] = Catalogue(
            [r.listing_id for r in recs], np.array([r.root_category for r in recs], dtype=object),
            np.array([r.category_path for r in recs], dtype=object),
            [frozenset(match_terms(t)) for t in texts], texts, document_frequency(texts))
    return ev.__dict__["_buyer_catalogue"]


class Bm25:
    """Plain BM25 (``bm25s`` defaults) over the catalogue's titles + descriptions."""

    def __init__(self, texts: list[str]) -> None:
        import bm25s

        self.bm25s = bm25s
        self.retriever = bm25s.BM25()
        self.retriever.index(bm25s.tokenize(texts, show_progress=False), show_progress=False)

    def top(self, query: str, k: int = K) -> list[int]:
        """Catalogue positions of the ``k`` best listings with a positive score."""
        tokens = self.bm25s.tokenize([query], show_progress=False)
        if not tokens.ids or not tokens.ids[0]:
            return []
        docs, scores = self.retriever.retrieve(tokens, k=k, show_progress=False)
        return [int(d) for d, s in zip(docs[0], scores[0]) if s > 0]


def bm25_of(ev: SearchEval) -> Bm25:
    if "_bm25" not in ev.__dict__:
        ev.__dict__["_bm25"] = Bm25(catalogue_of(ev).texts)
    return ev.__dict__["_bm25"]


def run_kind(ev: SearchEval, kind: str, seed: int) -> dict:
    """Every never-seen listing's ``kind`` query through the engine and through BM25."""
    key = f"buyer:{kind}"
    if key in ev.runs:
        return ev.runs[key]
    cat, bm25 = catalogue_of(ev), bm25_of(ev)
    position = {lid: i for i, lid in enumerate(cat.ids)}
    rng = np.random.default_rng(seed)
    rows: dict[str, list[float]] = {m: [] for m in ("held", "precision", "ndcg", "bm25_held", "bm25_precision",
                                                    "bm25_ndcg", "corrected", "close_wanted")}
    beliefs: list[tuple[np.ndarray, int]] = []  # the words' root-category belief, and the listing's root
    for item in ev.listings:
        text = buyer_query(item["title"], kind, cat.df, rng)
        meant = intended(item["title"], kind, cat.df)
        if not text or not meant:
            continue
        holds = cat.holders(meant)
        same = cat.roots == item["root"]
        ideal = ideal_from_counts(int((holds & same).sum()), int((holds ^ same).sum()))
        query = Query(text=text, page=Page(K))
        result = ev.engine.search(query)
        belief = ev.engine.pipeline.understand(query, show=False).category_probs
        label = ev.engine.models.label_of(item["root"])
        if belief is not None and label is not None:
            beliefs.append((belief, label))
        engine_rows = [position[h.listing.listing_id] for h in result.hits if h.listing.listing_id in position]
        rows["close_wanted"] += [float(holds[position[h.listing.listing_id]] and cat.paths[position[
            h.listing.listing_id]] == item["path"]) for h in result.hits
            if h.match in CLOSE and h.listing.listing_id in position]
        for prefix, found in (("", engine_rows), ("bm25_", bm25.top(text))):
            found = np.array(found, np.int64)
            held = holds[found] if len(found) else np.zeros(0, bool)
            right = same[found] if len(found) else np.zeros(0, bool)
            if holds.sum() > 0:
                rows[f"{prefix}held"].append(float(held.sum()) / min(K, int(holds.sum())))
            rows[f"{prefix}precision"].append(float(right.sum()) / K)
            rows[f"{prefix}ndcg"].append(ndcg_at_k(np.array([buyer_grade(h, r) for h, r in zip(held, right)]), ideal))
        rows["corrected"].append(float(result.searched is not None and match_terms(result.searched)
                                       == match_terms(meant)) if text != meant else np.nan)
    names = {"held": "held_share", "precision": "precision_at_10", "ndcg": "buyer_ndcg_at_10"}
    out = {"queries": len(rows["precision"])}
    for prefix in ("", "bm25_"):
        out.update({f"{prefix}{long}": _mean(rows[f"{prefix}{short}"]) for short, long in names.items()})
    out["good_match_share"] = round(len(rows["close_wanted"]) / max(1, K * out["queries"]), 4)
    out["good_match_precision"] = _mean(rows["close_wanted"])
    if kind.endswith("_typo"):
        out["corrected_to_intended"] = _mean([v for v in rows["corrected"] if not np.isnan(v)])
    if beliefs:
        probs, labels = np.array([b for b, _ in beliefs]), np.array([y for _, y in beliefs])
        out["category_belief_accuracy"] = _mean(probs.argmax(1) == labels)
        out["category_belief_ece"] = round(top_calibration_error(probs, labels), 4)
    ev.runs[key] = out
    return out


def _mean(values) -> float:
    return round(float(np.mean(values)), 4) if len(values) else float("nan")


@metric("buyer_queries")
def buyer_queries(ctx: EvalContext) -> dict | None:
    """Per kind of buyer query: the engine and plain BM25 on held_share, precision_at_10 and
    buyer_ndcg_at_10 (see the module), and for misspelt kinds the share corrected to the intended words."""
    ev = search_eval(ctx)
    if ev is None:
        return None
    return {kind: run_kind(ev, kind, ctx.settings.rank.seed) for kind in SHORT_KINDS}
