"""The index stage on a tiny artifacts folder: catalogue tables, infos, up-to-date skip, text index."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from listing_search import schema as S
from listing_search.index.build import build_index
from listing_search.index.catalog import Catalog, Filters
from listing_search.index.vector_index import VectorIndex
from listing_search.settings import Settings
from tests.index.tiny_artifacts import RARE, make_artifacts


@pytest.fixture(scope="module")
def art(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_artifacts(tmp_path_factory.mktemp("build") / "artifacts", n_listings=12)


def test_builds_catalogue_and_index_with_infos(art: Path) -> None:
    infos = build_index(Settings(artifacts_dir=art), art, force=True)
    assert infos["kind"] == "flat" and infos["size"] == 24 and infos["recall_at_10"] == 1.0
    assert infos["catalog"] == {"listings": 12, "photos": 24} and "build_seconds" in infos
    on_disk = json.loads((art / "index" / "image.infos.json").read_text())
    assert on_disk["size"] == 24 and on_disk["dimension"] == 8
    with sqlite3.connect(art / S.CATALOG_DB) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        row = con.execute("SELECT title, price, root_category FROM listings WHERE listing_id='listing-004'").fetchone()
        assert row == ("Item 4", 40.0, "Computers & Software")
    assert build_index(Settings(artifacts_dir=art), art)["up_to_date"] is True


def test_vector_ids_point_at_the_right_photos(art: Path) -> None:
    build_index(Settings(artifacts_dir=art), art)
    index, catalog = VectorIndex.load(art / S.IMAGE_INDEX), Catalog(art / S.CATALOG_DB)
    emb = np.load(art / S.IMAGE_EMBEDDINGS_NPY)
    order = json.loads((art / S.IMAGE_EMBEDDING_IDS).read_text())
    res = index.search(emb[order.index("img-007-1")][None], 1)
    assert catalog.image_ids(res.ids[0].tolist())[int(res.ids[0][0])] == ("img-007-1", "listing-007")


def test_catalogue_filters(art: Path) -> None:
    build_index(Settings(artifacts_dir=art), art)
    catalog = Catalog(art / S.CATALOG_DB)
    rare = catalog.matching_listing_keys(Filters(root_category=RARE))
    assert len(rare) == 3 and len(catalog.matching_vector_ids(Filters(root_category=RARE))) == 6
    assert len(catalog.matching_listing_keys(Filters(min_price=20, max_price=40))) == 3
    assert len(catalog.matching_listing_keys(Filters(location="bristol"))) == 6  # case-insensitive substring
    assert catalog.matching_listing_keys(Filters(location="100%")) == []  # LIKE wildcards are literal


def test_missing_embeddings_are_reported(tmp_path: Path) -> None:
    art = make_artifacts(tmp_path / "artifacts", n_listings=3, embed=False)
    with pytest.raises(FileNotFoundError, match="image_embeddings.npy"):
        build_index(Settings(artifacts_dir=art), art)


def test_text_index_built_when_text_embeddings_exist(tmp_path: Path) -> None:
    art = make_artifacts(tmp_path / "artifacts", n_listings=6)
    (art / "text").mkdir()
    np.save(art / S.TEXT_EMBEDDINGS_NPY, np.eye(6, 4, dtype=np.float32) + 0.01)
    (art / S.TEXT_EMBEDDING_IDS).write_text(json.dumps([f"listing-{i:03d}" for i in range(6)]))
    build_index(Settings(artifacts_dir=art), art)
    text = VectorIndex.load(art / S.TEXT_INDEX)
    keys = dict(sqlite3.connect(art / S.CATALOG_DB).execute("SELECT listing_id, key FROM listings").fetchall())
    assert text.size == 6 and sorted(text.all_ids().tolist()) == sorted(keys.values())
