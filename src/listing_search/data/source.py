"""Where a dataset comes from: a local folder, or ``s3://bucket/prefix`` mirrored to a local cache.

The S3 reader is the real boto3 code path (list + download), so pointing it at an S3-compatible
server in tests exercises exactly what would talk to AWS. Objects already mirrored with the same
size are not downloaded again.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from listing_search.schema import IMAGES_CSV, IMAGES_DIR, PRODUCTS_CSV
from listing_search.store.blobs import S3Url, s3_client

log = logging.getLogger(__name__)


def is_s3(src: str | os.PathLike) -> bool:
    return str(src).startswith("s3://")


def resolve_source(src: str | os.PathLike, cache_dir: Path, endpoint_url: str | None = None) -> Path:
    """A local folder holding the dataset: ``src`` itself, or its S3 mirror under ``cache_dir``."""
    if is_s3(src):
        return mirror_s3(S3Url.parse(str(src)), cache_dir, endpoint_url)
    path = Path(src)
    if not path.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {path}")
    for name in (PRODUCTS_CSV, IMAGES_CSV):
        if not (path / name).is_file():
            raise FileNotFoundError(f"{name} not found in {path}")
    return path


def mirror_s3(url: S3Url, cache_dir: Path, endpoint_url: str | None = None, threads: int = 16) -> Path:
    """Download the tables and ``images/`` under ``url`` into ``cache_dir`` (skipping same-size files)."""
    client = s3_client(endpoint_url)
    wanted: list[tuple[str, int]] = []
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=url.bucket, Prefix=url.prefix):
        for obj in page.get("Contents", []):
            rel = obj["Key"][len(url.prefix):]
            if rel in (PRODUCTS_CSV, IMAGES_CSV) or rel.startswith(f"{IMAGES_DIR}/"):
                wanted.append((rel, int(obj["Size"])))
    names = {rel for rel, _ in wanted}
    for name in (PRODUCTS_CSV, IMAGES_CSV):
        if name not in names:
            raise FileNotFoundError(f"{name} not found at s3://{url.bucket}/{url.prefix}")

    def fetch(item: tuple[str, int]) -> bool:
        rel, size = item
        dest = cache_dir / rel
        if dest.is_file() and dest.stat().st_size == size:
            return False
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.part")
        client.download_file(url.bucket, url.prefix + rel, str(tmp))
        os.replace(tmp, dest)
        return True

    cache_dir.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        fetched = sum(pool.map(fetch, wanted))
    log.info("s3://%s/%s: %d objects, %d downloaded", url.bucket, url.prefix, len(wanted), fetched)
    return cache_dir


def image_listing(src: str | os.PathLike, endpoint_url: str | None = None) -> dict[str, int]:
    """Image id -> size in bytes of every ``images/<id>.jpg`` under ``src``, from a listing (nothing read)."""
    if not is_s3(src):
        folder = Path(src) / IMAGES_DIR
        if not folder.is_dir():
            return {}
        return {e.name[:-4]: e.stat().st_size for e in os.scandir(folder) if e.is_file() and e.name.endswith(".jpg")}
    url = S3Url.parse(str(src))
    found: dict[str, int] = {}
    prefix = f"{url.prefix}{IMAGES_DIR}/"
    for page in s3_client(endpoint_url).get_paginator("list_objects_v2").paginate(Bucket=url.bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            name = obj["Key"][len(prefix):]
            if name.endswith(".jpg") and "/" not in name:
                found[name[:-4]] = int(obj["Size"])
    return found
