"""A buyer's ``near`` made a point, and the places offered while one is typed.

``near`` is "lat,lon", a gazetteer place (``core.near.resolve``: placed as a listing's location is), or
a location the catalogue's listings have and were placed at (an area the gazetteer lacks, placed at
the centroid of its listings). Anything else is refused with the close names of both, so "Leedz"
answers "did you mean Leeds?". Suggestions come from the same two sources: the gazetteer's places
by population, and the catalogue's locations, the most listed first.
"""

from __future__ import annotations

import numpy as np

from listing_search.core import places
from listing_search.core.near import (
    DEFAULT_WITHIN_KM, MAX_WITHIN_KM, MIN_WITHIN_KM, Near, close_names, resolve, towns_starting,
)
from listing_search.errors import BadNear
from listing_search.index.catalog import CatalogView

MAX_NEAR_CHARS = 200


def resolve_near(catalog: CatalogView, text: str, within_km: float | None = None) -> Near:
    """``near`` and ``within_km`` (default 40 km) as a :class:`Near`; ``BadNear`` naming close matches
    when the place is unknown, or when the radius is out of 1..500 km."""
    text = (text or "").strip()
    km = DEFAULT_WITHIN_KM if within_km is None else float(within_km)
    if not MIN_WITHIN_KM <= km <= MAX_WITHIN_KM:  # also refuses NaN
        raise BadNear(f"within_km: give {MIN_WITHIN_KM:g} to {MAX_WITHIN_KM:g} km, got {within_km}")
    if not text:
        raise BadNear("near: give a town (such as Leeds) or a position as 'lat,lon'")
    if len(text) > MAX_NEAR_CHARS:
        raise BadNear(f"near: at most {MAX_NEAR_CHARS} characters")
    found = find_near(catalog, text, km)
    if found is None:
        matches = close_names(text, _town_names(catalog))
        hint = f": did you mean {', '.join(matches)}?" if matches else "."
        raise BadNear(f"near: unknown place {text!r}{hint} Give a town or a position as 'lat,lon'.", matches)
    return found


def find_near(catalog: CatalogView, text: str, within_km: float | None = None) -> Near | None:
    """``text`` as a place to search near, or None when it is not one (no close names looked up)."""
    text = (text or "").strip()
    if not text or len(text) > MAX_NEAR_CHARS:
        return None
    km = DEFAULT_WITHIN_KM if within_km is None else float(within_km)
    return resolve(text, km) or _catalogue_place(catalog, text, km)


def _catalogue_place(catalog: CatalogView, text: str, km: float) -> Near | None:
    """A location some placed listing has, written as the listings write it (case and accents aside)."""
    want = places.key(text)
    codes = [c for c, loc in enumerate(catalog.locations.values) if places.key(loc) == want]
    if not codes:
        return None
    n = catalog.n
    rows = np.flatnonzero(catalog.alive[:n] & np.isin(catalog.location[:n], codes) & ~np.isnan(catalog.lat[:n]))
    if not len(rows):
        return None
    geo = catalog.geo[rows].astype(np.int64)
    best = int(np.argmin(np.where(geo < 0, len(places.PRECISIONS), geo)))  # town, area, then area centroid
    r, g = int(rows[best]), int(geo[best])
    precision = places.PRECISIONS[g] if g >= 0 else "unknown"
    return Near(float(catalog.lat[r]), float(catalog.lon[r]), km, catalog.locations.values[catalog.location[r]],
                precision)


def _town_names(catalog: CatalogView) -> list[str]:
    """The catalogue's locations and their town parts: what a refusal's close names are drawn from."""
    out = []
    for loc in catalog.locations.values:
        if loc:
            out += [loc, places.split_location(loc)[0]]
    return out


def suggest_places(catalog: CatalogView, prefix: str, k: int) -> list[tuple[str, int]]:
    """(name, listings there) of places starting with ``prefix``: the catalogue's locations whose town
    starts with it, the most listed first, then gazetteer places by population (0 listings at that
    exact name: a town near listings is still worth searching from)."""
    want = places.key(prefix)
    if not want:
        return []
    towns: dict[str, int] = {}
    for loc, n in _listed(catalog).items():
        town = places.split_location(loc)[0]
        if places.key(town).startswith(want):
            name = town if resolve(town) is not None else loc  # "Downend" alone is no place: "Downend, Bristol"
            towns[name] = towns.get(name, 0) + n
    out = sorted(towns.items(), key=lambda tn: (-tn[1], tn[0]))[:k]
    seen = {places.key(t) for t, _ in out}
    for name in towns_starting(prefix, k):
        if len(out) >= k:
            break
        if places.key(name) not in seen:
            seen.add(places.key(name))
            out.append((name, 0))
    return out


def _listed(catalog: CatalogView) -> dict[str, int]:
    """Live listings per location string."""
    rows = catalog.live_rows()
    return catalog.counts(rows, "location") if len(rows) else {}
