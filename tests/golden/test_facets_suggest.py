"""Facets, suggestions and highlights against brute force, through HTTP on the golden catalogue."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from listing_search.core.text import match_terms
from listing_search.search.facets import PRICE_BANDS
from listing_search.search.match import holds
from listing_search.serve.app import create_app
from tests.golden.conftest import golden_settings

pytestmark = [pytest.mark.realdata, pytest.mark.slow]
HOME = "Home & Garden"
WORDS = ["sofa", "chair", "bike", "table", "mens jacket", "iphone", "garden", "desk", "lamp", "tv"]
FILTERS = [{}, {"category": HOME}, {"price_max": "50"}, {"category": HOME, "price_min": "20"},
           {"category": "Home & Garden / Dining, Living Room Furniture"}]


@pytest.fixture(scope="module")
def client(golden_artifacts: Path) -> Iterator[TestClient]:
    with TestClient(create_app(golden_settings(golden_artifacts))) as c:
        yield c


def every_match(client: TestClient, form: dict) -> list[dict]:
    """All of a search's match set, page after page by cursor."""
    out, cursor = [], None
    while True:
        r = client.post("/v1/search", data={**form, "k": "100", **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        body = r.json()
        out += body["results"]
        cursor = body["next_cursor"]
        if cursor is None:
            return out


def counted(client: TestClient, results: list[dict]) -> tuple[Counter, Counter, Counter]:
    """Results per root, "root / sub" and price band: a result with duplicates counts once under each
    value one of its listings holds (facets count results, as ``total`` does)."""
    view = client.app.state.engine.live.catalog
    roots, subs, bands = Counter(), Counter(), Counter()
    for r in results:
        members = [view.listing(view.row_of_id(i)) for i in [r["id"], *(r["duplicates"] or {}).get("listing_ids", [])]]
        segments = [[s.strip() for s in m.category_path.split("/")] for m in members]
        roots.update({s[0] for s in segments})
        subs.update({" / ".join(s[:2]) for s in segments if len(s) > 1})
        bands.update({next(b for b in PRICE_BANDS if m.price >= b[0] and (b[1] is None or m.price < b[1]))
                      for m in members if m.price is not None})
    return roots, subs, bands


@pytest.mark.parametrize("words", WORDS)
def test_facets_count_the_match_set_under_the_other_filters(client: TestClient, words: str) -> None:
    for filters in FILTERS:  # 10 words x 5 filter sets: 50 searches
        form = {"text": words, **filters}
        body = client.post("/v1/search", data={**form, "k": "5"}).json()
        no_category = {k: v for k, v in form.items() if k != "category"}
        no_price = {k: v for k, v in form.items() if k not in ("price_min", "price_max")}
        roots, subs, _ = counted(client, every_match(client, no_category))
        _, _, bands = counted(client, every_match(client, no_price))
        facet = body["facets"]["category"]
        assert {f["value"]: f["count"] for f in facet} == dict(roots), (words, filters)
        assert {c["value"]: c["count"] for f in facet for c in f["children"]} == dict(subs), (words, filters)
        assert {(b["min"], b["max"]): b["count"] for b in body["facets"]["price"]} == \
            {band: bands.get(band, 0) for band in PRICE_BANDS}, (words, filters)
        if "category" not in filters:  # no group of the golden catalogue spans two roots
            assert sum(f["count"] for f in facet) == body["total"]


def test_a_category_path_prefix_filters_by_whole_segments(client: TestClient) -> None:
    sub = "Home & Garden / Dining, Living Room Furniture"
    body = client.post("/v1/search", data={"category": sub, "k": "100"}).json()
    assert body["total"] > 0 and all(r["category_path"].startswith(sub) for r in body["results"])
    loose = client.post("/v1/search", data={"category": "  home & garden /dining, living room furniture ", "k": "1"})
    assert loose.json()["total"] == body["total"]  # trimmed, any case
    partial = client.post("/v1/search", data={"category": "Home & Gar", "k": "1"})
    assert partial.status_code == 422 and "unknown category" in partial.json()["detail"]  # whole segments only


PREFIXES = ["so", "sof", "sofa ", "chai", "gard", "garden ", "bik", "mens", "iph", "tab", "des", "wardr", "lam",
            "dinin", "kids ", "tv"]


def test_fifty_suggestions_count_what_they_say(client: TestClient) -> None:
    engine = client.app.state.engine
    view = engine.live.catalog
    listings = [view.listing(int(r)) for r in view.live_rows()]
    checked = 0
    for prefix in PREFIXES:
        r = client.get("/v1/suggest", params={"q": prefix, "k": 8})
        assert r.status_code == 200, r.text
        for s in r.json()["suggestions"]:
            if s["kind"] == "query":
                assert s["text"].startswith(prefix.strip()) or prefix.strip() in s["text"]
                expected = sum(holds(match_terms(s["text"]), x.title, x.description) for x in listings)
            else:
                expected = sum(x.category_path.startswith(s["text"]) for x in listings)
            assert s["count"] == expected, (prefix, s)
            checked += 1
        counts = [s["count"] for s in r.json()["suggestions"]]
        assert counts == sorted(counts, reverse=True)
    assert checked >= 50


def test_suggestions_tolerate_a_typo_in_the_word_being_typed_and_refuse_bad_input(client: TestClient) -> None:
    texts = [s["text"] for s in client.get("/v1/suggest", params={"q": "wardrb"}).json()["suggestions"]]
    assert texts and all(t.startswith("wardrobe") for t in texts if " / " not in t)
    assert client.get("/v1/suggest", params={"q": "  "}).json() == {"suggestions": []}
    assert client.get("/v1/suggest", params={"q": "x" * 101}).status_code == 422
    assert client.get("/v1/suggest", params={"q": "sofa", "k": 0}).status_code == 422
    assert client.get("/v1/suggest", params={"q": "sofa", "k": 21}).status_code == 422
    assert len(client.get("/v1/suggest", params={"q": "s", "k": 3}).json()["suggestions"]) <= 3


def test_highlights_mark_exactly_the_held_words_in_utf16(client: TestClient) -> None:
    body = client.post("/v1/search", data={"text": "garden chairs", "k": "20"}).json()
    marked = 0
    for r in body["results"]:
        spans = r["highlight"]["title"]
        title16 = r["title"].encode("utf-16-le")
        for a, b in spans:
            word = title16[2 * a:2 * b].decode("utf-16-le")
            assert match_terms(word) and set(match_terms(word)) <= {"garden", "chair"}, (r["title"], word)
            marked += 1
        unmarked = re.sub(r"\s+", " ", title16.decode("utf-16-le"))
        held_words = [w for w in re.findall(r"[^\W_]+", unmarked) if set(match_terms(w)) & {"garden", "chair"}]
        assert len(spans) == len(held_words), (r["title"], spans)
        snippet = r["highlight"]["snippet"]
        s16 = snippet["text"].encode("utf-16-le")
        for a, b in snippet["spans"]:
            assert set(match_terms(s16[2 * a:2 * b].decode("utf-16-le"))) <= {"garden", "chair"}
    assert marked > 0
