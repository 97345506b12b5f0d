"""Issue 12 item 2 through the API: header-checked limits, draft decoding, the photo queue's 503 and batches."""

from __future__ import annotations

import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageFile

from listing_search.data import images
from listing_search.serve.app import create_app
from tests.factories import jpeg_bytes, photo
from tests.serve.conftest import photo_bytes, serve_settings
from tests.serve.test_decode_attack import png_bomb


def _post(client: TestClient, data: bytes, path: str = "/predict/feature_embedding"):
    return client.post(path, files={"image": ("p", data, "application/octet-stream")})


@pytest.fixture
def big_upload_client(built_artifacts: Path):
    settings = serve_settings(built_artifacts)
    settings.serve.max_upload_bytes = 4 * 1024 * 1024
    with TestClient(create_app(settings)) as c:
        yield c


def test_png_of_the_issue_is_413_from_its_header_without_decoding(big_upload_client: TestClient,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's 7999x7999 PNG (under the old 64 MP limit) is refused before any pixel is decoded."""
    def no_decode(self: ImageFile.ImageFile) -> None:
        raise AssertionError(f"decoded a {self.size} image")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decode)
    r = _post(big_upload_client, png_bomb(7999))
    assert r.status_code == 413 and r.json()["reason"] == images.TOO_LARGE
    assert "exceeds" in r.json()["detail"] and "40000000 pixels" in r.json()["detail"]


def test_formats_outside_the_photo_formats_are_refused_unread(client: TestClient) -> None:
    buf = io.BytesIO()
    photo((1, 2, 3)).save(buf, format="PPM")
    r = _post(client, buf.getvalue())
    assert r.status_code == 415 and r.json()["reason"] == images.UNREADABLE


def test_big_jpeg_is_decoded_at_a_draft_scale(big_upload_client: TestClient,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A 4000x3000 JPEG for a 32 px model is decoded at 1/8 scale (500x375), never at full size."""
    decoded: list[tuple[int, int]] = []
    real = images.decode
    monkeypatch.setattr(images, "decode", lambda img: decoded.append(img.size) or real(img))
    big = jpeg_bytes(Image.new("RGB", (4000, 3000), (90, 120, 30)), quality=80)
    r = _post(big_upload_client, big)
    assert r.status_code == 200 and decoded == [(500, 375)]


def test_draft_scale_and_cost_come_from_the_header() -> None:
    big = jpeg_bytes(Image.new("RGB", (4000, 3000), (90, 120, 30)), quality=80)
    shown = images.peek(big, 40_000_000, draft_to=512)
    assert shown.image.size == (1000, 750)
    assert 1000 * 750 * 4 <= shown.cost < 4000 * 3000 * 4, "the drafted buffer is counted, not the full one"
    assert images.decode(shown.image).size == (1000, 750)
    assert images.peek(big, 40_000_000).cost >= 4000 * 3000 * 4, "no draft: the full buffer is counted"


def test_a_full_photo_queue_answers_503_with_retry_after(built_artifacts: Path) -> None:
    settings = serve_settings(built_artifacts)
    settings.serve.photo_in_flight, settings.serve.photo_queue_wait_s = 1, 0.2
    with TestClient(create_app(settings)) as c:
        engine, release, entered = c.app.state.engine, threading.Event(), threading.Event()
        real_run = engine.encoder.run

        def slow_run(batch: np.ndarray):
            entered.set()
            release.wait(10)
            return real_run(batch)

        engine.encoder.run = slow_run
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(_post, c, photo_bytes(built_artifacts))
            assert entered.wait(10)
            r = _post(c, photo_bytes(built_artifacts, "img-003-0"), "/v1/search")
            release.set()
            assert first.result().status_code == 200
        assert r.status_code == 503 and r.headers["Retry-After"] == "1"
        assert r.json()["reason"] == "busy" and "photo queue full" in r.json()["detail"]
        assert "photo_queue_rejected_total 1.0" in c.get("/metrics").text


def test_concurrent_requests_share_one_model_call(client: TestClient, built_artifacts: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """6 concurrent photo requests: the model runs fewer than 6 times, once with a batch > 1, and each
    answer equals the photo's own embedding (brute-force reference: the encoder, one photo at a time)."""
    engine = client.app.state.engine
    ids = [f"img-{i:03d}-0" for i in range(6)]
    expected = {i: engine.encoder.embed(photo_bytes(built_artifacts, i))[0] for i in ids}
    sizes, real_run = [], engine.encoder.run

    def counting_run(batch: np.ndarray):
        sizes.append(len(batch))
        if len(sizes) == 1:  # hold the first call until every other request is admitted
            deadline = time.monotonic() + 10
            while engine.photos.stats().in_flight < len(ids) and time.monotonic() < deadline:
                time.sleep(0.005)
        return real_run(batch)

    monkeypatch.setattr(engine.encoder, "run", counting_run)
    with ThreadPoolExecutor(len(ids)) as pool:
        answers = list(pool.map(lambda i: _post(client, photo_bytes(built_artifacts, i)), ids))
    assert [r.status_code for r in answers] == [200] * len(ids)
    assert sum(sizes) == len(ids) and max(sizes) > 1 and len(sizes) < len(ids), sizes
    for i, r in zip(ids, answers):
        np.testing.assert_allclose(r.json()["features"], expected[i], rtol=1e-5, atol=1e-6)
    assert "photo_batches_total" in client.get("/metrics").text
