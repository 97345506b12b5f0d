"""Upload size limits enforced while the body arrives, so an oversized request is never buffered.

A declared ``Content-Length`` over the limit is refused before reading anything; a chunked or lying
body is cut off as soon as the bytes received pass it. Either way the client gets a JSON 413.
Starlette spools form files to anonymous temporary files; no upload is stored under its own name.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

FORM_SLACK = 64 * 1024  # multipart boundaries and text fields around the photo(s)


class BodyTooLarge(HTTPException):
    """Raised from inside ``receive``; FastAPI passes HTTPExceptions through body parsing unchanged."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"upload too large: request body over {limit} bytes")


class BodyLimitMiddleware:
    """Caps request bodies at ``limit_for(path)`` bytes."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app, self.limit_for = app, limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _reject(send, limit)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        await run_guarded(self.app, scope, limited_receive, send, BodyTooLarge, lambda s: _reject(s, limit))


async def run_guarded(app: ASGIApp, scope: Scope, receive: Receive, send: Send, error: type[Exception],
                      reply: Callable[[Send], Awaitable[None]]) -> None:
    """Run ``app`` with a guarded ``receive``: ``error`` raised from it is answered by ``reply`` while no
    response has started (after that, the connection can only be dropped)."""
    started = False

    async def tracking_send(message: Message) -> None:
        nonlocal started
        started = started or message["type"] == "http.response.start"
        await send(message)

    try:
        await app(scope, receive, tracking_send)
    except error:
        if started:
            raise
        await reply(send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _reject(send: Send, limit: int) -> None:
    await send_json(send, 413, f"upload too large: request body over {limit} bytes")


async def send_json(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """A JSON error answered from middleware; ``connection: close`` because the body may be unread."""
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})
