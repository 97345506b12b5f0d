"""Photo -> model input, in numpy + Pillow only (no torch), shared by training, embedding and serving.

The model carries its :class:`PreprocessConfig` in ``model/model_card.json``; serving rebuilds it
from there, so a photo is preprocessed exactly as in training, by construction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from listing_search.data.images import Photo, standardise, standardise_photo

# The real photos are at most 1024 px a side (1.05 MP); 40 MP still takes any 12-24 MP camera photo,
# and bounds one full decode (a PNG) at 160 MB where 64 MP allowed 256 MB.
DEFAULT_MAX_PIXELS = 40_000_000


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
    """A ``input_size``-square RGB image -> float32 CHW array, scaled to [0,1] then standardised.

    One multiply-add per channel straight from the uint8 plane into the output (x / 255 - mean) / std
    = x * scale + bias: ~9x faster than float conversion, subtraction and division as whole arrays,
    the same numbers to float32 rounding."""
    arr = np.asarray(img)
    std = np.asarray(cfg.std, np.float64)
    scale, bias = (1.0 / (255.0 * std)).astype(np.float32), (-np.asarray(cfg.mean) / std).astype(np.float32)
    out = np.empty((3, *arr.shape[:2]), np.float32)
    for c in range(3):
        np.multiply(arr[:, :, c], scale[c], out=out[c], casting="unsafe")
        out[c] += bias[c]
    return out


def load_image(
    data: bytes | Path, cfg: PreprocessConfig, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Any photo (bytes or path) -> model input (3, S, S). Raises ``ImageRejected`` for bad photos."""
    return normalise(standardise(data, cfg.input_size, max_pixels), cfg)


def prepare_photo(photo: Photo, cfg: PreprocessConfig) -> np.ndarray:
    """A peeked photo (its JPEG drafted to ``input_size``) -> model input (3, S, S)."""
    return normalise(standardise_photo(photo, cfg.input_size), cfg)
