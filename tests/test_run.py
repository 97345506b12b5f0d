"""`listing-search run --no-serve` on a tiny dataset: every stage, the store loaded, text searchable."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from listing_search.cli import app
from listing_search.core.query import Page, Query
from listing_search.search.engine import SearchEngine
from tests.factories import copy_artifacts
from tests.vision.fixtures import TINY_VISION, tiny_settings, trained_artifacts  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow


def tiny_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The trained fixture's settings, as `make run` would read them from the environment."""
    monkeypatch.setenv("LISTING_SEARCH_DATA__IMAGE_SIZE", "96")
    monkeypatch.setenv("LISTING_SEARCH_DATA__WORKERS", "1")
    for name, value in TINY_VISION.items():
        monkeypatch.setenv(f"LISTING_SEARCH_VISION__{name.upper()}", str(value))


def test_run_builds_every_stage_into_the_store(trained_artifacts: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    art = copy_artifacts(trained_artifacts, tmp_path / "art")
    raw = trained_artifacts.parent / "raw"
    tiny_env(monkeypatch)
    result = CliRunner().invoke(app, ["run", "--data", str(raw), "--artifacts", str(art), "--no-serve"])
    assert result.exit_code == 0, result.output
    engine = SearchEngine.load(tiny_settings().model_copy(update={"artifacts_dir": art}))
    assert engine.has_text and engine.store.counts()["listings"] == 12
    listing = engine.store.listing(sorted(engine.store.listing_ids())[3])
    hits = engine.search(Query(text=f"{listing.title}. {listing.description}", page=Page(12))).hits
    # Found: itself, with its own words' cosine, or folded under another copy of its ad (the tiny
    # catalogue's synthetic photos group some listings as copies).
    holder = [h for h in hits if listing.listing_id in (h.listing.listing_id, *h.duplicates)]
    assert len(holder) == 1, [(h.listing.listing_id, h.duplicates) for h in hits]
    if holder[0].listing.listing_id == listing.listing_id:
        assert holder[0].scores["text"] > 0.99
    again = CliRunner().invoke(app, ["run", "--data", str(raw), "--artifacts", str(art), "--no-serve"])
    assert again.exit_code == 0, again.output  # everything up to date: skipped, the store untouched
    assert engine.store.head() == 12
    # Says where it is: each stage numbered, in order, with a human summary (issue 13, first run).
    names = ["prepare", "train", "embed", "embed-text", "index", "reembed", "tune-ranker"]
    out = " ".join(result.output.split())
    at = [out.index(f"stage {i}/{len(names)} {name}") for i, name in enumerate(names, 1)]
    assert at == sorted(at)
    assert "12 listings in" in out and "epoch" in out and "nothing to re-embed" in out
    assert all(f"done {name} in" in out for name in names)
    assert " ".join(again.output.split()).count("(up to date)") >= 5
