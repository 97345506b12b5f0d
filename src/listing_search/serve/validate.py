"""Checks every client-sent value shares, as annotated types, so each bad input is a 422 with its reason.

Form fields, JSON bodies and the ``history`` JSON inside a form field all go through these types:
text is NFC-normalised and refused with lone surrogates, NUL or other control characters (they break
encoding, logs and the catalogue); numbers must be finite (``inf`` would be stored, ``NaN`` compares
false with every filter); history timestamps must be plausible (an event from 1970 weighs
2^-(age/half-life) = 0, and a profile of zero weights makes every score NaN).
"""

from __future__ import annotations

import math
import re
import time
import unicodedata
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute
from pydantic import AfterValidator
from pydantic_core import from_json

MAX_HISTORY_EVENTS = 200
MAX_HISTORY_CHARS = 100_000
EARLIEST_TIMESTAMP = 946_684_800.0  # 2000-01-01T00:00:00Z
FUTURE_SKEW_S = 3600.0  # clocks of phones and browsers drift; an hour ahead is still "now"
# C0 controls but tab, newline and carriage return; DEL and C1 controls; UTF-16 surrogates.
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def clean_text(value: str) -> str:
    """NFC-normalised text, refused when it holds a control character or a lone surrogate."""
    bad = _FORBIDDEN.search(value)
    if bad is not None:
        char = bad.group()
        kind = "a lone surrogate" if "\ud800" <= char <= "\udfff" else "a control character"
        raise ValueError(f"text holds {kind} (U+{ord(char):04X}) at position {bad.start()}")
    return unicodedata.normalize("NFC", value)


def non_blank(value: str) -> str:
    """Clean text without surrounding blanks, refused when nothing is left."""
    value = clean_text(value).strip()
    if not value:
        raise ValueError("must not be blank")
    return value


def finite_price(value: float) -> float:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"must be a finite number >= 0, got {value}")
    return value


def timestamp(value: float) -> float:
    """Seconds since the epoch, from 2000-01-01 up to a little past now."""
    if not math.isfinite(value):
        raise ValueError(f"timestamp must be a finite number, got {value}")
    if value < EARLIEST_TIMESTAMP:
        raise ValueError(f"timestamp {value} is before 2000-01-01 ({EARLIEST_TIMESTAMP:.0f} seconds since the epoch)")
    if value > time.time() + FUTURE_SKEW_S:
        raise ValueError(f"timestamp {value} is in the future")
    return value


Text = Annotated[str, AfterValidator(clean_text)]
NonBlankText = Annotated[str, AfterValidator(non_blank)]
Price = Annotated[float, AfterValidator(finite_price)]
Timestamp = Annotated[float, AfterValidator(timestamp)]


class BoundedJSONRequest(Request):
    """Parses JSON bodies with pydantic's parser: nesting depth capped, no NaN/Infinity tokens.

    FastAPI uses ``json.loads``, which recurses once per bracket: 50,000 of them are a RecursionError
    (a bare 400 at best) and lone-surrogate escapes get through as text."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                self._json = from_json(await self.body(), allow_inf_nan=False)
            except ValueError as exc:
                raise HTTPException(422, f"body: invalid JSON: {exc}") from None
        return self._json


class BoundedJSONRoute(APIRoute):
    """A route whose endpoint sees a ``BoundedJSONRequest``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def bounded(request: Request) -> Response:
            return await handler(BoundedJSONRequest(request.scope, request.receive))

        return bounded
