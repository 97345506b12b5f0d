"""The catalogue's life beyond one process: backup and restore through the CLI serve the same results,
and a model change re-embeds API-added listings from their stored photos without mixing versions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from listing_search.cli import app
from listing_search.index.build import build_index
from listing_search.core.query import Page, Query
from listing_search.search.engine import SearchEngine
from listing_search.serve.writes import CatalogWriter
from listing_search.store import open_storage
from listing_search.store.models import model_versions
from tests.factories import jpeg_bytes, photo
from tests.index.tiny_artifacts import RARE, ROOTS, embed_catalogue, make_onnx
from tests.serve.conftest import photo_bytes, serve_settings

MODEL_FILES = ("model", "categories.json")


def ranked(engine: SearchEngine, jpeg: bytes) -> list[tuple[str, float]]:
    return [(h.listing.listing_id, round(h.score, 5)) for h in engine.search(Query(image=jpeg, page=Page(10))).hits]


def test_backup_then_restore_serves_the_same_results(artifacts: Path, tmp_path: Path) -> None:
    settings = serve_settings(artifacts)
    engine = SearchEngine.load(settings)
    writer = CatalogWriter(engine)
    added = writer.add_listing({"title": "Kept by backup", "root_category": RARE},
                               [jpeg_bytes(photo((10, 200, 30), seed=3))]).listing
    writer.remove_listing("listing-007")
    queries = [photo_bytes(artifacts, "img-004-0"), photo_bytes(artifacts, "img-020-1"),
               jpeg_bytes(photo((12, 198, 33), seed=4))]
    before = [ranked(engine, q) for q in queries]
    result = CliRunner().invoke(app, ["backup", "--artifacts", str(artifacts), "--to", str(tmp_path / "bk")])
    assert result.exit_code == 0, result.output

    restored = tmp_path / "restored"  # a new machine: model files only, an empty store and blob store
    restored.mkdir()
    for name in MODEL_FILES:
        src = artifacts / name
        shutil.copytree(src, restored / name) if src.is_dir() else shutil.copy(src, restored / name)
    result = CliRunner().invoke(app, ["restore", "--artifacts", str(restored), "--from", str(tmp_path / "bk")])
    assert result.exit_code == 0, result.output
    again = SearchEngine.load(serve_settings(restored))
    assert [ranked(again, q) for q in queries] == before
    assert again.photo(added.image_ids[0])[0].read_bytes() == engine.photo(added.image_ids[0])[0].read_bytes()
    assert again.get_listing("listing-007") is None
    result = CliRunner().invoke(app, ["restore", "--artifacts", str(restored), "--from", str(tmp_path / "bk")])
    assert result.exit_code == 2 and "not empty" in result.output


def test_a_new_model_reembeds_api_listings_from_their_photos(artifacts: Path) -> None:
    settings = serve_settings(artifacts)
    engine = SearchEngine.load(settings)
    new = CatalogWriter(engine).add_listing({"title": "Added through the API", "root_category": RARE},
                                            [jpeg_bytes(photo((250, 250, 20), seed=5))]).listing
    old = model_versions(artifacts, with_text=False)

    make_onnx(artifacts / "model" / "vision.onnx", len(ROOTS), seed=1)  # retrained: another model
    embed_catalogue(artifacts, json.loads((artifacts / "image_embedding_ids.json").read_text()))
    build_index(settings, artifacts)  # dataset listings get the new model's vectors by merging
    store, _ = open_storage(settings, artifacts)
    current = model_versions(artifacts, with_text=False)
    assert current != old and [k for _, k, _ in store.stale_photos(current.image)] == [new.key]
    result = CliRunner().invoke(app, ["reembed", "--artifacts", str(artifacts)])
    assert result.exit_code == 0, result.output
    assert store.stale_photos(current.image) == []

    served = SearchEngine.load(settings)  # the snapshot was of the old model: rebuilt, new vectors only
    assert served.live.models == current and served.live.image.size == store.counts()["photos"]
    stored = served.photo(new.image_ids[0])[0].read_bytes()
    _, _, listing_id, score = served.similar_images(stored, 1)[0]
    assert (listing_id, round(score, 4)) == (new.listing_id, 1.0)
    assert served.live.snapshot_seq < served.live.seq  # the re-embed reached it through the log
