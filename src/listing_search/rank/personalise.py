"""Personalisation's vocabulary: history events and how much each counts.

A profile (``rank.serving.RankingService.profile``) is a weighted, recency-decayed mean of the
listings the user touched (liked counts more than searched, which counts more than viewed), in text
space and photo space, plus smoothed root-category preferences. The learned ranker scores the
feed; with a query the two scores are blended. Seen listings are never returned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

EVENT_WEIGHTS = {"viewed": 1.0, "searched": 1.5, "liked": 3.0}
HALF_LIFE_DAYS = 14.0
PRIOR_STRENGTH = 1.0  # pseudo-events spread evenly over categories


@dataclass(frozen=True)
class HistoryEvent:
    listing_id: str
    event: str = "viewed"
    timestamp: float | None = None  # seconds since the epoch


def event_weight(event: HistoryEvent, now: float, half_life_days: float = HALF_LIFE_DAYS) -> float:
    """Kind weight times 2^(-age / half-life); events without a time count fully."""
    base = EVENT_WEIGHTS.get(event.event, 1.0)
    if event.timestamp is None:
        return base
    age_days = max(0.0, now - float(event.timestamp)) / 86400.0
    return base * math.pow(0.5, age_days / half_life_days)
