"""The no-match threshold: below what best relevance a search is answered "no good match".

Set per query mode on the committed nonsense queries and on photos of nothing a marketplace sells,
and capped by the weakest real val queries, all run through the search pipeline's front door.
"""

from __future__ import annotations

from importlib import resources
from io import BytesIO

import numpy as np

from listing_search.core.query import BOTH, CALIBRATION_MODES, IMAGE, TEXT, TEXT_SHORT, Page, Query
from listing_search.search.pipeline import SearchPipeline
from listing_search.search.types import IMAGE as PHOTO_CHANNEL

UNLIKE_PHOTOS = 24
NO_MATCH_QUANTILE = 0.95  # a threshold sits above this share of the nonsense inputs' best ...
REAL_FLAGGED = 0.025  # ... but under all but this share of real val queries (a photo's two rules: half each)
K = 10


def no_match_queries() -> list[str]:
    """The committed nonsense queries (one per line) that must come back as no good match."""
    text = resources.files("listing_search.fit").joinpath("no_match_queries.txt").read_text()
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def unlike_photos(n: int = UNLIKE_PHOTOS, seed: int = 7) -> list[bytes]:
    """Photos of nothing a marketplace sells: flat colours, noise, gradients, stripes (seeded)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            arr = np.broadcast_to(rng.integers(0, 256, 3, dtype=np.uint8), (224, 224, 3))
        elif kind == 1:
            arr = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
        elif kind == 2:
            ramp = np.linspace(0, 255, 224, dtype=np.float64)
            arr = np.stack([np.add.outer(ramp * c, ramp * (1 - c)) / 2 for c in rng.uniform(0, 1, 3)], -1)
        else:
            arr = np.where((np.arange(224)[:, None] // rng.integers(4, 32)) % 2 == 0, 255, 0)[..., None] \
                * np.ones((1, 224, 3))
        buf = BytesIO()
        Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8)).save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def no_match_threshold(pipeline: SearchPipeline, real: dict[str, list[Query]]
                       ) -> tuple[dict[str, float], dict[str, float], dict]:
    """Per query mode: just above the best relevance of 95% of the nonsense inputs of that kind
    (nonsense words for text, unlike photos for photos; the lower of the two for both), but never
    above the best relevance of the 2.5% weakest ``real`` val queries of that mode, so that one nonsense
    word corrected to a real one cannot drag the threshold over real searches (a photo alone meets two
    rules, each capped at half that share: at most 2.5% of real photo searches are answered "no match",
    as for words; 2.5% each had let 4.5% of real held-out photo searches through as "no match").

    For photos alone, the same is set on the best photo cosine of each search (a second signal: an
    unlike photo can land on the same relevance plateau as a weak real one). Returns the relevance
    thresholds, the cosine thresholds and the report.

    Words alone that the catalogue never uses (after correction) are "no match" whatever the
    threshold (``Understanding.unknown_words``); the report's flagged shares count every rule."""
    def best(query: Query) -> tuple[float, bool, float]:
        result = pipeline.search(query)
        cosine = float(pipeline.scored(query).candidates.score(PHOTO_CHANNEL).max(initial=0.0)) if query.has_image else 1.0
        return result.best_relevance or 0.0, result.unknown_words, cosine

    nonsense = {TEXT: [best(Query(text=t, page=Page(K))) for t in no_match_queries()],
                IMAGE: [best(Query(image=p, page=Page(K))) for p in unlike_photos()]}
    nonsense[TEXT_SHORT] = nonsense[TEXT]  # the committed nonsense words are one or two "words" long
    answered = {mode: [best(q) for q in queries] for mode, queries in real.items()}
    above = {m: float(np.quantile([b for b, _, _ in v], NO_MATCH_QUANTILE)) + 0.01 for m, v in nonsense.items() if v}
    above[BOTH] = min(above[TEXT], above[IMAGE]) if nonsense[TEXT] and nonsense[IMAGE] else 0.0
    thresholds, cosines, report = {}, {}, {}
    for mode in CALIBRATION_MODES:
        mine = answered.get(mode, [])
        share = REAL_FLAGGED / 2 if mode == IMAGE and nonsense[IMAGE] else REAL_FLAGGED  # two rules share it
        thresholds[mode] = _capped(above.get(mode, 0.0), [b for b, _, _ in mine], share)
        if mode == IMAGE and nonsense[IMAGE]:
            cosines[mode] = _capped(float(np.quantile([c for _, _, c in nonsense[IMAGE]], NO_MATCH_QUANTILE)) + 0.01,
                                    [c for _, _, c in mine], share)

        def flagged(items: list[tuple[float, bool, float]], t: float = thresholds[mode],
                    c: float = cosines.get(mode, 0.0)) -> float:
            return round(float(np.mean([b < t or unknown or cos < c for b, unknown, cos in items])), 4) \
                if items else float("nan")

        noise = nonsense.get(mode, nonsense[TEXT] + nonsense[IMAGE])
        report[mode] = {"threshold": thresholds[mode], "cosine_threshold": cosines.get(mode),
                        "nonsense_inputs": len(noise), "nonsense_flagged": flagged(noise),
                        "real_val_queries": len(mine), "real_val_flagged": flagged(mine)}
    return thresholds, cosines, report


def _capped(above: float, real: list[float], share: float = REAL_FLAGGED) -> float:
    """``above``, but never above the ``share`` weakest of ``real`` (an order statistic: at most that
    share of the real queries falls under it), floored to 4 decimals."""
    cap = float(np.quantile(real, share, method="lower")) if real else 1.0
    return float(np.floor(min(above, cap) * 1e4) / 1e4)
