"""Alerts are exactly what running each saved search before and after the adds would give (issue 33
item 4): 200 random saved searches (a buyer's words, long words, a photo, words and a photo, filters
alone; random filters), 50 listings added around them, the matcher run as the server runs it, and
every search asked again through ``SearchEngine.search`` on the catalogue after the adds."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from listing_search.core.query import Filters, Page, Query
from listing_search.core.text import match_terms
from listing_search.search import present
from listing_search.search.engine import SearchEngine
from listing_search.search.match import holds
from listing_search.search.rank import NEAR_DUPLICATE, calibration_mode
from listing_search.serve.matcher import MatcherService
from listing_search.store.models import ORIGIN_API, ListingIn, PhotoIn
from listing_search.text.encoder import listing_text
from tests.factories import copy_artifacts
from tests.search.conftest import WORDS
from tests.serve.conftest import serve_settings

ROOTS = ("Home & Garden", "Computers & Software", "Sports, Leisure & Travel", "Appliances")
VOCAB = sorted({w for words in WORDS.values() for w in words.split()} | {"oak", "table", "red", "desk", "lamp"})
OWNER = "f" * 64


@pytest.fixture(scope="module")
def engine(ranked_artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> SearchEngine:
    art = copy_artifacts(ranked_artifacts, tmp_path_factory.mktemp("exact") / "artifacts")
    e = SearchEngine.load(serve_settings(art))
    assert e.models.fitted and e.models.calibration is not None  # the relevance path is exercised
    yield e
    e.close()


def random_filters(rng: random.Random) -> Filters:
    if rng.random() < 0.55:
        return Filters()
    low = rng.choice([None, 50.0, 100.0])
    return Filters(rng.choice([None, None, rng.choice(ROOTS)]), low, rng.choice([None, 200.0, 350.0]),
                   rng.choice([None, None, "Leeds", "bristol"]))


def random_search(rng: random.Random, photos: np.ndarray) -> tuple[str | None, np.ndarray | None, Filters]:
    kind = rng.choices(["words", "long", "photo", "both", "filters"], [40, 12, 20, 13, 15])[0]
    words = " ".join(rng.sample(VOCAB, rng.randint(4, 6) if kind == "long" else rng.randint(1, 3))) \
        if kind in ("words", "long", "both") else None
    photo = None
    if kind in ("photo", "both"):
        photo = photos[rng.randrange(len(photos))] + rng.choice([0.0, 0.02, 0.3]) * np.asarray(
            [rng.gauss(0, 1) for _ in range(photos.shape[1])], np.float32)
    filters = random_filters(rng)
    if kind == "filters" and not filters.active():
        filters = Filters(category=rng.choice(ROOTS))
    return words, photo, filters


def new_listing(engine: SearchEngine, rng: random.Random, n: int, photos: np.ndarray) -> ListingIn:
    root = rng.choice(ROOTS)
    title = " ".join(rng.sample(VOCAB, rng.randint(2, 4))) + f" {n}"
    description = rng.choice(["", "collect from " + rng.choice(VOCAB), "as new"])
    vecs = [photos[rng.randrange(len(photos))] + rng.choice([0.0, 0.01, 0.5]) *
            np.asarray([rng.gauss(0, 1) for _ in range(photos.shape[1])], np.float32) for _ in range(rng.randint(1, 2))]
    text = engine.text_encoder.encode([listing_text(title, description)])[0]
    fields = {"title": title, "description": description, "price": rng.choice([None, 20.0, 120.0, 300.0]),
              "location": rng.choice(["Leeds, West Yorkshire", "Bristol, Bristol", "York"]), "root_category": root,
              "category_path": f"{root} / Sub", "label": ROOTS.index(root)}
    return ListingIn(f"new-{n}", fields, [PhotoIn(f"new-{n}-{j}", f"photos/new-{n}-{j}.jpg", v.astype(np.float32))
                                          for j, v in enumerate(vecs)], text, ORIGIN_API)


def save(engine: SearchEngine, words: str | None, photo: np.ndarray | None, filters: Filters) -> int:
    f = {k: v for k, v in (("category", filters.category), ("price_min", filters.min_price),
                           ("price_max", filters.max_price), ("location", filters.location)) if v is not None}
    text_vec = engine.text_encoder.encode([words])[0] if words else None
    return engine.store.save_search(OWNER, {"words": words, "text": words, "filters": f}, text_vec, photo, 1000).id


def expected_alerts(engine: SearchEngine, searches: dict[int, tuple], created: dict[int, int],
                    first_seq: dict[str, int]) -> set[tuple[int, str]]:
    """Each saved search asked through ``SearchEngine.search`` after the adds: its new listings that are
    not 'related' and that hold the words, reach the relevance threshold or hold a near-identical photo
    (for filters alone, every listing passing them); only those added after it was saved."""
    out = set()
    for sid, (words, photo, filters) in searches.items():
        query = Query(text=words, image_vecs=None if photo is None else photo[None], filters=filters,
                      page=Page(1000), spelling=False)
        result = engine.search(query)
        browse = words is None and photo is None
        if not browse and result.no_match:
            continue
        if not browse:
            u = engine.pipeline.understand(query)
            threshold = engine.models.no_match_below(calibration_mode(u))
            terms = match_terms(words) if words else []
        for hit in result.hits + copies_of(engine, query, result.hits, browse):
            lid = hit.listing.listing_id
            if lid not in first_seq or first_seq[lid] <= created[sid]:
                continue
            if browse or (not hit.related and (
                    holds(terms, hit.listing.title, hit.listing.description)
                    or (hit.relevance is not None and threshold is not None and hit.relevance >= threshold)
                    or hit.scores.get("image", 0.0) >= NEAR_DUPLICATE)):
                out.add((sid, lid))
    return out


def copies_of(engine: SearchEngine, query: Query, hits: list, browse: bool) -> list:
    """The listings the results stand for as their ``duplicates`` (copies of one ad are one result on a
    page), each as the hit the search would give it: alerts are per listing (docs/alerts.md)."""
    view, pipeline = engine.live.catalog, engine.pipeline
    rows = np.array([view.row_of_id(i) for h in hits for i in h.duplicates], np.int64)
    if not len(rows):
        return []
    if browse:
        return present.hits(view, rows, None, None, pipeline.retriever)
    scored = pipeline.scored(query)
    ranked = scored.ranked
    position = {int(r): at for at, r in enumerate(ranked.candidates.rows[ranked.order])}
    return present.hits(view, rows, ranked, scored.understanding, pipeline.retriever, position)


def test_alerts_are_exactly_the_new_members_of_each_saved_search(engine: SearchEngine) -> None:
    rng = random.Random(33)
    _, _, photos = next(engine.store.iter_photo_vectors(engine.live.models.image))
    searches: dict[int, tuple] = {}
    adds = [new_listing(engine, rng, n, photos) for n in range(50)]
    for round_ in range(4):  # searches saved between adds: listings from before a search never alert for it
        for _ in range(50):
            words, photo, filters = random_search(rng, photos)
            searches[save(engine, words, photo, filters)] = (words, photo, filters)
        for item in adds[round_ * 12: (round_ + 1) * 12 + (2 if round_ == 3 else 0)]:
            engine.store.add_listing(item, engine.live.models)
    engine.live.catch_up()
    created = {s.id: s.created_seq for s in engine.store.saved_searches(OWNER)}
    first_seq = {c.listing_id: c.seq for c in engine.store.changes_since(0) if c.listing_id.startswith("new-")}
    assert len(searches) == 200 and len(first_seq) == 50

    service = MatcherService(engine, engine.settings.alerts, holder="test")
    while service.lease is None or service.lease.done_seq < engine.live.seq:
        service.step()
    got = {(a.search_id, a.listing_id) for a in engine.store.all_alerts()}

    expected = expected_alerts(engine, searches, created, first_seq)
    assert got == expected, (sorted(got - expected)[:10], sorted(expected - got)[:10])
    assert len(expected) > 50 and len({sid for sid, _ in expected}) > 30  # the test means something
    kinds = {service.index.searches[sid].kind() for sid, _ in got}
    assert kinds == {"words", "browse", "ranked"}, kinds
    ranked = sum(s.kind() == "ranked" for s in service.index.searches.values())
    assert service.matcher.runs <= ranked  # each search run at most once per batch, only if the bound allows
    print(f"exactness: {len(searches)} saved searches x {len(first_seq)} adds: {len(expected)} alerts for "
          f"{len({sid for sid, _ in expected})} searches; {ranked} ranked searches, search path run "
          f"{service.matcher.runs} times")


def test_the_relevance_bound_is_never_under_the_relevance_a_search_gives(engine: SearchEngine) -> None:
    """For every ranked candidate of random searches with a photo alone or long words: the matcher's upper
    bound of its relevance (features that depend on the other candidates at their extremes) is at least
    what the search path computes for it."""
    from listing_search.search.alerts import NewListing, RelevanceBound, SavedSearch, _calibration_mode

    rng = random.Random(7)
    _, _, photos = next(engine.store.iter_photo_vectors(engine.live.models.image))
    service = MatcherService(engine, engine.settings.alerts, holder="bound")
    matcher, bound, catalog = service.matcher, RelevanceBound.of(engine.models), engine.live.catalog
    assert bound is not None
    checked = 0
    for i in range(80):
        words, photo, filters = random_search(rng, photos)
        text_vec = engine.text_encoder.encode([words])[0] if words else None
        s = SavedSearch.of(10_000 + i, 0, words, Filters(), text_vec, photo)
        if s.kind() != "ranked":  # a buyer's words alert by holding them, filters alone by passing: no bound
            continue
        matcher.add(s)
        scored = engine.pipeline.scored(s.query())
        rows, rel = scored.candidates.rows, scored.ranked.relevance
        for j, row in enumerate(rows.tolist()):
            listing = NewListing(row, int(catalog.key[row]), catalog.listing_id[row], 1, 1)
            cos = matcher._photo_vectors(catalog, row)
            image_cos = np.array([0.0 if cos is None or s.image_vec is None else float((cos @ s.image_vec).max())])
            lo, hi = matcher._features(catalog, listing, [s], image_cos)
            top = bound.upper(lo, hi, [_calibration_mode(s)])[0]
            assert top >= rel[j] - 1e-5, (words, photo is not None, catalog.title[row], top, rel[j])
            checked += 1
    assert checked > 150
