"""Saved searches matched against new listings: which saved searches a listing alerts (issue 33).

A listing alerts a saved search when it was first logged after the search was saved and it is in
the search's match set M without being in its related tail (``search.match.alerting_rows``): it
holds the words, reaches the relevance threshold, or holds a near-identical photo, and the page
would not call it related. A saved search runs as saved: the words searched (spelling corrected
when it was saved, not again), the photo's embedding, the filters.

Matching scales by indexing the saved searches (:class:`SavedSearchIndex`), so a batch of new
listings is checked against the few searches that can match, by three kinds:

* **a buyer's one to three words** (with or without a photo): M's non-related members are exactly
  the listings holding the words and passing the filters, whatever else the catalogue holds. Each
  search sits under one of its terms (the longest); a listing meets only the searches under its
  own terms, each then checked for every term and the filters. No search path runs.
* **filters alone**: M is every listing passing them. Searches sit under their category's root
  (or under "any"); each is checked against the listing's fields.
* **the rest** (a photo alone, more than three words, words without a content term): holders of
  the words alert as above; anything else only by relevance or a near-identical photo, which
  depend on the catalogue around the listing (BM25 shares, category votes). Such a search is run
  through the search path (``SearchPipeline.alerting``, on the caller's catalogue view) only when
  some new listing passes its filters and has a near-identical photo or an *upper bound* of its
  relevance that reaches the threshold: the ordinal ranker's score maximised over the features
  that depend on the other candidates (BM25 share, category votes, the category belief), through
  the monotone calibration. Exact: a listing the bound rules out cannot reach the threshold.
  Another ranker kind has no bound, and every such search passing the filters is run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import numpy as np

from listing_search.core.maths import unit_rows
from listing_search.core.query import TEXT_SHORT, Filters, Page, Query, mode_of, path_segments
from listing_search.core.text import content_words, match_terms
from listing_search.index.catalog import NONE, CatalogView
from listing_search.index.lexical import MAX_QUERY_TERMS
from listing_search.models.bundle import ModelBundle
from listing_search.search.features import FEATURES, log_agreement
from listing_search.search.pipeline import SearchPipeline
from listing_search.search.rank import MAX_TIERED_TERMS, NEAR_DUPLICATE

log = logging.getLogger(__name__)

WORDS, BROWSE, RANKED = "words", "browse", "ranked"  # how a saved search is matched
ANY = ""  # the browse index's key for searches without a category filter
SLACK = 1e-5  # float32 features and scores: a bound this close to the threshold still runs the search
CONTEXT = ("bm25_share", "root_vote", "path_vote", "category_agreement", "title_phrase")


@dataclass(frozen=True, eq=False)
class SavedSearch:
    """A saved search as the matcher holds it."""

    id: int
    created_seq: int  # listings first logged at or before this log sequence never alert
    words: str | None  # the words searched, as corrected when saved
    filters: Filters
    text_vec: np.ndarray | None
    image_vec: np.ndarray | None  # the photo's embedding, unit length
    terms: tuple[str, ...] = field(default=())

    @classmethod
    def of(cls, id: int, created_seq: int, words: str | None, filters: Filters, text_vec: np.ndarray | None,
           image_vec: np.ndarray | None) -> "SavedSearch":
        image = None if image_vec is None else unit_rows(np.asarray(image_vec, np.float32)[None])[0]
        text = None if text_vec is None else unit_rows(np.asarray(text_vec, np.float32)[None])[0]
        return cls(int(id), int(created_seq), words or None, filters, text, image,
                   tuple(match_terms(words)) if words else ())

    @property
    def held_terms(self) -> tuple[str, ...]:
        """The terms a listing must hold (the BM25 index's holding query takes the first 32)."""
        return self.terms[:MAX_QUERY_TERMS]

    def kind(self, word_tiers: bool = True) -> str:
        """WORDS (a buyer's words: holders only), BROWSE (filters alone) or RANKED (the search path decides)."""
        if not self.words and self.image_vec is None:
            return BROWSE
        if word_tiers and self.words and 1 <= len(self.terms) <= MAX_TIERED_TERMS:
            return WORDS
        return RANKED

    def query(self) -> Query:
        """The search as it runs: the words as saved (no second correction), the photo's vector."""
        return Query(text=self.words, image_vecs=None if self.image_vec is None else self.image_vec[None],
                     filters=self.filters, page=Page(1), spelling=False)


@dataclass(frozen=True)
class NewListing:
    """A listing the change log names, as the matcher meets it: its catalogue row, its first log entry."""

    row: int
    key: int
    listing_id: str
    first_seq: int  # the sequence of its add
    seq: int  # the log entry being matched


@dataclass
class _Rows:
    """Ids and unit vectors of the ranked searches that have one (photos, or words' text vectors)."""

    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    vectors: np.ndarray | None = None


class SavedSearchIndex:
    """The saved searches, indexed by what can make a listing match them; not thread-safe (one matcher)."""

    def __init__(self, word_tiers: bool = True, bm25_terms=None) -> None:
        self.word_tiers = word_tiers
        self.bm25_terms = bm25_terms or (lambda text: set(match_terms(text)))  # text -> its BM25 index terms
        self.searches: dict[int, SavedSearch] = {}
        self._by_term: dict[str, set[int]] = {}  # WORDS and RANKED-with-terms searches, by their longest term
        self._browse: dict[str, set[int]] = {}  # BROWSE searches by their category's root (ANY: none)
        self._ranked: set[int] = set()
        self._ranked_terms: dict[str, set[int]] = {}  # RANKED searches by each BM25 term of their words
        self._photos, self._texts = _Rows(), _Rows()
        self._dirty = False

    def __len__(self) -> int:
        return len(self.searches)

    def add(self, s: SavedSearch) -> None:
        if s.id in self.searches:
            return
        self.searches[s.id] = s
        kind = s.kind(self.word_tiers)
        if s.terms:
            self._by_term.setdefault(anchor(s.held_terms), set()).add(s.id)
        if kind == BROWSE:
            self._browse.setdefault(_root_key(s.filters.category), set()).add(s.id)
        elif kind == RANKED:
            self._ranked.add(s.id)
            for t in self.bm25_terms(s.words or ""):
                self._ranked_terms.setdefault(t, set()).add(s.id)
            self._dirty = True

    def remove(self, search_id: int) -> None:
        s = self.searches.pop(int(search_id), None)
        if s is None:
            return
        if s.terms:
            self._by_term.get(anchor(s.held_terms), set()).discard(s.id)
        self._browse.get(_root_key(s.filters.category), set()).discard(s.id)
        if s.id in self._ranked:
            self._ranked.discard(s.id)
            for t in self.bm25_terms(s.words or ""):
                self._ranked_terms.get(t, set()).discard(s.id)
            self._dirty = True

    def keep_only(self, ids: set[int]) -> int:
        """Drop the searches not in ``ids`` (deleted or expired in the store); returns how many."""
        gone = [i for i in self.searches if i not in ids]
        for i in gone:
            self.remove(i)
        return len(gone)

    # ------------------------------------------------------------- candidates
    def holders(self, terms: set[str]) -> Iterable[SavedSearch]:
        """Searches with words whose every term is in ``terms`` (a listing's)."""
        for t in terms:
            for sid in self._by_term.get(t, ()):
                s = self.searches[sid]
                if all(x in terms for x in s.held_terms):
                    yield s

    def browsing(self, category_path: str) -> Iterable[SavedSearch]:
        """Searches of filters alone that a listing of this category may pass."""
        segs = path_segments(category_path)
        for key in {ANY, segs[0] if segs else ANY}:
            for sid in self._browse.get(key, ()):
                yield self.searches[sid]

    def ranked(self) -> tuple[list[int], _Rows, _Rows]:
        """The RANKED searches' ids, and the photo and text vectors of those that have them."""
        if self._dirty:
            self._photos = _rows([self.searches[i] for i in sorted(self._ranked)], "image_vec")
            self._texts = _rows([self.searches[i] for i in sorted(self._ranked)], "text_vec")
            self._dirty = False
        return sorted(self._ranked), self._photos, self._texts

    def ranked_sharing(self, text: str) -> set[int]:
        """RANKED searches whose words share a BM25 term with ``text`` (the others' BM25 for it is 0)."""
        return set().union(*(self._ranked_terms.get(t, set()) for t in self.bm25_terms(text)))


class AlertMatcher:
    """Which saved searches each new listing alerts, over one replica's search path (memory only)."""

    def __init__(self, pipeline: SearchPipeline, index: SavedSearchIndex) -> None:
        self.index = index
        self.cache = TextVectors(pipeline.encoders.text)
        self.pipeline = SearchPipeline(pipeline.live, replace(pipeline.encoders, text=self.cache), pipeline.models,
                                       pipeline.settings, pipeline.categories)
        self.runs = 0  # searches run through the search path (the bound's misses cost these)

    @property
    def models(self) -> ModelBundle:
        return self.pipeline.models

    def add(self, s: SavedSearch) -> None:
        if s.words and s.text_vec is not None:
            self.cache.known[s.words] = np.asarray(s.text_vec, np.float32)
        self.index.add(s)

    def match(self, catalog: CatalogView, new: list[NewListing]) -> list[tuple[int, NewListing]]:
        """(saved search id, listing) of every alert these new listings make; each pair once."""
        found: dict[tuple[int, int], NewListing] = {}
        to_run: set[int] = set()
        for listing in new:
            if listing.row == NONE or not catalog.alive[listing.row]:
                continue  # deleted since: nothing to alert on
            for s in self._held_or_browsed(catalog, listing):
                found.setdefault((s.id, listing.key), listing)
            to_run |= self._worth_running(catalog, listing)
        for sid in sorted(to_run):
            s = self.index.searches[sid]
            rows = set(self.pipeline.alerting(s.query(), catalog).tolist())
            self.runs += 1
            for listing in new:
                if listing.row in rows and listing.first_seq > s.created_seq:
                    found.setdefault((sid, listing.key), listing)
        return [(sid, listing) for (sid, _), listing in sorted(found.items(), key=lambda kv: kv[0])]

    def _held_or_browsed(self, catalog: CatalogView, listing: NewListing) -> list[SavedSearch]:
        """Searches the listing alerts without running them: it holds their words (a buyer's words, or
        the words of a ranked search: holders are always in M), or it passes their filters alone."""
        row = listing.row
        terms = set(match_terms(f"{catalog.title[row]} {catalog.description[row]}"))
        price, path, place = _fields(catalog, row)
        out = []
        for s in [*self.index.holders(terms), *self.index.browsing(path)]:
            if listing.first_seq > s.created_seq and s.filters.admits(price, path, place) and not self._unknown(s):
                out.append(s)
        return out

    def _unknown(self, s: SavedSearch) -> bool:
        """Words alone that no listing uses (as the speller counts words): M is empty (``Understanding``)."""
        speller = self.pipeline.live.speller
        return bool(s.words) and s.image_vec is None and speller is not None and speller.known_words(s.words) == 0

    def _worth_running(self, catalog: CatalogView, listing: NewListing) -> set[int]:
        """RANKED searches this listing might enter by relevance or a near-identical photo (the bound)."""
        ids, photos, texts = self.index.ranked()
        if not ids:
            return set()
        row = listing.row
        price, path, place = _fields(catalog, row)
        searches = [self.index.searches[i] for i in ids]
        live = np.array([listing.first_seq > s.created_seq and s.filters.admits(price, path, place)
                         for s in searches], bool)
        if not live.any():
            return set()
        image_cos = _scores(photos, ids, self._photo_vectors(catalog, row))
        near = image_cos >= NEAR_DUPLICATE - SLACK
        reach = self._relevance_may_reach(catalog, listing, searches, image_cos)
        return {i for i, keep in zip(ids, live & (near | reach)) if keep}

    def _relevance_may_reach(self, catalog: CatalogView, listing: NewListing, searches: list[SavedSearch],
                             image_cos: np.ndarray) -> np.ndarray:
        """Whether each search's relevance for the listing may reach its mode's threshold (an upper bound)."""
        models = self.models
        modes = [_calibration_mode(s) for s in searches]
        thresholds = np.array([np.nan if (t := models.no_match_below(m)) is None else t for m in modes], np.float64)
        if models.calibration is None or not models.fitted or np.isnan(thresholds).all():
            return np.zeros(len(searches), bool)  # uncalibrated: no relevance to reach
        bound = RelevanceBound.of(models)
        if bound is None:
            return ~np.isnan(thresholds)  # a ranker kind without a bound: run every search
        lo, hi = self._features(catalog, listing, searches, image_cos)
        best = bound.upper(lo, hi, modes)
        return ~np.isnan(thresholds) & (best >= thresholds - SLACK)

    def _features(self, catalog: CatalogView, listing: NewListing, searches: list[SavedSearch],
                  image_cos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The ranker's features of the listing for each search, as [low, high] ranges: exact where they
        depend on the two alone, the whole possible range where they depend on the other candidates."""
        row, n = listing.row, len(searches)
        f = {name: i for i, name in enumerate(FEATURES)}
        lo = np.zeros((n, len(FEATURES)), np.float32)
        text_vec = self._text_vector(listing.key)
        lo[:, f["text_cos"]] = [0.0 if s.text_vec is None or text_vec is None else float(np.dot(s.text_vec, text_vec))
                                for s in searches]
        lo[:, f["image_cos"]] = image_cos
        lo[:, f["has_text"]] = [float(bool(s.words) or s.text_vec is not None) for s in searches]
        lo[:, f["has_image"]] = [float(s.image_vec is not None) for s in searches]
        lo[:, f["n_terms"]] = [float(min(len(s.terms), 10)) for s in searches]
        hi = lo.copy()
        text = f"{catalog.title[row]} {catalog.description[row]}"
        terms, title = set(match_terms(text)), content_words(catalog.title[row])
        sharing = self.index.ranked_sharing(text)
        for i, s in enumerate(searches):
            if not s.words:
                continue
            held = float(bool(s.terms) and all(t in terms for t in s.terms))
            words = content_words(s.words)
            bm25 = self._bm25(s.words, listing.key) if s.id in sharing else 0.0
            lo[i, f["bm25"]] = hi[i, f["bm25"]] = bm25
            lo[i, f["holds_words"]] = hi[i, f["holds_words"]] = held
            lo[i, f["title_overlap"]] = hi[i, f["title_overlap"]] = len(words & title) / len(words) if words else 0.0
            hi[i, f["bm25_share"]] = 1.0 if bm25 > 0 else 0.0
            hi[i, f["title_phrase"]] = held
        hi[:, f["root_vote"]] = hi[:, f["path_vote"]] = 1.0
        if self.models.predictor is not None:  # the belief moves with the catalogue: its whole range
            c = max(2, len(self.models.categories))
            lo[:, f["category_agreement"]], hi[:, f["category_agreement"]] = log_agreement(
                np.eye(c)[1], np.array([0, 1]))
        return lo, hi

    def _bm25(self, words: str, key: int) -> float:
        live, settings = self.pipeline.live, self.pipeline.settings
        if live.lexical is None or not settings.lexical:
            return 0.0  # no BM25 channel: the feature is 0 in the search too
        return float(live.lexical.scores(words, [key])[0])

    def _photo_vectors(self, catalog: CatalogView, row: int) -> np.ndarray | None:
        vids = np.array(catalog.vector_ids[row], np.int64)
        if not len(vids):
            return None
        live = self.pipeline.live
        with live.lock:
            _, x = live.image.reconstruct_present(vids)
        return unit_rows(x) if len(x) else None

    def _text_vector(self, key: int) -> np.ndarray | None:
        live = self.pipeline.live
        if live.text is None:
            return None
        with live.lock:
            keys, x = live.text.reconstruct_present(np.array([key], np.int64))
        return x[0] / (float(np.linalg.norm(x[0])) or 1.0) if len(keys) else None


@dataclass(frozen=True)
class RelevanceBound:
    """The ordinal ranker's score maximised over feature ranges, then calibrated per mode (isotonic:
    monotone, so the calibrated maximum bounds the relevance)."""

    models: ModelBundle
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    biases: np.ndarray

    @classmethod
    def of(cls, models: ModelBundle) -> "RelevanceBound | None":
        r = models.ranker
        if not all(hasattr(r, a) for a in ("mean", "scale", "weights", "biases")) or list(r.features) != list(FEATURES):
            return None
        return cls(models, np.asarray(r.mean, np.float64), np.asarray(r.scale, np.float64),
                   np.asarray(r.weights, np.float64), np.asarray(r.biases, np.float64))

    def upper(self, lo: np.ndarray, hi: np.ndarray, modes: list[str | None]) -> np.ndarray:
        """The highest calibrated relevance any features within [lo, hi] (rows) can have, per row."""
        a = (np.asarray(lo, np.float64) - self.mean) / self.scale
        b = (np.asarray(hi, np.float64) - self.mean) / self.scale
        z = np.stack([np.maximum(a * w, b * w).sum(axis=1) + bias for w, bias in zip(self.weights, self.biases)], 1)
        score = (1.0 / (1.0 + np.exp(-z))).sum(axis=1)
        out = np.full(len(score), -np.inf)
        for mode in set(modes):
            if mode is None:
                continue
            at = np.array([m == mode for m in modes])
            out[at] = self.models.relevance(score[at], mode)
        return out


class TextVectors:
    """The text encoder, answering the saved searches' words from their stored vectors (no model run)."""

    def __init__(self, encoder: object | None) -> None:
        self.encoder, self.known = encoder, {}
        self.dim = getattr(encoder, "dim", None)

    def encode(self, texts: list[str]) -> np.ndarray:
        if all(t in self.known for t in texts):
            return np.stack([self.known[t] for t in texts])
        if self.encoder is None:
            raise ValueError("no text encoder")
        return self.encoder.encode(texts)


def _calibration_mode(s: SavedSearch) -> str | None:
    """The mode the search's relevance is calibrated in (``search.rank.calibration_mode``)."""
    if s.words and 1 <= len(s.terms) <= MAX_TIERED_TERMS and s.image_vec is None:
        return TEXT_SHORT
    return mode_of(bool(s.words) or s.text_vec is not None, s.image_vec is not None)


def anchor(terms: tuple[str, ...]) -> str:
    """The term a search with words is indexed under: its longest (likely its rarest), ties by spelling."""
    return max(terms, key=lambda t: (len(t), t))


def _root_key(category: str | None) -> str:
    segs = path_segments(category)
    return segs[0] if segs else ANY


def _fields(catalog: CatalogView, row: int) -> tuple[float | None, str, str]:
    price = float(catalog.price[row])
    return (None if price != price else price), catalog.path_name(row), catalog.locations.values[catalog.location[row]]


def _rows(searches: list[SavedSearch], attr: str) -> _Rows:
    have = [s for s in searches if getattr(s, attr) is not None]
    if not have:
        return _Rows()
    return _Rows(np.array([s.id for s in have], np.int64), np.stack([getattr(s, attr) for s in have]).astype(np.float32))


def _scores(rows: _Rows, ids: list[int], vectors: np.ndarray | None) -> np.ndarray:
    """Each search's best cosine with any of ``vectors`` (0 for searches without one), aligned with ``ids``."""
    out = np.zeros(len(ids), np.float32)
    if vectors is None or rows.vectors is None or rows.vectors.shape[1] != vectors.shape[1]:
        return out
    best = (rows.vectors @ vectors.T).max(axis=1)
    at = {i: p for p, i in enumerate(ids)}
    out[[at[i] for i in rows.ids.tolist()]] = best
    return out
