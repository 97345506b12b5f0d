"""SearchEngine: widening for rare filters and many-photo listings, and the text / ranker plug points."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from listing_search import schema as S
from listing_search.index.build import build_index
from listing_search.core.query import Filters
from listing_search.search.types import IMAGE, LEXICAL, TEXT
from listing_search.core.query import Page, Query
from listing_search.search.features import FEATURES
from listing_search.serve.writes import CatalogWriter
from listing_search.search.rank import NEAR_DUPLICATE
from listing_search.search.engine import SearchEngine
from listing_search.errors import TextSearchUnavailable
from tests.index.tiny_artifacts import RARE
from tests.serve.conftest import photo_bytes, serve_settings


class WordsEncoder:
    """A stand-in text model: one dimension per listing number mentioned ("item 7")."""

    dim = 32

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().replace(".", " ").split():
                if word.isdigit():
                    out[row, int(word) % self.dim] = 1.0
            out[row, -1] += 0.01
        return out


@pytest.fixture
def engine(built_artifacts: Path) -> SearchEngine:
    return SearchEngine.load(serve_settings(built_artifacts))


def test_many_photo_listing_does_not_crowd_out_k(engine: SearchEngine, built_artifacts: Path) -> None:
    # listing-000 has 27 near-identical photos; the first pool (max(k*4, candidates=10)) is mostly them.
    hits = engine.search(Query(image=photo_bytes(built_artifacts, "img-000-0"), page=Page(8))).hits
    # 8 different listings are shown: as results, or as the copies folded under one (the tiny
    # catalogue's synthetic photos make two of its listings copies of one ad)
    shown = [i for h in hits for i in (h.listing.listing_id, *h.duplicates)]
    assert len(set(shown)) == len(shown) >= 8 and hits[0].listing.listing_id == "listing-000"


def test_rare_filter_returns_every_match(engine: SearchEngine, built_artifacts: Path) -> None:
    hits = engine.search(Query(image=photo_bytes(built_artifacts), page=Page(10),
                               filters=Filters(category=RARE))).hits
    assert len(hits) == 3 and {h.listing.root_category for h in hits} == {RARE}


def test_text_needs_a_text_model(engine: SearchEngine) -> None:
    with pytest.raises(TextSearchUnavailable):
        engine.search(Query(text="item 4"))


class TextFirst:
    """A ranker kind of its own: 0.9 text cosine + 0.1 photo cosine (what models.ranker.KINDS can hold)."""

    name, features = "text-first", list(FEATURES)

    def __init__(self) -> None:
        self.calls = 0

    def score(self, x: np.ndarray) -> np.ndarray:
        self.calls += 1
        return 0.9 * x[:, FEATURES.index("text_cos")] + 0.1 * x[:, FEATURES.index("image_cos")]


def test_text_and_image_fused_with_a_custom_ranker(artifacts: Path) -> None:
    """How the text work plugs in: text vectors per listing + an encoder + any ranker."""
    listings = [f"listing-{i:03d}" for i in range(30)]
    enc = WordsEncoder()
    (artifacts / "text").mkdir()
    np.save(artifacts / S.TEXT_EMBEDDINGS_NPY, enc.encode([f"Item {i}" for i in range(30)]))
    (artifacts / S.TEXT_EMBEDDING_IDS).write_text(json.dumps(listings))
    (artifacts / S.TEXT_MODEL_CARD).write_text(json.dumps({"version": "words-v1"}))  # a stand-in's version
    settings = serve_settings(artifacts)
    build_index(settings, artifacts, force=True)
    engine = SearchEngine.load(settings, text_encoder=enc)
    assert engine.text_index is not None and engine.text_index.size == 30
    ranker = TextFirst()
    engine.use_models(engine.models.with_models(ranker=ranker, fitted=True))
    hits = engine.search(Query(text="item 4", page=Page(3))).hits
    assert hits[0].listing.listing_id == "listing-004" and hits[0].scores[TEXT] > 0.9
    both = engine.search(Query(text="item 4", image=photo_bytes(artifacts, "img-009-0"), page=Page(30))).hits
    ahead = [h for h in both if h.listing.listing_id != "listing-004"][: [h.listing.listing_id for h in both]
                                                                        .index("listing-004")]
    assert all(h.scores[IMAGE] >= NEAR_DUPLICATE for h in ahead)  # text weighs more, but the same photo wins
    assert all(set(h.scores) == {IMAGE, TEXT, LEXICAL} for h in both)  # missing channels filled exactly
    assert ranker.calls == 2
    written = CatalogWriter(engine).add_listing({"title": "Item 31", "root_category": RARE}, [photo_bytes(artifacts)])
    assert written.created and written.seq == engine.live.seq
    added = written.listing
    assert engine.search(Query(text="item 31", page=Page(1))).hits[0].listing.listing_id == added.listing_id
