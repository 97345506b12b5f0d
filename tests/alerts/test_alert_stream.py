"""The alert stream on a real server socket: Server-Sent Events authenticated by the HttpOnly cookie
``POST /v1/alerts/session`` sets (EventSource cannot send the token header, and the token never goes
in a URL); an alert written by the matcher arrives as an event; reconnecting after an event id goes
on after it."""

from __future__ import annotations

import json
import time

import httpx

from listing_search.serve.app import create_app
from tests.alerts.fixtures import TOKEN_A, TOKEN_B, buyer, http_add, served


def events(base: str, cookies: httpx.Cookies, want: int, timeout: float = 10.0, headers: dict | None = None
           ) -> list[tuple[str, dict]]:
    """(id, data) of the first ``want`` alert events the stream sends."""
    out: list[tuple[str, dict]] = []
    with httpx.Client(base_url=base, cookies=cookies, timeout=timeout) as c, \
            c.stream("GET", "/v1/alerts/stream", headers=headers or {}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        event: dict[str, str] = {}
        deadline = time.monotonic() + timeout
        for line in r.iter_lines():
            if line.startswith(("id:", "event:", "data:")):
                name, _, value = line.partition(":")
                event[name] = value.strip()
            elif line == "" and event.get("event") == "alerts":
                out.append((event["id"], json.loads(event["data"])))
                event = {}
                if len(out) >= want:
                    return out
            elif line == "":
                event = {}
            assert time.monotonic() < deadline, "no alert event in time"
    return out


def test_the_stream_sends_new_alerts_to_the_cookie_holder_only(settings, engine) -> None:
    with served(create_app(settings, engine=engine, matcher=True)) as base:
        for token, words in ((TOKEN_A, "electric kettle"), (TOKEN_B, "gaming laptop")):
            assert httpx.post(f"{base}/v1/saved-searches", data={"text": words}, headers=buyer(token)).status_code == 201
        assert httpx.get(f"{base}/v1/alerts/stream", timeout=5).status_code == 401  # no cookie, no stream
        session = httpx.post(f"{base}/v1/alerts/session", headers=buyer(TOKEN_A), timeout=5)
        assert session.status_code == 204 and TOKEN_A not in session.headers["set-cookie"]
        cookies = session.cookies
        assert http_add(base, "Gaming laptop, fast", 1).status_code == 201  # B's: never on A's stream
        assert http_add(base, "Electric kettle, chrome", 2).status_code == 201
        ((first_id, body),) = events(base, cookies, 1)
        assert [a["listing"]["title"] for a in body["alerts"]] == ["Electric kettle, chrome"]
        assert body["alerts"][0]["saved_search"] == "“electric kettle”" and first_id == str(body["next_after"])
        assert http_add(base, "Electric kettle, blue", 3).status_code == 201
        ((_, body),) = events(base, cookies, 1, headers={"Last-Event-ID": first_id})  # a reconnect goes on
        assert [a["listing"]["title"] for a in body["alerts"]] == ["Electric kettle, blue"]
