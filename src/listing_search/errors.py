"""Every exception a stage or the service raises on purpose, in one place below everything else.

Any module may raise or catch these without importing another stage (no reverse imports). The
HTTP layer maps them to statuses in ``serve/errors.py``.
"""

from __future__ import annotations


DATABASE, STORAGE = "database", "storage"  # the store of record; photo bytes, snapshots, local disks


class StorageError(RuntimeError):
    """The store of record or the blob store cannot complete a write (nothing was changed), or a read.

    ``status`` is the HTTP status a client gets: 507 when storage is full, 503 otherwise. ``reason`` is
    the whole story for the log and operators (it may name a path, a blob key or a database host);
    clients see only ``kind`` (``database`` or ``storage``) and ``public``, which name none of them.
    """

    status = 503
    state = "is unavailable"

    def __init__(self, reason: str, kind: str = STORAGE, state: str | None = None) -> None:
        super().__init__(reason)
        self.reason, self.kind = reason, kind
        self.state = state or self.state

    @property
    def public(self) -> str:
        """What a client may read: ``the database is full``, ``storage is read-only``..."""
        return f"{'the database' if self.kind == DATABASE else 'storage'} {self.state}"


class StorageFull(StorageError):
    """No space left on the device (or a quota) under the store or the blob store."""

    status = 507
    state = "is full"


class StorageUnavailable(StorageError):
    """Read-only storage, a lost database connection, or a server that refuses writes."""

    status = 503


class BlobNotFound(KeyError):
    """No blob under that key."""


class IdempotencyConflict(ValueError):
    """The same Idempotency-Key was used with a different request body."""


class StoreVersionError(RuntimeError):
    """The database's schema is newer than this code, or a migration failed."""


class PhotoQueueFull(RuntimeError):
    """The photo queue (decode + model) admitted no more work within its wait: answer 503, retry later."""

    def __init__(self, reason: str, retry_after: int = 1) -> None:
        super().__init__(reason)
        self.reason, self.retry_after = reason, retry_after


class UnknownCategory(ValueError):
    """A listing or a filter names a root category the catalogue does not have."""


class BadNear(ValueError):
    """A search ``near`` a place it cannot be near: an unknown place (``matches``: close names), a
    position out of range, a radius out of 1..500 km, or a sort by distance without a point."""

    def __init__(self, message: str, matches: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.matches = matches


class TextSearchUnavailable(RuntimeError):
    """A text query reached an engine without a text model and text index."""


class BadCursor(ValueError):
    """A paging cursor this service did not give, or one of another search."""
