"""Features of (query, candidate listing) pairs: the re-ranker's inputs, computed in one place.

The engine retrieves candidates per channel (photos, dense text, BM25) and scores every candidate
in every channel the query used; these functions turn the candidates, their listing records and
what the engine made of the query (:class:`QueryContext`) into one row of features each. Serving,
``tune-ranker`` and ``evaluate`` all reach this module through the engine, so the features a
ranker was fit on are the ones it scores at serving time. numpy only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from listing_search.rank.candidates import IMAGE, LEXICAL, TEXT
from listing_search.rank.vectors import tokens

FEATURES = (
    "text_cos",  # dense text cosine (MiniLM) of the words and the listing's title + description
    "image_cos",  # best-photo cosine of the query photo and the listing's photos
    "bm25",  # BM25 of the words over the listing's title and description (tantivy)
    "bm25_share",  # that BM25 over the best BM25 among this query's candidates (0..1)
    "title_overlap",  # share of the query's words found in the title
    "category_agreement",  # log P(listing's root category | query), centred on the uniform belief
    "root_vote",  # weighted share of the query's top candidates sharing this listing's root category
    "path_vote",  # the same for the full category path
    "has_text",  # which inputs the query had: one model ranks words, photos and both
    "has_image",
)
VOTERS = 20  # top candidates (by reciprocal-rank fusion of the channels) whose categories vote
RRF_K = 60.0
_EPS = 1e-3


@dataclass
class QueryContext:
    """What the engine made of one query: the words searched (after spelling correction), the
    inferred root-category probabilities, and which inputs it had."""

    words: frozenset[str] = field(default_factory=frozenset)
    category_probs: np.ndarray | None = None
    has_text: bool = False
    has_image: bool = False

    @classmethod
    def of(cls, text: str | None, category_probs: np.ndarray | None, has_image: bool) -> "QueryContext":
        return cls(tokens(text or ""), category_probs, bool(text), has_image)


def log_agreement(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """log P(label | query), centred so a uniform belief scores 0."""
    p = np.asarray(probs, np.float64)
    return (np.log(p[np.asarray(labels, np.int64)] + _EPS) - np.log(1.0 / len(p) + _EPS)).astype(np.float32)


def word_overlap(words: frozenset[str], title_tokens: frozenset[str]) -> float:
    """Share of the query's words found in a title (a cheap lexical match)."""
    return len(words & title_tokens) / len(words) if words else 0.0


def rrf(channel_scores: Sequence[dict[str, float]], channels: Sequence[str]) -> np.ndarray:
    """Reciprocal-rank fusion: sum over channels of 1 / (60 + rank in that channel)."""
    out = np.zeros(len(channel_scores), np.float64)
    for ch in channels:
        s = np.array([c.get(ch, -np.inf) for c in channel_scores], np.float64)
        if not np.isfinite(s).any():
            continue
        ranks = np.empty(len(s), np.int64)
        ranks[np.lexsort((np.arange(len(s)), -s))] = np.arange(len(s))
        out += np.where(np.isfinite(s), 1.0 / (RRF_K + ranks + 1), 0.0)
    return out


def votes(groups: Sequence[str | None], weights: np.ndarray, voters: int = VOTERS) -> np.ndarray:
    """For each candidate: the weight of the top ``voters`` OTHER candidates in its group, over theirs.

    A listing whose category the best candidates agree on is likelier to be what was meant, whatever
    channel found it (pseudo-relevance feedback on categories).
    """
    n = len(groups)
    if n == 0:
        return np.zeros(0, np.float32)
    top = np.argsort(-weights, kind="stable")[:voters]
    total = float(weights[top].sum())
    mass: dict[str | None, float] = {}
    for j in top:
        mass[groups[j]] = mass.get(groups[j], 0.0) + float(weights[j])
    out = np.zeros(n, np.float32)
    in_top = set(top.tolist())
    for i, g in enumerate(groups):
        own = float(weights[i]) if i in in_top else 0.0
        rest = total - own
        out[i] = (mass.get(g, 0.0) - own) / rest if rest > 0 and g is not None else 0.0
    return out


def stack_features(n: int, **columns) -> np.ndarray:
    """[n, len(FEATURES)] in the ranker's column order; a feature not given is 0."""
    out = np.zeros((n, len(FEATURES)), np.float32)
    for name, values in columns.items():
        out[:, FEATURES.index(name)] = values
    return out


def candidate_features(qc: QueryContext, channel_scores: Sequence[dict[str, float]],
                       titles: Sequence[frozenset[str] | None], roots: Sequence[str | None],
                       paths: Sequence[str | None], label_of: Callable[[str | None], int | None]) -> np.ndarray:
    """[len(candidates), len(FEATURES)]: one row per candidate, aligned with the inputs.

    ``channel_scores`` holds each candidate's score per channel (a channel the query did not use
    is absent and scores 0); ``titles`` (title word sets, ``vectors.tokens``), ``roots`` and ``paths``
    come from its listing (None when it is gone), ``label_of`` maps a root category to the
    predictor's class index.
    """
    n = len(channel_scores)
    bm25 = np.array([c.get(LEXICAL, 0.0) for c in channel_scores], np.float32)
    top_bm25 = float(bm25.max()) if n else 0.0
    agreement = np.zeros(n, np.float32)
    if qc.category_probs is not None and n:
        labels = np.array([-1 if (lab := label_of(r)) is None else lab for r in roots], np.int64)
        ok = (labels >= 0) & (labels < len(qc.category_probs))
        if ok.any():
            agreement[ok] = log_agreement(qc.category_probs, labels[ok])
    used = [ch for ch, on in ((IMAGE, qc.has_image), (TEXT, qc.has_text), (LEXICAL, qc.has_text)) if on]
    fused = rrf(channel_scores, used)
    return stack_features(
        n,
        text_cos=[c.get(TEXT, 0.0) for c in channel_scores],
        image_cos=[c.get(IMAGE, 0.0) for c in channel_scores],
        bm25=bm25, bm25_share=bm25 / top_bm25 if top_bm25 > 0 else 0.0,
        title_overlap=[word_overlap(qc.words, t) if t else 0.0 for t in titles],
        category_agreement=agreement,
        root_vote=votes(roots, fused), path_vote=votes(paths, fused),
        has_text=float(qc.has_text), has_image=float(qc.has_image),
    )
