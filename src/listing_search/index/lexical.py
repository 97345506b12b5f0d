"""A live BM25 index over listing titles and descriptions (tantivy, in RAM).

The lexical channel finds listings that share the query's exact words (brand names, model numbers,
"ikea", "256gb") which a sentence embedding blurs. It is kept current like the vector indexes:
``upsert`` and ``remove`` commit and reload at once, so a search right after sees the change.

Queries are never handed to tantivy's query parser: the text goes through the same analyzer the
index uses (one ``TextAnalyzer`` object, registered on the index and used for queries), and the
query is built from term queries. User input such as ``"a:b (c" AND -`` is therefore just words.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import numpy as np
import tantivy

from listing_search.core.text import match_terms

KEY, TITLE, BODY, TERMS = "key", "title", "body", "terms"
ANALYZER = "listing_en"
TERMS_ANALYZER = "listing_terms"  # the terms of core.text.match_terms, written space-separated
TITLE_BOOST = 2.0
MAX_QUERY_TERMS = 32  # bounds the cost of a pasted paragraph; BM25 gains nothing past this
MAX_WORD_CHARS = 40  # tantivy's own en_stem limit: longer "words" are base64 blobs and URLs
# An allowed set up to this fraction of the index becomes a term-set clause; a denser one filters an
# over-fetched list. At 10k docs, k=50: 100 keys 1.9 ms in the query vs 16 ms over-fetched; 1,000 keys
# 3.9 vs 3.2 ms; 5,000 keys 8.8 vs 0.7 ms (a term-set clause costs about 1.5 us a key).
FILTER_IN_QUERY_DENSITY = 0.1
WRITER_HEAP = 50_000_000  # tantivy needs >= 15 MB per writer thread; one thread keeps the CPU light


def _analyzer() -> tantivy.TextAnalyzer:
    """tantivy's ``en_stem`` chain plus ASCII folding, so "cafe" finds "café" and "sofas" finds "sofa"."""
    return (tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
            .filter(tantivy.Filter.remove_long(MAX_WORD_CHARS))
            .filter(tantivy.Filter.lowercase())
            .filter(tantivy.Filter.ascii_fold())
            .filter(tantivy.Filter.stemmer("english"))
            .build())


def _schema() -> tantivy.Schema:
    """Key (u64, indexed for deletes and filters, fast for reading hits back), title and body text."""
    builder = tantivy.SchemaBuilder()
    builder.add_unsigned_field(KEY, stored=True, indexed=True, fast=True)
    builder.add_text_field(TITLE, tokenizer_name=ANALYZER)
    builder.add_text_field(BODY, tokenizer_name=ANALYZER)
    builder.add_text_field(TERMS, tokenizer_name=TERMS_ANALYZER)
    return builder.build()


def _document(key: int, title: str, body: str) -> tantivy.Document:
    """Built field by field: ``Document(key=...)`` stores a Python int as i64, which a u64 field rejects."""
    doc = tantivy.Document()
    doc.add_unsigned(KEY, int(key))
    doc.add_text(TITLE, title or "")
    doc.add_text(BODY, body or "")
    doc.add_text(TERMS, " ".join(match_terms(f"{title or ''} {body or ''}")))
    return doc


class LexicalIndex:
    """BM25 over titles (boost 2) and descriptions (boost 1), keyed by the listing's integer key.

    Writes are serialised by a lock; searches take a searcher snapshot and run concurrently.
    """

    def __init__(self) -> None:
        self._schema = _schema()
        self._analyzer = _analyzer()
        self._index = tantivy.Index(self._schema)
        self._index.register_tokenizer(ANALYZER, self._analyzer)
        self._index.register_tokenizer(TERMS_ANALYZER, tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.whitespace()).build())
        self._writer = self._index.writer(heap_size=WRITER_HEAP, num_threads=1)
        self._lock = threading.Lock()

    @classmethod
    def build(cls, items: Iterable[tuple[int, str, str]]) -> LexicalIndex:
        """A new index holding ``items`` (key, title, description), committed once."""
        index = cls()
        index.upsert(items)
        return index

    @property
    def size(self) -> int:
        """Number of live documents (deleted ones are not counted)."""
        return self._index.searcher().num_docs

    def __len__(self) -> int:
        return self.size

    def upsert(self, items: Iterable[tuple[int, str, str]]) -> None:
        """Replace or add each (key, title, description); one commit for the whole batch.

        Each delete precedes its add, so a key repeated within a batch keeps its last version.
        """
        with self._lock:
            for key, title, body in items:
                self._delete_key(key)
                self._writer.add_document(_document(key, title, body))
            self._commit()

    def remove(self, keys: Iterable[int]) -> None:
        """Delete every document with one of ``keys``; unknown keys are ignored."""
        keys = [int(k) for k in keys]
        if not keys:
            return
        with self._lock:
            self._writer.delete_documents_by_query(tantivy.Query.term_set_query(self._schema, KEY, keys))
            self._commit()

    def search(self, text: str, k: int, allowed: set[int] | None = None,
               exclude: set[int] | frozenset[int] = frozenset()) -> list[tuple[int, float]]:
        """The best ``k`` (key, BM25 score) pairs, best first; [] when the text has no words.

        A sparse ``allowed`` set and any ``exclude`` set become clauses of the query, so exactly the
        permitted documents are scored; a dense ``allowed`` set is applied to an over-fetched list.
        """
        words = self.words(text)
        if not words or k <= 0 or (allowed is not None and not allowed):
            return []
        query = self._words_query(words)
        searcher = self._index.searcher()
        if allowed is not None and len(allowed) <= FILTER_IN_QUERY_DENSITY * searcher.num_docs:
            query = self._restrict(query, allowed)
            allowed = None
        if exclude:
            query = query.and_must_not_match(tantivy.Query.term_set_query(self._schema, KEY, _ints(exclude)))
        if allowed is None:
            return self._top(searcher, query, k)
        return self._top_allowed(searcher, query, k, allowed)

    def scores(self, text: str, keys: list[int]) -> np.ndarray:
        """BM25 score of each of ``keys`` (0 where it matches no word or is not indexed), in one query."""
        out = np.zeros(len(keys), dtype=np.float32)
        words = self.words(text)
        if not words or not keys:
            return out
        query = self._restrict(self._words_query(words), set(keys))
        found = dict(self._top(self._index.searcher(), query, len(set(keys))))
        for i, key in enumerate(keys):
            out[i] = found.get(int(key), 0.0)
        return out

    def count_holding(self, terms: list[str]) -> int:
        """How many listings hold every one of ``terms`` (0 for no terms)."""
        query = self._holding_query(terms)
        return 0 if query is None else int(self._index.searcher().search(query, limit=1, count=True).count)

    def _holding_query(self, terms: list[str]) -> tantivy.Query | None:
        terms = list(dict.fromkeys(terms))[:MAX_QUERY_TERMS]
        if not terms:
            return None
        return tantivy.Query.boolean_query([(tantivy.Occur.Must, tantivy.Query.term_query(self._schema, TERMS, t))
                                            for t in terms])

    def holding(self, terms: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(keys, BM25 over the terms) of every listing whose title or description holds all ``terms``
        (``core.text.match_terms``), best first, ties by key; empty for no terms."""
        query = self._holding_query(terms)
        if query is None:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        searcher = self._index.searcher()
        count = searcher.search(query, limit=1, count=True).count
        found = self._top(searcher, query, count) if count else []
        keys = np.array([k for k, _ in found], np.int64)
        scores = np.array([s for _, s in found], np.float32)
        order = np.lexsort((keys, -scores))
        return keys[order], scores[order]

    def cooccurrence(self, word: str, others: list[str]) -> int:
        """Documents holding ``word`` and at least one of ``others`` (spelling's context: of two
        corrections equally close, the one listed with the query's other words is meant)."""
        mine, context = self.words(word), self.words(" ".join(others))
        if not mine or not context:
            return 0
        def anywhere(term: str) -> tantivy.Query:
            return tantivy.Query.boolean_query([(tantivy.Occur.Should, tantivy.Query.term_query(self._schema, f, term))
                                                for f in (TITLE, BODY)])
        must = [(tantivy.Occur.Must, anywhere(t)) for t in mine]
        should = tantivy.Query.boolean_query([(tantivy.Occur.Should, anywhere(t)) for t in context])
        query = tantivy.Query.boolean_query(must + [(tantivy.Occur.Must, should)])
        return int(self._index.searcher().search(query, limit=1, count=True).count)

    def words(self, text: str) -> list[str]:
        """The query's distinct index terms (analysed exactly as documents are), in order, capped."""
        terms = self._analyzer.analyze(text or "")
        return list(dict.fromkeys(terms))[:MAX_QUERY_TERMS]

    def terms_of(self, text: str) -> set[str]:
        """Every distinct index term of ``text`` (analysed as documents are, uncapped): a listing's BM25
        for a query is 0 unless the two share one (the alert matcher's bound relies on it)."""
        return set(self._analyzer.analyze(text or ""))

    def _delete_key(self, key: int) -> None:
        """Queue a delete of ``key``; by query because ``delete_documents_by_term`` sends an int as i64
        and silently matches nothing in a u64 field."""
        self._writer.delete_documents_by_query(tantivy.Query.term_query(self._schema, KEY, int(key)))

    def _commit(self) -> None:
        """Commit and reload now: the default reload policy lags a commit, and callers expect to read
        their own writes."""
        self._writer.commit()
        self._index.reload()

    def _words_query(self, words: list[str]) -> tantivy.Query:
        """SHOULD over every word in the title (boosted) and in the body: BM25 summed over matches."""
        clauses: list[tuple[tantivy.Occur, tantivy.Query]] = []
        for word in words:
            title = tantivy.Query.term_query(self._schema, TITLE, word)
            clauses.append((tantivy.Occur.Should, tantivy.Query.boost_query(title, TITLE_BOOST)))
            clauses.append((tantivy.Occur.Should, tantivy.Query.term_query(self._schema, BODY, word)))
        return tantivy.Query.boolean_query(clauses)

    def _restrict(self, query: tantivy.Query, keys: set[int]) -> tantivy.Query:
        """``query`` limited to ``keys``; the key clause scores 0 (a bare term set adds 1.0 to every hit)."""
        members = tantivy.Query.const_score_query(tantivy.Query.term_set_query(self._schema, KEY, _ints(keys)), 0.0)
        return tantivy.Query.boolean_query([(tantivy.Occur.Must, members), (tantivy.Occur.Must, query)])

    def _top(self, searcher: tantivy.Searcher, query: tantivy.Query, limit: int) -> list[tuple[int, float]]:
        """(key, score) of the best ``limit`` hits, keys read from the fast field in one call."""
        hits = searcher.search(query, limit=limit, count=False).hits
        if not hits:
            return []
        keys = searcher.fast_field_values(KEY, [address for _, address in hits])
        return [(int(key), float(score)) for (score, _), key in zip(hits, keys)]

    def _top_allowed(self, searcher: tantivy.Searcher, query: tantivy.Query, k: int,
                     allowed: set[int]) -> list[tuple[int, float]]:
        """Best ``k`` hits inside a dense ``allowed`` set: fetch twice as many each round until enough
        pass or the matches run out. One searcher snapshot so the rounds agree."""
        limit = 2 * k
        while True:
            hits = self._top(searcher, query, limit)
            kept = [(key, score) for key, score in hits if key in allowed]
            if len(kept) >= k or len(hits) < limit:
                return kept[:k]
            limit *= 2


def _ints(keys: Iterable[int]) -> list[int]:
    """A list of plain ints: tantivy wants a sequence, and callers hold sets, possibly of numpy integers."""
    return [int(key) for key in keys]
