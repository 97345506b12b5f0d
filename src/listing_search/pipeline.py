"""Up-to-date checks for stages: a stamp file per stage records what its outputs were built from.

A stage is up to date when its stamp exists, every output exists, and the fingerprint of its
inputs and settings matches the stamp. ``make run`` re-runs only stages that are not.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from listing_search.schema import STAMPS_DIR


def fingerprint(inputs: list[Path], settings_json: str) -> str:
    """Hash of the inputs' contents plus the stage's settings.

    Files count by their bytes and folders by the names and sizes of what they hold; where the
    artifacts folder is, or how its path is spelled, never changes a fingerprint.
    """
    h = hashlib.sha256(settings_json.encode())
    for position, path in enumerate(inputs):
        h.update(f"{position}:".encode())
        if path.is_dir():
            h.update(_folder_digest(path))
        elif path.is_file():
            h.update(_file_digest(path))
        else:
            h.update(b"missing")
    return h.hexdigest()


_DIGESTS: dict[tuple, bytes] = {}  # (device, inode, size, mtime) -> sha256: each file hashed once per process


def _file_digest(path: Path) -> bytes:
    st = path.stat()
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _DIGESTS[key] = h.digest()
    return _DIGESTS[key]


def file_sha(path: Path) -> str:
    """Hex sha-256 of a file's bytes, hashed once per process while the file is unchanged."""
    return _file_digest(Path(path)).hex()


def _folder_digest(path: Path) -> bytes:
    entries = sorted((e.name, e.stat().st_size) for e in os.scandir(path) if e.is_file())
    return hashlib.sha256(json.dumps(entries).encode()).digest()


def read_stamp(artifacts: Path, stage: str) -> dict[str, Any] | None:
    """The stage's stamp (its fingerprint plus whatever the stage saved with it), or None."""
    try:
        return json.loads(_stamp_path(artifacts, stage).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def is_up_to_date(artifacts: Path, stage: str, outputs: list[Path], fp: str) -> bool:
    if not all(p.exists() for p in outputs):
        return False
    stamp = read_stamp(artifacts, stage)
    return stamp is not None and stamp.get("fingerprint") == fp


def write_stamp(artifacts: Path, stage: str, fp: str, extra: dict[str, Any] | None = None) -> None:
    atomic_write_text(_stamp_path(artifacts, stage), json.dumps({"fingerprint": fp, **(extra or {})}))


def _stamp_path(artifacts: Path, stage: str) -> Path:
    return Path(artifacts) / STAMPS_DIR / f"{stage}.json"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename: readers never see half a file.

    Identical content is left untouched, so a re-run that produces the same table keeps its
    modification time and the stages downstream stay up to date.
    """
    if _same_content(path, data):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _same_content(path: Path, data: bytes) -> bool:
    try:
        return path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_path(path: Path) -> "_AtomicPath":
    """Context manager giving a temporary path that replaces ``path`` only if the block succeeds.

    For writers that want a file name (FAISS, SQLite backups, ONNX export, torch.save).
    """
    return _AtomicPath(path)


class _AtomicPath:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.tmp: Path | None = None

    def __enter__(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        os.close(fd)
        self.tmp = Path(tmp)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self.tmp is not None
        if exc_type is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)
