"""Browser security headers on every answer, and CORS only for origins an operator names.

The web page runs only its own files (``static/app.js``, ``static/style.css``): no inline script,
style or handler, so its Content-Security-Policy allows scripts and styles from the server alone.
``/docs`` and ``/redoc`` are pages FastAPI generates with one inline start-up script; it is allowed
by its SHA-256 hash, computed from the page as sent, so no other inline script can run there (their
styles stay inline: Swagger UI and ReDoc write style elements as they render). JSON, photos and
every other answer get a policy that allows nothing at all. Every answer says it may not be framed
(clickjacking on Save and Clear history), must not be sniffed into another type, and sends the
Referer to this site only.
"""

from __future__ import annotations

import base64
import hashlib
import re

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from listing_search.settings import Settings

PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
            "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
DOCS_CSP = ("default-src 'self'; script-src {scripts}; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; "
            "base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
NOTHING_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
COMMON = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin"),
          (b"x-frame-options", b"DENY")]
INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc\s*=)[^>]*>(.*?)</script>", re.S | re.I)


def script_hashes(html: bytes) -> list[str]:
    """CSP sources (``'sha256-...'``) of each inline script in ``html``, hashed as browsers hash them."""
    return [f"'sha256-{base64.b64encode(hashlib.sha256(body).digest()).decode()}'"
            for body in INLINE_SCRIPT.findall(html)]


class SecurityHeadersMiddleware:
    """Adds the headers above to every HTTP answer; ``docs_paths`` get the docs policy."""

    def __init__(self, app: ASGIApp, docs_paths: frozenset[str]) -> None:
        self.app, self.docs_paths = app, docs_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
        elif scope.get("path", "") in self.docs_paths:
            await self._docs(scope, receive, send)
        else:
            await self.app(scope, receive, _with_headers(send))

    async def _docs(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Hold the (small, generated) page until its body is whole, then send it with its scripts' hashes."""
        start: Message | None = None
        body = b""

        async def held(message: Message) -> None:
            nonlocal start, body
            if message["type"] == "http.response.start":
                start = message
                return
            body += message.get("body", b"")
            if message.get("more_body", False):
                return
            assert start is not None
            csp = DOCS_CSP.format(scripts=" ".join(["'self'", *script_hashes(body)])).encode()
            await send(_headed(start, csp))
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, held)


def _with_headers(send: Send) -> Send:
    async def headed_send(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = _headed(message, None)
        await send(message)

    return headed_send


def _headed(start: Message, csp: bytes | None) -> Message:
    """``start`` with the common headers and a CSP: ``csp``, else by content type (HTML is the page)."""
    headers = list(start.get("headers", []))
    if csp is None:
        kind = next((v for n, v in headers if n.lower() == b"content-type"), b"")
        csp = (PAGE_CSP if kind.startswith(b"text/html") else NOTHING_CSP).encode()
    taken = {n.lower() for n, _ in headers}
    extra = [(n, v) for n, v in [(b"content-security-policy", csp), *COMMON] if n not in taken]
    return {**start, "headers": headers + extra}


def install(app: FastAPI, settings: Settings) -> None:
    """Security headers outermost (every answer, middleware refusals included); CORS only when configured."""
    origins = settings.serve.cors_origins
    if origins:
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["X-API-Key", "Idempotency-Key", "Content-Type"],
                           expose_headers=["X-Log-Seq", "Retry-After"])
    docs = {*DOCS_PATHS, *(p for p in (app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url) if p)}
    app.add_middleware(SecurityHeadersMiddleware, docs_paths=frozenset(docs))


DOCS_PATHS = ("/docs", "/redoc", "/docs/oauth2-redirect")  # FastAPIOffline's pages (app.docs_url is None there)
