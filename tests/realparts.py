"""Real parts for tests: a throwaway PostgreSQL server and an S3-compatible server, on loopback.

Nothing here is mocked: the code under test talks to a real server through its real client.
When a part cannot be had here, the test skips with the reason, except under ``CI=true``,
where ``need_part`` fails it instead, so a missing part can never pass CI silently.
"""

from __future__ import annotations

import glob
import importlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

__all__ = ["PostgresServer", "dask_cluster_hiding", "in_ci", "mount_tmpfs", "moto_server", "need_module", "need_part",
           "own_postgres", "postgres_server", "postgres_url", "s3_bucket", "s3_endpoint"]

REALPART_FIXTURES = frozenset({"moto_server", "own_postgres", "postgres_server", "postgres_url", "s3_bucket",
                               "s3_endpoint"})


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def need_part(reason: str) -> NoReturn:
    """Skip for want of a real part, or fail under ``CI=true`` where every part must be present."""
    if in_ci():
        pytest.fail(f"CI=true and a real part is missing: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def need_module(name: str, reason: str | None = None) -> ModuleType:
    """``importlib.import_module(name)``, or ``need_part`` with the reason when it is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        need_part(reason or f"{name} is not installed ({exc})")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(f"{what} did not start on port {port}")
            time.sleep(0.1)


# --- S3: moto's standalone server --------------------------------------------------------------


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """One moto server for the session; ``s3_endpoint`` resets its state after every test."""
    need_module("moto.server", "moto[server] is not installed: no S3-compatible server")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, proc, "moto server")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def s3_endpoint(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The endpoint URL of an empty S3-compatible server, with dummy AWS credentials in the env."""
    for key, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    try:
        yield moto_server
    finally:
        urllib.request.urlopen(urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST"),
                               timeout=10).close()


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    """The name of a fresh, empty bucket on ``s3_endpoint``."""
    boto3 = need_module("boto3")
    name = f"t-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return name


# --- PostgreSQL: initdb + pg_ctl in a temp folder -----------------------------------------------


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return candidates[-1] if candidates else None


def _pg_runner() -> tuple[list[str], int | None]:
    """The command prefix that runs PostgreSQL's tools (as ``postgres`` when we are root) and that uid."""
    if os.geteuid() != 0:
        return [], None
    runuser = shutil.which("runuser")
    try:
        uid = pwd.getpwnam("postgres").pw_uid
    except KeyError:
        need_part("running as root, and there is no 'postgres' user to run PostgreSQL as")
    if runuser is None:
        need_part("running as root, and there is no runuser to run PostgreSQL as 'postgres'")
    return [runuser, "-u", "postgres", "--"], uid


def _run(cmd: list[str], cwd: str, what: str, log: Path | None = None) -> None:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        server_log = log.read_text(errors="replace")[-3000:] if log and log.is_file() else ""
        pytest.fail(f"{what} failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}\n{server_log}")


class PostgresServer:
    """A throwaway PostgreSQL on 127.0.0.1 (trust auth, fsync off) that a test can stop and start."""

    def __init__(self) -> None:
        initdb, self.pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
        if initdb is None or self.pg_ctl is None:
            need_part("PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql")
        self.prefix, uid = _pg_runner()
        self.home = tempfile.mkdtemp(prefix="pg-", dir="/tmp" if os.path.isdir("/tmp") else None)  # mode 0700
        if uid is not None:
            os.chown(self.home, uid, -1)
        self.data, self.log = Path(self.home) / "data", Path(self.home) / "server.log"
        self.port = _free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}"
        _run([*self.prefix, initdb, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync",
              "-D", str(self.data)], self.home, "initdb")

    def start(self) -> None:
        _run([*self.prefix, self.pg_ctl, "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
              "-o", f"-h 127.0.0.1 -p {self.port} -k {self.home} -F", "start"], self.home, "pg_ctl start", self.log)

    def stop(self, mode: str = "fast") -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run([*self.prefix, self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "stop"],
                           cwd=self.home, capture_output=True, timeout=60)

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.home, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL on 127.0.0.1 (trust auth, fsync off): ``postgresql://postgres@127.0.0.1:PORT``."""
    server = PostgresServer()
    try:
        server.start()
        yield server.url
    finally:
        server.remove()


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own (started, with database ``postgres``): it may stop it."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.remove()


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database on ``postgres_server``, dropped afterwards: ``.../t_<hex>``."""
    psycopg = need_module("psycopg", "psycopg is not installed (pip install 'psycopg[binary]>=3.1')")
    from psycopg import sql

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{postgres_server}/postgres", autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"{postgres_server}/{name}"
    finally:
        with psycopg.connect(f"{postgres_server}/postgres", autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def mount_tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (e.g. "64k", "8m") at ``path`` for real full and read-only disks; needs root."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        need_part(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


# --- Dask: a scheduler and worker processes that cannot see the driver's files ---------------------


REPO = Path(__file__).resolve().parents[1]


def _hiding_prefix(hidden: Path) -> list[str]:
    """A command prefix that runs the rest in a new mount namespace with an empty tmpfs over ``hidden``.

    As root a plain ``unshare -m``; otherwise a user namespace too (``unshare -rm``), where the mount
    is allowed. A worker that still reads the driver's artifacts path then finds an empty folder.
    """
    unshare = shutil.which("unshare")
    if unshare is None:
        need_part("unshare (util-linux) not found: cannot hide the driver's files from the Dask workers")
    flags = ["-m"] if os.geteuid() == 0 else ["-r", "-m"]
    probe = subprocess.run([unshare, *flags, "--propagation", "private", "sh", "-c",
                            f'mount -t tmpfs -o size=1m tmpfs "{hidden}"'], capture_output=True, text=True)
    if probe.returncode != 0:
        need_part(f"cannot mount a tmpfs in a new mount namespace here: {probe.stderr.strip()}")
    return [unshare, *flags, "--propagation", "private", "sh", "-c",
            'mount -t tmpfs -o size=1m tmpfs "$0" && exec "$@"', str(hidden)]


@contextmanager
def dask_cluster_hiding(hidden: Path, workers: int = 2, env: dict[str, str] | None = None) -> Iterator[str]:
    """``dask scheduler`` and ``workers`` ``dask worker`` processes on loopback; yields the address.

    The workers run with ``hidden`` (the driver's temp root) masked by an empty tmpfs, so they share
    nothing with the driver but the network: a job that reads an artifacts path fails.
    """
    need_module("distributed", "dask[distributed] is not installed")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]), **(env or {})}
    prefix = _hiding_prefix(hidden)
    procs = [subprocess.Popen([sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        _wait_for_port(port, procs[0], "dask scheduler")
        for i in range(workers):
            procs.append(subprocess.Popen(
                [*prefix, sys.executable, "-m", "dask", "worker", address, "--name", f"w{i}", "--nthreads", "1",
                 "--no-dashboard", "--host", "127.0.0.1", "--local-directory", tempfile.gettempdir()],
                env=env, cwd="/", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
