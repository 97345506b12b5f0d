"""tune-ranker: fit on train-split queries through the engine, choose on val, calibrate, set "no match"."""

from __future__ import annotations

import json

import numpy as np
import pytest

from listing_search import schema as S
from listing_search.data.prepare import load_listings
from listing_search.models.category import CategoryPredictor
from listing_search.fit.category import fit_category_predictor
from listing_search.search.engine import SearchEngine
from listing_search.search.features import FEATURES
from listing_search.models.hashed_words import N_CHAR_BUCKETS
from listing_search.models.ranker import Ranker, load_ranker
from listing_search.fit.ranker import fit_ranker
from listing_search.core.splits import ids_sha
from listing_search.models.relevance import Relevance
from listing_search.pipeline import file_sha
from listing_search.fit.queries import QueryMaker
from listing_search.fit.no_match import no_match_queries, unlike_photos
from listing_search.fit.tune_ranker import tune_ranker
from listing_search.fit.vectors import load_listing_vectors
from listing_search.core.maths import unit_rows
from tests.search.fixtures import make_vectors
from tests.serve.conftest import serve_settings


def test_tune_ranker_fits_on_train_ids_and_records_the_choice(ranked_artifacts):
    listings = load_listings(ranked_artifacts)
    train = set(listings.loc[listings[S.SPLIT] == "train", S.LISTING_ID])
    val = set(listings.loc[listings[S.SPLIT] == "val", S.LISTING_ID])
    assert val, "the tiny catalogue must have val listings for this test to mean anything"
    saved = json.loads((ranked_artifacts / S.RANKER_JSON).read_text())
    assert saved["fit_split"] == "train" and saved["features"] == list(FEATURES)
    assert set(saved["fit_listing_ids"]) == train and not set(saved["fit_listing_ids"]) & val
    comparison = saved["report"]["comparison_on_val"]
    assert comparison["chosen"] in ("logistic", "lambdamart")
    best = max(("logistic", "lambdamart"), key=lambda n: comparison[n]["ndcg_at_10"])
    assert comparison[best]["ndcg_at_10"] == comparison[comparison["chosen"]]["ndcg_at_10"]
    predictor = json.loads((ranked_artifacts / S.CATEGORY_PREDICTOR_JSON).read_text())
    assert predictor["fit_listing_ids_sha"] == ids_sha(sorted(train)) and predictor["n_fit_listings"] == len(train)
    relevance = Relevance.load(ranked_artifacts / S.RELEVANCE_JSON)
    assert relevance.ranker_sha == file_sha(ranked_artifacts / S.RANKER_JSON)
    assert set(relevance.no_match_below) == {"text", "image", "both", "text_short"}
    assert all(0.0 <= t <= 1.01 for t in relevance.no_match_below.values())
    for mode, rep in relevance.report["no_match"].items():
        assert rep["real_val_flagged"] <= 0.34, (mode, rep)  # the cap: never most real searches
    assert "ece_held_out_half" in relevance.report


def test_a_new_ranker_recipe_or_setting_refits_an_existing_folder(ranked_artifacts, monkeypatch):
    from listing_search.fit import ranker as ltr
    from listing_search.fit.tune_ranker import ranker_fingerprint

    settings = serve_settings(ranked_artifacts)
    settings.rank.train_queries, settings.rank.val_queries, settings.rank.candidates = 24, 12, 40
    assert tune_ranker(settings, ranked_artifacts).get("up_to_date") is True  # the fixture's own fit
    before = ranker_fingerprint(settings, ranked_artifacts)
    monkeypatch.setitem(ltr.DEFAULT_PARAMS, "num_leaves", 31)
    assert ranker_fingerprint(settings, ranked_artifacts) != before
    monkeypatch.undo()
    settings.rank.category_char_grams = not settings.rank.category_char_grams
    assert ranker_fingerprint(settings, ranked_artifacts) != before


def test_training_queries_never_see_val_listings_or_themselves(ranked_artifacts):
    """The candidates a train query is featurised with come from other train listings only."""
    settings = serve_settings(ranked_artifacts)
    engine = SearchEngine.load(settings, ranked_artifacts)
    try:
        vectors = load_listing_vectors(ranked_artifacts)
        maker = QueryMaker(engine.pipeline, vectors, seed=0)
        val_keys = maker.split_keys["val"]
        seen = 0
        for row in np.flatnonzero(vectors.splits == "train")[:8]:
            for mode in ("text", "image", "both", "typo"):
                query = maker.query(int(row), mode, "val")
                if query is None:
                    continue
                scored = maker.scored(query)
                keys, x = set(scored.candidates.keys.tolist()), scored.ranked.features
                assert keys and not keys & val_keys
                assert maker.key_of[str(vectors.ids[row])] not in keys
                assert x.shape == (len(keys), len(FEATURES)) and np.isfinite(x).all()
                seen += 1
        assert seen >= 16
    finally:
        engine.close()


def test_nonsense_inputs_are_committed_and_seeded():
    queries = no_match_queries()
    assert len(queries) >= 20 and all(q.strip() for q in queries)
    assert unlike_photos(4, seed=3) == unlike_photos(4, seed=3)


def test_ranker_round_trip_and_learns_text_similarity(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, len(FEATURES))).astype(np.float32)
    grades = np.digitize(x[:, 0] + 0.3 * rng.normal(size=600), [0.0, 1.0])
    ranker = fit_ranker(x, grades, list(FEATURES), ["b", "a"])
    assert ranker.weights[0, 0] > 0 and ranker.weights[1, 0] > 0
    assert ranker.fit_listing_ids == ["a", "b"]
    ranker.save(tmp_path / "r.json")
    np.testing.assert_allclose(load_ranker(tmp_path / "r.json").score(x), ranker.score(x), atol=1e-6)
    assert isinstance(load_ranker(tmp_path / "r.json"), Ranker)


def test_category_predictor_learns_clusters_and_serves_every_input():
    v = make_vectors(n=60)
    train = v.subset(np.flatnonzero(v.splits == "train"))
    predictor = fit_category_predictor(train, n_char_buckets=N_CHAR_BUCKETS)
    val = np.flatnonzero(v.splits == "val")
    words = [v.texts[i] for i in val]
    for kw in ({"text": v.text[val]}, {"image": v.image_mean[val]}, {"text": v.text[val], "words": words},
               {"text": v.text[val], "image": v.image_mean[val], "words": words}):
        assert (predictor.predict_proba(**kw).argmax(1) == v.labels[val]).mean() >= 0.9
    back = CategoryPredictor.from_json(json.loads(json.dumps(predictor.to_json())))
    np.testing.assert_allclose(back.predict_proba(text=v.text[:3], words=v.texts[:3]),
                               predictor.predict_proba(text=v.text[:3], words=v.texts[:3]), atol=1e-3)
    assert predictor.words_coef is not None
    assert predictor.n_fit_listings == len(train)
    assert predictor.chars_coef is not None and predictor.chars_idf is not None
    np.testing.assert_allclose(back.chars_idf, predictor.chars_idf, atol=1e-4)


def test_character_ngrams_place_a_misspelt_word_the_words_alone_do_not_know():
    v = make_vectors(n=60)
    v.text[:] = unit_rows(np.ones_like(v.text))  # dense text says nothing: only the words can decide
    train = v.subset(np.flatnonzero(v.splits == "train"))
    with_chars = fit_category_predictor(train, n_char_buckets=N_CHAR_BUCKETS)
    words_only = fit_category_predictor(train)
    assert words_only.chars_coef is None
    queries = ["laptp", "keybord", "sofas", "tents"]  # no whole word of the catalogue
    text = np.repeat(v.text[:1], len(queries), 0)
    expected = [1, 1, 0, 2]
    p_chars = with_chars.predict_proba(text=text, words=queries)
    p_words = words_only.predict_proba(text=text, words=queries)
    assert p_chars.argmax(1).tolist() == expected
    np.testing.assert_allclose(p_words, np.repeat(p_words[:1], 4, 0), atol=1e-6)  # cannot tell them apart
    assert (p_chars[np.arange(4), expected] > p_words[np.arange(4), expected]).all()


def test_title_view_adds_one_row_per_listing_with_its_title_words():
    from listing_search.fit.category import training_design

    v = make_vectors(n=12)
    dense, words, labels = training_design(v)
    dense_t, words_t, labels_t = training_design(v, title_vecs=v.text)
    assert len(dense_t) == len(dense) + 12 and words_t[-12:] == v.titles
    assert labels_t[-12:].tolist() == v.labels.tolist()
    assert (dense_t[-12:, -2:] == [1.0, 0.0]).all()  # marked as words without a photo


def test_a_temperature_fit_on_labels_undoes_an_over_confident_belief():
    from listing_search.fit.category import fit_temperature
    from listing_search.core.maths import softmax
    from listing_search.models.category import temper
    from listing_search.core.grading import top_calibration_error

    rng = np.random.default_rng(0)
    logits = rng.normal(scale=1.5, size=(4000, 6))
    labels = np.array([rng.choice(6, p=p) for p in softmax(logits)])  # drawn from the honest belief
    shown = softmax(3.0 * logits)  # what an over-confident model would say
    t = fit_temperature(shown, labels)
    assert 2.5 < t < 3.5, t
    assert top_calibration_error(temper(shown, t), labels) < 0.5 * top_calibration_error(shown, labels)
    np.testing.assert_allclose(temper(shown, t).sum(1), 1.0)
    assert fit_temperature(softmax(logits), labels) == pytest.approx(1.0, abs=0.15)  # honest stays put


def test_temperatures_are_fit_per_mode_on_val_queries_through_the_engine(ranked_artifacts, monkeypatch):
    import listing_search.fit.tune_ranker as train

    floor = train.MIN_TEMPERATURE_QUERIES
    monkeypatch.setattr(train, "MIN_TEMPERATURE_QUERIES", 2)  # the tiny catalogue has a handful of val listings
    engine = SearchEngine.load(serve_settings(ranked_artifacts), ranked_artifacts)
    try:
        vectors = load_listing_vectors(ranked_artifacts)
        val = np.flatnonzero(vectors.splits == "val")
        temps, report = train.fit_shown_temperatures(engine.pipeline, vectors, val, seed=0)
        again, _ = train.fit_shown_temperatures(engine.pipeline, vectors, val, seed=0)
    finally:
        engine.close()
    assert set(temps) == set(report) == {"text", "image", "both"} and temps == again
    for mode, rep in report.items():
        assert 0.5 <= temps[mode] <= 5.0 and rep["queries"] <= len(val)
        assert 0.0 <= rep["top_ece_held_out_half_tempered"] <= 1.0
    saved = json.loads((ranked_artifacts / S.CATEGORY_PREDICTOR_JSON).read_text())  # tune-ranker's own: too few
    assert saved["temperatures"] == {} and len(val) < floor


def test_only_the_shown_category_probabilities_are_tempered(ranked_artifacts):
    predictor = CategoryPredictor.load(ranked_artifacts / S.CATEGORY_PREDICTOR_JSON)
    probs = np.array([0.7, 0.2, 0.1])
    predictor.temperatures = {"text": 2.0}
    soft = predictor.calibrated(probs, "text")
    assert soft.argmax() == 0 and soft[0] < 0.7 and soft.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(predictor.calibrated(probs, "image"), probs)  # no temperature for the mode
    predictor.temperatures = None
    np.testing.assert_allclose(predictor.calibrated(probs, "text"), probs)


def test_the_photo_temperatures_are_fit_on_the_belief_a_photo_search_shows(ranked_artifacts, monkeypatch):
    """The photo vote changes what a photo search shows, so the photo modes' temperatures see it; words do not."""
    import listing_search.fit.tune_ranker as train

    monkeypatch.setattr(train, "MIN_TEMPERATURE_QUERIES", 2)
    seen: list[np.ndarray] = []
    fit = train.fit_temperature
    monkeypatch.setattr(train, "fit_temperature", lambda p, y: seen.append(np.array(p)) or fit(p, y))
    engine = SearchEngine.load(serve_settings(ranked_artifacts), ranked_artifacts)
    try:
        vectors = load_listing_vectors(ranked_artifacts)
        val = np.flatnonzero(vectors.splits == "val")
        beliefs = {}
        for w in (0.0, 5.0):
            engine.models.predictor.photo_vote_weight = w
            seen.clear()
            train.fit_shown_temperatures(engine.pipeline, vectors, val, seed=0)
            beliefs[w] = [seen[i] for i in (1, 3, 5)]  # per mode (text, image, both): the fit on all queries
    finally:
        engine.close()
    (text0, image0, both0), (text5, image5, both5) = beliefs[0.0], beliefs[5.0]
    np.testing.assert_allclose(text0, text5)
    assert not np.allclose(image0, image5) and not np.allclose(both0, both5)


KILL_MIDWAY = """
import os, signal, sys
from pathlib import Path
from listing_search.fit import tune_ranker as train
from listing_search.settings import Settings

def die(*args, **kwargs):  # the queries are featurised and the predictor fit: kill the fit before it ends
    os.kill(os.getpid(), signal.SIGKILL)

train.choose_ranker = die
settings = Settings(artifacts_dir=Path(sys.argv[1]))
settings.rank.candidates, settings.rank.train_queries, settings.rank.val_queries = 40, 24, 12
train.tune_ranker(settings, Path(sys.argv[1]), force=True)
"""


def test_a_fit_killed_midway_leaves_the_ranker_in_use_untouched(ranked_artifacts, tmp_path):
    """tune-ranker writes beside the files in use and swaps them in only when the whole fit succeeded."""
    import subprocess
    import sys

    from fastapi.testclient import TestClient

    from listing_search.serve.app import create_app
    from tests.factories import copy_artifacts

    art = copy_artifacts(ranked_artifacts, tmp_path / "art")
    names = (S.RANKER_JSON, S.RELEVANCE_JSON, S.CATEGORY_PREDICTOR_JSON)
    before = {n: (art / n).read_bytes() for n in names}
    proc = subprocess.run([sys.executable, "-c", KILL_MIDWAY, str(art)], capture_output=True, timeout=600)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    assert {n: (art / n).read_bytes() for n in names} == before
    with TestClient(create_app(serve_settings(art))) as client:
        ranker = client.post("/v1/search", data={"text": "chair", "k": 3}).json()["versions"]["ranker"]
    assert ranker.endswith(file_sha(art / S.RANKER_JSON)[:12]), ranker
