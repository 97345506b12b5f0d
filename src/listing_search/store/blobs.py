"""The blob store: photo bytes under short keys, in a local folder or under ``s3://bucket/prefix``.

Writes are atomic (a reader sees the old bytes or the new ones, never half a file), and storage
failures surface as ``errors.StorageFull`` / ``errors.StorageUnavailable`` with a short reason,
never as a raw ``OSError`` or botocore error, so the HTTP layer can answer 507 or 503.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

from listing_search.errors import STORAGE, BlobNotFound, StorageError, StorageFull, StorageUnavailable

log = logging.getLogger(__name__)

KEY_CHARS = re.compile(r"[A-Za-z0-9._/-]+")
# ".<name>.<random>.tmp": no valid key has a segment starting with ".", so these never clash.
TEMP_NAME = re.compile(r"\..+\.tmp")
FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


class BlobStore(Protocol):
    """Bytes under keys like ``photos/ab/abcd.jpg``; a local folder or an S3 prefix."""

    url: str

    def put(self, key: str, data: bytes) -> None: ...
    def get(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...
    def keys(self, prefix: str = "") -> Iterator[str]: ...
    def local_path(self, key: str) -> Path | None: ...
    def sweep_temp(self, older_than_s: float = 600.0) -> int: ...
    def probe(self) -> str | None: ...


def check_key(key: str) -> str:
    """``key`` itself, or ValueError saying why it cannot name a blob (it must be a safe relative path)."""
    if not key:
        raise ValueError("blob key is empty")
    if key.startswith("/"):
        raise ValueError(f"blob key must be relative: {key!r}")
    if "\\" in key:
        raise ValueError(f"blob key must not contain a backslash: {key!r}")
    if ".." in key:
        raise ValueError(f"blob key must not contain '..': {key!r}")
    if not KEY_CHARS.fullmatch(key):
        raise ValueError(f"blob key may only use A-Z a-z 0-9 . _ / -: {key!r}")
    if any(not part or part.startswith(".") for part in key.split("/")):
        raise ValueError(f"blob key has an empty segment or one starting with '.': {key!r}")
    return key


def _check_prefix(prefix: str) -> str:
    if prefix and (prefix.startswith("/") or ".." in prefix or not KEY_CHARS.fullmatch(prefix)):
        raise ValueError(f"bad blob key prefix: {prefix!r}")
    return prefix


def _os_error(exc: OSError, what: str) -> StorageError:
    reason = f"{what}: {exc.strerror or exc}"
    if exc.errno in FULL_ERRNOS:
        return StorageFull(reason, STORAGE)
    return StorageUnavailable(reason, STORAGE, "is read-only" if exc.errno == errno.EROFS else None)


class LocalBlobStore:
    """Blobs as files under ``root`` (created on the first put); keys are relative posix paths."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()
        self.url = self.root.as_uri()

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes) -> None:
        """Write to a temp file beside the target, fsync, then rename over it."""
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_atomic(path, data)
        except OSError as exc:
            raise _os_error(exc, f"put {key}") from exc
        log.debug("put %s (%d bytes)", key, len(data))

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise BlobNotFound(key) from exc
        except OSError as exc:
            raise _os_error(exc, f"get {key}") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except (IsADirectoryError, NotADirectoryError):
            return  # a folder is not a blob: nothing to delete
        except OSError as exc:
            raise _os_error(exc, f"delete {key}") from exc

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Every key starting with ``prefix``, in sorted order; temp files are never listed."""
        _check_prefix(prefix)
        start = self.root / prefix.rpartition("/")[0]
        for folder, dirs, files in os.walk(start):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            rel = Path(folder).relative_to(self.root)
            for name in sorted(files):
                key = (rel / name).as_posix()
                if not name.startswith(".") and key.startswith(prefix):
                    yield key

    def local_path(self, key: str) -> Path | None:
        path = self._path(key)
        return path if path.is_file() else None

    def sweep_temp(self, older_than_s: float = 600.0) -> int:
        """Delete temp files left by interrupted puts: only old ones, since other processes sharing
        the folder may be writing theirs right now."""
        count, cutoff = 0, time.time() - older_than_s
        for folder, _, files in os.walk(self.root):
            for name in files:
                if TEMP_NAME.fullmatch(name):
                    try:
                        path = Path(folder) / name
                        if path.stat().st_mtime > cutoff:
                            continue
                        path.unlink()
                    except FileNotFoundError:
                        continue
                    except OSError as exc:
                        raise _os_error(exc, f"sweep {self.url}") from exc
                    count += 1
        if count:
            log.info("%s: removed %d temp files left by interrupted writes", self.url, count)
        return count

    def probe(self) -> str | None:
        """None when a tiny file can be written, synced and removed under ``root``, else the reason."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = _write_temp(self.root / "probe", b"probe")
            probe.unlink()
        except OSError as exc:
            reason = _os_error(exc, f"probe {self.url}").reason
            log.warning("%s", reason)
            return reason
        return None


def _write_temp(path: Path, data: bytes) -> Path:
    """A synced temp file named ``.<name>.<random>.tmp`` beside ``path``; removed again if writing fails."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        with suppress(OSError):
            tmp.unlink()
        raise
    return tmp


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = _write_temp(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable; some file systems refuse to fsync a folder, which is harmless here."""
    with suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextmanager
def _s3_errors(what: str) -> Iterator[None]:
    """botocore's connection and client errors, as StorageUnavailable with a short reason."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        reason = f"{what}: {error.get('Code', '?')} {error.get('Message', '')}".rstrip()
        raise StorageUnavailable(reason) from exc
    except BotoCoreError as exc:
        raise StorageUnavailable(f"{what}: {exc}") from exc


@dataclass(frozen=True)
class S3Url:
    bucket: str
    prefix: str  # "" or ending in "/"

    @classmethod
    def parse(cls, url: str) -> "S3Url":
        if not url.startswith("s3://"):
            raise ValueError(f"not an s3:// url: {url!r}")
        bucket, _, prefix = url[5:].partition("/")
        if not bucket:
            raise ValueError(f"no bucket in {url!r}")
        prefix = prefix.strip("/")
        return cls(bucket, f"{prefix}/" if prefix else "")


def s3_client(endpoint_url: str | None) -> Any:
    """The boto3 client every S3 reader and writer of the project uses (AWS_ENDPOINT_URL honoured)."""
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=5, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"})
    return boto3.client("s3", endpoint_url=endpoint_url or os.environ.get("AWS_ENDPOINT_URL"), config=config)


class S3BlobStore:
    """Blobs as objects under ``s3://bucket/prefix/``; a put is one PutObject, so it is atomic already."""

    def __init__(self, url: str, endpoint_url: str | None = None, client: Any = None) -> None:
        where = S3Url.parse(url)
        self.bucket, self.prefix = where.bucket, where.prefix
        self.url = f"s3://{self.bucket}/{self.prefix}"
        self._client = client or s3_client(endpoint_url)

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def put(self, key: str, data: bytes) -> None:
        with _s3_errors(f"put {key}"):
            self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        log.debug("put %s (%d bytes)", key, len(data))

    def get(self, key: str) -> bytes:
        with _s3_errors(f"get {key}"):
            try:
                return self._client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
            except self._client.exceptions.NoSuchKey as exc:
                raise BlobNotFound(key) from exc

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        with _s3_errors(f"exists {key}"):
            try:
                self._client.head_object(Bucket=self.bucket, Key=self._key(key))
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    return False
                raise
        return True

    def delete(self, key: str) -> None:
        with _s3_errors(f"delete {key}"):
            self._client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Every key starting with ``prefix``, in S3's (sorted) order."""
        _check_prefix(prefix)
        with _s3_errors(f"list {prefix or '(all)'}"):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix)
            for page in pages:
                for obj in page.get("Contents", []):
                    key = obj["Key"][len(self.prefix):]
                    if not any(part.startswith(".") for part in key.split("/")):
                        yield key

    def local_path(self, key: str) -> Path | None:
        check_key(key)
        return None

    def sweep_temp(self, older_than_s: float = 600.0) -> int:
        return 0

    def probe(self) -> str | None:
        """None when a tiny object can be written and deleted under the prefix, else the reason."""
        key = f"{self.prefix}.probe-{uuid.uuid4().hex}"
        try:
            with _s3_errors(f"probe {self.url}"):
                self._client.put_object(Bucket=self.bucket, Key=key, Body=b"probe")
                self._client.delete_object(Bucket=self.bucket, Key=key)
        except StorageError as exc:
            log.warning("%s", exc.reason)
            return exc.reason
        return None


def open_blobstore(url: str | os.PathLike[str], endpoint_url: str | None = None) -> BlobStore:
    """``s3://bucket/prefix`` -> S3BlobStore; ``file:///abs/path`` or a plain path -> LocalBlobStore."""
    text = os.fspath(url)
    if text.startswith("s3://"):
        return S3BlobStore(text, endpoint_url)
    if text.startswith("file://"):
        parsed = urlparse(text)
        if parsed.netloc not in ("", "localhost"):
            raise ValueError(f"file:// url on another host: {text!r}")
        return LocalBlobStore(unquote(parsed.path))
    return LocalBlobStore(text)
