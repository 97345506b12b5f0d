"""Anonymous buyers: the random token a page makes, and the cookie its alert stream presents.

The page makes a token of at least 128 random bits and sends it as ``X-Buyer-Token``; the server
keeps only its SHA-256 (the buyer's ``owner`` id) and never logs either. ``EventSource`` cannot
send headers, so the page first asks ``POST /v1/alerts/session`` (token header) for an HttpOnly,
SameSite=Strict cookie naming the owner until an expiry, signed with a key every replica of the
store shares (``SqlStore.shared_secret``); the stream checks it. The token never goes in a URL.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader

TOKEN_HEADER = APIKeyHeader(name="X-Buyer-Token", auto_error=False, description=(
    "The buyer's own random token (at least 128 bits, e.g. 32 random bytes in base64url), made and kept by "
    "the page; only its SHA-256 is stored."))
TOKEN = re.compile(r"[A-Za-z0-9_-]{22,256}")
MIN_DISTINCT = 8  # characters: 22 random base64url characters have ~19, 32 random hex digits ~15
COOKIE = "buyer_alerts"
COOKIE_PATH = "/v1/alerts"
SECRET = "alerts:cookie_key"  # the meta row of the signing key
MISSING = ("missing X-Buyer-Token header: the page makes a random token (at least 128 bits) and sends it "
           "with every saved-search and alert request")
MALFORMED = ("X-Buyer-Token must be 22 to 256 characters of A-Z, a-z, 0-9, '-' and '_' that look random "
             "(at least 128 random bits, e.g. 32 random bytes in base64url)")


def owner_of(token: str) -> str:
    """The buyer's id in the store: the token's SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


async def buyer(token: Annotated[str | None, Security(TOKEN_HEADER)] = None) -> str:
    """The owner id of the request's token; 401 without one, 422 for one that cannot be random enough
    (``async``: a hash, run on the event loop rather than through the thread pool)."""
    if not token:
        raise HTTPException(401, MISSING, headers={"WWW-Authenticate": "X-Buyer-Token"})
    if not TOKEN.fullmatch(token) or len(set(token)) < MIN_DISTINCT:
        raise HTTPException(422, MALFORMED)
    return owner_of(token)


BuyerDep = Annotated[str, Depends(buyer)]


def cookie_value(owner: str, key: bytes, lifetime_s: float, now: float | None = None) -> str:
    """``owner.expiry.signature``: what the stream's cookie holds."""
    until = int((time.time() if now is None else now) + lifetime_s)
    return f"{owner}.{until}.{_sign(key, owner, until)}"


def owner_of_cookie(value: str | None, key: bytes, now: float | None = None) -> str | None:
    """The owner a cookie names, or None when it is missing, malformed, expired or not signed by ``key``."""
    parts = (value or "").split(".")
    if len(parts) != 3 or not re.fullmatch(r"[0-9a-f]{64}", parts[0]) or not parts[1].isdigit():
        return None
    owner, until = parts[0], int(parts[1])
    if until < (time.time() if now is None else now):
        return None
    return owner if hmac.compare_digest(parts[2], _sign(key, owner, until)) else None


def _sign(key: bytes, owner: str, until: int) -> str:
    return hmac.new(key, f"{owner}.{until}".encode(), hashlib.sha256).hexdigest()


def client_address(request: Request) -> str:
    """The client's address as the server saw it (behind a proxy: uvicorn's ``--proxy-headers``)."""
    return request.client.host if request.client is not None else "unknown"
