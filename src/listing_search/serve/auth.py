"""The write endpoints' API key, checked from the request headers before any of the body is read.

FastAPI parses a form body before dependencies run, so a key check in a dependency would let anyone
make the server receive and spool up to ten photos. This middleware answers 401/403 from the
headers alone, and refuses every write while no key is configured (there is no default key).
"""

from __future__ import annotations

import hashlib
import logging
import secrets

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from listing_search.serve.limits import send_json
from listing_search.settings import Settings

log = logging.getLogger(__name__)

HEADER = b"x-api-key"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
WRITE_PREFIX = "/v1/listings"
DISABLED = ("writes are disabled: no API key is configured "
            "(set LISTING_SEARCH_SERVE__API_KEYS to one or more comma-separated keys)")
MISSING = "missing X-API-Key header"
INVALID = "invalid API key"


def _digest(key: str | bytes) -> bytes:
    """Keys are compared as digests, so neither the content nor the length of a key leaks through timing."""
    return hashlib.sha256(key.encode() if isinstance(key, str) else key).digest()


def key_matches(given: str | bytes, keys: tuple[str, ...]) -> bool:
    """Constant time in the key: every configured key is compared, without stopping at a match."""
    digest, found = _digest(given), False
    for key in keys:
        found |= secrets.compare_digest(digest, _digest(key))
    return found


def refusal(given: bytes | None, keys: tuple[str, ...]) -> tuple[int, str] | None:
    """The status and reason a write is refused with, or None when the key is right."""
    if not keys:
        return 403, DISABLED
    if not given:
        return 401, MISSING
    return None if key_matches(given, keys) else (403, INVALID)


def is_write(scope: Scope) -> bool:
    path = scope.get("path", "")
    return scope.get("method") in WRITE_METHODS and (path == WRITE_PREFIX or path.startswith(WRITE_PREFIX + "/"))


class ApiKeyMiddleware:
    """Refuses writes to ``/v1/listings`` without a configured key, from the headers alone."""

    def __init__(self, app: ASGIApp, keys: tuple[str, ...]) -> None:
        self.app, self.keys = app, keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_write(scope):
            given = next((v for n, v in scope.get("headers", []) if n == HEADER), None)
            refused = refusal(given, self.keys)
            if refused is not None:
                extra = [(b"www-authenticate", b"X-API-Key")] if refused[0] == 401 else []
                await send_json(send, *refused, headers=extra)
                return
        await self.app(scope, receive, send)


def install(app: FastAPI, settings: Settings) -> None:
    """Adds the key check and logs whether writes are enabled (never the keys themselves)."""
    keys = settings.serve.write_keys()
    app.add_middleware(ApiKeyMiddleware, keys=keys)
    if keys:
        log.info("writes are enabled: %d API key(s) configured", len(keys))
    else:
        log.warning(DISABLED)
