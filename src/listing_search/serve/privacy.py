"""A buyer's position is used, never kept: logs and metrics hold it rounded to 0.1° (about 11 km),
and no answer holds an exact position: ``near_resolved`` gives its point to 0.01° (about 1 km) and a
result's ``distance_km`` is to 0.1 km, so neither the buyer's position (an answer may be cached or
shared) nor a listing's stored one (a seller's, never answered as coordinates) can be read back.

A search near "lat,lon" sends the position the browser gave. The answer uses it exactly; what is
written down does not: the query log holds ``Near.rounded()`` (and a place's name, not a position
typed), never a result's distance (listings' positions are public, so exact distances to a few of
them would give the buyer's position back), and the access log's addresses have ``near=`` rounded
before any handler formats them (``GET /v1/listings/{id}?near=...``). Metrics are labelled by the
route's template, never by its parameters.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from listing_search.core.near import parse_coordinates
from listing_search.errors import BadNear

ACCESS_LOGGER = "uvicorn.access"
DIGITS = 1  # logs and metrics: 0.1 degree
SHOWN_DIGITS = 2  # answers: 0.01 degree
KM_DIGITS = 1  # answered distances: 0.1 km


def shown_coordinate(degrees: float) -> float:
    """A coordinate as an answer may hold it."""
    return round(float(degrees), SHOWN_DIGITS)


def shown_km(km: float) -> float:
    """A distance as an answer may hold it."""
    return round(float(km), KM_DIGITS)


def rounded_near(text: str) -> str:
    """ "53.80123,-1.54987" -> "53.8,-1.5"; a place name as it is; anything else dropped."""
    try:
        point = parse_coordinates(text)
    except BadNear:
        return "?"
    if point is None:
        return text
    return f"{round(point[0], DIGITS)},{round(point[1], DIGITS)}"


def private_path(path: str) -> str:
    """A request's path and query with ``near`` rounded (a path without ``near=`` unchanged)."""
    if "near=" not in path:
        return path
    parts = urlsplit(path)
    query = [(k, rounded_near(v) if k == "near" else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(query=urlencode(query)))


class RoundedNearFilter(logging.Filter):
    """Rounds ``near=`` in the access log's request line (uvicorn passes it as an argument)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, str) and "near=" in a for a in record.args):
            record.args = tuple(private_path(a) if isinstance(a, str) else a for a in record.args)
        return True


def install() -> None:
    """Once per process: the access log's filter."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, RoundedNearFilter) for f in logger.filters):
        logger.addFilter(RoundedNearFilter())
