"""The project's tokenizers, one per purpose, so a word means the same thing everywhere.

* :func:`words`: lower-case ``[a-z0-9]+`` runs, in order. The unit of spelling correction, hashed
  words (the category predictor) and suggestions.
* :func:`content_words`: the distinct words of two or more characters that are not stop words. The
  ranker's ``title_overlap`` feature compares these.
* :func:`match_terms`: the unit of "holds the words" (``search.match``): :func:`words` after folding
  accents and plurals, without function words, so "chairs" holds "chair", "café" holds "cafe" and
  "table and chairs" asks for table and chair.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

WORD = re.compile(r"[a-z0-9]+")
STOPWORDS = frozenset(
    "a an and the for of in on to with by from at is are be it this that or as x new used very good "
    "condition great excellent item items sale selling".split()
)
# Words that carry no thing a buyer wants: "table and chairs" is held by "table & 4 chairs".
FUNCTION_WORDS = frozenset("a an and the of for with in on to or at by from".split())
_KEEP_S = ("ss", "us", "is")  # glass, cactus, tennis: a final s that is no plural
_ES = ("ches", "shes", "sses", "xes", "zes")  # benches, brushes, glasses, boxes, quizzes


def words(text: str | None) -> list[str]:
    """Lower-case ``[a-z0-9]+`` words of ``text``, in order (repeats kept)."""
    return WORD.findall((text or "").lower())


def content_words(text: str | None) -> frozenset[str]:
    """Distinct words of two or more characters, without stop words."""
    return frozenset(t for t in words(text) if len(t) > 1 and t not in STOPWORDS)


def fold_plural(word: str) -> str:
    """An English plural folded onto its singular by suffix rules (both sides of a match are folded
    the same way, so a rule that is wrong for a word is wrong for the query and the listing alike):
    chairs -> chair, benches -> bench, batteries -> battery, cookies / cookie -> cooky."""
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies"):
        word = word[:-3] + "y"
    elif word.endswith(_ES):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(_KEEP_S):
        word = word[:-1]
    if word.endswith("ie"):
        word = word[:-2] + "y"
    return word


def fold_accents(text: str) -> str:
    """Latin letters without their accents (café -> cafe); other characters unchanged."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def match_terms(text: str | None) -> list[str]:
    """The distinct terms of ``text`` as "holds the words" compares them, in order of first use."""
    return list(dict.fromkeys(fold_plural(w) for w in words(fold_accents(text or "")) if w not in FUNCTION_WORDS))


@lru_cache(maxsize=1 << 17)
def title_terms(title: str) -> tuple[str, ...]:
    """``match_terms`` of a listing's title, remembered: each search reads the titles of its ~200
    candidates, and the same listings come back search after search."""
    return tuple(match_terms(title))


@lru_cache(maxsize=1 << 17)
def title_words(title: str) -> frozenset[str]:
    """``content_words`` of a listing's title, remembered (as ``title_terms``)."""
    return content_words(title)
