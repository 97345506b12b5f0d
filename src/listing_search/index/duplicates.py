"""Near-duplicate listings: one ad listed several times is one group, shown as one result.

Two listings are **linked** when

* a photo of one is near-identical to a photo of the other (cosine >= ``PHOTO_SAME``), their titles
  share words (term Jaccard >= ``PHOTO_TITLE_SHARED``) and they are from the same place or at the
  same price; or
* their titles are near-identical (term Jaccard >= ``TITLE_SAME``) from the same place at the same
  price.

Why the conditions: a trader's showroom photo under another product's title (a fryer and a steel
table, a graphics card and a whole PC) is not a copy; a copy in another town keeps its price, a
repost in one place may change it; and a short title from one place at another price ("Washer
dryer", "iPhone 11 Red" beside "iPhone 11 Black") is another item. Chosen and measured on the
labelled pairs of ``evaluate/labels/duplicate_pairs.csv`` (``evaluate`` key ``duplicate_groups``,
docs/search.md). Titles compare as ``core.text.match_terms``.

A **group** is a connected set of linked listings; its id is its smallest listing key. Groups are
kept per listing key, so they outlive the catalogue view's row numbers: the view updates the title
links on every upsert and removal (``index.catalog``), and ``index.live`` adds the photo links from
the photo index as listings arrive. A listing's links are found when it is added (a search of its
own photos and of its place-and-price bucket), so no pass over the catalogue is needed per change;
a removal regroups only the removed listing's group.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from listing_search.core.text import match_terms

PHOTO_SAME = 0.97  # photo cosine of a copy: re-encoded copies keep >= 0.97 (search.rank.NEAR_DUPLICATE)
PHOTO_TITLE_SHARED = 0.3  # a shared photo links listings whose titles share this much
TITLE_SAME = 0.8  # a near-identical title
PHOTO_NEIGHBOURS = 10  # photo neighbours looked at per photo when a listing arrives
NONE = -1


@dataclass(frozen=True)
class Ad:
    """What the links compare: the title's distinct terms (sorted, interned: a million ads share one copy
    of each word, and a tuple is a fifth of a frozenset's size), the place and the price."""

    terms: tuple[str, ...]
    location: str
    price: float | None

    @classmethod
    def of(cls, title: str | None, location: str | None, price: float | None) -> "Ad":
        price = None if price is None or math.isnan(float(price)) else round(float(price), 2)
        return cls(tuple(sorted(map(sys.intern, set(match_terms(title))))), sys.intern(location or ""), price)


def jaccard(a: Iterable[str], b: Iterable[str]) -> float:
    """Term Jaccard of two collections of distinct terms."""
    a, b = set(a), set(b)
    return len(a & b) / len(a | b) if a or b else 0.0


def photo_linked(a: Ad, b: Ad) -> bool:
    """Two listings with a near-identical photo: one ad when the titles share words, and the place or the price."""
    return jaccard(a.terms, b.terms) >= PHOTO_TITLE_SHARED and (a.location == b.location or a.price == b.price)


def title_linked(a: Ad, b: Ad) -> bool:
    """A near-identical title from one place at one price."""
    return a.location == b.location and a.price == b.price and jaccard(a.terms, b.terms) >= TITLE_SAME


class DuplicateGroups:
    """Listing keys -> their group of near-duplicates, kept current one listing at a time.

    Not thread-safe for writers (the catalogue view's writer lock serialises them); readers see
    each listing's group id change in one assignment."""

    def __init__(self) -> None:
        self._ads: dict[int, Ad] = {}
        self._links: dict[int, list[int]] = {}  # lists, not sets: a listing has few links
        # (place, price) -> term -> keys: a title twin shares most terms, so only the keys holding one of
        # a few of the new title's rarest terms are compared (a bucket of 1,000s is not read whole); lists,
        # not sets (a removal is rare, and a set costs four times the memory)
        self._postings: dict[tuple[str, float | None], dict[str, list[int]]] = {}
        self._group = np.full(1024, NONE, np.int64)  # key -> group id; NONE: in no group
        self._members: dict[int, tuple[int, ...]] = {}  # group id -> its keys, ascending

    # ------------------------------------------------------------- writes
    def add(self, key: int, ad: Ad) -> None:
        """A listing (or its new version): its title links; photo links come through :meth:`link_photos`."""
        key = int(key)
        self.remove(key)
        self._ads[key] = ad
        where = (ad.location, ad.price)
        postings = self._postings.setdefault(where, {})
        twins = [k for k in self._title_candidates(ad, postings) if title_linked(ad, self._ads[k])]
        for term in ad.terms:
            postings.setdefault(term, []).append(key)
        self._link(key, twins, fresh=True)

    @staticmethod
    def _title_candidates(ad: Ad, postings: dict[str, list[int]]) -> set[int]:
        """The keys of a bucket that can be ``ad``'s title twins: a twin (Jaccard >= ``TITLE_SAME``) lacks
        at most floor((1 - TITLE_SAME) * n) of the n terms, so it holds one of any that many + 1 terms:
        the rarest ones are looked up."""
        if not ad.terms:
            return set()
        need = math.floor((1.0 - TITLE_SAME) * len(ad.terms) + 1e-9) + 1
        rarest = sorted(ad.terms, key=lambda t: (len(postings.get(t, ())), t))[:need]
        return set().union(*(postings.get(t, ()) for t in rarest))

    def link_photos(self, key: int, near: Iterable[int]) -> None:
        """Link ``key`` to the listings holding a near-identical photo (``near``) that :func:`photo_linked` admits."""
        ad = self._ads.get(int(key))
        if ad is None:
            return
        self._link(int(key), [int(k) for k in near
                              if int(k) != key and int(k) in self._ads and photo_linked(ad, self._ads[int(k)])])

    def remove(self, key: int) -> None:
        """Forget a listing; its group is split again where it held the group together."""
        key = int(key)
        ad = self._ads.pop(key, None)
        if ad is None:
            return
        postings = self._postings.get((ad.location, ad.price), {})
        for term in ad.terms:
            held = postings.get(term)
            if held is not None and key in held:
                held.remove(key)
                if not held:
                    del postings[term]
        for other in self._links.pop(key, ()):
            theirs = self._links.get(other)
            if theirs is not None and key in theirs:
                theirs.remove(key)
        gid = self.group_id(key)
        if gid != NONE:
            members = [k for k in self._members.pop(gid) if k != key]
            self._set(key, NONE)
            self._regroup(members)

    def _link(self, key: int, others: list[int], fresh: bool = False) -> None:
        """Link ``key`` to each of ``others`` (distinct keys); ``fresh``: ``key`` has just been added and
        holds no link yet, so none is there twice."""
        if not others:
            return
        for other in others:
            for a, b in ((key, other), (other, key)):
                links = self._links.setdefault(a, [])
                if fresh or b not in links:
                    links.append(b)
        keys = {key, *others}
        merged = set(keys)
        for k in keys:
            gid = self.group_id(k)
            if gid != NONE:
                merged.update(self._members.pop(gid, ()))
        self._assign(sorted(merged))

    def _regroup(self, keys: list[int]) -> None:
        """Connected components of ``keys`` over the links (after a removal split them)."""
        left = set(keys)
        while left:
            start = left.pop()
            component, frontier = {start}, [start]
            while frontier:
                for nxt in self._links.get(frontier.pop(), ()):
                    if nxt in left:
                        left.discard(nxt)
                        component.add(nxt)
                        frontier.append(nxt)
            if len(component) == 1:
                self._set(start, NONE)
            else:
                self._assign(sorted(component))

    def _assign(self, members: list[int]) -> None:
        gid = members[0]
        self._members[gid] = tuple(members)
        for k in members:
            self._set(k, gid)

    def _set(self, key: int, gid: int) -> None:
        if key >= len(self._group):
            grown = np.full(max(key + 1, 2 * len(self._group)), NONE, np.int64)
            grown[:len(self._group)] = self._group
            self._group = grown
        self._group[key] = gid

    # ------------------------------------------------------------- reads
    def group_id(self, key: int) -> int:
        table = self._group
        return int(table[key]) if 0 <= key < len(table) else NONE

    def group_of(self, keys: np.ndarray) -> np.ndarray:
        """A group label per listing key: equal within a group, and for a listing in no group a label of its
        own (``-1 - key``), so ``np.unique`` over the labels counts results."""
        keys = np.asarray(keys, np.int64)
        table = self._group
        inside = (keys >= 0) & (keys < len(table))
        gid = np.where(inside, table[np.where(inside, keys, 0)], NONE)
        return np.where(gid == NONE, -1 - keys, gid)

    def members(self, gid: int) -> tuple[int, ...]:
        return self._members.get(int(gid), ())

    def groups(self) -> list[tuple[int, ...]]:
        """Every group of two or more listings (keys ascending)."""
        return list(self._members.values())

    def __len__(self) -> int:
        return len(self._members)
