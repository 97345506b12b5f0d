"""The real thing: `listing-search serve` as a uvicorn process on 127.0.0.1, and no torch in serving."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.serve.conftest import API_KEY, MAX_UPLOAD, photo_bytes

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 45.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_env() -> dict[str, str]:
    return {**os.environ, "LISTING_SEARCH_SERVE__API_KEY": API_KEY,
            "LISTING_SEARCH_SERVE__MAX_UPLOAD_BYTES": str(MAX_UPLOAD), "LISTING_SEARCH_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT / "src")}


def wait_healthy(proc: subprocess.Popen, base: str, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{base} not healthy after {timeout}s")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


@pytest.fixture(scope="module")
def server(built_artifacts: Path) -> Iterator[str]:
    port = free_port()
    cmd = [sys.executable, "-m", "listing_search.cli", "serve", "--artifacts", str(built_artifacts),
           "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=serve_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(proc, base)
        yield base
    finally:
        stop(proc)


def test_real_server_search_and_health(server: str, built_artifacts: Path) -> None:
    with httpx.Client(base_url=server, timeout=10) as c:
        assert c.get("/health").json()["status"] == "ok"
        files = {"image": ("p.jpg", photo_bytes(built_artifacts), "image/jpeg")}
        r = c.post("/v1/search", files=files, data={"k": "3"})
        assert r.status_code == 200 and r.json()["results"][0]["id"] == "listing-005"
        photo_url = r.json()["results"][0]["photos"][0]["url"]
        assert c.get(photo_url).headers["content-type"] == "image/jpeg"
        assert 'route="/v1/search",status="200"' in c.get("/metrics").text


def test_real_server_refuses_oversized_streams(server: str) -> None:
    boundary = "zzz"

    def body() -> Iterator[bytes]:
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.jpg\"\r\n"
               "Content-Type: image/jpeg\r\n\r\n").encode()
        for _ in range(40):
            yield b"\0" * 8192

    with httpx.Client(base_url=server, timeout=10) as c:
        try:
            r = c.post("/predict/feature_embedding", content=body(),
                       headers={"content-type": f"multipart/form-data; boundary={boundary}"})
        except httpx.TransportError:  # the server may close before the client finished sending
            pass
        else:
            assert r.status_code == 413 and "too large" in r.json()["detail"]
        assert c.get("/health").status_code == 200  # still serving


SMUGGLED = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"


def raw_exchange(base: str, request: bytes, timeout: float = 5.0) -> bytes:
    """Send ``request`` on one connection; everything the server sends until it closes or goes quiet."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(request)
        sock.settimeout(1.0)
        reply = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                return reply + b"<closed>"
            reply += chunk
        return reply


def test_content_length_with_transfer_encoding_is_400_and_closed(server: str) -> None:
    """A proxy framing by Content-Length would pass the chunked body's tail on as a second request:
    the server refuses the ambiguous one and closes, so the smuggled GET is never answered."""
    body = b"0\r\n\r\n" + SMUGGLED
    head = (b"POST /v1/search HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n" % len(body))
    reply = raw_exchange(server, head + body)
    assert reply.startswith(b"HTTP/1.1 400 "), reply[:200]
    assert b"ambiguous framing" in reply and reply.endswith(b"<closed>")
    assert reply.count(b"HTTP/1.1 ") == 1, f"a second (smuggled) request was answered: {reply!r}"
    with httpx.Client(base_url=server, timeout=10) as c:
        assert c.get("/health").status_code == 200


def test_invalid_utf8_form_text_is_422_on_the_real_server(server: str) -> None:
    with httpx.Client(base_url=server, timeout=10) as c:
        r = c.post("/v1/search", files=[("location", (None, b"\xff\xfe\xfd"))])
        assert r.status_code == 422 and r.json()["detail"] == "location: not valid utf-8 text", r.text


def test_serving_never_imports_torch_or_pandas(artifacts: Path) -> None:
    """Start-up, a photo search, a write and the health probe: none needs the training install."""
    code = (
        "import sys\n"
        "from fastapi.testclient import TestClient\n"
        "import listing_search.serve.app as a\n"
        "from listing_search.serve import healthcheck\n"
        "from listing_search.settings import Settings\n"
        f"app = a.create_app(Settings(artifacts_dir={str(artifacts)!r}))\n"
        f"photo = open({str(artifacts / 'images' / 'img-005-0.jpg')!r}, 'rb').read()\n"
        "with TestClient(app) as c:\n"
        "    assert c.get('/health').status_code == 200\n"
        "    assert c.post('/v1/search', files={'image': ('p.jpg', photo, 'image/jpeg')}).status_code == 200\n"
        f"    r = c.post('/v1/listings', data={{'title': 'new', 'category': 'Appliances'}},\n"
        f"               files=[('photos', ('n.jpg', photo, 'image/jpeg'))], headers={{'X-API-Key': {API_KEY!r}}})\n"
        "    assert r.status_code == 201, r.text\n"
        "print(sorted(m for m in ('torch', 'torchvision', 'pandas') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=serve_env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_health_is_503_when_artifacts_are_missing(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from listing_search.serve.app import create_app
    from listing_search.settings import Settings

    with TestClient(create_app(Settings(artifacts_dir=tmp_path))) as c:
        r = c.get("/health")
        assert r.status_code == 503 and "model_card" in r.json()["detail"]
        r = c.post("/v1/search", data={"text": "x"})
        assert r.status_code == 503 and "unavailable" in r.json()["detail"]


def test_serve_without_artifacts_stays_up_and_reports_503(tmp_path: Path) -> None:
    """The container contract: no exit (a restart loop under --restart), but /health 503 with the reason."""
    port = free_port()
    env = {**serve_env(), "LISTING_SEARCH_ARTIFACTS_DIR": str(tmp_path / "nothing-here"),
           "LISTING_SEARCH_SERVE__PORT": str(port)}  # folder and port from the environment, as the image gives them
    proc = subprocess.Popen([sys.executable, "-m", "listing_search.cli", "serve"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline, r = time.monotonic() + START_TIMEOUT, None
        while r is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
            except httpx.TransportError:
                time.sleep(0.2)
        assert r is not None, f"server exited with {proc.returncode} or never answered"
        assert r.status_code == 503 and "artifacts missing: model/vision.onnx" in r.json()["detail"]
        assert "nothing-here" not in r.text and proc.poll() is None, "the folder is the log's, not the client's"
    finally:
        stop(proc)
    log = proc.stderr.read()
    assert "could not load the search engine" in log and "nothing-here" in log


def test_concurrent_searches_while_listings_change(artifacts: Path) -> None:
    """8 client threads search while listings are added and deleted: every answer is 200/201."""
    from concurrent.futures import ThreadPoolExecutor

    port = free_port()
    cmd = [sys.executable, "-m", "listing_search.cli", "serve", "--artifacts", str(artifacts),
           "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=serve_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base, photo = f"http://127.0.0.1:{port}", photo_bytes(artifacts, "img-002-0")
    try:
        wait_healthy(proc, base)

        def search(_: int) -> int:
            return httpx.post(f"{base}/v1/search", files={"image": ("p.jpg", photo, "image/jpeg")},
                              data={"k": "5"}, timeout=30).status_code

        def churn() -> list[int]:
            codes, key = [], {"X-API-Key": API_KEY}
            for i in range(3):
                r = httpx.post(f"{base}/v1/listings", data={"title": f"new {i}", "category": "Appliances"},
                               files=[("photos", ("n.jpg", photo, "image/jpeg"))], headers=key, timeout=30)
                codes.append(r.status_code)
                codes.append(httpx.delete(f"{base}/v1/listings/{r.json()['id']}", headers=key, timeout=30).status_code)
            return codes

        with ThreadPoolExecutor(8) as pool:
            writes = pool.submit(churn)
            reads = list(pool.map(search, range(40)))
        assert set(reads) == {200} and writes.result() == [201, 200] * 3
        assert httpx.get(f"{base}/health").json()["index"] == 85
    finally:
        stop(proc)
