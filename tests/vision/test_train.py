from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from listing_search import schema as S
from listing_search.data.prepare import load_training
from listing_search.vision.train import STAGE, VISION_SETTINGS_JSON, load_model, select_photos, train
from tests.vision.fixtures import tiny_settings, trained_artifacts  # noqa: F401  (fixture)


def test_split_never_puts_one_listing_on_both_sides(trained_artifacts: Path) -> None:
    photos = load_training(trained_artifacts)
    sides = photos.groupby(S.LISTING_ID)[S.SPLIT].nunique()
    assert (sides == 1).all()
    assert set(photos[S.SPLIT]) == {"train", "val"}
    sample = select_photos(photos, 10, seed=1)
    assert set(sample[S.SPLIT]) == {"train", "val"} and len(sample) == 10


def test_train_writes_checkpoint_card_settings_and_figures(trained_artifacts: Path) -> None:
    model_dir = trained_artifacts / S.MODEL_DIR
    for name in ("model.pt", "model_card.json", "vision_settings.json", "curves.png", "confusion.png"):
        assert (model_dir / name).is_file(), name
    assert any((model_dir / "tb" / "base").iterdir())
    card = json.loads((trained_artifacts / S.MODEL_CARD).read_text())
    assert card["backbone"] == "efficientnet_lite0"
    assert card["preprocess"]["input_size"] == 64
    assert card["categories"] == json.loads((trained_artifacts / S.CATEGORIES_JSON).read_text())["categories"]
    assert card["head"] == "imagenet" and card["embed_layer"] == "head" and card["embedding_dim"] == 1000
    assert card["onnx"] == S.VISION_ONNX and 0.0 <= card["val"]["val_image_accuracy"] <= 1.0
    saved = json.loads((trained_artifacts / VISION_SETTINGS_JSON).read_text())
    assert saved["input_size"] == 64 and saved["epochs"] == 2


def test_checkpoint_rebuilds_without_pretrained_weights(trained_artifacts: Path) -> None:
    model, checkpoint = load_model(trained_artifacts)
    assert checkpoint["categories"] == json.loads((trained_artifacts / S.MODEL_CARD).read_text())["categories"]
    with torch.inference_mode():
        assert model(torch.zeros(1, 3, 64, 64)).shape == (1, len(checkpoint["categories"]))


def test_train_skips_when_up_to_date(trained_artifacts: Path) -> None:
    before = (trained_artifacts / S.MODEL_CHECKPOINT).stat().st_mtime_ns
    report = train(tiny_settings(), trained_artifacts)
    assert report.up_to_date
    assert (trained_artifacts / S.MODEL_CHECKPOINT).stat().st_mtime_ns == before
    assert (trained_artifacts / S.STAMPS_DIR / f"{STAGE}.json").is_file()


def test_train_is_not_up_to_date_without_its_int8_backbone(trained_artifacts: Path, tmp_path: Path) -> None:
    """The int8 backbone graph is a training output: embed cannot run without it, so its absence
    (e.g. a model folder copied without it) makes train run again rather than report up to date."""
    art = tmp_path / "art"
    shutil.copytree(trained_artifacts, art)
    (art / S.BACKBONE_INT8_ONNX).unlink()
    report = train(tiny_settings(), art)
    assert not report.up_to_date
    assert (art / S.BACKBONE_INT8_ONNX).is_file()


def test_sweep_trains_each_config_on_one_cache_and_plots_them(trained_artifacts: Path, tmp_path: Path) -> None:
    art = tmp_path / "art"
    art.mkdir()
    for name in (S.TRAINING_CSV, S.CATEGORIES_JSON, S.LISTINGS_CSV):
        (art / name).write_bytes((trained_artifacts / name).read_bytes())
    (art / S.CLEAN_IMAGES_DIR).symlink_to(trained_artifacts / S.CLEAN_IMAGES_DIR)
    shutil.copytree(trained_artifacts / "model" / "cache", art / "model" / "cache")  # same key: reused
    settings = tiny_settings(epochs=1, sweep=[{"lr_head": 1e-2}, {"batch_size": 4}])
    report = train(settings, art)
    assert [r["name"] for r in report.sweep][0] == "base" and len(report.sweep) == 3
    assert (art / S.MODEL_DIR / "sweep.png").is_file()
    assert len(list((art / "model" / "cache").iterdir())) == 1


def test_sweep_refuses_settings_that_change_the_cache(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="augment_copies"):
        from listing_search.vision.train import _check_sweep

        _check_sweep([{"augment_copies": 3}])


def test_training_csv_sides_match_listings(trained_artifacts: Path) -> None:
    listings = pd.read_csv(trained_artifacts / S.LISTINGS_CSV, dtype={S.LISTING_ID: str})
    photos = load_training(trained_artifacts)
    side = listings.set_index(S.LISTING_ID)[S.SPLIT]
    assert (photos[S.SPLIT].to_numpy() == side.reindex(photos[S.LISTING_ID]).to_numpy()).all()


def test_the_retrieval_head_when_chosen_holds_back_the_ranker_queries_and_the_stages_after_notice(
        trained_artifacts: Path, tmp_path: Path) -> None:
    """``vision.head=retrieval`` trains the MLP head on the same cache, chosen by val photo -> photo P@10,
    without the photos of tune-ranker's training-query listings (at most half the train split); the
    changed model re-embeds every photo, still 1000-d."""
    from listing_search.core.splits import ranker_train_queries
    from listing_search.vision.embed import embed
    from listing_search.vision.heads import RetrievalHead
    from listing_search.vision.train import held_back_listings

    art = tmp_path / "art"
    shutil.copytree(trained_artifacts, art)
    original = np.load(art / S.IMAGE_EMBEDDINGS_NPY)
    settings = tiny_settings(head="retrieval")
    report = train(settings, art)
    assert not report.up_to_date and len(list((art / "model" / "cache").iterdir())) == 1  # same cache
    model, checkpoint = load_model(art)
    assert isinstance(model.head, RetrievalHead) and checkpoint["vision_settings"]["head"] == "retrieval"
    card = json.loads((art / S.MODEL_CARD).read_text())
    assert card["head"] == "retrieval" and 0.0 <= card["val"]["val_photo_precision_at_10"] <= 1.0

    held = held_back_listings(art, settings)
    listings = pd.read_csv(art / S.LISTINGS_CSV, dtype={S.LISTING_ID: str})
    splits = listings[S.SPLIT].to_numpy()
    queries = set(listings[S.LISTING_ID].to_numpy()[ranker_train_queries(splits, settings.rank.seed, settings.rank.train_queries)[0]])
    assert len(held) == int((splits == "train").sum()) // 2 and held <= queries
    photos = load_training(art)
    assert report.held_back_photos == int(photos[S.LISTING_ID].isin(held).sum()) > 0

    assert not embed(settings, art).up_to_date
    retrieval = np.load(art / S.IMAGE_EMBEDDINGS_NPY)
    assert retrieval.shape == original.shape == (len(photos), 1000) and not np.allclose(retrieval, original)


def test_a_checkpoint_from_before_the_head_choice_loads_as_the_original_head(trained_artifacts: Path,
                                                                           tmp_path: Path) -> None:
    from listing_search.vision.train import build_model

    settings = tiny_settings(head="imagenet", embed_layer="logits1000").vision
    model = build_model(settings, 3, pretrained=False)
    old = settings.model_dump(mode="json")
    del old["head"], old["embedding_dim"], old["hidden_dim"]  # what an older release saved
    art = tmp_path / "art"
    (art / S.MODEL_DIR).mkdir(parents=True)
    torch.save({"state_dict": model.state_dict(), "vision_settings": old, "categories": ["a", "b", "c"]},
               art / S.MODEL_CHECKPOINT)
    loaded, _ = load_model(art)
    assert loaded.head_kind == "imagenet"
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
