"""Torch-free text encoder: the exported MiniLM graph run by onnxruntime, tokenised by ``tokenizers``.

Serving embeds queries (and listings added at run time) with this class only, so the API never
imports torch. Mean pooling and L2 normalisation live inside the ONNX graph, so this class and the
build-time sentence-transformers model produce the same vectors by construction (checked by a test).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from listing_search import schema as S

log = logging.getLogger(__name__)

TEXT_MAX_CHARS = 2000  # longer descriptions are cut before tokenising: the model sees 128 tokens anyway


def listing_text(title: str, description: str) -> str:
    """What is embedded for a listing: the cleaned title, then the description."""
    title = (title or "").strip()
    description = (description or "").strip()
    text = f"{title}. {description}" if description else title
    return text[:TEXT_MAX_CHARS]


class TextEncoder:
    """Texts -> float32 L2-normalised MiniLM embeddings, with onnxruntime and ``tokenizers`` only."""

    def __init__(self, onnx_path: Path | bytes, tokenizer_path: Path | str, max_length: int = 128,
                 batch_size: int = 64, threads: int | None = None, spinning: bool = True) -> None:
        """``onnx_path`` and ``tokenizer_path`` are files, or the graph's bytes and the tokenizer's JSON
        (a cluster worker reads them from the work area). ``spinning=False``: ORT's idle worker threads
        sleep instead of spinning: less CPU per query and more throughput under concurrency, a few ms
        more for one client (``serve.text_spinning``; measured in docs/performance.md)."""
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.max_length = max_length
        self.batch_size = batch_size
        self.tokenizer = Tokenizer.from_str(tokenizer_path) if isinstance(tokenizer_path, str) \
            else Tokenizer.from_file(str(tokenizer_path))
        self.tokenizer.enable_truncation(max_length=max_length)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # pad to the longest in the batch
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        if not spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        graph = onnx_path if isinstance(onnx_path, bytes) else str(onnx_path)
        self.session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        self.input_names = {i.name for i in self.session.get_inputs()}
        self.dim = int(self.session.get_outputs()[0].shape[-1])

    @classmethod
    def from_artifacts(cls, artifacts: Path, threads: int | None = None, spinning: bool = True) -> "TextEncoder":
        """The encoder written by the ``embed-text`` stage, with the settings it was built with."""
        artifacts = Path(artifacts)
        card = json.loads((artifacts / S.TEXT_MODEL_CARD).read_text())
        return cls(artifacts / S.TEXT_ONNX, artifacts / S.TEXT_TOKENIZER, int(card["max_length"]),
                   threads=threads, spinning=spinning)

    def encode(self, texts: list[str]) -> np.ndarray:
        """[N, D] float32 unit vectors in the order given; an empty list gives a [0, D] array.

        Batches are made of texts of similar length (each is padded to its longest), then put back in
        order: mean pooling over the attention mask makes a vector independent of its batch."""
        order = np.argsort([len(t or "") for t in texts], kind="stable")
        out = np.zeros((len(texts), self.dim), np.float32)
        for i in range(0, len(texts), self.batch_size):
            rows = order[i:i + self.batch_size]
            out[rows] = self._encode_batch([texts[j] for j in rows])
        return out

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch([t or "" for t in texts])
        feeds = {
            "input_ids": np.array([e.ids for e in encodings], np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], np.int64),
        }
        (emb,) = self.session.run(["embedding"], {k: v for k, v in feeds.items() if k in self.input_names})
        return normalise_rows(emb.astype(np.float32))


def normalise_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)
