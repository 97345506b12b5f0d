"""A price and a place typed among the words ("sofa under £50 near Glasgow"), read into filters.

Buyers type what they would say to a shop assistant: "under £50", "below 100 pounds", "£20-£80",
"between £20 and £80", "over £100"; "near Glasgow", "around Leeds", "in Manchester". :func:`read_asks`
takes such phrases out of the words and returns them as filters; the words left are what is searched.

* A price needs a currency mark ("£", "pounds", "quid", "gbp"), except a bare number of at least
  ``BARE_MIN`` after "under" / "below" / "up to" that ends the words, or is followed only by a place
  ("chair under 50", "sofa under 50 near Glasgow"): "toys under 5" (an age), "nike air max 90" (a model:
  "max" always needs the mark) and "iphone 12-13" stay words. A range needs its first number marked or
  "between" / "from" ("iphone 11 - £300" stays words); a number followed by a unit of size, age or count
  ("£5 to 10 years", "under £24 inch") is no price.
* A place is read only when it resolves (``place(text, strict)`` is the caller's resolver, which names
  it); after "in" only a town of at least ``IN_MIN_POPULATION`` people that is not an everyday word
  (``IN_NOT_PLACES``), so "in stock", "in box", "in grey" and "in sale" stay words. The place is the rest
  of the words after the keyword ("near Stoke on Trent").
* A phrase whose filter the buyer also set is not read: the filter wins (the words stay as typed).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

BARE_MIN = 20
IN_MIN_POPULATION = 50_000
# Towns that are also everyday words: after "in" they stay words ("dress in sale", "lamp in reading room")
IN_NOT_PLACES = frozenset({"sale", "reading", "bath", "street", "march", "deal", "box", "wells", "stock", "ash",
                           "wool", "eye", "hope", "church", "cross", "bank", "green", "park", "mold", "ware"})
MIN_PRICE, MAX_PRICE, NEAR = "price_min", "price_max", "near"

_NUM = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?k?"
_UNIT = r"(?:pounds?|quid|gbp)"
# a number followed by one of these is a size, an age or a count, never a price
_NOT_MONEY = (r"(?!\s*(?:(?:years?|yrs?|months?|mths?|weeks?|days?|cm|mm|m|kg|g|lbs?|inch(?:es)?|ft|feet|"
              r"w|watts?|v|volts?|gb|tb|mb|mah|seater|seats?|pack|pcs|pieces?|x)\b|%|\"|'))")
_BARE_MAX_WORDS = r"(?:under|below|less\s+than|cheaper\s+than|no\s+more\s+than|up\s*to)"
_MAX_WORDS = rf"(?:{_BARE_MAX_WORDS}|max(?:imum)?|<)"  # "max 90" is a model ("air max 90"): needs a currency mark
# not "from": sellers write "from £75" of their own prices (4 of 966 held-out titles); "from £50 to £80" is a range
_MIN_WORDS = r"(?:over|above|more\s+than|at\s+least|min(?:imum)?|>)"
_RANGE = re.compile(rf"(?<!\w)((?:between|from)\s+)?(£\s*)?({_NUM})\s*({_UNIT})?\s*(?:-|–|to|and)\s*(£\s*)?({_NUM})"
                    rf"\s*({_UNIT})?(?!\w){_NOT_MONEY}", re.IGNORECASE)
_MAX = re.compile(rf"(?<!\w)({_MAX_WORDS})\s*(£\s*)?({_NUM})\s*({_UNIT})?(?!\w){_NOT_MONEY}", re.IGNORECASE)
_MIN = re.compile(rf"(?<!\w)({_MIN_WORDS})\s*(£\s*)?({_NUM})\s*({_UNIT})?(?!\w){_NOT_MONEY}", re.IGNORECASE)
_BARE_MAX = re.compile(rf"(?<!\w){_BARE_MAX_WORDS}\s*({_NUM})\s*$", re.IGNORECASE)
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
    place: str | None = None  # the place as the resolver names it ("Glasgow", "Stoke-on-Trent")
    read: tuple[Read, ...] = ()


def read_asks(text: str | None, place: PlaceResolver, prices: bool = True, places: bool = True) -> Asks:
    """The price and place phrases of ``text`` as filters, and the words left (see the module): prices
    with a currency mark first, then a place ending the words, then a bare "under 50" ending what is left."""
    if not text or not text.strip():
        return Asks(None)
    rest, read = text, []
    low = high = None
    if prices:
        for m in _RANGE.finditer(rest):
            a, b = _amount(m.group(3)), _amount(m.group(6))
            first_marked, second_marked = bool(m.group(2) or m.group(4)), bool(m.group(5) or m.group(7))
            # "£20-80", "£20-£80", "20-80 pounds", "between 20 and £80"; not "iphone 11 - £300"
            if (first_marked or (second_marked and m.group(1))) and a <= b:
                low, high = a, b
                read += [Read(m.group(0).strip(), MIN_PRICE, a), Read(m.group(0).strip(), MAX_PRICE, b)]
                rest = _cut(rest, m)
                break
        for pattern, name in ((_MAX, MAX_PRICE), (_MIN, MIN_PRICE)):
            if (high if name == MAX_PRICE else low) is not None:
                continue
            for m in pattern.finditer(rest):  # groups: the word, "£", the number, a unit
                if m.group(2) or m.group(4):
                    amount = _amount(m.group(3))
                    high, low = (amount, low) if name == MAX_PRICE else (high, amount)
                    read.append(Read(m.group(0).strip(), name, amount))
                    rest = _cut(rest, m)
                    break
    where = None
    if places:
        for m in reversed(list(_PLACE.finditer(rest))):
            tail = rest[m.end():].strip(" ,.")
            strict = m.group(1).lower() == "in"
            name = place(tail, strict) if tail and not (strict and tail.casefold() in IN_NOT_PLACES) else None
            if name:
                where = name
                read.append(Read(rest[m.start():].strip(" ,."), NEAR, name))
                rest = rest[:m.start()]
                break
    if prices and high is None:
        m = _BARE_MAX.search(rest.rstrip(" ,."))
        if m and _amount(m.group(1)) >= BARE_MIN:  # "chair under 50": the words end with it
            high = _amount(m.group(1))
            read.insert(sum(r.filter != NEAR for r in read), Read(m.group(0).strip(), MAX_PRICE, high))
            rest = rest.rstrip(" ,.")[:m.start()]
    if low is not None and high is not None and low > high:  # "over £80 under £20": not a range, keep words
        return read_asks(text, place, prices=False, places=places)
    words = _LOOSE_ENDS.sub("", re.sub(r"\s+", " ", rest)).strip()
    return Asks(words or None, low, high, where, tuple(read))


def _amount(number: str) -> float:
    n = number.lower().replace(",", "")
    return float(n[:-1]) * 1000 if n.endswith("k") else float(n)


def _cut(text: str, m: re.Match) -> str:
    return f"{text[:m.start()]} {text[m.end():]}"
