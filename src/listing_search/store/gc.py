"""Photo bytes no listing names any more: left by a process killed between putting a photo and
committing its listing, by a delete made while a backup was in progress, or by a process killed
between committing a delete and removing the bytes.

A backup copies the photos its snapshot of the rows names, after reading the rows; bytes deleted
in between would be missing from it. So while any backup holds its lease (``SqlStore.hold_backup``)
deletes leave the bytes and the sweep skips; the next sweep after the backup removes them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from listing_search.errors import StorageError
from listing_search.store.blobs import BlobStore
from listing_search.store.sql import SqlStore

log = logging.getLogger(__name__)
GRACE_S = 3600.0  # an add in flight puts its photos before it commits: never touch recent bytes


def delete_photo_bytes(store: SqlStore, blobs: BlobStore, keys: Iterable[str]) -> int:
    """Delete the bytes of photos whose rows a committed delete removed; returns how many.

    Checked after the delete's commit: a backup whose lease is not seen here reads its rows after
    that commit, so it cannot name these photos. While a backup is in progress (or the store cannot
    say) the bytes stay for ``sweep_orphan_photos``."""
    keys = list(keys)
    if not keys:
        return 0
    try:
        held = store.backup_in_progress()
    except StorageError as exc:
        held = True
        log.warning("could not check for a backup in progress (%s): photo files kept for the sweep", exc.reason)
    if held:
        log.info("a backup is in progress: %d deleted photo files kept for the orphan sweep", len(keys))
        return 0
    removed = 0
    for key in keys:
        try:
            blobs.delete(key)
            removed += 1
        except StorageError as exc:  # the orphan sweep catches what is left
            log.warning("photo file %s not deleted: %s", key, exc.reason)
    return removed


def sweep_orphan_photos(store: SqlStore, blobs: BlobStore, grace_s: float = GRACE_S) -> int:
    """Delete ``photos/`` blobs that no photo row names and that are older than ``grace_s``; nothing
    while a backup is in progress.

    Local folders only (the age comes from the file); on S3 a lifecycle rule does this job.
    """
    if store.backup_in_progress():
        log.info("orphan photo sweep skipped: a backup is in progress")
        return 0
    named = set(store.photo_blob_keys())
    cutoff, removed = time.time() - grace_s, 0
    for key in list(blobs.keys("photos/")):
        if key in named:
            continue
        path = blobs.local_path(key)
        if path is None or path.stat().st_mtime > cutoff:
            continue
        blobs.delete(key)
        removed += 1
    if removed:
        log.info("removed %d photo files that no listing names", removed)
    return removed
