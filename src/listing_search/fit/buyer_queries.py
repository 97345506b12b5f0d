"""Queries as buyers type them, made from listing titles by fixed rules (fitting, evaluation, golden).

Sellers write whole titles ("Mens Blizzard Parka - size L, worn twice"); buyers type one to three
words ("parka", "mens parka"). The rules below turn a title into the short queries a buyer looking
for that listing might type, so the ranker is fit, and the engine measured, on those too:

* ``head``: the head noun, the last word of the title's first phrase (the title cut at a dash,
  comma, bracket, slash, colon, plus sign, ampersand or digit): "parka";
* ``modifier_head``: the last two words of that phrase: "blizzard parka";
* ``brand_head``: the title's first word and the head noun, when they differ: "mens parka";
* ``rare_pair``: the title's two words the catalogue uses least, of those it uses at least
  ``MIN_DF`` times, in title order;
* ``*_typo``: the same with one interior letter of one word dropped (``text.typos.drop_letter``).

Words are ``core.text.words``; a word counts when it has ``MIN_LETTERS`` letters or more, is not a
stop word (``core.text.STOPWORDS``) and holds a letter. A rule that finds no words gives no query.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

import numpy as np

from listing_search.core.text import FUNCTION_WORDS, STOPWORDS, words
from listing_search.text.typos import drop_letter

HEAD, MODIFIER_HEAD, BRAND_HEAD, RARE_PAIR = "head", "modifier_head", "brand_head", "rare_pair"
HEAD_TYPO, PAIR_TYPO = "head_typo", "rare_pair_typo"
RULES = (HEAD, MODIFIER_HEAD, BRAND_HEAD, RARE_PAIR)
SHORT_KINDS = (*RULES, HEAD_TYPO, PAIR_TYPO)
MIN_DF = 3
MIN_LETTERS = 3
_CUT = re.compile(r"[-–—,(\[{/|:;+&]|\d")


def _usable(word: str) -> bool:
    return len(word) >= MIN_LETTERS and word not in STOPWORDS and word not in FUNCTION_WORDS \
        and any(c.isalpha() for c in word)


def first_phrase(title: str) -> list[str]:
    """The usable words of the title before its first dash, comma, bracket, slash, colon, + or digit."""
    cut = _CUT.search(title or "")
    return [w for w in words(title[:cut.start()] if cut else title) if _usable(w)]


def head(title: str) -> str | None:
    phrase = first_phrase(title)
    return phrase[-1] if phrase else None


def modifier_head(title: str) -> str | None:
    phrase = first_phrase(title)
    return " ".join(phrase[-2:]) if len(phrase) >= 2 else None


def brand_head(title: str) -> str | None:
    first = next((w for w in words(title) if _usable(w)), None)
    noun = head(title)
    return f"{first} {noun}" if first and noun and first != noun else None


def document_frequency(texts: Iterable[str]) -> Counter:
    """In how many of ``texts`` each word appears (the catalogue's titles and descriptions)."""
    df: Counter = Counter()
    for text in texts:
        df.update(set(words(text)))
    return df


def rare_pair(title: str, df: Counter) -> str | None:
    candidates = list(dict.fromkeys(w for w in words(title) if _usable(w) and df[w] >= MIN_DF))
    if len(candidates) < 2:
        return None
    rarest = sorted(candidates, key=lambda w: (df[w], candidates.index(w)))[:2]
    return " ".join(w for w in candidates if w in rarest)


def buyer_query(title: str, kind: str, df: Counter, rng: np.random.Generator) -> str | None:
    """The query of ``kind`` a buyer might type for the listing titled ``title`` (None: no such query)."""
    if kind == HEAD:
        return head(title)
    if kind == MODIFIER_HEAD:
        return modifier_head(title)
    if kind == BRAND_HEAD:
        return brand_head(title)
    if kind == RARE_PAIR:
        return rare_pair(title, df)
    if kind in (HEAD_TYPO, PAIR_TYPO):
        clean = head(title) if kind == HEAD_TYPO else rare_pair(title, df)
        return drop_letter(clean, rng) if clean else None
    raise ValueError(f"unknown buyer query kind {kind!r}; expected one of {SHORT_KINDS}")


def intended(title: str, kind: str, df: Counter) -> str | None:
    """The words a ``kind`` query meant (its typo undone): what "holds the typed words" is judged on."""
    return buyer_query(title, {HEAD_TYPO: HEAD, PAIR_TYPO: RARE_PAIR}.get(kind, kind), df, np.random.default_rng(0))
