"""The re-ranker and category predictor are fit on the train split only, and load back identically."""

from __future__ import annotations

import json

import numpy as np

from listing_search import schema as S
from listing_search.data.prepare import load_listings
from listing_search.rank.category import CategoryPredictor, fit_category_predictor
from listing_search.rank.features import FEATURES
from listing_search.rank.ranker import Ranker, fit_ranker, ids_sha
from listing_search.rank.train import grades_against, tune_ranker
from tests.rank.fixtures import make_vectors
from tests.text.fixtures import text_artifacts, tiny_settings  # noqa: F401


def test_tune_ranker_fits_on_train_ids_only(text_artifacts):
    report = tune_ranker(tiny_settings(text_artifacts), text_artifacts, force=True)
    listings = load_listings(text_artifacts)
    train = set(listings.loc[listings[S.SPLIT] == "train", S.LISTING_ID])
    val = set(listings.loc[listings[S.SPLIT] == "val", S.LISTING_ID])
    assert val, "the tiny catalogue must have val listings for this test to mean anything"
    saved = json.loads((text_artifacts / S.RANKER_JSON).read_text())
    assert saved["fit_split"] == "train" and saved["features"] == list(FEATURES)
    assert set(saved["fit_listing_ids"]) == train and not set(saved["fit_listing_ids"]) & val
    predictor = json.loads((text_artifacts / S.CATEGORY_PREDICTOR_JSON).read_text())
    assert predictor["fit_listing_ids_sha"] == ids_sha(sorted(train)) and predictor["n_fit_listings"] == len(train)
    assert report["pairs"] > 0


def test_tune_ranker_never_reads_val_vectors(text_artifacts, monkeypatch):
    """Poison the val listings' vectors: a fit that touched them would produce NaN weights."""
    import listing_search.rank.train as train_mod

    real = train_mod.load_listing_vectors

    def poisoned(artifacts):
        v = real(artifacts)
        val = v.splits == "val"
        v.text[val] = np.nan
        v.photos[val[v.photo_row]] = np.nan
        return v

    monkeypatch.setattr(train_mod, "load_listing_vectors", poisoned)
    monkeypatch.setattr(train_mod, "validation_report", lambda *a, **k: {})
    tune_ranker(tiny_settings(text_artifacts), text_artifacts, force=True)
    ranker = Ranker.load(text_artifacts / S.RANKER_JSON)
    predictor = CategoryPredictor.load(text_artifacts / S.CATEGORY_PREDICTOR_JSON)
    assert np.isfinite(ranker.weights).all() and np.isfinite(predictor.coef).all()


def test_ranker_round_trip_and_learns_text_similarity():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, len(FEATURES))).astype(np.float32)
    grades = np.digitize(x[:, 0] + 0.3 * rng.normal(size=600), [0.0, 1.0])
    ranker = fit_ranker(x, grades, list(FEATURES), ["b", "a"])
    assert ranker.weights[0, 0] > 0 and ranker.weights[1, 0] > 0
    assert ranker.fit_listing_ids == ["a", "b"]
    back = Ranker.from_json(json.loads(json.dumps(ranker.to_json())))
    np.testing.assert_allclose(back.score(x), ranker.score(x), atol=1e-6)


def test_category_predictor_learns_clusters_and_serves_every_input():
    v = make_vectors(n=60)
    train = v.subset(np.flatnonzero(v.splits == "train"))
    predictor = fit_category_predictor(train)
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


def test_grades():
    v = make_vectors(n=9)
    assert grades_against(v, 0, np.arange(9)).tolist() == [2, 0, 0, 1, 0, 0, 2, 0, 0]
