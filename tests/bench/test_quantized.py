"""The int8 fast path (serve.quantized) against the exact fp32 graph, on a tiny seeded CNN."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from listing_search.vision.preprocess import PreprocessConfig  # noqa: E402
from listing_search.vision.quantize import ensure_int8, int8_path, quantize_static  # noqa: E402

SIZE, DIM, CLASSES = 32, 16, 4


class TinyNet(torch.nn.Module):
    """Conv stages (quantised) -> pool -> 16-d "embedding" (Gemm, kept fp32) -> logits."""

    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU6(),
            torch.nn.Conv2d(16, 32, 3, stride=2, padding=1), torch.nn.ReLU6(),
            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        self.embed = torch.nn.Linear(32, DIM)
        self.head = torch.nn.Linear(DIM, CLASSES)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.embed(self.features(image))
        return emb, self.head(torch.relu(emb))


def images(n: int, seed: int) -> np.ndarray:
    """Smooth seeded 'photos' (random low-frequency colour fields), normalised like real inputs."""
    rng = np.random.default_rng(seed)
    coarse = rng.standard_normal((n, 3, 4, 4)).astype(np.float32)
    return np.ascontiguousarray(np.kron(coarse, np.ones((1, 1, SIZE // 4, SIZE // 4), np.float32)))


def export(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    net = TinyNet().eval()
    path = tmp_path / "vision.onnx"
    torch.onnx.export(net, (torch.zeros(2, 3, SIZE, SIZE),), str(path), input_names=["image"],
                      output_names=["embedding", "logits"], opset_version=17, dynamo=False,
                      dynamic_axes={n: {0: "batch"} for n in ("image", "embedding", "logits")})
    return path


def run(path: Path, x: np.ndarray) -> list[np.ndarray]:
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"image": x})


def test_int8_graph_agrees_with_fp32(tmp_path: Path) -> None:
    fp32 = export(tmp_path)
    int8 = quantize_static(fp32, int8_path(fp32), images(64, seed=1))
    x = images(200, seed=2)
    (emb, logits), (emb8, logits8) = run(fp32, x), run(int8, x)
    cos = (emb * emb8).sum(1) / (np.linalg.norm(emb, axis=1) * np.linalg.norm(emb8, axis=1))
    assert cos.min() > 0.97 and cos.mean() > 0.99
    assert (logits.argmax(1) == logits8.argmax(1)).mean() >= 0.9
    assert int8.stat().st_size < fp32.stat().st_size or int8.stat().st_size < 50_000


def test_quantiser_chatter_stays_out_of_stdout_and_info_logs(tmp_path: Path, capfd: pytest.CaptureFixture[str],
                                                             caplog: pytest.LogCaptureFixture) -> None:
    """onnxruntime's quantiser prints its progress and logs each widened bias scale at info: the
    user's terminal (and a CLI's JSON on stdout) gets one line saying the graph was written."""
    import logging

    fp32 = export(tmp_path)
    with caplog.at_level(logging.INFO):
        quantize_static(fp32, int8_path(fp32), images(16, seed=1))
    out, err = capfd.readouterr()
    assert "Collecting tensor data" not in out + err and "Percentile" not in out + err
    infos = [r for r in caplog.records if r.levelno == logging.INFO]  # ORT's warnings still pass
    assert [r.name for r in infos] == ["listing_search.vision.quantize"], [r.getMessage() for r in infos]
    assert "int8 vision graph written" in infos[0].getMessage()


def test_ensure_int8_builds_once_and_rebuilds_when_fp32_is_newer(tmp_path: Path) -> None:
    from PIL import Image

    fp32 = export(tmp_path)
    photos = tmp_path / "images"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)).save(photos / f"{i}.jpg")
    cfg = PreprocessConfig(input_size=SIZE)
    first = ensure_int8(fp32, photos, cfg)
    stamp = first.stat().st_mtime_ns
    assert ensure_int8(fp32, photos, cfg).stat().st_mtime_ns == stamp  # reused
    os.utime(fp32, ns=(stamp + 10**9, stamp + 10**9))
    assert ensure_int8(fp32, photos, cfg).stat().st_mtime_ns != stamp  # rebuilt


def test_ensure_int8_without_photos_says_why(tmp_path: Path) -> None:
    fp32 = export(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no photos"):
        ensure_int8(fp32, tmp_path / "empty", PreprocessConfig(input_size=SIZE))


def test_image_encoder_serves_the_int8_graph_when_asked(tmp_path: Path) -> None:
    """serve.quantized reaches the encoder: same photo, embeddings close to the fp32 encoder's."""
    from listing_search.vision.encoder import ImageEncoder
    from tests.index.tiny_artifacts import make_artifacts

    art = make_artifacts(tmp_path / "art", embed=False)
    exact = ImageEncoder.from_artifacts(art)
    fast = ImageEncoder.from_artifacts(art, quantized=True)
    assert Path(fast.session._model_path).name == "vision.int8.onnx"
    photo = next((art / "images").glob("*.jpg")).read_bytes()
    e, e8 = exact.embed(photo)[0], fast.embed(photo)[0]
    assert float(e @ e8 / (np.linalg.norm(e) * np.linalg.norm(e8))) > 0.97
