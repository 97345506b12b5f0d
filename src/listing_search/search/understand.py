"""The first stage: what the engine makes of a query before retrieving anything.

Words are corrected against the catalogue's vocabulary, embedded once (with the words as typed
when a correction was made: MiniLM still knows "reformer" and "lenova"); a photo is embedded once
through the photo queue. The root-category belief the ranker reads is the category predictor's,
times (for words) the categories of the catalogue listings whose text is nearest; a photo search
also shows a belief its nearest listings voted on (``shown_probs``), which only the display reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from listing_search.core.maths import softmax, unit_rows
from listing_search.core.query import Filters, Query
from listing_search.core.text import match_terms
from listing_search.errors import TextSearchUnavailable
from listing_search.index.catalog import CatalogView
from listing_search.index.live import LiveIndexes
from listing_search.models.bundle import ModelBundle
from listing_search.search.candidates import Allowed, Retriever
from listing_search.search.types import IMAGE, TEXT, Candidates, Understanding

KNN_NEIGHBOURS, KNN_TEMPERATURE, KNN_SMOOTHING = 10, 0.05, 1e-3  # the words' vote, chosen on the val split
PHOTO_VOTERS, PHOTO_VOTE_TEMPERATURE = 20, 0.1  # the photo's vote, chosen on the val split (docs/ranking.md)
HOLDER_SMOOTHING = 1.0  # listings' worth spread over the categories of the holder vote

PhotoEmbedder = Callable[[bytes], tuple[np.ndarray, np.ndarray | None]]  # photo -> (vector, vision probs)


@dataclass(frozen=True)
class Encoders:
    """The query encoders: a photo (through the serving process's photo queue) and words."""

    photo: PhotoEmbedder
    text: object | None  # text.encoder.TextEncoder-like: encode(list[str]) -> [n, d] unit rows
    vision_categories: tuple[str, ...] = ()  # the vision head's classes, for a photo without a predictor


class Understander:
    """``understand``: spelling, embeddings, category beliefs; reads memory only."""

    def __init__(self, live: LiveIndexes, retriever: Retriever, encoders: Encoders, models: ModelBundle,
                 holder_vote_weight: float = 1.0) -> None:
        self.live, self.retriever, self.encoders, self.models = live, retriever, encoders, models
        self.holder_vote_weight = holder_vote_weight

    def understand(self, query: Query, catalog: CatalogView, show: bool = True) -> Understanding:
        """What the engine makes of ``query``; ``show`` also finds the belief a photo search shows."""
        if query.text and (self.encoders.text is None or self.live.text is None):
            raise TextSearchUnavailable("text search is not available: no text model or text index is loaded")
        words, corrections = self.correct(query.text, query.spelling)
        image_vecs, vision_probs = self.photo_vectors(query)
        text_vec = self.text_vector(words, query.text, bool(corrections))
        image_vec = None if image_vecs is None else unit_rows(np.asarray(image_vecs, np.float32).mean(0))
        terms = tuple(match_terms(words))
        text_pool = self.shared_text_pool(catalog, text_vec, query.exclude)
        lexical = self.live.lexical
        holders = lexical.holding(list(terms))[0] if lexical is not None and terms else None
        probs = self.category_probs(catalog, text_vec, image_vec, words, query.exclude, terms, text_pool, holders)
        pool, shown = None, None
        if show and probs is not None and self.votes_on_photos(image_vec):
            pool = self.retriever.photo_pool(image_vecs, Allowed.of(catalog, Filters(), query.exclude))
            shown = self.shown_probs(catalog, probs, pool)
        speller = self.live.speller
        unknown = bool(words and not query.has_image and speller is not None and speller.known_words(words) == 0)
        return Understanding(query, words, tuple(corrections), terms, unknown, text_vec,
                             image_vecs, vision_probs, probs, shown, pool, text_pool, holders)

    def shared_text_pool(self, catalog: CatalogView, text_vec: np.ndarray | None,
                         exclude: frozenset[int]) -> Candidates | None:
        """The words' unfiltered text candidates, searched once for both the neighbour vote (its
        first ``KNN_NEIGHBOURS``) and retrieval (reused when no filter narrows it); None when they
        cannot be shared (an exclusion, fewer candidates than the vote reads, or an HNSW text index,
        whose search for 200 is not the search for 40 and more)."""
        text = self.live.text
        if text_vec is None or exclude or self.retriever.settings.candidates < 4 * KNN_NEIGHBOURS \
                or text is None or not text.prefix_stable:
            return None
        return self.retriever.text_pool(text_vec, Allowed.of(catalog, Filters(), frozenset()))

    def correct(self, text: str | None, spelling: bool) -> tuple[str | None, list[tuple[str, str]]]:
        """The words to search (spelling corrected when asked) and the (typed, searched) pairs."""
        speller = self.live.speller
        if not text or not spelling or speller is None:
            return text, []
        lexical = self.live.lexical
        fixed = speller.correct(text, lexical.cooccurrence if lexical is not None else None)
        return (fixed.corrected, list(fixed.replacements)) if fixed.changed else (text, [])

    def photo_vectors(self, query: Query) -> tuple[np.ndarray | None, np.ndarray | None]:
        if query.image_vecs is not None:
            return np.atleast_2d(np.asarray(query.image_vecs, np.float32)), None
        if query.image is None:
            return None, None
        vec, probs = self.encoders.photo(query.image)
        return np.asarray(vec, np.float32)[None], probs

    def text_vector(self, words: str | None, typed: str | None, corrected: bool) -> np.ndarray | None:
        """Unit vector of the words searched; a corrected query's is the mean of typed and corrected."""
        encoder = self.encoders.text
        if not words or encoder is None:
            return None
        vecs = encoder.encode([words, typed] if corrected else [words])
        return unit_rows(vecs.sum(0)) if corrected else np.asarray(vecs[0], np.float32)

    # ------------------------------------------------------------- category beliefs
    def votes_on_photos(self, image_vec: np.ndarray | None) -> bool:
        """Whether a photo's neighbours vote on the category shown for it (``tune-ranker`` fit it so)."""
        p = self.models.predictor
        return p is not None and p.photo_vote_weight > 0 and image_vec is not None and p.image_dim == len(image_vec)

    def category_probs(self, catalog: CatalogView, text_vec: np.ndarray | None, image_vec: np.ndarray | None,
                       words: str | None = None, exclude: frozenset[int] = frozenset(),
                       terms: tuple[str, ...] = (), text_pool: Candidates | None = None,
                       holders: np.ndarray | None = None) -> np.ndarray | None:
        """P(root category | words and/or photo), the belief the ranker's features read: the fused
        predictor times, for words, the categories of the listings nearest to them and of the
        listings holding them (``holder_vote``); None without a predictor."""
        predictor = self.models.predictor
        if predictor is None or (text_vec is None and image_vec is None):
            return None
        if image_vec is not None and predictor.image_dim != len(image_vec):
            image_vec = None
            if text_vec is None:
                return None
        probs = predictor.predict_proba(None if text_vec is None else text_vec[None],
                                        None if image_vec is None else image_vec[None],
                                        None if words is None else [words])[0]
        if text_vec is None:
            return probs
        vote = self.neighbour_vote(catalog, text_vec, exclude, text_pool)
        if vote is not None:
            probs = softmax(np.log(np.maximum(probs, 1e-12)) + np.log(vote))
        held = self.holder_vote(catalog, terms, exclude, holders)
        if held is None:
            return probs
        return softmax(np.log(np.maximum(probs, 1e-12)) + self.holder_vote_weight * np.log(held))

    def holder_vote(self, catalog: CatalogView, terms: tuple[str, ...], exclude: frozenset[int] = frozenset(),
                    holders: np.ndarray | None = None) -> np.ndarray | None:
        """Root categories of the catalogue listings holding every one of ``terms``, as shares with
        ``HOLDER_SMOOTHING`` listings' worth spread evenly; None when no listing holds them. A buyer's
        one or two words rarely tell the category alone ("mens parka"), but how the catalogue's
        listings that hold them are categorised does. ``holders``: their keys, when already found."""
        lexical = self.live.lexical
        if lexical is None or not terms or self.holder_vote_weight <= 0:
            return None
        keys = lexical.holding(list(terms))[0] if holders is None else holders
        if exclude:
            keys = keys[~np.isin(keys, np.fromiter(exclude, np.int64, len(exclude)))]
        rows = catalog.rows_of_keys(keys)
        rows = rows[rows >= 0]
        if not len(rows):
            return None
        roots, at = np.unique(catalog.root[rows], return_inverse=True)  # a label per root, not per listing
        labels = self.models.labels_of([catalog.roots.values[c] for c in roots])[at.reshape(-1)]
        counts = np.bincount(labels[labels >= 0], minlength=len(self.models.categories)).astype(np.float64)
        vote = counts + HOLDER_SMOOTHING / len(counts)
        return vote / vote.sum()

    def shown_probs(self, catalog: CatalogView, probs: np.ndarray, pool: Candidates) -> np.ndarray:
        """The belief a photo search shows: ``probs`` times :meth:`photo_vote`, to the predictor's
        ``photo_vote_weight``. The pool is unfiltered, so the shown category never depends on
        filters, ``k`` or the page.

        Only what is shown: fed to the ranker it moved no search metric (docs/ranking.md)."""
        vote = self.photo_vote(catalog, pool)
        if vote is None:
            return probs
        return softmax(np.log(np.maximum(probs, 1e-12)) + self.models.predictor.photo_vote_weight * np.log(vote))

    def photo_vote(self, catalog: CatalogView, pool: Candidates) -> np.ndarray | None:
        """Root categories of the ``PHOTO_VOTERS`` listings of ``pool`` whose best photo is nearest the
        query photo, weighted by exp(cosine / ``PHOTO_VOTE_TEMPERATURE``); chosen on the val split
        (category of a val photo: predictor 0.506, times this vote to the power 0.3, 0.528)."""
        scores = pool.score(IMAGE)
        best = sorted(zip((-scores).tolist(), pool.keys.tolist(), pool.rows.tolist()))[:PHOTO_VOTERS]
        return self.vote(catalog, [(-s, r) for s, _, r in best], PHOTO_VOTE_TEMPERATURE)

    def neighbour_vote(self, catalog: CatalogView, text_vec: np.ndarray, exclude: frozenset[int] = frozenset(),
                       text_pool: Candidates | None = None) -> np.ndarray | None:
        """Root categories of the ``KNN_NEIGHBOURS`` listings whose text is nearest the words, weighted by
        exp(cosine / ``KNN_TEMPERATURE``); chosen on the val split (category of a val title: predictor
        0.730, times this vote 0.768). ``text_pool``: the words' unfiltered text candidates, nearest
        first (``shared_text_pool``), read instead of searching again."""
        if text_pool is not None:
            pairs = list(zip(text_pool.score(TEXT)[:KNN_NEIGHBOURS].tolist(),
                             text_pool.rows[:KNN_NEIGHBOURS].tolist()))
        else:
            pairs = self.retriever.nearest_texts(catalog, text_vec, KNN_NEIGHBOURS, exclude)
        return self.vote(catalog, pairs, KNN_TEMPERATURE)

    def vote(self, catalog: CatalogView, pairs: list[tuple[float, int]], temperature: float) -> np.ndarray | None:
        """Root categories of the (cosine, catalogue row) ``pairs``, each weighted exp((cosine - best) /
        ``temperature``), smoothed by ``KNN_SMOOTHING`` and normalised; None without pairs."""
        if not pairs:
            return None
        top = max(sc for sc, _ in pairs)
        vote = np.full(len(self.models.categories), KNN_SMOOTHING)
        for sc, row in pairs:
            label = self.models.label_of(catalog.root_name(row))
            if label is not None and label < len(vote):
                vote[label] += np.exp((sc - top) / temperature)
        return vote / vote.sum()
