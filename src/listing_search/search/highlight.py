"""Why a result matched: the spans of its title and of a short description snippet that hold the words.

A span marks a word counted as held (``core.text.match_terms``: case, accents and plurals folded, so
"Chairs" is marked for "chair"), the corrected word where the speller changed one. Offsets are in
UTF-16 code units, what the page's JavaScript indexes strings by (an emoji counts two).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from listing_search.core.text import fold_accents, fold_plural

TOKEN = re.compile(r"[^\W_]+")  # letters and digits, any script: the runs core.text.words splits on
SNIPPET_CHARS = 160
NON_ASCII = re.compile(r"[^\x00-\x7f]")
ELLIPSIS = "…"


@dataclass(frozen=True)
class Highlight:
    title: list[tuple[int, int]]
    snippet_text: str
    snippet_spans: list[tuple[int, int]]


def term_of(word: str) -> str:
    return fold_plural(fold_accents(word.lower()))


@lru_cache(maxsize=4096)
def _stems(terms: frozenset[str]) -> tuple[str, ...]:
    """What a word holding one of ``terms`` starts with, in lower case: the term itself, less its
    final y for one ending so (``fold_plural`` only strips a plural's s or es, or makes ies / ie a y:
    chairs, benches, batteries)."""
    return tuple({t[:-1] if len(t) > 1 and t.endswith("y") else t for t in terms})


def _held(word: str, terms: frozenset[str]) -> bool:
    if word.isascii():  # most words: no accents to fold, one part
        return fold_plural(word.lower()) in terms
    parts = re.findall(r"[a-z0-9]+", fold_accents(word.lower()))
    return bool(parts) and all(fold_plural(p) in terms for p in parts)


def char_spans(text: str, terms: frozenset[str], start: int = 0, end: int | None = None,
               first: bool = False) -> list[tuple[int, int]]:
    """(start, end) character offsets of the words of ``text`` whose term is one of ``terms``: of the
    words wholly inside ``text[start:end]``, only the first with ``first``.

    Only words that may hold a term are read: those where a stem (``_stems``) occurs, any case, and
    those with a letter outside ASCII (folded with their accents), found in C, so a long description
    is not read word by word."""
    out: list[tuple[int, int]] = []
    text = text or ""
    end = len(text) if end is None else end
    if not terms:
        return out
    low = text.lower()
    skim = len(low) == len(text)  # else a letter lower-cased to two: offsets would not line up
    stems = _stems(terms)
    ahead, other, pos = [-1] * len(stems), -1, start  # where each stem, and a letter outside ASCII, come next

    while pos < end:
        if skim:
            floor = pos
            for i, stem in enumerate(stems):
                if ahead[i] < pos:  # passed: find its next place
                    at = low.find(stem, pos, end)
                    ahead[i] = end if at < 0 else at
            if other < pos:
                found = NON_ASCII.search(text, pos, end)
                other = end if found is None else found.start()
            pos = min(min(ahead), other)
            if pos >= end:
                break
            while pos > floor and TOKEN.match(text, pos - 1):
                pos -= 1  # back to the start of its word (one already read is not read again)
        m = TOKEN.search(text, pos)
        if m is None or m.end() > end:
            break
        pos = m.end()
        if m.start() == start and start and TOKEN.match(text, start - 1):
            continue  # a word cut by ``start`` is not inside
        if _held(m.group(), terms):
            out.append((m.start(), m.end()))
            if first:
                break
    return out


def utf16(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Character offsets as UTF-16 code unit offsets."""
    if text.isascii():
        return list(spans)

    def at(i: int) -> int:
        return len(text[:i].encode("utf-16-le")) // 2

    return [(at(a), at(b)) for a, b in spans]


def snippet(description: str, terms: frozenset[str], width: int = SNIPPET_CHARS) -> tuple[str, list[tuple[int, int]]]:
    """A window of ``description`` around its first held word (its start when none), with the spans in it."""
    text = " ".join((description or "").split())
    spans = char_spans(text, terms, first=True)  # only the window is read for the rest
    start = max(0, spans[0][0] - width // 3) if spans else 0
    if start:
        space = text.find(" ", start)
        start = space + 1 if 0 <= space < spans[0][0] else start
    end = min(len(text), start + width)
    if end < len(text):
        space = text.rfind(" ", start, end)
        end = space if space > (spans[0][1] if spans else start) else end
    prefix, suffix = (ELLIPSIS if start else ""), (ELLIPSIS if end < len(text) else "")
    window = prefix + text[start:end] + suffix
    shift = len(prefix) - start
    inside = [(a + shift, b + shift) for a, b in char_spans(text, terms, start, end)] if spans else []
    return window, utf16(window, inside)


def highlight(title: str, description: str, terms: tuple[str, ...]) -> Highlight | None:
    """The title's and a description snippet's held words; None without words."""
    if not terms:
        return None
    wanted = frozenset(terms)
    text, spans = snippet(description, wanted)
    return Highlight(utf16(title or "", char_spans(title or "", wanted)), text, spans)
