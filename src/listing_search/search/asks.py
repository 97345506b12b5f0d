"""A price and a place typed among the words ("sofa under £50 near Glasgow"), read into filters.

Buyers type what they would say to a shop assistant: "under £50", "below 100 pounds", "£20-£80",
"between £20 and £80", "over £100"; "near Glasgow", "around Leeds", "in Manchester". :func:`read_asks`
takes such phrases out of the words and returns them as filters; the words left are what is searched.

* A price needs a currency mark ("£", "pounds", "quid", "gbp"), except a bare number of at least
  ``BARE_MIN`` after "under" / "below" / "up to" / "max" that ends the words ("chair under 50"): "toys
  under 5" (an age) and "iphone 12-13" stay words.
* A place is read only when it resolves (``place(text, strict)`` is the caller's resolver); after "in"
  only a town of at least ``IN_MIN_POPULATION`` people, so "in stock", "in box" and "in grey" stay
  words. The place is the rest of the words after the keyword ("near Stoke on Trent").
* A phrase whose filter the buyer also set is not read: the filter wins (the words stay as typed).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

BARE_MIN = 20
IN_MIN_POPULATION = 50_000
MIN_PRICE, MAX_PRICE, NEAR = "price_min", "price_max", "near"

_NUM = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?k?"
_UNIT = r"(?:pounds?|quid|gbp)"
_MAX_WORDS = r"(?:under|below|less\s+than|cheaper\s+than|no\s+more\s+than|up\s*to|max(?:imum)?|<)"
_MIN_WORDS = r"(?:over|above|more\s+than|at\s+least|from|min(?:imum)?|>)"
_RANGE = re.compile(rf"(?<!\w)(?:(?:between|from)\s+)?(£\s*)?({_NUM})\s*({_UNIT})?\s*(?:-|–|to|and)\s*(£\s*)?({_NUM})\s*({_UNIT})?(?!\w)",
                    re.IGNORECASE)
_MAX = re.compile(rf"(?<!\w){_MAX_WORDS}\s*(£\s*)?({_NUM})\s*({_UNIT})?(?!\w)", re.IGNORECASE)
_MIN = re.compile(rf"(?<!\w){_MIN_WORDS}\s*(£\s*)?({_NUM})\s*({_UNIT})?(?!\w)", re.IGNORECASE)
_PLACE = re.compile(r"(?<!\w)(near|nr|around|close\s+to|in)\s+", re.IGNORECASE)
_LOOSE_ENDS = re.compile(r"^(?:\s|,|for|at|and|with)+|(?:\s|,|for|at|and|with)+$", re.IGNORECASE)

# (text, strict) -> the place's name, or None when it is not one ("strict": after "in", a big town only)
PlaceResolver = Callable[[str, bool], "str | None"]


@dataclass(frozen=True)
class Read:
    """One phrase read out of the words: as typed, the filter it set and its value."""

    phrase: str
    filter: str
    value: float | str


@dataclass(frozen=True)
class Asks:
    """The words left to search (None when nothing is left), and the filters read."""

    words: str | None
    price_min: float | None = None
    price_max: float | None = None
    place: str | None = None  # the place as typed ("Glasgow"); the caller resolves it to a point
    read: tuple[Read, ...] = ()


@dataclass(frozen=True)
class Typed:
    """A request's words and the filters they may set, after reading (what a route searches with)."""

    text: str | None
    price_min: float | None
    price_max: float | None
    place: str | None
    asks: Asks | None = None  # what was read (None: nothing was asked to be read)

    @property
    def read(self) -> tuple[Read, ...]:
        return self.asks.read if self.asks is not None else ()


def apply_asks(text: str | None, price_min: float | None, price_max: float | None, place: str | None,
               read: Callable[[str | None, bool, bool], Asks], enabled: bool = True) -> Typed:
    """The words and filters a request searches with: a price or place typed among ``text`` fills the
    filter the buyer left unset (``read``: the engine's :func:`read_asks` over its catalogue)."""
    text = (text or "").strip() or None
    if not text or not enabled:
        return Typed(text, price_min, price_max, place)
    asks = read(text, price_min is None and price_max is None, not (place or "").strip())
    if not asks.read:
        return Typed(text, price_min, price_max, place, asks)
    return Typed(asks.words, asks.price_min if asks.price_min is not None else price_min,
                 asks.price_max if asks.price_max is not None else price_max, asks.place or place, asks)


def read_asks(text: str | None, place: PlaceResolver, prices: bool = True, places: bool = True) -> Asks:
    """The price and place phrases of ``text`` as filters, and the words left (see the module)."""
    if not text or not text.strip():
        return Asks(None)
    rest, read = text, []
    low = high = None
    if prices:
        for m in _RANGE.finditer(rest):
            a, b = _amount(m.group(2)), _amount(m.group(5))
            if (m.group(1) or m.group(3) or m.group(4) or m.group(6)) and a <= b:
                low, high = a, b
                read += [Read(m.group(0).strip(), MIN_PRICE, a), Read(m.group(0).strip(), MAX_PRICE, b)]
                rest = _cut(rest, m)
                break
        if high is None:
            for m in _MAX.finditer(rest):
                bare_end = not rest[m.end():].strip() or _PLACE.match(rest[m.end():].lstrip())
                if m.group(1) or m.group(3) or (bare_end and _amount(m.group(2)) >= BARE_MIN):
                    high = _amount(m.group(2))
                    read.append(Read(m.group(0).strip(), MAX_PRICE, high))
                    rest = _cut(rest, m)
                    break
        if low is None:
            for m in _MIN.finditer(rest):
                if m.group(1) or m.group(3):
                    low = _amount(m.group(2))
                    read.append(Read(m.group(0).strip(), MIN_PRICE, low))
                    rest = _cut(rest, m)
                    break
        if low is not None and high is not None and low > high:  # "over £80 under £20": not a range, keep words
            return read_asks(text, place, prices=False, places=places)
    where = None
    if places:
        for m in reversed(list(_PLACE.finditer(rest))):
            tail = rest[m.end():].strip(" ,.")
            name = place(tail, m.group(1).lower() == "in") if tail else None
            if name:
                where = tail
                read.append(Read(rest[m.start():].strip(" ,."), NEAR, name))
                rest = rest[:m.start()]
                break
    words = _LOOSE_ENDS.sub("", re.sub(r"\s+", " ", rest)).strip()
    return Asks(words or None, low, high, where, tuple(read))


def _amount(number: str) -> float:
    n = number.lower().replace(",", "")
    return float(n[:-1]) * 1000 if n.endswith("k") else float(n)


def _cut(text: str, m: re.Match) -> str:
    return f"{text[:m.start()]} {text[m.end():]}"
