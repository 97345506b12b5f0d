"""Features of (query, candidate listing) pairs: the re-ranker's inputs, computed in one place.

Retrieval scores every candidate in every channel the query used (photos, dense text, BM25);
:func:`candidate_features` turns those scores, the candidates' catalogue fields and what the
engine made of the query into one row of features each. Serving, ``tune-ranker`` and ``evaluate``
all reach it through ``search.rank``, so the features a ranker was fit on are the ones it scores
at serving time. numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from listing_search.search.types import IMAGE, LEXICAL, TEXT

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
    "holds_words",  # the listing holds every word (search.match.holds): title or description
    "title_phrase",  # the words stand together and in order in the title ("garden table" in "Garden Table & 4 Chairs")
    "n_terms",  # how many words the query has (one to three: a buyer's; more: a seller's title)
)
VOTERS = 20  # top candidates (by reciprocal-rank fusion of the channels) whose categories vote
RRF_K = 60.0
_EPS = 1e-3


def log_agreement(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """log P(label | query), centred so a uniform belief scores 0."""
    p = np.asarray(probs, np.float64)
    return (np.log(p[np.asarray(labels, np.int64)] + _EPS) - np.log(1.0 / len(p) + _EPS)).astype(np.float32)


def word_overlap(words: frozenset[str], title_tokens: frozenset[str]) -> float:
    """Share of the query's words found in a title (a cheap lexical match)."""
    return len(words & title_tokens) / len(words) if words else 0.0


def rrf(channel_scores: dict[str, np.ndarray], channels: Sequence[str], n: int) -> np.ndarray:
    """Reciprocal-rank fusion: sum over channels of 1 / (60 + rank in that channel); ties keep order."""
    out = np.zeros(n, np.float64)
    for ch in channels:
        s = np.asarray(channel_scores.get(ch, np.full(n, -np.inf)), np.float64)
        if not np.isfinite(s).any():
            continue
        ranks = np.empty(n, np.int64)
        ranks[np.lexsort((np.arange(n), -s))] = np.arange(n)
        out += np.where(np.isfinite(s), 1.0 / (RRF_K + ranks + 1), 0.0)
    return out


def votes(groups: np.ndarray, weights: np.ndarray, voters: int = VOTERS) -> np.ndarray:
    """For each candidate: the weight of the top ``voters`` OTHER candidates in its group, over theirs.

    A listing whose category the best candidates agree on is likelier to be what was meant, whatever
    channel found it (pseudo-relevance feedback on categories). ``groups``: a 1-D array of integer codes
    (a root category's or a category path's); each group's weight is summed in the top's order.
    """
    codes = np.asarray(groups)
    if codes.ndim != 1 or (len(codes) and codes.dtype.kind not in "iu"):
        raise TypeError(f"votes groups by a 1-D array of integer codes, not {codes.dtype} of shape {codes.shape}")
    n = len(codes)
    if n == 0:
        return np.zeros(0, np.float32)
    weights = np.asarray(weights, np.float64)
    top = np.argsort(-weights, kind="stable")[:voters]
    total = float(weights[top].sum())
    labels, inverse = np.unique(codes, return_inverse=True)
    mass = np.zeros(len(labels), np.float64)
    np.add.at(mass, inverse[top], weights[top])  # unbuffered, in the top's order
    own = np.zeros(n, np.float64)
    own[top] = weights[top]
    rest = total - own
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(rest > 0, (mass[inverse] - own) / rest, 0.0)
    return out.astype(np.float32)


def stack_features(n: int, **columns) -> np.ndarray:
    """[n, len(FEATURES)] in the ranker's column order; a feature not given is 0."""
    out = np.zeros((n, len(FEATURES)), np.float32)
    for name, values in columns.items():
        out[:, FEATURES.index(name)] = values
    return out


def candidate_features(words: frozenset[str], category_probs: np.ndarray | None, has_text: bool, has_image: bool,
                       channel_scores: dict[str, np.ndarray], titles: Sequence[frozenset[str]],
                       labels: np.ndarray, roots: np.ndarray, paths: np.ndarray, held: np.ndarray | None = None,
                       phrase: np.ndarray | None = None, n_terms: int = 0) -> np.ndarray:
    """[n, len(FEATURES)]: one row per candidate, aligned with the inputs.

    ``channel_scores`` holds every candidate's score per channel the query used (a channel it did not
    use is absent and scores 0); ``titles`` are the candidates' title words (``core.text.content_words``),
    ``labels`` their root categories as the belief's class index (-1: unknown), ``roots`` and
    ``paths`` their root category and category path as any integer code (the votes group by them);
    ``held`` and ``phrase`` whether each holds the words and has them together in its title."""
    n = len(labels)
    bm25 = np.asarray(channel_scores.get(LEXICAL, np.zeros(n)), np.float32)
    top_bm25 = float(bm25.max()) if n else 0.0
    agreement = np.zeros(n, np.float32)
    labels = np.asarray(labels, np.int64)
    if category_probs is not None and n:
        ok = (labels >= 0) & (labels < len(category_probs))
        if ok.any():
            agreement[ok] = log_agreement(category_probs, labels[ok])
    used = [ch for ch, on in ((IMAGE, has_image), (TEXT, has_text), (LEXICAL, has_text)) if on]
    fused = rrf(channel_scores, used, n)
    return stack_features(
        n,
        text_cos=channel_scores.get(TEXT, 0.0),
        image_cos=channel_scores.get(IMAGE, 0.0),
        bm25=bm25, bm25_share=bm25 / top_bm25 if top_bm25 > 0 else 0.0,
        title_overlap=[word_overlap(words, t) for t in titles],
        category_agreement=agreement,
        root_vote=votes(np.asarray(roots), fused), path_vote=votes(np.asarray(paths), fused),
        has_text=float(has_text), has_image=float(has_image),
        holds_words=0.0 if held is None else held.astype(np.float32),
        title_phrase=0.0 if phrase is None else phrase.astype(np.float32),
        n_terms=float(min(n_terms, 10)),
    )
