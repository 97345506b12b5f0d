"""Deadlines for slow clients: request headers and request bodies must arrive in bounded time.

uvicorn closes idle keep-alive connections, but a client that sends one byte every few seconds
resets that timer forever, and nothing bounds how long a request head or body may take; twenty such
connections hold twenty sockets and buffers indefinitely (a slowloris). The header deadline lives in
the HTTP protocol (the app never sees a request whose head is incomplete); the body deadline is ASGI
middleware around ``receive``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from listing_search.serve.limits import run_guarded, send_json

log = logging.getLogger(__name__)


class BodyTimeout(HTTPException):
    """Raised from inside ``receive``; ``connection: close`` so uvicorn drops the rest of the body."""

    def __init__(self, seconds: float) -> None:
        super().__init__(408, body_timeout_reason(seconds), headers={"connection": "close"})


def body_timeout_reason(seconds: float) -> str:
    return f"request body not received within {seconds:g} s"


class BodyDeadlineMiddleware:
    """The whole request body must arrive within ``seconds`` of the request's head; else a 408."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app, self.seconds = app, seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline, done = time.monotonic() + self.seconds, False

        async def timed_receive() -> Message:
            nonlocal done
            if done:  # after the body, receive only waits for a disconnect: no deadline
                return await receive()
            message = await self._receive_by(receive, deadline)
            done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await run_guarded(self.app, scope, timed_receive, send, BodyTimeout,
                          lambda s: send_json(s, 408, body_timeout_reason(self.seconds)))

    async def _receive_by(self, receive: Receive, deadline: float) -> Message:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BodyTimeout(self.seconds)
        try:  # asyncio.timeout, not wait_for: wait_for wraps each receive in a task of its own (3.11)
            async with asyncio.timeout(remaining):
                return await receive()
        except TimeoutError:
            raise BodyTimeout(self.seconds) from None


HEAD_TIMEOUT_REPLY = b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"


class HeaderDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request head is not complete in time.

    The clock starts when a connection opens, and again when bytes of a next request arrive on a
    kept-alive one; it stops when a request head has been parsed (uvicorn then starts a new cycle)."""

    header_timeout: float = 10.0
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        before = self.cycle
        super().data_received(data)
        if self.cycle is not before:
            self._cancel_head_timer()
        elif self._head_timer is None and (self.cycle is None or self.cycle.response_complete):
            self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        body = json.dumps({"detail": f"request head not received within {self.header_timeout:g} s"}).encode()
        self.transport.write(HEAD_TIMEOUT_REPLY + b"content-length: %d\r\n\r\n" % len(body) + body)
        self.transport.close()
        log.info("closed a connection from %s: request head not received in time", self.client)


def header_deadline_protocol(seconds: float) -> type[HeaderDeadlineProtocol]:
    """The protocol class uvicorn's ``http=`` option takes, with this deadline."""
    return type("HeaderDeadlineProtocol", (HeaderDeadlineProtocol,), {"header_timeout": seconds})


class SettingsHeaderDeadlineProtocol(HeaderDeadlineProtocol):
    """For ``serve --workers N``: uvicorn hands worker processes the protocol class by name, so the
    deadline comes from the settings in the environment rather than from a class made at run time."""

    @property
    def header_timeout(self) -> float:  # type: ignore[override]
        return _settings_header_timeout()


@functools.cache
def _settings_header_timeout() -> float:
    from listing_search.settings import get_settings

    return get_settings().serve.header_timeout_s
