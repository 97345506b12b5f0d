"""Where listings are, for a search near a point: each distinct position once, and a radius query.

Listings are placed at a town or at an area's principal settlement (``core.places``), so many share a
position: the real catalogue's 6,441 listings sit at 1,100 or so. :class:`Points` numbers each
distinct (lat, lon) once; a catalogue row holds its point's code. A radius query keeps the points
inside the circle's bounding box (two comparisons a column), computes the exact haversine distance
(``core.near.haversine_km``) of those only, and hands back every point's distance, +inf outside the
radius; a row's distance is then a lookup by its code, so the catalogue's rows never go through
trigonometry. The result equals brute-force haversine over every row (``tests/index/test_points.py``);
its cost is one pass over the points and one gather over the rows (``bench/bench_radius.py``).

Append-only, like the catalogue: arrays grow by copying, and a reader holding the old arrays still
finds every point it knew. Memory: 16 bytes a distinct point plus its dict entry (~100 bytes).
"""

from __future__ import annotations

import math

import numpy as np

from listing_search.core.near import haversine_km
from listing_search.core.places import EARTH_RADIUS_KM

NONE = -1  # the code of a listing without coordinates; ``distances`` gives it +inf
_GROW = 1.5
_MARGIN_DEG = 1e-6  # the box is widened by this much: rounding in its trigonometry never cuts a point off


class Points:
    """Distinct positions, numbered in order of first sight; one writer at a time (the catalogue's lock)."""

    def __init__(self, capacity: int = 256) -> None:
        self.n = 0
        self._code: dict[complex, int] = {}
        self.lat = np.full(capacity, np.nan)
        self.lon = np.full(capacity, np.nan)

    def code(self, lat: float | None, lon: float | None) -> int:
        """The point's code, numbering it if new; ``NONE`` without a finite position."""
        if lat is None or lon is None or not (math.isfinite(lat) and math.isfinite(lon)):
            return NONE
        at = complex(lat, lon)  # exact: a gazetteer place's listings share one float pair
        c = self._code.get(at)
        if c is None:
            c = self.n
            if c >= len(self.lat):
                self._grow(c + 1)
            self.lat[c], self.lon[c] = lat, lon
            self.n += 1  # published after its values, so a reader never sees a point half-written
            self._code[at] = c
        return c

    def _grow(self, rows: int) -> None:
        size = max(rows, int(len(self.lat) * _GROW) + 1)
        lat, lon = np.full(size, np.nan), np.full(size, np.nan)
        lat[:self.n], lon[:self.n] = self.lat[:self.n], self.lon[:self.n]
        self.lat, self.lon = lat, lon

    def __len__(self) -> int:
        return self.n

    def distances(self, lat: float, lon: float, within_km: float | None) -> np.ndarray:
        """Km from (lat, lon) to every point, +inf beyond ``within_km`` (None: no limit); one more entry,
        last, is +inf too: indexing with ``NONE`` (-1) reads it."""
        n = self.n
        lats, lons = self.lat[:n], self.lon[:n]
        out = np.full(n + 1, np.inf)
        cand = np.arange(n) if within_km is None else np.flatnonzero(_in_box(lats, lons, lat, lon, within_km))
        d = haversine_km(lat, lon, lats[cand], lons[cand])
        keep = d <= (np.inf if within_km is None else within_km)
        out[cand[keep]] = d[keep]
        return out


def _in_box(lats: np.ndarray, lons: np.ndarray, lat: float, lon: float, km: float) -> np.ndarray:
    """The points inside the bounding box of the circle of ``km`` around (lat, lon): its latitude band,
    and the widest longitude span the circle reaches (all longitudes when it holds a pole)."""
    r = km / EARTH_RADIUS_KM
    dlat = math.degrees(r) + _MARGIN_DEG
    lo, hi = lat - dlat, lat + dlat
    band = (lats >= lo) & (lats <= hi)
    if lo <= -90 or hi >= 90 or r >= math.pi / 2:
        return band
    ratio = math.sin(r) / math.cos(math.radians(lat))
    if ratio >= 1:
        return band
    dlon = math.degrees(math.asin(ratio)) + _MARGIN_DEG
    west, east = lon - dlon, lon + dlon
    if west < -180:
        return band & ((lons >= west + 360) | (lons <= east))
    if east > 180:
        return band & ((lons >= west) | (lons <= east - 360))
    return band & (lons >= west) & (lons <= east)
