"""Honest evaluation on listings never used in training: a raw dataset folder (Products.csv, Images.csv,
images/), measured through the paths users hit: the served ONNX vision graph (``evaluate.vision``)
and the search pipeline's front doors (``evaluate.search``). One JSON object of registered metrics.
"""

from __future__ import annotations

from pathlib import Path

from listing_search import schema as S
from listing_search.evaluate import buyer, personal, search, vision  # noqa: F401  (importing registers their metrics)
from listing_search.evaluate import ads  # noqa: F401  (registers duplicate_groups and buying_ads)
from listing_search.evaluate.registry import METRICS, EvalContext
from listing_search.settings import Settings


def evaluate(settings: Settings, artifacts: Path, data: Path, metrics: list[str] | None = None) -> dict:
    """Every registered metric (or the named ones) on the never-seen listings of ``data``."""
    data = Path(data)
    for required in (data / S.PRODUCTS_CSV, data / S.IMAGES_CSV):
        if not required.is_file():
            raise FileNotFoundError(f"{required} not found: --data must be a raw dataset folder")
    ctx = EvalContext(settings, Path(artifacts), data)
    names = metrics or list(METRICS)
    unknown = set(names) - set(METRICS)
    if unknown:
        raise KeyError(f"unknown metrics {sorted(unknown)}; known: {sorted(METRICS)}")
    result = {name: METRICS[name](ctx) for name in names}
    result["skipped"] = dict(ctx.counts)
    return result
