"""What kind of ad a listing is: someone selling, or someone buying ("WANTED", "cash for your …").

A buyer cannot buy from a buying ad, so search ranks them after sale ads and can leave them out
(``Filters.buying``). Rules on the title and the description, measured on a labelled sample of the
real listings (``evaluate`` key ``buying_ads``, labels in ``evaluate/labels/buying_ads.csv``).

The title decides first: "wanted" or "looking for" at its start, "X wanted", "cash for …", "we buy",
"best prices paid". A sale ad's "no longer wanted", "unwanted gift", "if wanted", "first to see will
buy", "looking for £20" and help wanted ("models needed", "wholesaler wanted?") are not buying. The
description counts only for what sale ads never say there: "we buy", "anyone selling", "wanted:"
at its start.
"""

from __future__ import annotations

import re

_FLAGS = re.IGNORECASE
# "wanted" that is a sale ad's ("no longer wanted", "unwanted", "if wanted", "wanted to sell") or a
# person wanted ("wholesaler wanted?", "buyers wanted") is struck out before "wanted" is looked for.
_NOT_WANTED = re.compile(r"(?:no longer|not|if|un|buyers?|sellers?|wholesalers?|staff|partners?)\s*wanted\b"
                         r"|\bwanted\s*(?:to sell|\?)", _FLAGS)
_WANTED = re.compile(r"\bwanted\b", _FLAGS)
# "looking for" a thing, not a sale ad's "looking for £20", "looking for a quick sale", "... a new home".
_LOOKING = r"looking for(?!\s*(?:£|\d+\s*(?:or|ono|pounds|quid|each)\b|offers?|around|about|a quick|quick|a fast|fast|(?:a )?(?:new|good) home|someone))"
_TITLE = [re.compile(p, _FLAGS) for p in (
    rf"^\W*(?:{_LOOKING}|wtb|want to buy|buying|we buy|i buy)\b",
    r"\b(?:get |instant |quick )?cash (?:for|paid for) (?:your|any|all|old|unwanted|broken|iphones?|gold|records?)\b",
    r"\bcash paid\b",
    r"\b(?:best|top|fair|good|great) prices? paid\b",
    r"\bwe (?:buy|pay)\b",
    r"\bcollections? bought\b",
)]
_DESCRIPTION = [re.compile(p, _FLAGS) for p in (
    rf"^\W*(?:wanted|{_LOOKING}|we buy|i buy)\b",
    r"\bwe buy\b",
    r"\banyone (?:selling|got any)\b",
    r"\blooking for (?:the above |these |this )?to buy\b",
    r"\bi will purchase any\b",
    r"\bcash (?:paid )?for your\b",
)]


def is_buying_ad(title: str | None, description: str | None = None) -> bool:
    """Whether a listing's poster wants to buy rather than sell (see the module)."""
    title, description = title or "", description or ""
    if _WANTED.search(_NOT_WANTED.sub(" ", title)) or any(p.search(title) for p in _TITLE):
        return True
    return any(p.search(description) for p in _DESCRIPTION)
