"""Typo correction against the catalogue's own vocabulary (symspellpy).

A general English dictionary would "correct" brand names and model numbers and would miss the
catalogue's own words; the words that listings actually use are the right targets. Counts are
kept current as listings change, so a word that no listing uses any more stops being a target.

English is used the other way round: a real English word of 6+ letters that no listing uses is
meant as typed (symspellpy's bundled English frequency list, words counted 100,000+ times), so
"blizzard" is not searched as *lizard*, "missile" as *missing* or "wedgwood" as *redwood*. Shorter
words stay correctable: one dropped letter turns many catalogue words into short real ones
("chars", "fist", "pups"). The cost: a slip that makes a long real word ("bender" for blender,
"dinning" for dining) is searched as typed.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

from symspellpy import SymSpell, Verbosity

from listing_search.core.text import words as tokens

MAX_DISTANCE = 2
SHORT_WORD = 5  # words up to this long are corrected within 1 edit only
MAX_CONTEXT_CHECKS = 12  # equally close candidates checked against the other words (one query each)
Context = Callable[[str, list[str]], int]  # (candidate, the query's other known words) -> co-occurrences
MIN_CORRECTED_LENGTH = 4  # shorter words have too many neighbours within distance 2 to guess safely
ENGLISH_MIN_LENGTH = 6  # a real English word this long stands as typed (a dropped letter rarely makes one)
ENGLISH_MIN_COUNT = 100_000  # in symspellpy's English list (Google n-gram counts, 12,714 to 2e10): its commoner 65%
ENGLISH_LIST = "frequency_dictionary_en_82_765.txt"  # shipped inside the symspellpy package


@lru_cache(maxsize=1)
def _common_english() -> frozenset[str]:
    """The alphabetic words counted ``ENGLISH_MIN_COUNT``+ times in symspellpy's bundled frequency list
    (no download; read once per process)."""
    words = set()
    with resources.files("symspellpy").joinpath(ENGLISH_LIST).open(encoding="utf-8") as f:
        for line in f:
            word, _, count = line.partition(" ")
            if word.isalpha() and int(count) >= ENGLISH_MIN_COUNT:
                words.add(word)
    return frozenset(words)


@lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """English words of ``ENGLISH_MIN_LENGTH``+ letters (``_common_english``)."""
    return frozenset(w for w in _common_english() if len(w) >= ENGLISH_MIN_LENGTH)


@lru_cache(maxsize=1)
def english_short_words() -> frozenset[str]:
    """3-letter English words (``_common_english``): typed alone, they stand as typed ("tax" is not
    *taxi*, "zoo" not *zoom*), though no listing uses them."""
    return frozenset(w for w in _common_english() if len(w) == MIN_CORRECTED_LENGTH - 1)


@dataclass(frozen=True)
class Correction:
    """The query as typed, the query to search with (lower-case words), and what was replaced."""

    original: str
    corrected: str
    changed: bool
    replacements: list[tuple[str, str]] = field(default_factory=list)


class Speller:
    """Word counts of the catalogue plus a symspell dictionary of the words counted ``min_count`` times.

    Every word ever counted (count > 0) is "known" and never rewritten, even below ``min_count``: a
    query word that some listing contains already finds that listing. ``min_count`` only decides
    which words a misspelling may be corrected *to*, keeping rare catalogue typos out of the targets.
    ``english``: words no listing uses that still stand as typed (``english_words``; empty: none);
    ``english_short``: 3-letter words that stand as typed when alone (``english_short_words``).
    """

    def __init__(self, min_count: int = 1, english: frozenset[str] = frozenset(),
                 english_short: frozenset[str] = frozenset()) -> None:
        self.min_count = max(1, min_count)
        self.english, self.english_short = english, english_short
        self._counts: Counter[str] = Counter()
        self._symspell = SymSpell(max_dictionary_edit_distance=MAX_DISTANCE, prefix_length=7)
        # symspell is not thread-safe: a lookup while the follower thread deletes a word raised
        # KeyError (a search answered 500). Lookups and changes take turns; the counts are plain
        # dict reads and need no lock.
        self._lock = threading.Lock()

    @classmethod
    def from_texts(cls, texts: Iterable[str], min_count: int = 1, english: bool = True) -> Speller:
        """A speller over every word of ``texts`` (titles and descriptions); ``english``: real English
        words of 6+ letters stand as typed."""
        speller = cls(min_count, english_words(), english_short_words()) if english else cls(min_count)
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(tokens(text))
        speller._apply(counts)
        return speller

    @property
    def vocabulary_size(self) -> int:
        """Number of correction targets (words counted at least ``min_count`` times)."""
        return len(self._symspell.words)

    def count(self, word: str) -> int:
        """How many times the live catalogue uses ``word``."""
        return self._counts.get(word.lower(), 0)

    def add(self, text: str) -> None:
        """Count the words of a new listing's text."""
        self._apply(Counter(tokens(text)))

    def remove(self, text: str) -> None:
        """Uncount the words of a removed listing's text (the same text that was added)."""
        self._apply(Counter({word: -n for word, n in Counter(tokens(text)).items()}))

    def known_words(self, text: str) -> int:
        """How many of the text's words the live catalogue uses (0: nothing listed says any of them)."""
        return sum(1 for w in tokens(text) if self._counts.get(w, 0) > 0)

    def correct(self, query: str, context: Context | None = None) -> Correction:
        """Replace each unknown alphabetic word (neither in the catalogue nor a long English word) by
        its nearest catalogue word (within 1 edit up to 5 letters, 2 from 6). Of equally close words,
        one listed with the query's other words (``context``, ``LexicalIndex.cooccurrence``) goes first, then the likelier slip
        (``typo_prior``: first letter kept, a letter left out), then the one listed with them most
        often, then the most frequent; a 3-letter word is corrected only when ``context`` finds its
        correction beside the other words, or, when no other word is known and it is no English word
        (``english_short``), when a letter left out (the first kept) restores a
        catalogue word: "dsk" alone is searched as *desk*, "tax" as typed."""
        words = tokens(query)
        replacements: list[tuple[str, str]] = []
        out: list[str] = []
        for i, word in enumerate(words):
            others = [w for j, w in enumerate(words) if j != i and self._counts.get(w, 0) > 0]
            fixed = self._fix(word, others, context)
            if fixed != word:
                replacements.append((word, fixed))
            out.append(fixed)
        return Correction(original=query, corrected=" ".join(out), changed=bool(replacements),
                          replacements=replacements)

    def _fix(self, word: str, others: list[str], context: Context | None) -> str:
        """The correction of one word, or the word itself when it is safe or nothing is close."""
        short = len(word) == MIN_CORRECTED_LENGTH - 1
        # alone, nothing vouches and nothing misleads: a dropped letter may be put back, unless the word
        # is itself English ("tax", "zoo", "bid": a buyer meant them)
        alone = short and not others and word not in self.english_short
        if (len(word) < MIN_CORRECTED_LENGTH and not (short and context and others) and not alone) \
                or not word.isalpha() or self._counts.get(word, 0) > 0 or word in self.english:
            return word
        # Short words are one edit from many others: allow 2 edits only from 6 letters up, so a typed
        # nonsense word ("pqwx") is not turned into a real one ("paw") two edits away.
        reach = 1 if len(word) <= SHORT_WORD else MAX_DISTANCE
        with self._lock:
            suggestions = self._symspell.lookup(word, Verbosity.CLOSEST, max_edit_distance=reach)
        if not suggestions:
            return word
        nearest = min(s.distance for s in suggestions)
        tied = sorted((s for s in suggestions if s.distance == nearest),
                      key=lambda s: (typo_prior(word, s.term), -s.count, s.term))
        if context is not None and others and (len(tied) > 1 or short):
            together = {s.term: context(s.term, others) for s in tied[:MAX_CONTEXT_CHECKS]}
            # min keeps the first of equals, and ``tied`` is already in (slip, frequency, word) order
            best = min(tied[:MAX_CONTEXT_CHECKS],
                       key=lambda s: (together[s.term] == 0, typo_prior(word, s.term), -together[s.term]))
            if short and together[best.term] == 0:  # a 3-letter word is corrected only when the other words vouch
                return word
            return best.term
        if alone:  # "dsk" is desk, "sfa" sofa: only the likeliest slip (first letter kept, one left out)
            return tied[0].term if typo_prior(word, tied[0].term) == (0, 0) else word
        return word if short else tied[0].term

    def _apply(self, deltas: Counter[str]) -> None:
        """Add signed count changes and keep the symspell targets equal to the words at ``min_count``+."""
        with self._lock:
            for word, delta in deltas.items():
                before = self._counts.get(word, 0)
                after = max(0, before + delta)
                if after:
                    self._counts[word] = after
                else:
                    self._counts.pop(word, None)
                self._sync(word, before, after)

    def _sync(self, word: str, before: int, after: int) -> None:
        """Mirror one word's count into symspell, which can only add to a count or delete the word."""
        was, now = before >= self.min_count, after >= self.min_count
        if before == after or not (was or now):
            return
        if was and now and after > before:
            self._symspell.create_dictionary_entry(word, after - before)
            return
        if was:
            self._symspell.delete_dictionary_entry(word)
        if now:
            self._symspell.create_dictionary_entry(word, after)


def typo_prior(typed: str, candidate: str) -> tuple[int, int]:
    """How unlikely it is that ``candidate`` was meant, by the kind of slip (lower: likelier).

    People keep a word's first letter (it is wrong in under a tenth of misspellings), and leaving a
    letter out is the commonest slip on a phone keyboard, ahead of a wrong letter and far ahead of
    an extra one: "dess" is "dress" before "desk", "bie" is "bike" before "be". A key pressed twice
    comes next, before a wrong letter: "sofaa" is "sofa" before "sofas".
    """
    first = int(candidate[:1] != typed[:1])
    longer = len(candidate) - len(typed)
    return first, (0 if longer > 0 else 1 if doubled(typed, candidate) else 2 if longer == 0 else 3)


def doubled(typed: str, candidate: str) -> bool:
    """Whether ``typed`` is ``candidate`` with one letter repeated ("sofaa" for "sofa")."""
    return len(typed) == len(candidate) + 1 and any(
        typed[i] == typed[i - 1] and typed[:i] + typed[i + 1:] == candidate for i in range(1, len(typed)))
