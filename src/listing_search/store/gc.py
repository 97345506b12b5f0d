"""Photo bytes no listing names any more: left by a process killed between putting a photo and
committing its listing, or between committing a delete and removing the bytes."""

from __future__ import annotations

import logging
import time

from listing_search.store.blobs import BlobStore
from listing_search.store.sql import SqlStore

log = logging.getLogger(__name__)
GRACE_S = 3600.0  # an add in flight puts its photos before it commits: never touch recent bytes


def sweep_orphan_photos(store: SqlStore, blobs: BlobStore, grace_s: float = GRACE_S) -> int:
    """Delete ``photos/`` blobs that no photo row names and that are older than ``grace_s``.

    Local folders only (the age comes from the file); on S3 a lifecycle rule does this job.
    """
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
