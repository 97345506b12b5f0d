"""Seeded misspellings for measuring typo tolerance: one interior letter dropped from one word.

A dropped letter is the commonest typo on a phone keyboard. Keeping the first and last letters
matches how people misspell (and keeps the word recognisable), and words are the same unit the
speller corrects: ``[A-Za-z0-9]+`` runs that are all letters, of at least 4 letters.
"""

from __future__ import annotations

import re

import numpy as np

WORD = re.compile(r"[A-Za-z0-9]+")
MIN_LETTERS = 4


def candidate_words(text: str) -> list[re.Match[str]]:
    """Alphabetic words of at least ``MIN_LETTERS`` letters: the only words a typo is made in."""
    return [m for m in WORD.finditer(text) if len(m.group()) >= MIN_LETTERS and m.group().isalpha()]


def drop_letter(text: str, rng: np.random.Generator) -> str | None:
    """``text`` with one interior letter of one uniformly chosen word dropped; None if no word qualifies."""
    words = candidate_words(text)
    if not words:
        return None
    word = words[int(rng.integers(len(words)))]
    position = word.start() + int(rng.integers(1, len(word.group()) - 1))
    return text[:position] + text[position + 1:]


def misspell_all(titles: list[str], seed: int = 7) -> list[str | None]:
    """One misspelling per title from a single generator, so the whole list is fixed by ``seed``."""
    rng = np.random.default_rng(seed)
    return [drop_letter(title, rng) for title in titles]
