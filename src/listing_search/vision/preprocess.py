"""Photo -> model input, in numpy + Pillow only (no torch), shared by training, embedding and serving.

The model carries its :class:`PreprocessConfig` in ``model/model_card.json``; serving rebuilds it
from there, so a photo is preprocessed exactly as in training, by construction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from listing_search.data.images import standardise

DEFAULT_MAX_PIXELS = 64_000_000


@dataclass(frozen=True)
class PreprocessConfig:
    input_size: int = 224
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "PreprocessConfig":
        return cls(int(data["input_size"]), tuple(data["mean"]), tuple(data["std"]))


def normalise(img: Image.Image, cfg: PreprocessConfig) -> np.ndarray:
    """A ``input_size``-square RGB image -> float32 CHW array, scaled to [0,1] then standardised."""
    arr = np.asarray(img, dtype=np.float32) * (1.0 / 255.0)
    arr = (arr - np.asarray(cfg.mean, np.float32)) / np.asarray(cfg.std, np.float32)
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def load_image(
    data: bytes | Path, cfg: PreprocessConfig, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Any photo (bytes or path) -> model input (3, S, S). Raises ``ImageRejected`` for bad photos."""
    return normalise(standardise(data, cfg.input_size, max_pixels), cfg)
