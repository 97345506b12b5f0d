"""The int8 fast path of the vision graph: static quantisation calibrated on catalogue photos.

The default recipe (``vision.int8_backbone`` with a frozen backbone) runs the backbone int8 for the
training cache, the catalogue embeddings and serving alike, so queries and catalogue share one graph;
a fine-tuned fp32 model gets an int8 copy only with ``settings.serve.quantized`` (docs/performance.md
has the accuracy cost of each). Static QDQ with per-channel weights is the scheme a CNN needs: dynamic
quantisation (ConvInteger) was measured both slower and far less accurate than fp32 here.
The 1000-way layer and the category layer (Gemm / MatMul) stay fp32: they are the embedding and
the answer, and cost little next to the convolutions.

Needs the ``onnx`` package (the ``train`` extra); the int8 graph is written once beside the fp32
one and reused while it is newer.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from listing_search.pipeline import atomic_path
from listing_search.vision.preprocess import PreprocessConfig, load_image

log = logging.getLogger(__name__)

INT8_SUFFIX = ".int8.onnx"
CALIBRATION_PHOTOS = 64


def int8_path(fp32: Path) -> Path:
    """``model/vision.onnx`` -> ``model/vision.int8.onnx``."""
    return Path(fp32).with_suffix(INT8_SUFFIX)


class _FromQuantiser(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        import onnxruntime

        self.package = os.path.dirname(onnxruntime.__file__) + os.sep

    def filter(self, record: logging.LogRecord) -> bool:
        if record.pathname.startswith(self.package) and record.levelno < logging.WARNING:
            log.debug("quantiser: %s", record.getMessage())
            return False
        return True


_QUIET = threading.Lock()  # one quantisation at a time changes (and restores) the loggers


@contextlib.contextmanager
def _quiet_quantiser_logs() -> Iterator[None]:
    """The quantiser's info lines (through the root logger and its own) are dropped or become debug lines."""
    with _QUIET:
        root = logging.getLogger()
        quiet = _FromQuantiser()
        root.addFilter(quiet)  # its module-level logging.info(...) calls
        named = [logging.getLogger(name) for name in ["onnxruntime", *logging.root.manager.loggerDict]
                 if name.startswith("onnxruntime")]  # and its named loggers (shape inference)
        levels = [logger.level for logger in named]
        for logger in named:
            logger.setLevel(logging.WARNING)
        try:
            yield
        finally:
            root.removeFilter(quiet)
            for logger, level in zip(named, levels):
                logger.setLevel(level)


def quantize_static(fp32: Path, dest: Path, calibration: np.ndarray, batch: int = 8) -> Path:
    """Write the int8 QDQ graph of ``fp32`` to ``dest``, activation ranges from ``calibration`` [N,3,S,S]."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static as ort_quantize,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    batch = max(1, min(batch, len(calibration)))
    usable = len(calibration) - len(calibration) % batch  # equal batches: the histogram collector needs them

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"image": np.ascontiguousarray(calibration[i:i + batch], dtype=np.float32)}
                                 for i in range(0, usable, batch)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    # The quantiser prints its progress and logs every bias scale it widens (dozens of lines): neither
    # tells a user anything, and stdout belongs to the caller (CLI JSON, bench lines). Both go to debug.
    # (redirect_stdout is process-wide: another thread's print() meanwhile lands in the debug line too.)
    printed = io.StringIO()
    try:
        with atomic_path(dest.with_suffix(".pre.onnx")) as prepared, atomic_path(dest) as tmp, \
                contextlib.redirect_stdout(printed), _quiet_quantiser_logs():
            quant_pre_process(str(fp32), str(prepared))
            keep_fp32 = [n.name for n in onnx.load(str(prepared)).graph.node if n.op_type in ("Gemm", "MatMul")]
            ort_quantize(str(prepared), str(tmp), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                         activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                         nodes_to_exclude=keep_fp32, calibrate_method=CalibrationMethod.Percentile)
    finally:
        log.debug("quantiser output:\n%s", printed.getvalue())
    dest.with_suffix(".pre.onnx").unlink(missing_ok=True)
    log.info("int8 vision graph written to %s (calibrated on %d photos)", dest, len(calibration))
    return dest


def append_tail(backbone: Path, tail: Path, dest: Path, backbone_output: str, tail_input: str) -> Path:
    """One graph from the int8 backbone and the fp32 trained tail (``onnx.compose``): the backbone's
    nodes and weights are copied unchanged, so the served graph computes the very features the
    training cache held."""
    import onnx
    from onnx import compose

    merged = compose.merge_models(onnx.load(str(backbone)), onnx.load(str(tail)),
                                  io_map=[(backbone_output, tail_input)])
    onnx.checker.check_model(merged)
    with atomic_path(Path(dest)) as tmp:
        onnx.save(merged, str(tmp))
    return Path(dest)


def calibration_batch(images: Path, cfg: PreprocessConfig, count: int = CALIBRATION_PHOTOS,
                      seed: int = 0) -> np.ndarray:
    """A seeded sample of ``count`` photos of the folder, preprocessed as the model expects."""
    photos = sorted(Path(images).glob("*.jpg"))
    if not photos:
        raise FileNotFoundError(f"no photos in {images} to calibrate the int8 model")
    rng = np.random.default_rng(seed)
    chosen = [photos[i] for i in sorted(rng.choice(len(photos), size=min(count, len(photos)), replace=False))]
    return np.stack([load_image(p, cfg) for p in chosen])


def ensure_int8(fp32: Path, images: Path, cfg: PreprocessConfig) -> Path:
    """The int8 graph beside ``fp32``, (re)built when missing or older than the fp32 graph (for models
    trained with an fp32 backbone; one with an int8 backbone serves its graph as it is)."""
    dest = int8_path(fp32)
    if dest.is_file() and dest.stat().st_mtime >= Path(fp32).stat().st_mtime:
        return dest
    return quantize_static(Path(fp32), dest, calibration_batch(images, cfg))
