"""The Docker install without Docker: a fresh venv with only requirements.txt + the package (--no-deps)
must start the API and pass /health. Needs the package index (or pip's cache); slow."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.serve.test_uvicorn import ROOT, free_port, serve_env, stop, wait_healthy

pytestmark = pytest.mark.slow


def test_serving_only_install_starts_and_is_healthy(built_artifacts: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "serve-venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    pip = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    for args in (["-r", str(ROOT / "requirements.txt")], ["--no-deps", str(ROOT)]):
        done = subprocess.run(pip + args, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
    check = subprocess.run([str(py), "-c", "import importlib.util as u; print(u.find_spec('torch') is None)"],
                           capture_output=True, text=True, timeout=60)
    assert check.stdout.strip() == "True", "torch must not be installed by the serving requirements"
    port = free_port()
    env = {k: v for k, v in serve_env().items() if k != "PYTHONPATH"}  # only the installed package
    proc = subprocess.Popen([str(env_dir / "bin" / "listing-search"), "serve", "--artifacts", str(built_artifacts),
                             "--host", "127.0.0.1", "--port", str(port)],
                            env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_healthy(proc, f"http://127.0.0.1:{port}", timeout=90)
    finally:
        stop(proc)
    assert sys.executable != str(py)
