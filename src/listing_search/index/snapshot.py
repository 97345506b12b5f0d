"""Snapshots of a replica's derived indexes: files stamped with the log sequence they cover.

A snapshot is a folder ``snap-<seq>-<id>/`` holding ``image.faiss``, ``image.json`` (infos and
tombstones), ``text.faiss`` / ``text.json`` when there is a text index, ``owners.npy`` (photo
vector id -> listing key) and, written last, ``manifest.json`` with the sequence, the encoder
versions and a sha256 of every file. It is built in a temporary folder and renamed into place, so
a reader sees a whole snapshot or none; a snapshot whose files do not match its manifest is
skipped (and rebuilt from the store by the caller), never served half-read.

The designated writer also publishes snapshots to the blob store (``snapshots/<name>/<file>``
plus ``snapshots/LATEST``), where a new replica with an empty disk starts from.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from listing_search.distributed.shards import npy_bytes
from listing_search.errors import BlobNotFound, StorageError
from listing_search.store.blobs import BlobStore
from listing_search.store.models import Models

log = logging.getLogger(__name__)

FORMAT = 1
MANIFEST = "manifest.json"
LATEST = "snapshots/LATEST"
TMP_PREFIX = ".tmp-snap-"


@dataclass
class SnapshotData:
    """What a snapshot holds, in memory."""

    seq: int
    models: Models
    image: tuple[bytes, dict]
    text: tuple[bytes, dict] | None
    owners: np.ndarray  # shape (2, n): vector ids, listing keys
    created_at: float = 0.0
    store_id: str = ""  # the store (and restore epoch) whose ids the indexes hold


@dataclass(frozen=True)
class StoreIdentity:
    """What a snapshot must match to be used: the same store (epoch), and no sequence beyond its head."""

    store_id: str
    head: int

def write_snapshot(folder: Path, data: SnapshotData, keep: int = 2) -> Path:
    """Write atomically under ``folder``; older snapshots beyond ``keep`` are removed."""
    folder.mkdir(parents=True, exist_ok=True)
    created = data.created_at or time.time()
    name = f"snap-{int(created * 1000):015d}-{data.seq:012d}-{uuid.uuid4().hex[:8]}"  # newest written last
    tmp = folder / f"{TMP_PREFIX}{os.getpid()}-{name}"
    tmp.mkdir()
    try:
        files = {"image.faiss": data.image[0], "image.json": json.dumps(data.image[1]).encode(),
                 "owners.npy": npy_bytes(data.owners)}
        if data.text is not None:
            files |= {"text.faiss": data.text[0], "text.json": json.dumps(data.text[1]).encode()}
        for fname, blob in files.items():
            _write_synced(tmp / fname, blob)
        manifest = {"format": FORMAT, "seq": data.seq, "models": {"image": data.models.image, "text": data.models.text},
                    "created_at": created, "store_id": data.store_id,
                    "files": {f: hashlib.sha256(b).hexdigest() for f, b in files.items()}}
        _write_synced(tmp / MANIFEST, json.dumps(manifest, indent=2).encode())
        os.rename(tmp, folder / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    prune(folder, keep)
    return folder / name


def load_latest(folder: Path, models: Models, ident: StoreIdentity | None = None) -> SnapshotData | None:
    """The newest whole snapshot made by ``models`` (of the store ``ident`` names); corrupt or foreign
    ones are skipped with a warning."""
    for path in _snapshots(folder):
        try:
            return read_snapshot(path, models, ident)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("snapshot %s skipped: %s", path.name, exc)
    return None


def read_snapshot(path: Path, models: Models, ident: StoreIdentity | None = None) -> SnapshotData:
    manifest = json.loads((path / MANIFEST).read_text())
    if manifest.get("format") != FORMAT:
        raise ValueError(f"format {manifest.get('format')} is not {FORMAT}")
    if ident is not None and manifest.get("store_id") != ident.store_id:
        raise ValueError(f"made from store {manifest.get('store_id')!r}, serving store {ident.store_id!r}")
    if ident is not None and int(manifest["seq"]) > ident.head:
        raise ValueError(f"covers log sequence {manifest['seq']} but the store's log ends at {ident.head}")
    made_by = Models(manifest["models"]["image"], manifest["models"]["text"])
    if made_by != models:
        raise ValueError(f"made by encoders {made_by}, serving {models}")
    blobs = {}
    for fname, digest in manifest["files"].items():
        blob = (path / fname).read_bytes()
        if hashlib.sha256(blob).hexdigest() != digest:
            raise ValueError(f"{fname} does not match its checksum")
        blobs[fname] = blob
    text = (blobs["text.faiss"], json.loads(blobs["text.json"])) if "text.faiss" in blobs else None
    return SnapshotData(int(manifest["seq"]), made_by, (blobs["image.faiss"], json.loads(blobs["image.json"])), text,
                        np.load(io.BytesIO(blobs["owners.npy"]), allow_pickle=False), float(manifest["created_at"]),
                        str(manifest.get("store_id", "")))


def prune(folder: Path, keep: int) -> None:
    for old in _snapshots(folder)[max(keep, 1):]:
        shutil.rmtree(old, ignore_errors=True)


def sweep_temp(folder: Path) -> int:
    """Remove temporary snapshot folders left by processes that died while writing one."""
    removed = 0
    for tmp in folder.glob(f"{TMP_PREFIX}*") if folder.is_dir() else []:
        pid = tmp.name[len(TMP_PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or not _alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)
            removed += 1
    return removed


def publish(path: Path, blobs: BlobStore) -> None:
    """Upload a written snapshot to the blob store, then point ``snapshots/LATEST`` at it."""
    for f in sorted(path.iterdir(), key=lambda p: p.name == MANIFEST):  # the manifest last
        blobs.put(f"snapshots/{path.name}/{f.name}", f.read_bytes())
    previous = _latest_name(blobs)
    blobs.put(LATEST, path.name.encode())
    if previous and previous != path.name:
        for key in list(blobs.keys(f"snapshots/{previous}/")):
            blobs.delete(key)
    log.info("snapshot %s published to %s", path.name, blobs.url)


def fetch_published(blobs: BlobStore, folder: Path, models: Models, ident: StoreIdentity | None = None
                    ) -> SnapshotData | None:
    """The published snapshot, copied into ``folder`` and checked; None when absent or unusable."""
    tmp = folder / f"{TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        name = _latest_name(blobs)
        if not name:
            return None
        tmp.mkdir(parents=True, exist_ok=True)
        for key in blobs.keys(f"snapshots/{name}/"):
            _write_synced(tmp / key.rsplit("/", 1)[1], blobs.get(key))
        data = read_snapshot(tmp, models, ident)
        try:
            os.rename(tmp, folder / name)
        except OSError:  # another worker fetched the same one first: theirs is identical
            shutil.rmtree(tmp, ignore_errors=True)
        return data
    except (OSError, ValueError, KeyError, StorageError, BlobNotFound) as exc:
        log.warning("published snapshot not usable: %s", exc)
        shutil.rmtree(tmp, ignore_errors=True)
        return None


def _latest_name(blobs: BlobStore) -> str | None:
    try:
        return blobs.get(LATEST).decode().strip() or None
    except BlobNotFound:
        return None


def _snapshots(folder: Path) -> list[Path]:
    """Whole snapshots, newest sequence first."""
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.glob("snap-*") if p.is_dir()), key=lambda p: p.name, reverse=True)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
