"""The query log: one JSON line per search or feed, off unless ``serve.query_log`` names a file.

Each line carries what was asked, what was searched (after spelling correction), the result ids with
their relevance, "no match", and the ranker and encoder versions, so a relevance complaint can be
replayed against the exact models that answered. Lines are appended with one ``write`` call under a
lock (several worker processes may append to one file: each line is written whole with O_APPEND).
"""

from __future__ import annotations

import json
import logging
import threading
import time

from pydantic import BaseModel

from listing_search.settings import Settings

log = logging.getLogger(__name__)
_lock = threading.Lock()


def log_query(settings: Settings, endpoint: str, asked: dict, answer: BaseModel) -> None:
    """Append one line; a failure to log is logged, never a failed search."""
    path = settings.serve.query_log
    if path is None:
        return
    out = answer.model_dump()
    line = {"at": round(time.time(), 3), "endpoint": endpoint, **asked,
            "searched": out.get("searched"), "corrections": out.get("corrections", []),
            "no_match": out.get("no_match", False), "versions": out.get("versions", {}),
            "results": [{"id": r["id"], "relevance": r.get("relevance"), "score": r["score"]}
                        for r in out.get("results", [])]}
    data = (json.dumps(line, default=str) + "\n").encode()
    try:
        with _lock, open(path, "ab") as f:
            f.write(data)
    except OSError as exc:
        log.warning("query log %s not written: %s", path, exc)
