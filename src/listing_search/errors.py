"""Every exception a stage or the service raises on purpose, in one place below everything else.

Any module may raise or catch these without importing another stage (no reverse imports). The
HTTP layer maps them to statuses in ``serve/errors.py``.
"""

from __future__ import annotations


class StorageError(RuntimeError):
    """The store of record or the blob store cannot complete a write (nothing was changed).

    ``status`` is the HTTP status a client gets: 507 when storage is full, 503 otherwise.
    """

    status = 503

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StorageFull(StorageError):
    """No space left on the device (or a quota) under the store or the blob store."""

    status = 507


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


class TextSearchUnavailable(RuntimeError):
    """A text query reached an engine without a text model and text index."""


class BadCursor(ValueError):
    """A paging cursor this service did not give, or one of another search."""
