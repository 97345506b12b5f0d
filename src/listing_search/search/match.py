"""The match set M: the one definition of which listings a search matches.

For a search, M is the set of listings passing the filters that the engine shows before it would
answer "no match":

* **words** (with or without a photo): the listings that *hold the words*, and the ranked
  candidates whose calibrated relevance reaches the query mode's no-match threshold;
* **a photo alone**: the ranked candidates whose relevance reaches the threshold;
* **filters alone** (browsing): every listing that passes them.

*Holds the words*: every word typed, after spelling correction, is among the listing's title or
description terms, both sides tokenised by ``core.text.match_terms`` (lower case, accents and
plurals folded: "chairs" holds "chair").

M empty is the answer "no match": no listing holds the words and none reaches the threshold (or
no listing uses any of the words at all). Before ``tune-ranker`` has calibrated relevance, every ranked
candidate is in M. M depends on the query and the catalogue only: never on ``k``, the page, the
sort or how many candidates a channel fetched. Relevance orders M; the other sorts order all of
it; ``total`` = |M| (``search.paging``).
"""

from __future__ import annotations

import numpy as np

from listing_search.core.text import match_terms
from listing_search.index.lexical import LexicalIndex
from listing_search.models.bundle import ModelBundle
from listing_search.search.candidates import Allowed
from listing_search.search.types import MatchSet, Ranked, Understanding


def holding_words(lexical: LexicalIndex | None, allowed: Allowed, terms: tuple[str, ...]) -> np.ndarray:
    """Catalogue rows of the allowed listings holding every term, most BM25 first (ties by key)."""
    if lexical is None or not terms:
        return np.zeros(0, np.int64)
    keys, _ = lexical.holding(list(terms))
    rows = allowed.catalog.rows_of_keys(keys)
    return rows[allowed.admits(rows)]


def holds(terms: list[str], title: str, description: str) -> bool:
    """Whether a listing holds the words: the definition, for tests and brute-force checks."""
    have = set(match_terms(f"{title} {description}"))
    return bool(terms) and all(t in have for t in terms)


def match_set(u: Understanding, ranked: Ranked, holding: np.ndarray, models: ModelBundle) -> MatchSet:
    """M in relevance order: the ranked members best first, then holders too many to rank (by BM25)."""
    cands = ranked.candidates
    position = {int(r): i for i, r in enumerate(cands.rows[ranked.order])}
    threshold = models.no_match_below(u.mode)
    if u.unknown_words:
        return MatchSet(np.zeros(0, np.int64), position, no_match=True)
    held = np.isin(cands.rows, holding)
    passing = np.ones(len(cands), bool) if ranked.relevance is None or threshold is None \
        else ranked.relevance >= threshold
    member = (held | passing)[ranked.order]
    ranked_rows = cands.rows[ranked.order][member]
    unranked = holding[~np.isin(holding, cands.rows)]
    rows = np.concatenate([ranked_rows, unranked]).astype(np.int64)
    return MatchSet(rows, position, no_match=not len(rows))
