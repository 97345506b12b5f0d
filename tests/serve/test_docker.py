"""The serving image, for real: containers over tiny artifacts, each reached on its bridge address.

Built by ``make docker-test`` (scripts/docker_test.sh), which then runs these tests; ``make test``
deselects them. Without a docker daemon or the image they skip with the reason (fail under CI=true).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.factories import copy_artifacts
from tests.realparts import need_part
from tests.serve.conftest import photo_bytes

pytestmark = pytest.mark.docker

IMAGE = os.environ.get("LISTING_SEARCH_IMAGE", "listing-search:test")
UID = 10001  # the image's `app` user
# The image's own HEALTHCHECK command, probed every second so a test waits seconds, not minutes.
FAST_HEALTH = ["--health-interval=1s", "--health-timeout=5s", "--health-retries=3"]


def docker(*args: str, check: bool = True, timeout: float = 60) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout.strip()


@pytest.fixture(scope="module")
def image() -> str:
    if shutil.which("docker") is None:
        need_part("no docker CLI: `make docker-test` installs docker.io and starts dockerd (as root)")
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    if info.returncode != 0:
        need_part(f"no docker daemon answers: {info.stderr.strip()[-300:]}")
    if subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True, timeout=30).returncode != 0:
        need_part(f"image {IMAGE} is not built: `make docker-test` builds it")
    return IMAGE


class Container:
    """One `docker run -d` of the image; removed when the test module ends."""

    def __init__(self, image: str, artifacts: Path, env: dict[str, str], start_period: str = "30s") -> None:
        self.name = f"ls-test-{uuid.uuid4().hex[:10]}"
        flags = [f"-e={k}={v}" for k, v in env.items()]
        docker("run", "-d", "--name", self.name, "-v", f"{artifacts}:/artifacts", *FAST_HEALTH,
               f"--health-start-period={start_period}", *flags, image)

    def state(self) -> dict:
        return json.loads(docker("inspect", "--format", "{{json .State}}", self.name))

    def wait_health(self, want: str, probe_said: str = "", timeout: float = 90) -> dict:
        """Poll until the health status is ``want`` and a probe's output holds ``probe_said``; fail with
        the logs if the container exits or it takes too long."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.state()
            if not state["Running"]:
                break
            health = state.get("Health", {})
            said = any(probe_said in entry["Output"] for entry in health.get("Log") or [])
            if health.get("Status") == want and said:
                return state
            time.sleep(0.5)
        logs = subprocess.run(["docker", "logs", "--tail", "40", self.name], capture_output=True, text=True)
        pytest.fail(f"{self.name} not {want} after {timeout}s: {state}\n{logs.stdout[-3000:]}{logs.stderr[-3000:]}")

    def url(self, port: int) -> str:
        ip = docker("inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", self.name)
        return f"http://{ip}:{port}"

    def remove(self) -> None:
        docker("rm", "-f", "-v", self.name, check=False)


def writable_copy(src: Path | None, dst: Path) -> Path:
    """A copy the image's uid can write (the store, snapshots), or an empty folder when ``src`` is None."""
    if src is None:
        dst.mkdir(parents=True)
    else:
        copy_artifacts(src, dst)
    for path in (dst, *dst.rglob("*")):
        path.chmod(0o777 if path.is_dir() else 0o666)
    return dst


@pytest.fixture(scope="module")
def containers(image: str, built_artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Started together, so their start-ups overlap: each test then waits for the one it needs."""
    tmp = tmp_path_factory.mktemp("docker")
    broken = writable_copy(built_artifacts, tmp / "broken")
    (broken / "model" / "vision.onnx").write_bytes(b"not an onnx model")
    started: dict[str, Container] = {}
    try:
        started["port9000"] = Container(image, writable_copy(built_artifacts, tmp / "a"),
                                        {"LISTING_SEARCH_SERVE__PORT": "9000"})
        started["loopback"] = Container(image, writable_copy(built_artifacts, tmp / "b"),
                                        {"LISTING_SEARCH_SERVE__HOST": "127.0.0.1"})
        started["missing"] = Container(image, writable_copy(None, tmp / "empty"), {}, start_period="1s")
        started["broken"] = Container(image, broken, {}, start_period="1s")
        yield started
    finally:
        for c in started.values():
            c.remove()


def test_container_serves_photo_search_as_non_root(containers: dict, built_artifacts: Path) -> None:
    c = containers["port9000"]
    c.wait_health("healthy")  # the image's HEALTHCHECK found the server on port 9000, from the environment
    assert "(healthy)" in docker("ps", "--filter", f"name={c.name}", "--format", "{{.Status}}")
    with httpx.Client(base_url=c.url(9000), timeout=20) as http:
        health = http.get("/health").json()
        assert health["status"] == "ok" and health["index"] > 0
        files = {"image": ("p.jpg", photo_bytes(built_artifacts), "image/jpeg")}
        r = http.post("/v1/search", files=files, data={"k": "3"})
        assert r.status_code == 200, r.text
        assert r.json()["results"][0]["id"] == "listing-005"
        r = http.post("/v1/search", data={"text": "chair"})  # tiny artifacts have no text model
        assert r.status_code == 400 and "text search is not available" in r.json()["detail"]
    assert docker("exec", c.name, "id", "-u") == str(UID)


def test_host_setting_is_honoured(containers: dict) -> None:
    """Bound to loopback inside the container: healthy (the probe follows the host), unreachable outside."""
    c = containers["loopback"]
    c.wait_health("healthy")
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{c.url(8000)}/health", timeout=5)


@pytest.mark.parametrize("case, reason", [
    ("missing", "artifacts missing: model/vision.onnx, model/model_card.json, categories.json"),
    ("broken", "…/vision.onnx"),
])
def test_bad_artifacts_give_an_unhealthy_container_answering_503(containers: dict, case: str, reason: str) -> None:
    c = containers[case]
    state = c.wait_health("unhealthy", probe_said=reason)  # the probe's output: `docker inspect` says why
    assert state["Running"] and state["Restarting"] is False  # up, reporting, not exiting in a loop
    r = httpx.get(f"{c.url(8000)}/health", timeout=10)
    assert r.status_code == 503 and reason in r.json()["detail"]


def test_image_loads_the_ranking_libraries(image: str) -> None:
    """A LambdaMART ranker.json needs LightGBM and its OpenMP runtime; BM25 and spelling need theirs."""
    out = docker("run", "--rm", "--entrypoint", "python", image, "-c",
                 "import lightgbm, tantivy, symspellpy; print(lightgbm.__version__)", timeout=120)
    assert out.split(".")[0].isdigit()
