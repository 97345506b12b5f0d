"""The search pipeline inside the served API: learned re-ranking, history in /v1/search, /v1/recommend,
words in /v1/predict/category, the category beliefs. Built on the serving tests' tiny artifacts plus
real MiniLM text vectors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from listing_search.core.query import Filters, Page, Query
from listing_search.search.candidates import Allowed
from listing_search.search.types import IMAGE
from listing_search.search.understand import PHOTO_VOTERS
from listing_search.serve.app import create_app
from tests.factories import copy_artifacts
from tests.serve.conftest import photo_bytes, serve_settings


@pytest.fixture(scope="module")
def client(ranked_artifacts: Path) -> Iterator[TestClient]:
    with TestClient(create_app(serve_settings(ranked_artifacts))) as c:
        yield c


def _ids(resp) -> list[str]:
    assert resp.status_code == 200, resp.text
    return [r["id"] for r in resp.json()["results"]]


def test_engine_uses_the_fitted_ranker(client: TestClient):
    assert client.app.state.engine.models.fitted


def test_text_search_is_reranked_one_result_per_listing(client: TestClient):
    body = client.post("/v1/search", data={"text": "laptop", "k": 10}).json()
    ids = [r["id"] for r in body["results"]]
    assert len(ids) == len(set(ids)) == min(10, body["total"]) >= 9  # the 9 laptops hold the word
    results = body["results"]
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
    assert results[0]["category"] == "Computers & Software"


def test_search_filters_still_apply_with_history(client: TestClient):
    history = json.dumps([{"listing_id": "listing-001", "event": "liked"}])
    resp = client.post("/v1/search", data={"text": "chair", "k": 5, "price_max": 100, "history": history})
    assert resp.status_code == 200
    assert all(r["price"] <= 100 for r in resp.json()["results"])


def test_bad_history_is_a_422_with_the_reason(client: TestClient):
    resp = client.post("/v1/search", data={"text": "chair", "history": "not json"})
    assert resp.status_code == 422 and "history" in resp.json()["detail"]


def test_recommend_excludes_seen_and_reports_unknown_ids(client: TestClient):
    history = [{"listing_id": f"listing-{i:03d}", "event": "viewed", "timestamp": 1.7e9} for i in (1, 4, 7)]
    history.append({"listing_id": "no-such-listing", "event": "liked"})
    body = client.post("/v1/recommend", json={"history": history, "k": 8}).json()
    ids = [r["id"] for r in body["results"]]
    assert ids and not {"listing-001", "listing-004", "listing-007"} & set(ids)
    assert body["history_used"] == 3 and body["unknown_listing_ids"] == ["no-such-listing"]
    assert body["notes"] and len(ids) == len(set(ids))


def test_recommend_with_only_unknown_ids_is_empty_not_an_error(client: TestClient):
    body = client.post("/v1/recommend", json={"history": [{"listing_id": "x"}], "k": 5}).json()
    assert body["results"] == [] and body["history_used"] == 0 and body["notes"]


def test_recommend_with_query_blends_and_excludes_seen(client: TestClient):
    history = [{"listing_id": "listing-002", "event": "liked"}]
    ids = _ids(client.post("/v1/recommend", json={"history": history, "query": "bike", "k": 10}))
    assert "listing-002" not in ids


def test_recommend_refuses_bad_events_and_k(client: TestClient):
    assert client.post("/v1/recommend", json={"history": [{"listing_id": "a", "event": "bought"}]}).status_code == 422
    assert client.post("/v1/recommend", json={"history": [], "k": 0}).status_code == 422


def test_category_from_words(client: TestClient):
    resp = client.post("/v1/predict/category", data={"text": "gaming laptop", "top": 2})
    assert resp.status_code == 200, resp.text
    cats = resp.json()["categories"]
    assert len(cats) == 2 and cats[0]["probability"] >= cats[1]["probability"]
    assert client.post("/v1/predict/category", data={"top": 2}).status_code == 422


def test_bad_photo_with_words_gets_the_photo_status_not_a_generic_400(client: TestClient):
    resp = client.post("/v1/predict/category", data={"text": "gaming laptop"},
                       files={"image": ("x.jpg", b"not a photo", "image/jpeg")})
    assert resp.status_code == 415
    assert "not_an_image" in resp.json()["reason"]


QUERIES = [{"text": "laptop"}, {"text": "wooden garden chair"}, {"text": "mountian bike"},
           {"image": "img-004-0"}, {"image": "img-010-1", "text": "record"},
           {"text": "chair", "price_max": 100}]


def _form(q: dict, artifacts: Path) -> tuple[dict, dict]:
    data = {k: v for k, v in q.items() if k != "image"}
    files = {"image": ("q.jpg", photo_bytes(artifacts, q["image"]), "image/jpeg")} if "image" in q else None
    return {**data, "k": 10}, files


def test_served_top_k_equals_the_offline_path(client: TestClient, ranked_artifacts: Path):
    """`evaluate` and `tune-ranker` rank through the pipeline's doors; /v1/search must answer the same."""
    from listing_search.search.engine import SearchEngine

    offline = SearchEngine.load(serve_settings(ranked_artifacts), ranked_artifacts)
    try:
        for q in QUERIES:
            data, files = _form(q, ranked_artifacts)
            served = client.post("/v1/search", data=data, files=files).json()
            query = Query(text=q.get("text"), page=Page(10), filters=Filters(max_price=q.get("price_max")),
                          image=photo_bytes(ranked_artifacts, q["image"]) if "image" in q else None)
            local = offline.search(query)
            assert [r["id"] for r in served["results"]] == [h.listing.listing_id for h in local.hits], q
            assert [r["relevance"] for r in served["results"]] == [
                None if h.relevance is None else round(h.relevance, 4) for h in local.hits]
            assert served["no_match"] == local.no_match and served["total"] == local.total
    finally:
        offline.close()


def test_answers_say_what_was_searched_and_which_models(client: TestClient):
    body = client.post("/v1/search", data={"text": "mountian bike", "k": 5}).json()
    assert body["searched"] == "mountain bike"
    assert body["corrections"] == [{"typed": "mountian", "searched": "mountain"}]
    assert body["results"][0]["category"] == "Sports, Leisure & Travel"
    assert set(body["versions"]) == {"ranker", "image_encoder", "text_encoder"}
    assert body["versions"]["ranker"].split("-")[0] in ("lambdamart", "ordinal_logistic")
    exact = client.post("/v1/search", data={"text": "mountian bike", "k": 5, "spelling": "false"}).json()
    assert exact["searched"] == "mountian bike" and exact["corrections"] == []


def test_relevance_is_calibrated_and_labelled(client: TestClient):
    results = client.post("/v1/search", data={"text": "gaming laptop", "k": 10}).json()["results"]
    rel = [r["relevance"] for r in results]
    assert all(r is not None and 0.0 <= r <= 1.0 for r in rel)
    assert all(r["match"] in ("great match", "good match", "related", "weak match") for r in results)
    laptops = [r["relevance"] for r in results if r["category"] == "Computers & Software"]
    others = [r["relevance"] for r in results if r["category"] != "Computers & Software"]
    assert laptops and (not others or max(others) <= max(laptops))


def test_photo_search_says_what_the_photo_looks_like(client: TestClient, ranked_artifacts: Path):
    files = {"image": ("q.jpg", photo_bytes(ranked_artifacts, "img-004-0"), "image/jpeg")}
    body = client.post("/v1/search", data={"k": 5}, files=files).json()
    guesses = body["predicted_categories"]
    assert guesses and all(0.0 <= g["probability"] <= 1.0 for g in guesses)
    assert [g["probability"] for g in guesses] == sorted((g["probability"] for g in guesses), reverse=True)
    assert client.post("/v1/search", data={"text": "laptop"}).json()["predicted_categories"] == []


def test_the_shown_category_probability_is_tempered_and_the_ranking_is_not(client: TestClient,
                                                                          ranked_artifacts: Path):
    predictor = client.app.state.engine.models.predictor
    files = {"image": ("q.jpg", photo_bytes(ranked_artifacts, "img-004-0"), "image/jpeg")}

    def ask() -> dict:
        return client.post("/v1/search", data={"k": 5, "text": "laptop"}, files=files).json()

    saved = predictor.temperatures
    try:
        predictor.temperatures = None
        sharp = ask()
        predictor.temperatures = {"both": 4.0}
        soft = ask()
    finally:
        predictor.temperatures = saved
    top = lambda body: body["predicted_categories"][0]  # noqa: E731
    assert top(soft)["category"] == top(sharp)["category"]
    assert top(soft)["probability"] < top(sharp)["probability"]
    assert [r["id"] for r in soft["results"]] == [r["id"] for r in sharp["results"]]


def test_nonsense_is_no_match_and_counted(client: TestClient):
    before = _counter(client, 'search_answers_total{endpoint="search",outcome="no_match"}')
    body = client.post("/v1/search", data={"text": "xqzvbnm", "k": 10}).json()
    assert body["no_match"] is True
    assert _counter(client, 'search_answers_total{endpoint="search",outcome="no_match"}') == before + 1
    assert client.post("/v1/search", data={"text": "gaming laptop"}).json()["no_match"] is False


def _counter(client: TestClient, name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def test_query_log_is_off_by_default_and_writes_json_lines(ranked_artifacts: Path, tmp_path: Path):
    settings = serve_settings(ranked_artifacts)
    settings.serve.query_log = tmp_path / "queries.jsonl"
    with TestClient(create_app(settings)) as c:
        c.post("/v1/search", data={"text": "mountian bike", "k": 3})
        c.post("/v1/recommend", json={"history": [{"listing_id": "listing-001"}], "k": 3})
    lines = [json.loads(x) for x in (tmp_path / "queries.jsonl").read_text().splitlines()]
    assert [x["endpoint"] for x in lines] == ["search", "recommend"]
    assert lines[0]["searched"] == "mountain bike" and len(lines[0]["results"]) == 3
    assert lines[0]["versions"]["ranker"] and lines[1]["versions"]["image_encoder"]
    assert serve_settings(ranked_artifacts).serve.query_log is None


def test_lexical_index_vocabulary_and_cards_follow_writes(ranked_artifacts: Path, tmp_path: Path):
    """A listing added through the API is found by its words (BM25), its misspelling is corrected to
    its words, and it leaves all three when deleted."""
    art = copy_artifacts(ranked_artifacts, tmp_path / "art")
    with TestClient(create_app(serve_settings(art))) as c:
        files = [("photos", ("a.jpg", photo_bytes(art, "img-004-0"), "image/jpeg"))]
        fields = {"title": "zanzibar harpsichord", "description": "antique", "price": "90",
                  "location": "Leeds", "category": "Home & Garden"}
        made = c.post("/v1/listings", data=fields, files=files, headers={"X-API-Key": "test-key"})
        assert made.status_code == 201, made.text
        new_id = made.json()["id"]
        body = c.post("/v1/search", data={"text": "harpsicord", "k": 3}).json()
        assert body["searched"] == "harpsichord" and body["results"][0]["id"] == new_id
        key = c.app.state.engine.store.listing(new_id).key
        view = c.app.state.engine.live.catalog
        assert "harpsichord" in view.title[view.row_of_key(key)]
        assert c.delete(f"/v1/listings/{new_id}", headers={"X-API-Key": "test-key"}).status_code == 200
        after = c.post("/v1/search", data={"text": "harpsichord", "k": 3}).json()
        assert new_id not in [r["id"] for r in after["results"]] and after["no_match"] is True
        assert c.app.state.engine.live.catalog.row_of_key(key) == -1


def test_neighbour_vote_names_the_category_of_the_nearest_listings(client: TestClient):
    engine = client.app.state.engine
    understand, view = engine.pipeline.understander, engine.live.catalog
    vec = engine.text_encoder.encode(["gaming laptop computer"])[0]
    vote = understand.neighbour_vote(view, vec)
    cats = engine.models.categories
    assert abs(vote.sum() - 1.0) < 1e-9 and cats[int(vote.argmax())] == "Computers & Software"
    every = frozenset(int(k) for k in view.key[view.live_rows()])
    assert understand.neighbour_vote(view, vec, exclude=every) is None  # nothing left to vote


def test_a_corrected_query_is_embedded_as_typed_and_as_corrected(client: TestClient):
    # a "correction" of a real word the catalogue lacks ("reformer" -> "recorder") must not erase it
    engine = client.app.state.engine
    u = engine.pipeline.understand(Query(text="mountian bike"))
    assert u.corrections == (("mountian", "mountain"),)
    typed, corrected = engine.text_encoder.encode(["mountian bike", "mountain bike"])
    both = (typed + corrected) / np.linalg.norm(typed + corrected)
    assert np.allclose(u.text_vec, both, atol=1e-5)
    assert not np.allclose(u.text_vec, corrected, atol=1e-3)
    plain = engine.pipeline.understand(Query(text="mountain bike"))
    assert plain.corrections == () and np.allclose(plain.text_vec, corrected, atol=1e-5)


def test_a_photo_query_is_searched_once_and_its_nearest_listings_vote_on_the_shown_category(
        client: TestClient, ranked_artifacts: Path):
    engine = client.app.state.engine
    understand, predictor, view = engine.pipeline.understander, engine.models.predictor, engine.live.catalog
    assert predictor.photo_vote_weight == serve_settings(ranked_artifacts).rank.photo_vote_weight > 0  # as fit
    vec, _ = engine.embed_photo(photo_bytes(ranked_artifacts, "img-004-0"))
    index, calls = engine.image_index, []
    search = index.search
    photo = Query(image_vecs=vec[None], page=Page(PHOTO_VOTERS))
    try:  # one search of the photo index per photo query: the voters are retrieval's own candidates
        index.search = lambda *a, **kw: calls.append(1) or search(*a, **kw)
        result = engine.search(photo)
    finally:
        del index.search
    assert len(calls) == 1 and len(result.hits) == min(PHOTO_VOTERS, result.total) > 0

    pool = engine.pipeline.retriever.photo_pool(vec[None], Allowed.of(view, Filters(), frozenset()))
    vote, probs = understand.photo_vote(view, pool), understand.category_probs(view, None, vec)
    saved = predictor.photo_vote_weight
    try:
        shown = {}
        for w in (0.0, saved, 5.0):
            predictor.photo_vote_weight = w
            shown[w] = understand.shown_probs(view, probs, pool)
        predictor.photo_vote_weight = 0.0
        unvoted = engine.search(photo)
    finally:
        predictor.photo_vote_weight = saved
    np.testing.assert_allclose(shown[0.0], probs)
    top = vote.argmax()
    assert shown[0.0][top] < shown[saved][top] < shown[5.0][top] and shown[5.0].argmax() == top
    # what is shown changes, the ranking does not
    assert [h.listing.listing_id for h in unvoted.hits] == [h.listing.listing_id for h in result.hits]
    assert [h.score for h in unvoted.hits] == [h.score for h in result.hits]
    top_shown = predictor.calibrated(shown[saved], "image").max()
    assert result.predicted_categories[0][1] == pytest.approx(top_shown, rel=1e-5)

    # neither filters nor the page asked change who votes: a category filter does not vote for itself
    def shown_of(**kw):
        return engine.search(Query(image_vecs=vec[None], **kw)).predicted_categories

    other = next(c for c in engine.categories if c != result.predicted_categories[0][0])
    for kw in ({"page": Page(5)}, {"page": Page(5, 5)}, {"page": Page(5), "filters": Filters(category=other)},
               {"page": Page(PHOTO_VOTERS), "filters": Filters(max_price=230.0)}):  # 24 of the 30 listings
        got = shown_of(**kw)
        assert [n for n, _ in got] == [n for n, _ in result.predicted_categories], kw
        np.testing.assert_allclose([p for _, p in got], [p for _, p in result.predicted_categories], rtol=1e-6)

    # listings left out of a query (its own, the other split when fitting) never vote
    nearest = int(np.argmax(pool.score(IMAGE)))
    own_root = view.root_name(int(pool.rows[nearest]))
    same = frozenset(int(view.key[r]) for r in view.live_rows() if view.root_name(int(r)) == own_root)
    left_out = understand.photo_vote(view, engine.pipeline.retriever.photo_pool(vec[None],
                                                                                 Allowed.of(view, Filters(), same)))
    assert left_out[engine.models.label_of(own_root)] < 0.01
    try:
        predictor.photo_vote_weight = 50.0  # the vote decides what is shown
        voted = engine.search(Query(image_vecs=vec[None], page=Page(5), exclude=same))
    finally:
        predictor.photo_vote_weight = saved
    assert voted.predicted_categories[0][0] != own_root


def test_a_predictor_saved_before_the_photo_vote_loads_with_it_off(ranked_artifacts: Path):
    from listing_search import schema as S
    from listing_search.models.category import CategoryPredictor

    saved = json.loads((ranked_artifacts / S.CATEGORY_PREDICTOR_JSON).read_text())
    assert saved["photo_vote_weight"] > 0
    del saved["photo_vote_weight"]
    assert CategoryPredictor.from_json(saved).photo_vote_weight == 0.0


def test_photo_vote_weights_the_nearest_listings_most():
    from listing_search.index.catalog import CatalogView
    from listing_search.models.bundle import ModelBundle
    from listing_search.models.ranker import Ranker
    from listing_search.search.features import FEATURES
    from listing_search.search.types import Candidates
    from listing_search.search.understand import PHOTO_VOTE_TEMPERATURE, Understander
    from listing_search.store.models import Listing

    view = CatalogView.build([[Listing(k, f"l{k}", "", "", None, "", r, r, None) for k, r in ((1, "A"), (2, "A"), (3, "B"))]])
    models = ModelBundle(Ranker.default(list(FEATURES)), False, None, None, ("A", "B"))
    understand = Understander(None, None, None, models)
    pool = Candidates(view.rows_of_keys(np.array([1, 2, 3])), np.array([1, 2, 3]),
                      {IMAGE: np.array([0.5, 0.5, 0.9], np.float32)})
    vote = understand.photo_vote(view, pool)
    w = np.exp(-0.4 / PHOTO_VOTE_TEMPERATURE)  # two far listings of A against one near listing of B
    np.testing.assert_allclose(vote[0] / vote[1], (2 * w + 1e-3) / (1 + 1e-3), rtol=1e-5)
    empty = Candidates(np.zeros(0, np.int64), np.zeros(0, np.int64), {IMAGE: np.zeros(0, np.float32)})
    assert understand.photo_vote(view, empty) is None
