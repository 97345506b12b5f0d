"""Fine-tuning MiniLM's top layers on the catalogue's categories: it learns, and only from the train split."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import torch

from listing_search import schema as S
from listing_search.data.prepare import prepare
from listing_search.core.splits import ids_sha
from listing_search.core.splits import ranker_train_queries
from listing_search.settings import TextSettings
from listing_search.text.embed import PooledMiniLM, embed_text, load_sentence_model, text_recipe
from listing_search.text.encoder import TextEncoder
from listing_search.text.tune import _embed_top, _frozen_states, _pad, fine_tune
from tests.factories import make_dataset
from tests.text.fixtures import text_artifacts, tiny_settings  # noqa: F401

# Which category a title belongs to is arbitrary (the colour word), so the bundled model cannot know it.
COLOURS = ("red", "green", "blue")
THINGS = ("chair", "phone", "bike", "lamp", "shirt", "drill", "book", "kettle")


def titles_by_colour() -> tuple[list[str], np.ndarray]:
    titles, roots = [], []
    for c, colour in enumerate(COLOURS):
        for thing in THINGS:
            titles.append(f"{colour} {thing} for sale")
            roots.append(c)
    return titles, np.array(roots)


def margin(model, titles: list[str], roots: np.ndarray) -> float:
    """Mean cosine of titles of one category minus that of titles of different categories."""
    bert = model[0].auto_model.eval()
    enc = model.tokenizer(titles, padding=True, return_tensors="pt")
    with torch.no_grad():
        v = PooledMiniLM(bert)(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]).numpy()
    sim = v @ v.T
    same = roots[:, None] == roots[None, :]
    off = ~np.eye(len(roots), dtype=bool)
    return float(sim[same & off].mean() - sim[~same].mean())


def test_the_cached_lower_layers_give_the_models_own_embedding():
    model = load_sentence_model(64)
    bert = model[0].auto_model.eval()
    texts = ["a red sofa for sale", "iphone 12 pro max 256gb unlocked, mint", "x"]
    enc = model.tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = PooledMiniLM(bert)(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
        got = _embed_top(list(bert.encoder.layer[4:]), *_pad(_frozen_states(bert, model.tokenizer, texts, 32, 4)))
    assert torch.allclose(got, expected, atol=1e-5)


def test_fine_tuning_pulls_a_categorys_titles_together():
    titles, roots = titles_by_colour()
    model = load_sentence_model(64)
    before = margin(model, titles, roots)
    frozen = {k: v.clone() for k, v in model[0].auto_model.named_parameters() if ".layer.0." in k}
    settings = TextSettings(fine_tune_epochs=8, fine_tune_layers=2, fine_tune_lr=3e-4)
    report = fine_tune(model, titles, titles, roots, roots, settings)
    after = margin(model, titles, roots)
    assert after > before + 0.1, (before, after)
    assert report["loss_per_epoch"][-1] < report["loss_per_epoch"][0]
    assert report["listings"] == len(titles) and report["layers_trained"] == 2
    for k, v in model[0].auto_model.named_parameters():  # the lower layers were not touched
        if k in frozen:
            assert torch.equal(v, frozen[k]), k


def test_embed_text_fine_tunes_on_train_listings_that_are_not_ranker_queries(tmp_path):
    data = make_dataset(tmp_path / "dataset", n_listings=24, seed=1)
    runs = {}
    for name in ("a", "b"):
        artifacts = tmp_path / name
        settings = tiny_settings(artifacts)
        settings.text.fine_tune_epochs = 20
        prepare(settings, str(data), artifacts)
        if name == "b":  # another category for every val listing: the fine-tuned model must not change
            listings = pd.read_csv(artifacts / S.LISTINGS_CSV, dtype=str, keep_default_na=False)
            val = listings[S.SPLIT] == "val"
            assert val.any() and (~val).any()
            listings.loc[val, S.CATEGORY_PATH] = "Elsewhere / Entirely"
            listings.loc[val, S.LABEL] = ((listings.loc[val, S.LABEL].astype(int) + 1) % 3).astype(str)
            listings.to_csv(artifacts / S.LISTINGS_CSV, index=False)
        card = embed_text(settings, artifacts)
        runs[name] = (card, TextEncoder.from_artifacts(artifacts).encode(["Item 3 in Leeds", "a red sofa"]))
    card = runs["a"][0]
    n_train = int((pd.read_csv(tmp_path / "a" / S.LISTINGS_CSV)[S.SPLIT] == "train").sum())
    held_back = card["fine_tuned"]["held_back_ranker_queries"]  # tune-ranker's train queries stay unseen
    assert held_back == 12 and card["fine_tuned"]["listings"] == n_train - held_back > 0
    assert card["fine_tuned"]["split"] == "train"
    listings = pd.read_csv(tmp_path / "a" / S.LISTINGS_CSV, dtype=str, keep_default_na=False)
    rs = tiny_settings(tmp_path / "a").rank
    queries, _ = ranker_train_queries(listings[S.SPLIT].to_numpy(), rs.seed, rs.train_queries)
    seen = set(listings.loc[listings[S.SPLIT] == "train", S.LISTING_ID]) - set(listings[S.LISTING_ID].iloc[queries])
    assert card["fine_tuned"]["listing_ids_sha"] == ids_sha(sorted(seen))
    assert "fine-tuned" in card["model"]
    assert card["onnx_parity_max_abs_diff"] < 1e-3
    np.testing.assert_array_equal(runs["a"][1], runs["b"][1])
    bundled = load_sentence_model(64).encode(["Item 3 in Leeds", "a red sofa"], normalize_embeddings=True)
    assert np.abs(runs["a"][1] - bundled).max() > 1e-3, "the exported model is the bundled one"
    assert json.loads((tmp_path / "a" / S.TEXT_MODEL_CARD).read_text())["fine_tuned"]["steps"] >= 1


def test_short_runs_keep_flat_rates_and_finish():
    # 10 steps is where torch's one-cycle schedule divides by zero (10% of them is one warm-up step)
    titles, roots = titles_by_colour()
    model = load_sentence_model(64)
    for epochs, steps in ((40 / 3, 10), (1.0, 1), (8 / 3, 2), (80 / 3, 20)):
        report = fine_tune(model, titles, titles, roots, roots, TextSettings(fine_tune_epochs=epochs, fine_tune_layers=1))
        assert report["steps"] == steps and np.isfinite(report["loss_per_epoch"]).all()


def test_settings_that_only_fine_tuning_reads_leave_an_unfine_tuned_folder_up_to_date(text_artifacts):
    settings = tiny_settings(text_artifacts)
    settings.text.seed, settings.text.fine_tune_lr, settings.rank.train_queries = 5, 1e-3, 7
    assert embed_text(settings, text_artifacts)["up_to_date"] is True
    settings.text.fine_tune_epochs = 1
    assert text_recipe(settings) != text_recipe(tiny_settings(text_artifacts))
    before = text_recipe(settings)
    settings.rank.train_queries = 8  # which listings fine-tuning leaves out
    assert text_recipe(settings) != before
