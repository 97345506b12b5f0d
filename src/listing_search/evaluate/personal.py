"""Personalisation measured through the doors a buyer uses: the feed, and a search leaned by a history.

For never-seen listings T whose full category path has at least ``MIN_PATH`` catalogue listings (one
history per sampled T, seeded): the buyer viewed ``HISTORY`` catalogue listings of T's path (1, 2
and 3 days ago). Measured:

* ``feed_path_precision``: the share of the feed's top 10 (``/v1/recommend``, history only) in that path;
* ``search_path_precision_with`` / ``_without`` and ``search_lift``: the share of the top 10 of a
  one-word search made from T's title (its head noun, ``fit.buyer_queries``) in that path, with and
  without the history, and the difference;
* ``unrelated_changed``: for pairs of a history of one path and a one-word search of a listing of
  another root category, how many of the top 10 the history changes (mean and max). A word of
  another root can still mean something in the history's ("machine" after catering equipment: ice
  machines; "bundle" after books), and there a history should lean; ``unrelated_strict_*`` keeps the
  pairs where the history truly is unrelated to the words (viewed sofas, then "lawn mower"): no
  listing holding the word lies in the history's root category. ``unrelated_most_changed`` names
  the pairs the history changed most.
"""

from __future__ import annotations

import numpy as np

from listing_search.core.query import HistoryEvent, Page, Query
from listing_search.evaluate.registry import EvalContext, metric
from listing_search.evaluate.search import SearchEval, search_eval
from listing_search.fit.buyer_queries import head

HISTORY = 3
MIN_PATH = 13
USERS = 200
UNRELATED_PAIRS = 50
NOW = 1_700_000_000.0  # a fixed "now": the simulation is reproducible
K = 10


def history_of(paths: dict[str, list[str]], path: str, rng: np.random.Generator) -> tuple[HistoryEvent, ...]:
    seen = rng.choice(sorted(paths[path]), size=HISTORY, replace=False)
    return tuple(HistoryEvent(str(s), "viewed", NOW - 86400.0 * (d + 1)) for d, s in enumerate(seen))


def in_path(hits, path: str) -> float:
    return float(np.mean([h.listing.category_path == path for h in hits])) if hits else 0.0


def run(ev: SearchEval, seed: int) -> dict:
    if "personal" in ev.runs:
        return ev.runs["personal"]
    rng = np.random.default_rng(seed)
    paths: dict[str, list[str]] = {}
    for rec in ev.catalogue:
        paths.setdefault(rec.category_path, []).append(rec.listing_id)
    eligible = [i for i, item in enumerate(ev.listings) if len(paths.get(item["path"], [])) >= MIN_PATH
                and head(item["title"])]
    users = rng.permutation(eligible)[:USERS]
    feed, with_h, without = [], [], []
    for u in users:
        item = ev.listings[int(u)]
        history = history_of(paths, item["path"], rng)
        feed.append(in_path(ev.engine.recommend(history, K).hits, item["path"]))
        word = head(item["title"])
        with_h.append(in_path(ev.engine.search(Query(text=word, page=Page(K), history=history)).hits, item["path"]))
        without.append(in_path(ev.engine.search(Query(text=word, page=Page(K))).hits, item["path"]))
    pairs = unrelated(ev, paths, eligible, rng)
    changed = [p["changed"] for p in pairs]
    strict = [p["changed"] for p in pairs if p["strict"]]
    out = {"users": len(feed), "feed_path_precision": _mean(feed), "search_path_precision_with": _mean(with_h),
           "search_path_precision_without": _mean(without),
           "search_lift": round(_mean(with_h) - _mean(without), 4),
           "unrelated_pairs": len(changed), "unrelated_changed_mean": _mean(changed),
           "unrelated_changed_max": int(max(changed)) if changed else None,
           "unrelated_strict_pairs": len(strict), "unrelated_strict_changed_mean": _mean(strict),
           "unrelated_strict_changed_max": int(max(strict)) if strict else None,
           "unrelated_most_changed": sorted((p for p in pairs if p["changed"] > 1), key=lambda p: -p["changed"])[:5]}
    ev.runs["personal"] = out
    return out


def unrelated(ev: SearchEval, paths: dict[str, list[str]], eligible: list[int], rng: np.random.Generator) -> list[dict]:
    """For pairs (a history of one path, a one-word search of a listing of another root category):
    how many of the top 10 the history changes, and whether the pair is strictly unrelated (no
    listing holding the word in the history's root); drawn until ``UNRELATED_PAIRS`` of them are."""
    out = []
    for _ in range(UNRELATED_PAIRS * 8):
        if len(out) >= UNRELATED_PAIRS and sum(p["strict"] for p in out) >= UNRELATED_PAIRS:
            break
        a, b = (ev.listings[int(i)] for i in rng.choice(eligible, size=2, replace=False))
        if a["root"] == b["root"]:
            continue
        word = head(b["title"])
        plain = [h.listing.listing_id for h in ev.engine.search(Query(text=word, page=Page(K))).hits]
        leaned = [h.listing.listing_id for h in ev.engine.search(
            Query(text=word, page=Page(K), history=history_of(paths, a["path"], rng))).hits]
        out.append({"word": word, "history_path": a["path"], "changed": len(set(plain) - set(leaned)),
                    "strict": a["root"] not in holders_roots(ev, word)})
    return out


def holders_roots(ev: SearchEval, word: str) -> set[str]:
    """The root categories of the catalogue listings holding ``word`` (the search's first tiers)."""
    scored = ev.engine.pipeline.scored(Query(text=word, page=Page(K)))
    rows = scored.candidates.rows[scored.ranked.held] if scored.ranked.held is not None else []
    return {scored.catalog.root_name(int(r)) for r in rows}


def _mean(values) -> float:
    return round(float(np.mean(values)), 4) if len(values) else float("nan")


@metric("personal")
def personal(ctx: EvalContext) -> dict | None:
    """The feed's precision in the history's category path, the lift a history gives a one-word
    search, and how much an unrelated history changes a search (see the module)."""
    ev = search_eval(ctx)
    return None if ev is None else run(ev, ctx.settings.rank.seed)
