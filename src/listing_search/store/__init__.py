"""The catalogue of record: listings, photos (metadata), vectors and the change log, plus the blob store.

``open_store(url)`` picks the implementation from the URL: ``sqlite:///path`` (embedded default)
or ``postgresql://...`` (several replicas).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from listing_search.store.blobs import BlobStore, open_blobstore
from listing_search.store.sql import SqlStore

if TYPE_CHECKING:
    from listing_search.settings import Settings

log = logging.getLogger(__name__)


def open_store(url: str) -> SqlStore:
    if url.startswith(("postgresql://", "postgres://")):
        from listing_search.store.postgres import PostgresStore

        return PostgresStore(url)
    if url.startswith("sqlite:") or "://" not in url:
        from listing_search.store.sqlite import SqliteStore

        return SqliteStore(url)
    raise ValueError(f"unknown store URL {url!r}: expected sqlite:///path or postgresql://...")


def open_storage(settings: "Settings", artifacts: Path) -> tuple[SqlStore, BlobStore]:
    """The store of record and the blob store the settings name; leftovers of crashed writes swept."""
    st = settings.store
    store = open_store(st.resolved_url(artifacts))
    blobs = open_blobstore(st.resolved_blob_url(artifacts), settings.data.s3_endpoint_url)
    swept = blobs.sweep_temp()
    if swept:
        log.info("blob store: %d temporary files of interrupted writes removed", swept)
    return store, blobs


def photo_blob_key(image_id: str) -> str:
    """Where a photo's bytes live in the blob store."""
    return f"photos/{image_id}.jpg"
