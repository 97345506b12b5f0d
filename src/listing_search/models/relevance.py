"""What a ranker score means to a person: calibrated relevance per query mode, and "no good match".

``relevance.json`` (written by ``tune-ranker``) holds a :class:`~listing_search.models.calibrate.ModeCalibrator`
fit on the val split (score -> P(the listing shares the query's root category)), the threshold below
which the best result of a search is reported as no good match (set on the committed nonsense
queries and unlike photos), the hash of the ``ranker.json`` it was calibrated for, and its report;
and a second calibrator, score -> P(the listing is in the query's full category path), which names a
result's ``match`` (``search.present.match_label``): what a buyer wants is the same kind of thing, not
only the same department.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from listing_search.pipeline import atomic_write_text
from listing_search.core.query import MODE_FALLBACK
from listing_search.models.calibrate import ModeCalibrator


@dataclass
class Relevance:
    calibrator: ModeCalibrator
    no_match_below: dict[str, float] = field(default_factory=dict)  # query mode -> threshold
    ranker_sha: str = ""
    # query mode -> best photo cosine under which a photo search matches nothing (a second signal for
    # photos alone: a photo of nothing the catalogue sells can still sit on a relevance plateau)
    cosine_below: dict[str, float] = field(default_factory=dict)
    report: dict = field(default_factory=dict)
    path: ModeCalibrator | None = None  # score -> P(same full category path); None in files fit before it

    def apply(self, scores: np.ndarray, mode: str) -> np.ndarray:
        return self.calibrator.apply(np.asarray(scores, np.float64), mode)

    def apply_path(self, scores: np.ndarray, mode: str) -> np.ndarray | None:
        return None if self.path is None else self.path.apply(np.asarray(scores, np.float64), mode)

    def threshold(self, mode: str) -> float:
        """Best relevance under which a search of this mode is answered "no good match"."""
        return float(self.no_match_below.get(mode, self.no_match_below.get(MODE_FALLBACK.get(mode, ""), 0.0)))

    def cosine_threshold(self, mode: str) -> float | None:
        """Best photo cosine under which a search of this mode is answered "no good match" (None: no rule)."""
        t = self.cosine_below.get(mode)
        return None if t is None else float(t)

    def to_json(self) -> dict:
        return {"calibrator": self.calibrator.to_json(), "no_match_below": self.no_match_below,
                "no_match_cosine_below": self.cosine_below, "ranker_sha": self.ranker_sha, "report": self.report,
                "path_calibrator": None if self.path is None else self.path.to_json()}

    @classmethod
    def from_json(cls, d: dict) -> "Relevance":
        thresholds = {m: float(t) for m, t in d.get("no_match_below", {}).items()}
        cosines = {m: float(t) for m, t in d.get("no_match_cosine_below", {}).items()}
        path = d.get("path_calibrator")
        return cls(ModeCalibrator.from_json(d["calibrator"]), thresholds, ranker_sha=d.get("ranker_sha", ""),
                   report=d.get("report", {}), cosine_below=cosines,
                   path=None if path is None else ModeCalibrator.from_json(path))

    def save(self, path: Path) -> None:
        atomic_write_text(Path(path), json.dumps(self.to_json(), indent=1))

    @classmethod
    def load(cls, path: Path) -> "Relevance":
        return cls.from_json(json.loads(Path(path).read_text()))
