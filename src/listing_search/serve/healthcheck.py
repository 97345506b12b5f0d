"""The container's health probe: ``python -m listing_search.serve.healthcheck``.

GETs ``/health`` on the host and port the server binds (the same settings, so ``-e
LISTING_SEARCH_SERVE__PORT=9000`` moves both) and exits 0 on 200. Otherwise it prints the status and
the server's reason, which Docker keeps in ``docker inspect``'s health log, and exits 1. With an
operator key configured (``LISTING_SEARCH_SERVE__OPERATOR_KEYS``) it sends the first, so that log
holds the whole reason (paths, hosts) that other callers of ``/health`` are not shown.

It reads the two variables itself rather than building ``Settings`` (pydantic takes about a second
to import, and the probe runs every 30 s under a 5 s timeout); a whole-section
``LISTING_SEARCH_SERVE`` JSON value is left to ``Settings``.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping

SECTION = "LISTING_SEARCH_SERVE"
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8000  # ServeSettings' defaults (tests keep them equal)
WILDCARDS = {"", "0.0.0.0", "::"}


def serve_address(environ: Mapping[str, str]) -> tuple[str, int]:
    """The host and port ``listing-search serve`` binds, from the environment as Settings reads it."""
    env = {k.upper(): v for k, v in environ.items()}  # Settings' names are case-insensitive
    if SECTION in env:
        from listing_search.settings import get_settings

        serve = get_settings().serve
        return serve.host, serve.port
    return env.get(f"{SECTION}__HOST", DEFAULT_HOST), int(env.get(f"{SECTION}__PORT", DEFAULT_PORT))


def health_url(host: str, port: int) -> str:
    """Where the server answers from inside its own host: loopback when it binds every address."""
    host = "127.0.0.1" if host in WILDCARDS else host
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/health"


def operator_key(environ: Mapping[str, str]) -> str | None:
    """The first operator key of the environment (comma-separated or a JSON list), if any."""
    env = {k.upper(): v for k, v in environ.items()}
    value = env.get(f"{SECTION}__OPERATOR_KEYS", "").strip()
    keys = json.loads(value) if value.startswith("[") else value.split(",")
    return next((k.strip() for k in keys if k.strip()), None)


def probe(url: str, timeout: float = 4.0, key: str | None = None) -> tuple[bool, str]:
    """(healthy, what to print): healthy only on 200."""
    request = urllib.request.Request(url, headers={"X-API-Key": key} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status == 200, f"{resp.status} {resp.read(2000).decode(errors='replace')}"
    except urllib.error.HTTPError as exc:
        return False, f"{exc.code} {exc.read(2000).decode(errors='replace')}"
    except OSError as exc:  # refused, timed out: not (yet) serving
        return False, f"{url}: {exc}"


def main() -> int:
    healthy, message = probe(health_url(*serve_address(os.environ)), key=operator_key(os.environ))
    print(message)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
