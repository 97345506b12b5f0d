"""ONNX export of the vision graph, and the check that ONNX Runtime agrees with PyTorch.

Serving runs the ONNX graph with onnxruntime only (no torch), so the export is checked numerically
on every build rather than trusted.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from listing_search.pipeline import atomic_path

log = logging.getLogger(__name__)

OPSET = 17
PARITY_TOLERANCE = 1e-3


def export_onnx(module: nn.Module, path: Path, size: int, input_names: list[str],
                output_names: list[str], sample: torch.Tensor | None = None) -> Path:
    """Export ``module`` (on CPU, eval mode) with a dynamic batch dimension, atomically; its input is a
    photo batch [2, 3, size, size] unless another ``sample`` is given."""
    module = module.cpu().eval()
    sample = torch.zeros(2, 3, size, size) if sample is None else sample
    axes = {name: {0: "batch"} for name in [*input_names, *output_names]}
    with atomic_path(Path(path)) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (sample,), str(tmp), input_names=input_names, output_names=output_names,
                          dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    return Path(path)


def onnx_session(path: Path, threads: int | None = None):
    """A CPU ONNX Runtime session (the serving runtime)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def parity(module: nn.Module, path: Path, batch: np.ndarray) -> float:
    """Largest absolute difference between PyTorch and ONNX Runtime over every output."""
    module = module.cpu().eval()
    with torch.inference_mode():
        expected = module(torch.from_numpy(batch))
    expected = expected if isinstance(expected, tuple) else (expected,)
    session = onnx_session(path)
    got = session.run(None, {session.get_inputs()[0].name: batch})
    return float(max(np.abs(e.numpy() - g).max() for e, g in zip(expected, got)))
