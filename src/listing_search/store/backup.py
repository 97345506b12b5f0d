"""Backup and restore of the whole catalogue: the store's rows and the photos' bytes, at one log sequence.

A backup is a folder: ``store.sqlite`` (every table, read in one snapshot of the source store,
whichever back-end it is), ``blobs/`` (the bytes of every photo those rows name) and
``backup.json`` (sequence, counts, photos whose bytes were already gone). It is written beside
its destination and renamed into place. ``restore`` loads one into an empty store and blob store
with every id kept, so a replica started on it serves the same results.

A backup holds a lease in the store from before it reads the rows until every photo is copied, so
photos deleted meanwhile keep their bytes (``store/gc.py``) and every photo the rows name is copied.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from listing_search.errors import BlobNotFound, StorageError
from listing_search.store.blobs import BlobStore, LocalBlobStore
from listing_search.store.sql import BACKUP_LEASE, SqlStore
from listing_search.store.sqlite import SqliteStore

log = logging.getLogger(__name__)
MANIFEST = "backup.json"
STORE_FILE = "store.sqlite"
LEASE_S = 600.0  # how long a backup's lease lasts unless renewed (a killed backup holds deletes this long)
RENEW_S = 60.0  # renewed this often while photos are copied


def backup(store: SqlStore, blobs: BlobStore, out: Path) -> dict:
    """Write a backup folder at ``out`` (which must not exist); returns its manifest."""
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} exists: choose a new folder for the backup")
    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    lease = _hold(store)  # before the rows are read: deletes from here on keep their bytes
    try:
        seq, tables = store.read_all()
        tables = _without_leases(tables)
        copy = SqliteStore(f"sqlite:///{tmp / STORE_FILE}")
        copy.insert_all(tables)
        copy.close()
        renew = _Renewal(lambda: lease and store.hold_backup(lease, LEASE_S))
        missing = _copy_blobs(blobs, LocalBlobStore(tmp / "blobs"), _blob_keys(tables), renew)
        manifest = {"seq": seq, "created_at": time.time(), "source": redacted_url(store.url),
                    "counts": {t: len(rows) for t, (_, rows) in tables.items()}, "missing_blobs": missing}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        _release(store, lease)
    log.info("backup at seq %d written to %s", seq, out)
    return manifest


def restore(src: Path, store: SqlStore, blobs: BlobStore) -> dict:
    """Load a backup folder into an empty store and its blob store; returns the backup's manifest."""
    src = Path(src)
    manifest = json.loads((src / MANIFEST).read_text())
    if not store.is_empty():
        raise ValueError(f"the store at {redacted_url(store.url)} is not empty: restore needs an empty store")
    copy = SqliteStore(f"sqlite:///{src / STORE_FILE}")
    _, tables = copy.read_all()
    copy.close()
    _copy_blobs(LocalBlobStore(src / "blobs"), blobs, _blob_keys(tables))
    store.insert_all(tables)  # rows last: a listing is never visible before its photos' bytes
    store.set_meta("store_id", os.urandom(8).hex())  # a new epoch: snapshots of before are not reused
    log.info("restored the backup at seq %d from %s", manifest["seq"], src)
    return manifest


def _blob_keys(tables: dict) -> list[str]:
    cols, rows = tables["photos"]
    at = cols.index("blob_key")
    return [r[at] for r in rows]


def _hold(store: SqlStore) -> str | None:
    """A new backup lease, or None when the store takes no writes (a standby, a read-only disk): the
    backup goes on, and photos deleted meanwhile are listed in ``missing_blobs``."""
    lease = os.urandom(8).hex()
    try:
        store.hold_backup(lease, LEASE_S)
    except StorageError as exc:
        log.warning("no backup lease (%s): photos deleted during the backup may be missing from it", exc.reason)
        return None
    return lease


def _release(store: SqlStore, lease: str | None) -> None:
    if lease is None:
        return
    try:
        store.release_backup(lease)
    except StorageError as exc:  # it expires by itself
        log.warning("backup lease not released (%s): it expires within %g s", exc.reason, LEASE_S)


def _without_leases(tables: dict) -> dict:
    """The rows without backup leases: a restored store has no backup in progress."""
    cols, rows = tables["meta"]
    at = cols.index("name")
    return {**tables, "meta": (cols, [r for r in rows if not str(r[at]).startswith(BACKUP_LEASE)])}


class _Renewal:
    """Calls ``renew`` when ``RENEW_S`` have passed since the last call."""

    def __init__(self, renew: Callable[[], None]) -> None:
        self.renew, self.at = renew, time.monotonic()

    def __call__(self) -> None:
        if time.monotonic() - self.at >= RENEW_S:
            self.renew()
            self.at = time.monotonic()


def _copy_blobs(src: BlobStore, dst: BlobStore, keys: list[str], tick: Callable[[], None] = lambda: None
                ) -> list[str]:
    """Copy ``keys``, calling ``tick`` after each; returns those the source does not have."""
    missing = []
    for key in keys:
        try:
            dst.put(key, src.get(key))
        except BlobNotFound:
            missing.append(key)
        tick()
    if missing:
        log.warning("%d photos had no bytes to copy: %s", len(missing), missing[:5])
    return missing


def redacted_url(url: str) -> str:
    """A store URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}@{host}"
    return url
