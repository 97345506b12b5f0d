"""A buyer's one to three words: listings holding them come first (together in the title first), the
rest follow marked related; the catalogue's holders vote on the words' category."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from listing_search.core.query import Query
from listing_search.serve.app import create_app
from tests.factories import copy_artifacts
from tests.serve.conftest import API_KEY, photo_bytes, serve_settings

ADDED = {"phrase": "Garden table, teak, seats six", "scattered": "Teak table for the garden or patio",
         "described": "Teak outdoor furniture"}


@pytest.fixture(scope="module")
def client(ranked_artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    art = copy_artifacts(ranked_artifacts, tmp_path_factory.mktemp("buyer") / "art")
    with TestClient(create_app(serve_settings(art))) as c:
        c.ids = {}
        for (name, title), photo in zip(ADDED.items(), ("img-002-0", "img-005-0", "img-008-0")):
            description = "a garden table with a teak top" if name == "described" else "lovely"
            # a photo each: three teak tables sharing one photo and their words would be one ad (index.duplicates)
            r = c.post("/v1/listings", headers={"X-API-Key": API_KEY},
                       data={"title": title, "description": description, "category": "Home & Garden"},
                       files=[("photos", ("a.jpg", photo_bytes(art, photo), "image/jpeg"))])
            assert r.status_code == 201, r.text
            c.ids[name] = r.json()["id"]
        yield c


def search(client: TestClient, text: str, k: int = 20) -> dict:
    r = client.post("/v1/search", data={"text": text, "k": str(k)})
    assert r.status_code == 200, r.text
    return r.json()


def test_the_typed_words_come_first_together_in_the_title_first(client: TestClient) -> None:
    body = search(client, "garden table")
    ids = [r["id"] for r in body["results"]]
    assert ids[0] == client.ids["phrase"]  # "garden table" side by side in the title
    assert set(ids[1:3]) == {client.ids["scattered"], client.ids["described"]}  # both words, apart or described
    rest = body["results"][3:]
    assert rest and all(r["match"] == "related" for r in rest)  # the wooden garden chairs: related only
    assert all(r["match"] != "related" for r in body["results"][:3])


def test_a_whole_title_keeps_the_learned_order(client: TestClient) -> None:
    """More than three words: no tiers, holding the words is one feature among others."""
    engine = client.app.state.engine
    scored = engine.pipeline.scored(Query(text="teak garden table seats six people"))
    assert not scored.ranked.tiered
    short = engine.pipeline.scored(Query(text="teak table"))
    assert short.ranked.tiered and short.ranked.held.any()


def test_the_holders_vote_on_the_words_category(client: TestClient) -> None:
    engine = client.app.state.engine
    understand, view = engine.pipeline.understander, engine.live.catalog
    vote = understand.holder_vote(view, ("teak",))
    home = engine.models.label_of("Home & Garden")
    assert vote is not None and int(np.argmax(vote)) == home and vote[home] > 0.5
    assert understand.holder_vote(view, ("zanzibarian",)) is None  # held by nobody: no vote
    keys = frozenset(int(view.key[view.row_of_id(i)]) for i in client.ids.values())
    assert understand.holder_vote(view, ("teak",), exclude=keys) is None  # left-out listings never vote
