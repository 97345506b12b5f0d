"""Run the API with uvicorn (the ``serve`` verb)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from listing_search.settings import Settings

log = logging.getLogger(__name__)


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Blocking: serve ``settings.artifacts_dir`` on ``host:port`` (defaults from settings)."""
    import uvicorn

    from listing_search.serve.app import create_app
    from listing_search.serve.deadlines import SettingsHeaderDeadlineProtocol, header_deadline_protocol

    options = dict(host=host or settings.serve.host, port=port or settings.serve.port,
                   log_level=settings.log_level.lower(), timeout_keep_alive=5, proxy_headers=True,
                   http=header_deadline_protocol(settings.serve.header_timeout_s))
    shown = "127.0.0.1" if options["host"] in ("0.0.0.0", "::") else options["host"]
    log.info("serving http://%s:%s/ (the web page; the API's docs at /docs) once the indexes are loaded",
             shown, options["port"])
    if settings.serve.workers > 1:
        # Each worker process loads its own engine from the environment's settings and follows the
        # store's change log, so a write taken by one worker is searchable on all of them.
        os.environ["LISTING_SEARCH_ARTIFACTS_DIR"] = str(Path(settings.artifacts_dir).resolve())
        options["http"] = SettingsHeaderDeadlineProtocol  # picklable by name, unlike a class made here
        uvicorn.run("listing_search.serve.app:create_app", factory=True, workers=settings.serve.workers, **options)
    else:
        uvicorn.run(create_app(settings), **options)
