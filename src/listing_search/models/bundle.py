"""The fitted models a search applies, loaded together from an artifacts folder with their versions.

``tune-ranker`` writes ``ranker.json``, ``category_predictor.json`` and ``relevance.json``; before
it has run (or when its files do not match this code's features) the bundle ranks with hand
weights, predicts categories with the vision head alone and shows no relevance.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from listing_search import schema as S
from listing_search.models.category import CategoryPredictor
from listing_search.models.ranker import Ranker, RankerModel, load_ranker
from listing_search.models.relevance import Relevance
from listing_search.pipeline import file_sha

log = logging.getLogger(__name__)
HAND_WEIGHTED = "hand-weighted"


@dataclass(frozen=True)
class ModelBundle:
    """Ranker, category predictor and relevance calibration; read-only, shared by every request."""

    ranker: RankerModel
    fitted: bool
    predictor: CategoryPredictor | None
    calibration: Relevance | None
    categories: tuple[str, ...]  # the root categories, in label order
    version: str = HAND_WEIGHTED  # the ranker's kind and a hash of the ranker.json it came from

    @classmethod
    def load(cls, artifacts: Path, features: tuple[str, ...], categories: list[str], image_dim: int,
             hand_weighted: bool = False) -> "ModelBundle":
        """What ``tune-ranker`` fit in ``artifacts``; hand weights when it has not run (or when asked:
        ``tune-ranker`` itself fits through a hand-weighted engine)."""
        art = Path(artifacts)
        fitted = not hand_weighted and (art / S.RANKER_JSON).is_file()
        ranker = load_ranker(art / S.RANKER_JSON) if fitted else Ranker.default(list(features))
        if list(ranker.features) != list(features):
            log.warning("ranker.json features %s differ from %s: using hand weights until `tune-ranker` runs",
                        ranker.features, features)
            ranker, fitted = Ranker.default(list(features)), False
        version = f"{ranker.name}-{file_sha(art / S.RANKER_JSON)[:12]}" if fitted else HAND_WEIGHTED
        calibration = None
        if fitted and (art / S.RELEVANCE_JSON).is_file():
            calibration = Relevance.load(art / S.RELEVANCE_JSON)
            if calibration.ranker_sha and calibration.ranker_sha != file_sha(art / S.RANKER_JSON):
                log.warning("relevance.json was calibrated for another ranker.json: relevance not shown")
                calibration = None
        predictor = None
        if (art / S.CATEGORY_PREDICTOR_JSON).is_file():
            predictor = CategoryPredictor.load(art / S.CATEGORY_PREDICTOR_JSON)
            if predictor.image_dim not in (0, image_dim):
                log.warning("category predictor expects %d-d photos, model gives %d: photo part unused",
                            predictor.image_dim, image_dim)
        log.info("ranking: %s ranker, category predictor %s, relevance %s", version,
                 "loaded" if predictor else "absent", "calibrated" if calibration else "uncalibrated")
        cats = tuple(predictor.categories) if predictor is not None else tuple(categories)
        return cls(ranker, fitted, predictor, calibration, cats, version)

    def with_models(self, **changes) -> "ModelBundle":
        """A copy with some models swapped (fitting: a cross-fitted predictor, a ranker not yet written)."""
        return replace(self, **changes)

    def label_of(self, root: str | None) -> int | None:
        try:
            return self.categories.index(root) if root is not None else None
        except ValueError:
            return None

    def labels_of(self, roots: list[str]) -> np.ndarray:
        """Label of each root category name (-1 for names the bundle does not know)."""
        index = {c: i for i, c in enumerate(self.categories)}
        return np.array([index.get(r, -1) for r in roots], np.int64)

    def relevance(self, scores: np.ndarray, mode: str | None) -> np.ndarray | None:
        """Calibrated P(the listing shares the query's root category); None before calibration."""
        if self.calibration is None or not self.fitted or mode is None:
            return None
        return self.calibration.apply(np.asarray(scores, np.float64), mode)

    def same_path(self, scores: np.ndarray, mode: str | None) -> np.ndarray | None:
        """Calibrated P(the listing is in the query's full category path); None before calibration (or
        in a ``relevance.json`` fit before it had this calibrator)."""
        if self.calibration is None or not self.fitted or mode is None:
            return None
        return self.calibration.apply_path(scores, mode)

    def no_match_below(self, mode: str | None) -> float | None:
        """Best relevance under which a search of this mode matches nothing; None without calibration."""
        if self.calibration is None or not self.fitted or mode is None:
            return None
        return self.calibration.threshold(mode)

    def no_match_cosine_below(self, mode: str | None) -> float | None:
        """Best photo cosine under which a search of this mode matches nothing; None when there is no such rule."""
        if self.calibration is None or not self.fitted or mode is None:
            return None
        return self.calibration.cosine_threshold(mode)
