"""The match set M: the one definition of which listings a search matches.

For a search, M is the set of listings passing the filters that:

* **hold the words** (a search with words), or
* are ranked candidates whose calibrated relevance reaches the query mode's no-match threshold, or
* hold a (nearly) identical photo to the query's (cosine >= ``search.rank.NEAR_DUPLICATE``), or
* are among the ``MIN_SHOWN`` (10) best ranked candidates: a search shows at least a page of its
  best listings;

and for **filters alone** (browsing), every listing that passes them. When no listing uses any of
the words at all, M is empty.

*Holds the words*: every word, after spelling correction, is among the listing's title or
description terms, both sides tokenised by ``core.text.match_terms`` (lower case, accents and
plurals folded, function words left out: "chairs" holds "chair").

**No match** (``no_match``, said above the results, every result then ``related``): no listing
holds the words, no photo is near-identical, and the best relevance stays under the threshold or,
for a photo alone, the best photo cosine stays under the mode's cosine threshold; or M is empty.
Before ``tune-ranker`` has calibrated relevance, every ranked candidate is in M. M depends on the
query and the catalogue only: never on ``k``, the page, the sort or how many candidates a channel
fetched. Relevance orders M (sale ads first, buying ads after them); the other sorts order all of
it (``search.paging``). A search shows M as results, each group of near-duplicate listings one
result (``search.collapse``): ``total`` counts results.
"""

from __future__ import annotations

import numpy as np

from listing_search.core.text import match_terms
from listing_search.index.catalog import CatalogView
from listing_search.models.bundle import ModelBundle
from listing_search.search.candidates import Allowed
from listing_search.search.rank import NEAR_DUPLICATE, calibration_mode
from listing_search.search.types import IMAGE, MatchSet, Ranked, Understanding

MIN_SHOWN = 10  # a search that matches at all shows at least this many of its best ranked listings


def holding_words(allowed: Allowed, holders: np.ndarray | None) -> np.ndarray:
    """Catalogue rows of the allowed listings holding every term, most BM25 first (ties by key), from
    ``holders``: the keys of every listing holding them (``Understanding.holders``; None without words
    or a lexical index)."""
    if holders is None:
        return np.zeros(0, np.int64)
    rows = allowed.catalog.rows_of_keys(holders)
    return rows[allowed.admits(rows)]


def holds(terms: list[str], title: str, description: str) -> bool:
    """Whether a listing holds the words: the definition, for tests and brute-force checks."""
    have = set(match_terms(f"{title} {description}"))
    return bool(terms) and all(t in have for t in terms)


def match_set(u: Understanding, ranked: Ranked, holding: np.ndarray, models: ModelBundle,
              catalog: CatalogView | None = None) -> MatchSet:
    """M in relevance order: the ranked members best first, then holders too many to rank (by BM25);
    with ``catalog``, its buying ads after every sale ad."""
    cands = ranked.candidates
    position = {int(r): i for i, r in enumerate(cands.rows[ranked.order])}
    if u.unknown_words:
        return MatchSet(np.zeros(0, np.int64), position, no_match=True)
    held, passing, near = _reasons(u, ranked, holding, models, uncalibrated=True)
    member = (held | passing | near)[ranked.order]
    member[:shown_at_least(cands.rows[ranked.order], catalog)] = True
    ranked_rows = cands.rows[ranked.order][member]
    unranked = holding[~np.isin(holding, cands.rows)]
    rows = np.concatenate([ranked_rows, unranked]).astype(np.int64)
    if catalog is not None:
        wanted = catalog.buying[rows]
        rows = np.concatenate([rows[~wanted], rows[wanted]])
    return MatchSet(rows, position, no_match=not len(rows) or no_match(u, ranked, holding, models))


def shown_at_least(ordered: np.ndarray, catalog: CatalogView | None) -> int:
    """How many of the best ranked candidates M always holds: ``MIN_SHOWN``, or with ``catalog`` as many
    as hold ``MIN_SHOWN`` different groups of copies (copies collapse into one result: a page of them
    would show fewer than ``MIN_SHOWN``)."""
    if catalog is None or not len(ordered):
        return MIN_SHOWN
    firsts = np.sort(np.unique(catalog.group_of(ordered), return_index=True)[1])[:MIN_SHOWN]  # one label per ad
    return max(MIN_SHOWN, int(firsts[-1]) + 1) if len(firsts) else MIN_SHOWN


def alerting_rows(u: Understanding, ranked: Ranked, holding: np.ndarray, models: ModelBundle) -> np.ndarray:
    """The members of M a saved search alerts on: M less its related tail. A listing that holds the
    words, reaches the relevance threshold or holds a near-identical photo, and that the page would
    not call related (for a buyer's one to three words: it holds them); none when the search matches
    nothing (every result is then only related), and no relevance-only member before ``tune-ranker``
    has calibrated relevance (M's every-candidate rule is no threshold to pass). Unordered."""
    if u.unknown_words or no_match(u, ranked, holding, models):
        return np.zeros(0, np.int64)
    held, passing, near = _reasons(u, ranked, holding, models, uncalibrated=False)
    related = ranked.tiered & ~held
    rows = ranked.candidates.rows[(held | passing | near) & ~related]
    return np.concatenate([rows, holding[~np.isin(holding, ranked.candidates.rows)]]).astype(np.int64)


def _reasons(u: Understanding, ranked: Ranked, holding: np.ndarray, models: ModelBundle,
             uncalibrated: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per ranked candidate: holds the words, relevance reaches the threshold (``uncalibrated``: what
    that is before calibration), holds a near-identical photo."""
    cands = ranked.candidates
    held = np.isin(cands.rows, holding)
    threshold = models.no_match_below(calibration_mode(u))
    if ranked.relevance is None or threshold is None:
        passing = np.full(len(cands), uncalibrated, bool)
    else:
        passing = ranked.relevance >= threshold
    return held, passing, cands.score(IMAGE) >= NEAR_DUPLICATE


def no_match(u: Understanding, ranked: Ranked, holding: np.ndarray, models: ModelBundle) -> bool:
    """Whether the search matches nothing (see the module's definition)."""
    cands = ranked.candidates
    if not len(cands) and not len(holding):
        return True
    if (cands.score(IMAGE) >= NEAR_DUPLICATE).any() or len(holding):
        return False
    threshold, best = models.no_match_below(calibration_mode(u)), ranked.best_relevance
    if threshold is not None and best is not None and best < threshold:
        return True
    cosine = models.no_match_cosine_below(u.mode)
    return cosine is not None and len(cands) > 0 and float(cands.score(IMAGE).max()) < cosine
