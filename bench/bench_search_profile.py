"""Claim: where one search's time goes, in process, on the real catalogue (the floor of the latency goals).

Loads the serving engine from ART exactly as ``listing-search serve`` does and runs real queries one at a
time through the code the routes call (``SearchEngine.similar_images`` for ``/predict/similar_images``,
``SearchEngine.search`` for ``/v1/search``). Every part is timed by wrapping the engine's own
methods (decode, network, text encoder, spelling, category, channels, ranker, rows); parts nest where
the methods do (FAISS and the store's photo ids run inside "photo candidates"). CPU per query counts this
thread only (not ORT's or the photo queue's threads). Reports per mode: p50 / p99 wall ms, CPU ms per
query (this thread), and the mean ms of each part. HTTP (multipart parsing, JSON) is not in here: ``bench_serve.py`` measures that.

    python bench/bench_search_profile.py --data DIR --artifacts ART [--n 200]
"""

from __future__ import annotations

import functools
import json
import logging
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import emit, machine_state, parser, percentiles_ms, real_photos, setup_logging  # noqa: E402

log = logging.getLogger("bench.profile")


class Timer:
    """Wall time per named part, per query."""

    def __init__(self) -> None:
        self.parts: dict[str, float] = defaultdict(float)

    def wrap(self, owner: object, method: str, part: str) -> None:
        original = getattr(owner, method)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.parts[part] += time.perf_counter() - t0

        object.__setattr__(owner, method, timed)  # frozen dataclasses too


def instrument(engine) -> Timer:
    timer = Timer()
    enc = engine.encoder
    timer.wrap(enc, "prepare_photo", "decode + resize + normalise")
    timer.wrap(enc, "run", "vision network")
    timer.wrap(enc, "peek", "photo header")
    if engine.text_encoder is not None:
        timer.wrap(engine.text_encoder, "encode", "text encoder")
    if engine.live.speller is not None:
        timer.wrap(engine.live.speller, "correct", "spelling")
    p = engine.pipeline
    timer.wrap(p.understander, "category_probs", "category probabilities")
    timer.wrap(p.ranker, "features", "ranker features")
    timer.wrap(engine.models.ranker, "score", "ranker scores")
    timer.wrap(engine.models, "relevance", "calibration")
    timer.wrap(p.retriever, "photo_pool", "photo candidates (FAISS + grouping)")
    timer.wrap(p.retriever, "text_pool", "dense text candidates")
    timer.wrap(p.retriever, "lexical_pool", "BM25 candidates")
    timer.wrap(p.retriever, "photo_scores", "photo scores of other channels' candidates")
    timer.wrap(p.retriever, "text_scores", "text scores of other channels' candidates")
    timer.wrap(engine.live.lexical, "holding", "listings holding the words")
    timer.wrap(engine.live.catalog, "allowed", "filter mask")
    timer.wrap(engine.live.catalog, "listing", "listing rows for the answer")
    timer.wrap(engine.image_index, "search", "FAISS photo search")
    return timer


def profile(engine, timer: Timer, name: str, calls: list) -> dict:
    for call in calls[:3]:  # warm-up: first calls pay lazy initialisation
        call()
    timer.parts.clear()
    walls, cpus = [], []
    for call in calls:
        c0, t0 = time.thread_time(), time.perf_counter()
        call()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.thread_time() - c0)
    n = len(calls)
    parts = {k: round(v / n * 1000, 2) for k, v in sorted(timer.parts.items(), key=lambda kv: -kv[1])}
    out = {"mode": name, "queries": n, **percentiles_ms(walls),
           "cpu_ms_per_query_this_thread": round(statistics.mean(cpus) * 1000, 2), "parts_mean_ms": parts}
    log.info("%s: %s", name, json.dumps(out))
    return out


def run(args) -> dict:
    from listing_search import schema as S
    from listing_search.data.prepare import load_listings
    from listing_search.core.query import Page, Query
    from listing_search.search.engine import SearchEngine
    from listing_search.settings import get_settings

    settings = get_settings(artifacts_dir=args.artifacts)
    engine = SearchEngine.load(settings, args.artifacts)
    try:
        photos = [p.read_bytes() for p in real_photos(args.data, args.n)]
        titles = load_listings(args.artifacts)[S.TITLE].sample(args.n, random_state=0).tolist()
        start = machine_state()
        timer = instrument(engine)
        modes = [
            ("similar_images (/predict/similar_images, k=10)", [functools.partial(engine.similar_images, p, 10)
                                                                for p in photos]),
            # a fresh query per call: the engine keeps what it computed for a query on the query itself
            ("photo (/v1/search)", [lambda p=p: engine.search(Query(image=p, page=Page(10))) for p in photos]),
            ("words (/v1/search)", [lambda t=t: engine.search(Query(text=t, page=Page(10))) for t in titles]),
            ("photo + words (/v1/search)", [lambda p=p, t=t: engine.search(Query(image=p, text=t, page=Page(10)))
                                            for p, t in zip(photos, titles)]),
        ]
        results = [profile(engine, timer, name, calls) for name, calls in modes]
    finally:
        engine.close()
    card = json.loads((args.artifacts / S.MODEL_CARD).read_text())
    graph = "int8 backbone" if card.get("backbone_int8") else "int8 copy" if settings.serve.quantized else "fp32"
    return {"bench": "search_profile", "artifacts": str(args.artifacts),
            "image_index": engine.image_index.infos.get("factory"), "vision_graph": graph,
            "machine_start": start, "machine_end": machine_state(), "modes": results}


if __name__ == "__main__":
    p = parser(__doc__)
    p.add_argument("--n", type=int, default=200)
    args = p.parse_args()
    setup_logging()
    emit(run(args))
