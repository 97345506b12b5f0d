"""Strict request parsing: ambiguous framing refused, form text that is not valid in its charset refused.

A request carrying both ``Content-Length`` and ``Transfer-Encoding`` is framed one way by this server
(chunked) and perhaps the other way by a proxy in front of it: the leftover bytes become a second,
smuggled request. It is answered 400 and the connection closed, before the body is read.

Starlette decodes a form's text that is not valid in its charset (UTF-8 unless the request says
otherwise) as Latin-1, or replaces it, and the listing is stored garbled ("ÿþý", 201). Here the body
is checked as it streams in, with the parser Starlette uses, and such a form is a 422 naming the field.
"""

from __future__ import annotations

import codecs
from urllib.parse import unquote_to_bytes

from fastapi import HTTPException
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from listing_search.serve.limits import run_guarded, send_json

AMBIGUOUS = "request has both Content-Length and Transfer-Encoding: refused (ambiguous framing)"


class BadFormText(HTTPException):
    """Raised from inside ``receive``; FastAPI passes HTTPExceptions through body parsing unchanged."""

    def __init__(self, field: str, charset: str) -> None:
        super().__init__(422, f"{field}: not valid {charset} text")


class StrictFramingMiddleware:
    """400 and ``connection: close`` for a request with both Content-Length and Transfer-Encoding."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            names = {name.lower() for name, _ in scope.get("headers", [])}
            if b"content-length" in names and b"transfer-encoding" in names:
                await send_json(send, 400, AMBIGUOUS)
                return
        await self.app(scope, receive, send)


class StrictFormMiddleware:
    """422 for a multipart or URL-encoded form whose field names, file names or text values do not
    decode in the form's charset; file contents are not text and are not checked."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        checker = _checker(scope) if scope["type"] == "http" else None
        if checker is None:
            await self.app(scope, receive, send)
            return

        async def checked_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                checker.feed(message.get("body", b""))
                if not message.get("more_body", False):
                    checker.finish()
            return message

        await run_guarded(self.app, scope, checked_receive, send, BadFormText,
                          lambda s: send_json(s, 422, "form text is not valid in its charset"))


def _checker(scope: Scope) -> "MultipartChecker | UrlencodedChecker | None":
    content_type = next((v for n, v in scope.get("headers", []) if n.lower() == b"content-type"), b"")
    kind, params = parse_options_header(content_type)
    charset = _codec(params.get(b"charset", b"utf-8"))
    if kind == b"multipart/form-data" and params.get(b"boundary"):
        return MultipartChecker(params[b"boundary"], charset)
    if kind == b"application/x-www-form-urlencoded":
        return UrlencodedChecker()
    return None


def _codec(charset: bytes | str) -> str:
    """The codec Starlette decodes with: the declared charset, or UTF-8 when it names none we know."""
    name = charset.decode("latin-1") if isinstance(charset, bytes) else charset
    try:
        return codecs.lookup(name).name
    except LookupError:
        return "utf-8"


def _decoded(data: bytes, charset: str, field: str) -> str:
    try:
        return data.decode(charset)
    except UnicodeDecodeError:
        raise BadFormText(field, charset) from None


class MultipartChecker:
    """Streams a multipart body through ``python_multipart``, checking each part's name and file name
    and each text part's value as Starlette would decode them (files are skipped)."""

    def __init__(self, boundary: bytes, charset: str) -> None:
        self.charset = charset
        self._header, self._value, self._disposition = b"", b"", b""
        self._name, self._text, self._is_file, self._malformed = "", bytearray(), False, False
        self.parser = MultipartParser(boundary, {
            "on_part_begin": self._begin, "on_header_field": self._header_field,
            "on_header_value": self._header_value, "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished, "on_part_data": self._data, "on_part_end": self._end})

    def feed(self, data: bytes) -> None:
        if not data or self._malformed:
            return
        try:
            self.parser.write(data)
        except BadFormText:
            raise
        except Exception:  # a malformed body: Starlette's own parser answers it with its reason
            self._malformed = True

    def finish(self) -> None:
        """Nothing to do: each part is checked as it ends."""

    def _begin(self) -> None:
        self._disposition, self._text, self._is_file = b"", bytearray(), False

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        if self._header.lower() == b"content-disposition":
            self._disposition = self._value
        self._header, self._value = b"", b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        self._name = _decoded(options.get(b"name", b""), self.charset, "a field name")
        self._is_file = b"filename" in options
        if self._is_file:
            _decoded(options[b"filename"], self.charset, f"{self._name}: the file name")

    def _data(self, data: bytes, start: int, end: int) -> None:
        if not self._is_file:
            self._text += data[start:end]

    def _end(self) -> None:
        if not self._is_file:
            _decoded(bytes(self._text), self.charset, self._name)


class UrlencodedChecker:
    """Buffers a URL-encoded body (the body limit bounds it) and checks every name and value once whole:
    ASCII with percent-encoded UTF-8, which is what Starlette decodes (raw bytes it would read as Latin-1)."""

    def __init__(self) -> None:
        self.body = bytearray()

    def feed(self, data: bytes) -> None:
        self.body += data

    def finish(self) -> None:
        for pair in bytes(self.body).split(b"&"):
            name, _, value = pair.partition(b"=")
            field = _percent_decoded(name, "a field name")
            _percent_decoded(value, field)


def _percent_decoded(part: bytes, field: str) -> str:
    if not part.isascii():
        raise BadFormText(field, "percent-encoded UTF-8")
    return _decoded(unquote_to_bytes(part.replace(b"+", b" ")), "utf-8", field)
