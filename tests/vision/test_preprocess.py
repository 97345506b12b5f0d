from __future__ import annotations

import numpy as np
from PIL import Image

from listing_search.vision.preprocess import PreprocessConfig, normalise


def test_normalise_equals_scaling_then_standardising_each_channel() -> None:
    cfg = PreprocessConfig(32, mean=(0.1, 0.5, 0.9), std=(0.2, 0.3, 0.4))
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    pixels[0, 0], pixels[0, 1] = 0, 255  # both ends of the range
    expected = ((pixels / 255.0 - np.array(cfg.mean)) / np.array(cfg.std)).transpose(2, 0, 1)
    got = normalise(Image.fromarray(pixels), cfg)
    assert got.dtype == np.float32 and got.shape == (3, 32, 32) and got.flags.c_contiguous
    assert np.abs(got - expected).max() < 1e-5
