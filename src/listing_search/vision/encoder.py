"""Torch-free photo encoder: ``model/vision.onnx`` run by ONNX Runtime, preprocessed as in training.

The preprocessing comes from the model card (``PreprocessConfig``), so a served photo goes through
exactly the steps the catalogue photos went through when they were embedded.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from listing_search import schema as S
from listing_search.data.images import Photo, peek
from listing_search.vision.preprocess import DEFAULT_MAX_PIXELS, PreprocessConfig, prepare_photo

log = logging.getLogger(__name__)


class ImageEncoder:
    """Photo bytes -> (embedding [D], category probabilities [C])."""

    def __init__(self, onnx_path: Path, preprocess: PreprocessConfig, categories: list[str],
                 max_pixels: int = DEFAULT_MAX_PIXELS, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        # Spinning worker threads halve nothing and double latency when cores are shared
        # (EfficientNet-Lite0: 35 ms spinning vs 18 ms not, on 2 busy cores).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self.preprocess, self.categories, self.max_pixels = preprocess, list(categories), max_pixels
        outputs = {o.name: o for o in self.session.get_outputs()}
        if "embedding" not in outputs:
            raise ValueError(f"{onnx_path} has no 'embedding' output (has {sorted(outputs)})")
        self.has_logits = "logits" in outputs
        self.dim = int(outputs["embedding"].shape[-1])

    @classmethod
    def from_artifacts(cls, artifacts: Path, max_pixels: int = DEFAULT_MAX_PIXELS,
                       threads: int | None = None, quantized: bool = False) -> "ImageEncoder":
        """The exported model with the preprocessing and categories its card records.

        ``quantized``: its int8 graph instead (built beside it on first use, see vision/quantize.py).
        """
        artifacts = Path(artifacts)
        card = json.loads((artifacts / S.MODEL_CARD).read_text())
        cfg = PreprocessConfig.from_json(card["preprocess"])
        onnx_path = artifacts / S.VISION_ONNX
        if quantized and not card.get("backbone_int8"):  # a model with an int8 backbone serves its own graph
            from listing_search.vision.quantize import ensure_int8

            onnx_path = ensure_int8(onnx_path, artifacts / S.CLEAN_IMAGES_DIR, cfg)
        return cls(onnx_path, cfg, card.get("categories", []), max_pixels, threads)

    def peek(self, data: bytes | Path) -> Photo:
        """The photo's header, checked against the pixel limit, its JPEG drafted to the model's input size."""
        return peek(data, self.max_pixels, draft_to=self.preprocess.input_size)

    def prepare(self, data: bytes | Path) -> np.ndarray:
        """Photo -> model input (3, S, S); raises ``ImageRejected`` for bad photos."""
        return self.prepare_photo(self.peek(data))

    def prepare_photo(self, photo: Photo) -> np.ndarray:
        """A peeked photo -> model input (3, S, S): the decoding half of :meth:`prepare`."""
        return prepare_photo(photo, self.preprocess)

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Model inputs [N,3,S,S] -> (embeddings [N,D], softmax probabilities [N,C] or None)."""
        names = ["embedding", "logits"] if self.has_logits else ["embedding"]
        out = self.session.run(names, {"image": np.ascontiguousarray(batch, dtype=np.float32)})
        probs = softmax(out[1]) if self.has_logits else None
        return np.asarray(out[0], dtype=np.float32), probs

    def embed(self, data: bytes | Path) -> tuple[np.ndarray, np.ndarray | None]:
        """One photo -> (embedding [D], probabilities [C] or None)."""
        emb, probs = self.run(self.prepare(data)[None])
        return emb[0], (None if probs is None else probs[0])


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return (z / z.sum(axis=-1, keepdims=True)).astype(np.float32)
