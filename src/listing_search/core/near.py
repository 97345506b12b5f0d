"""Where a buyer searches from: ``near`` (a place name or "lat,lon") and a radius, and distances.

A place name is placed as a listing's location is (``core.places``: the town, else the area's
principal settlement), so "Leeds" and "Leeds, West Yorkshire" are the same point; "53.80,-1.55" is
taken as written. :class:`Near` is what the search path reads: the point, the radius, and for the
answer's ``near_resolved`` the name it resolved to and how precisely. ``core.places`` stays as it
is: its source is part of the coordinates' recipe (``places.recipe``), so nothing here lives there.

Distances are great-circle (haversine) km, one vectorised formula (:func:`haversine_km`) for every
place that compares them: the radius filter, the sort, the facets and the distance shown.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from listing_search.core import places
from listing_search.errors import BadNear

COORDINATES = "coordinates"  # the precision of a "lat,lon" near: exactly as given
DEFAULT_WITHIN_KM = 40.0
MIN_WITHIN_KM, MAX_WITHIN_KM = 1.0, 500.0
KM_PER_MILE = 1.609344
_LAT_LON = re.compile(r"^\s*([+-]?\d{1,3}(?:\.\d+)?)\s*,\s*([+-]?\d{1,3}(?:\.\d+)?)\s*$")


@dataclass(frozen=True)
class Near:
    """A point and a radius. ``within_km`` None: no radius (facets count distance bands without it)."""

    lat: float
    lon: float
    within_km: float | None = DEFAULT_WITHIN_KM
    name: str = ""  # what ``near`` resolved to: a gazetteer or catalogue place, or the coordinates
    precision: str = COORDINATES  # core.places precision of the point (town, area, ...), or COORDINATES

    def unbounded(self) -> "Near":
        return Near(self.lat, self.lon, None, self.name, self.precision)

    def rounded(self, digits: int = 1) -> dict:
        """What logs and metrics may hold: the point to 0.1° (about 11 km; never a buyer's exact position)
        and the radius; a place's name, not coordinates typed."""
        out = {"lat": round(self.lat, digits), "lon": round(self.lon, digits), "within_km": self.within_km}
        if self.precision != COORDINATES:
            out["name"] = self.name
        return out


def haversine_km(lat: float, lon: float, lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
    """Great-circle km from one point to each of ``lats``/``lons`` (NaN where they are NaN)."""
    p1, p2 = math.radians(lat), np.radians(lats)
    a = np.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * np.cos(p2) * np.sin(np.radians(lons - lon) / 2) ** 2
    return 2 * places.EARTH_RADIUS_KM * np.arcsin(np.minimum(1.0, np.sqrt(a)))


def parse_coordinates(text: str) -> tuple[float, float] | None:
    """ "53.80,-1.55" -> (53.8, -1.55); None when the text is not two numbers; out of range: BadNear."""
    m = _LAT_LON.match(text or "")
    if m is None:
        return None
    lat, lon = float(m.group(1)), float(m.group(2))
    if not -90 <= lat <= 90 or not -180 <= lon <= 180:
        raise BadNear(f"near: {text.strip()!r} is not a position: latitude must be within -90..90 and "
                         "longitude within -180..180")
    return lat, lon


def resolve(text: str, within_km: float | None = DEFAULT_WITHIN_KM) -> Near | None:
    """``near`` as coordinates or a gazetteer place (None: the gazetteer does not know it)."""
    point = parse_coordinates(text)
    if point is not None:
        return Near(point[0], point[1], within_km, f"{point[0]:g}, {point[1]:g}", COORDINATES)
    lat, lon, precision = places.place(text.strip())
    if lat is None or lon is None:
        return None
    return Near(lat, lon, within_km, _name_at(lat, lon) or text.strip(), precision)


@lru_cache(maxsize=1)
def _names_by_point() -> dict[tuple[float, float], str]:
    """Each gazetteer point's name (the most populous place there): what a resolved ``near`` is called."""
    out: dict[tuple[float, float], tuple[int, str]] = {}
    for e in places.gazetteer().entries:
        if (e.lat, e.lon) not in out or e.population > out[(e.lat, e.lon)][0]:
            out[(e.lat, e.lon)] = (e.population, e.name)
    return {p: name for p, (_, name) in out.items()}


def _name_at(lat: float, lon: float) -> str | None:
    return _names_by_point().get((lat, lon))


@lru_cache(maxsize=1)
def _by_population() -> tuple[tuple[str, str], ...]:
    """(key, name) of every gazetteer place, most populous first (one per name)."""
    seen, out = set(), []
    for e in sorted(places.gazetteer().entries, key=lambda e: (-e.population, e.name)):
        k = places.key(e.name)
        if k not in seen:
            seen.add(k)
            out.append((k, e.name))
    return tuple(out)


@lru_cache(maxsize=1)
def _population_by_key() -> dict[str, int]:
    out: dict[str, int] = {}
    for e in places.gazetteer().entries:
        k = places.key(e.name)
        out[k] = max(out.get(k, 0), e.population)
    return out


def warm() -> None:
    """Read the gazetteer now (0.6 s), so the first search naming a place ("sofa in Leeds") or the
    first place typed in the page's box does not wait for it; the server calls this while starting."""
    _population_by_key()
    _by_population()


def population(name: str) -> int:
    """The people of the most populous gazetteer place called ``name`` (0 when there is none)."""
    return _population_by_key().get(places.key(name), 0)


def towns_starting(prefix: str, k: int) -> list[str]:
    """Gazetteer places whose name starts with ``prefix`` (compared as keys), most populous first."""
    want = places.key(prefix)
    if not want:
        return []
    out = []
    for key, name in _by_population():
        if key.startswith(want):
            out.append(name)
            if len(out) == k:
                break
    return out


def close_names(text: str, known: list[str], n: int = 5) -> tuple[str, ...]:
    """Names like ``text`` among the gazetteer's places and ``known`` (the catalogue's locations), for a
    refusal that helps: "Leedz" -> Leeds."""
    names = dict(_by_population())
    for name in known:
        names.setdefault(places.key(name), name)
    found = difflib.get_close_matches(places.key(text), list(names), n=n, cutoff=0.75)
    return tuple(names[k] for k in found)
