"""Suggestions while typing, from the catalogue's own title phrases and category names only.

The phrase table holds every run of one or two words of every listing title (``core.text.words``;
runs of digits alone and runs starting or ending with a function word left out) with how many
titles use it; it is built with the catalogue view and follows the change log like it. A typed
prefix selects the phrases that extend it (the word being typed completed; when no phrase does and
that word has four letters or more, its spelling correction is completed instead), the most used in
titles first; each suggestion's ``count`` is then the exact number of listings that hold its words
(``search.match``'s definition, by the BM25 index), and suggestions are ranked by it. Category
suggestions are the root categories and their next level whose name has a word starting with what
is being typed, counted by the listings in them. Nothing buyers typed is ever suggested.
"""

from __future__ import annotations

import bisect
import heapq
import threading
import time
from collections import Counter
from dataclasses import dataclass

from listing_search.core.text import FUNCTION_WORDS, match_terms, words

MAX_WORDS = 2
POOL = 50  # phrases extending the prefix whose exact counts are looked up
MIN_CORRECTED = 4  # a word being typed is corrected from this many letters
QUERY, CATEGORY = "query", "category"


@dataclass(frozen=True)
class Suggestion:
    text: str
    kind: str
    count: int


def title_phrases(title: str) -> set[str]:
    """The one- and two-word runs of a title a buyer could be typing."""
    toks = words(title)
    out = set()
    for n in range(1, MAX_WORDS + 1):
        for i in range(len(toks) - n + 1):
            run = toks[i:i + n]
            if run[0] in FUNCTION_WORDS or run[-1] in FUNCTION_WORDS or all(t.isdigit() for t in run):
                continue
            out.add(" ".join(run))
    return out


class PhraseTable:
    """Title phrases with how many titles use each, and a sorted index for prefix lookups.

    The index is a sorted list of phrases (the base) plus a small sorted list of phrases first seen
    since (fresh), folded into the base when it grows past ``FRESH_LIMIT``: a write costs a few
    binary insertions into the small list, never a sort of the whole table. A phrase no title uses
    any more stays in the index with a count of 0 and is never returned."""

    FRESH_LIMIT = 20_000
    # A prefix this short extends most of the table (one letter: ~960k phrases of a 1M catalogue, ~0.3-0.7 s
    # to rank): its answer is kept, recomputed after a change at most every ``SHORT_STALE_S``.
    SHORT_PREFIX, SHORT_STALE_S = 2, 10.0

    def __init__(self) -> None:
        self._counts: Counter = Counter()
        self._base: list[str] = []
        self._fresh: list[str] = []
        self._lock = threading.Lock()
        self._version = 0  # moves on every add and remove
        self._short: dict[tuple[str, int], tuple[int, float, list[str]]] = {}  # (prefix, limit) -> answer
        self.answers: dict = {}  # search.suggest keeps its short prefixes' answers here, with this table

    def add(self, title: str) -> None:
        with self._lock:
            self._version += 1
            for phrase in title_phrases(title):
                if phrase not in self._counts:
                    bisect.insort(self._fresh, phrase)
                self._counts[phrase] += 1
            if len(self._fresh) > self.FRESH_LIMIT:
                self._base = sorted(p for p, n in self._counts.items() if n > 0)
                self._fresh = []

    def remove(self, title: str) -> None:
        with self._lock:
            self._version += 1
            for phrase in title_phrases(title):
                if self._counts.get(phrase, 0) > 0:
                    self._counts[phrase] -= 1

    @property
    def version(self) -> int:
        """Moves on every add and remove: an answer computed at one version holds until it moves."""
        return self._version

    def __len__(self) -> int:
        return sum(1 for n in self._counts.values() if n > 0)

    def extending(self, prefix: str, limit: int) -> list[str]:
        """The ``limit`` phrases most used in titles that start with ``prefix`` (ties: shorter, then a-z)."""
        if len(prefix) > self.SHORT_PREFIX:
            return self._extending(prefix, limit)
        now = time.monotonic()
        kept = self._short.get((prefix, limit))
        if kept is not None and (kept[0] == self._version or now - kept[1] < self.SHORT_STALE_S):
            return list(kept[2])
        version = self._version
        found = self._extending(prefix, limit)
        self._short[(prefix, limit)] = (version, now, found)
        return list(found)

    def _extending(self, prefix: str, limit: int) -> list[str]:
        with self._lock:
            counts = self._counts
            found = [p for keys in (self._base, self._fresh)
                     for p in keys[bisect.bisect_left(keys, prefix):bisect.bisect_left(keys, prefix + "\uffff")]
                     if counts.get(p, 0) > 0]
            return heapq.nsmallest(limit, found, key=lambda p: (-counts[p], len(p), p))

    def has_prefix(self, prefix: str) -> bool:
        """Whether a phrase some title uses starts with ``prefix`` (stops at the first)."""
        with self._lock:
            for keys in (self._base, self._fresh):
                for i in range(bisect.bisect_left(keys, prefix), len(keys)):
                    if not keys[i].startswith(prefix):
                        break
                    if self._counts.get(keys[i], 0) > 0:
                        return True
        return False


def typed_parts(q: str) -> tuple[list[str], str]:
    """(the words typed in full, the word being typed: empty after a space)."""
    toks = words(q)
    if not toks:
        return [], ""
    if q[-1:].isspace():
        return toks, ""
    return toks[:-1], toks[-1]
