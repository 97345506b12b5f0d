"""``suggest``: completions of what a buyer is typing (``index.suggest`` says where they come from)."""

from __future__ import annotations

import time
from functools import lru_cache

from listing_search.core.text import match_terms, words
from listing_search.index.live import LiveIndexes
from listing_search.index.suggest import CATEGORY, MIN_CORRECTED, POOL, QUERY, Suggestion, typed_parts

CATEGORY_SLOTS = 2  # category suggestions among the k at most


SHORT_CHARS, SHORT_STALE_S = 2, 10.0  # a one- or two-letter start's answer is kept (counts ~10 s stale at most)


def suggest(live: LiveIndexes, q: str, k: int) -> list[Suggestion]:
    """Up to ``k`` suggestions for the typed ``q``, most listings first; none for blank ``q``.

    What one or two letters start is most of the catalogue (at 1M listings, one letter's counts took
    ~0.1-0.3 s): that answer is kept with the phrase table and recomputed, after a change, at most every
    ``SHORT_STALE_S``."""
    done, typing = typed_parts(q)
    if not done and not typing:
        return []
    if done or len(typing) > SHORT_CHARS:
        return _suggest(live, done, typing, k)
    kept_answers = live.phrases.answers  # (typed, k) -> (table version, when, answer); goes with the table
    key, now, version = (typing, k), time.monotonic(), live.phrases.version
    kept = kept_answers.get(key)
    if kept is not None and (kept[0] == version or now - kept[1] < SHORT_STALE_S):
        return list(kept[2])
    found = _suggest(live, done, typing, k)
    kept_answers[key] = (version, now, found)  # at most 36 + 36² starts per k
    return list(found)


def _suggest(live: LiveIndexes, done: list[str], typing: str, k: int) -> list[Suggestion]:
    typing = completable(live, done, typing)
    prefix = " ".join([*done, typing]) if typing else " ".join(done) + " "  # after a space: the next word
    phrases = live.phrases.extending(prefix, POOL)
    lexical = live.lexical
    found, seen = [], set()
    for phrase in phrases:  # one suggestion per set of words: "wardrobes" after "wardrobe" adds nothing
        terms = tuple(match_terms(phrase))
        if terms and terms not in seen and len(found) < k:
            seen.add(terms)
            found.append(Suggestion(phrase, QUERY, lexical.count_holding(list(terms)) if lexical is not None else 0))
    found = [s for s in found if s.count > 0] + categories(live, done, typing)[:CATEGORY_SLOTS]
    return sorted(found, key=lambda s: (-s.count, s.kind != QUERY, s.text))[:k]


def completable(live: LiveIndexes, done: list[str], typing: str) -> str:
    """The word being typed, or its spelling correction when no title phrase extends it."""
    if not typing or len(typing) < MIN_CORRECTED or live.speller is None:
        return typing
    if live.phrases.has_prefix(" ".join([*done, typing])):
        return typing
    fixed = words(live.speller.correct(typing).corrected)
    return fixed[0] if fixed else typing


def categories(live: LiveIndexes, done: list[str], typing: str) -> list[Suggestion]:
    """Root categories and their next level whose name has the typed words (the last as a prefix)."""
    catalog = live.catalog
    wanted = [*done, typing] if typing else done
    out = []
    for name, have in category_names(tuple(catalog.paths.values)):
        if all(any(h.startswith(w) if i == len(wanted) - 1 and typing else h == w for h in have)
               for i, w in enumerate(wanted)):
            count = catalog.allowed_count(name)
            if count:
                out.append(Suggestion(name, CATEGORY, count))
    return sorted(out, key=lambda s: (-s.count, s.text))


@lru_cache(maxsize=4)
def category_names(paths: tuple[str, ...]) -> list[tuple[str, list[str]]]:
    """Each root and root / next level of ``paths``, with the words of its last segment."""
    names = set()
    for path in paths:
        segments = [s.strip() for s in path.split("/") if s.strip()]
        names.update(" / ".join(segments[:n]) for n in (1, 2) if len(segments) >= n)
    return sorted((name, words(name.split(" / ")[-1])) for name in names)
