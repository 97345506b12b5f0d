"""Which listings a fit sees: the seeded draw of ranker training queries, and fingerprints of id sets.

``tune-ranker`` asks these train-split listings as its training queries; ``embed-text`` keeps them
out of the text model's fine-tuning, so the ranker learns from queries the encoder never saw.
"""

from __future__ import annotations

import hashlib

import numpy as np


def ids_sha(ids: np.ndarray | list[str]) -> str:
    """Order-free fingerprint of a set of listing ids (recorded with every fit)."""
    return hashlib.sha256("\n".join(sorted(map(str, ids))).encode()).hexdigest()


def ranker_train_queries(splits: np.ndarray, seed: int, n: int) -> tuple[np.ndarray, np.random.Generator]:
    """The ``n`` train-split rows ``tune-ranker`` asks as its training queries (seeded), and the
    generator that drew them (it goes on to draw the val queries)."""
    train_rows = np.flatnonzero(np.asarray(splits) == "train")
    rng = np.random.default_rng(seed)
    return rng.choice(train_rows, size=min(n, len(train_rows)), replace=False), rng
