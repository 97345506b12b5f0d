"""The text stage: unit vectors for every listing, an ONNX encoder that matches sentence-transformers."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from listing_search import schema as S
from listing_search.data.prepare import load_listings
from listing_search.text.embed import embed_text, encode_with_model, load_sentence_model
from listing_search.text.encoder import TextEncoder, listing_text
from tests.text.fixtures import text_artifacts, tiny_settings  # noqa: F401

TEXTS = ["Mirror wall art", "", "Stainless steel food steamer, 3 tier, never used",
         "iphone 12 pro max 256gb unlocked " * 30]


def test_every_listing_embedded_as_unit_vectors(text_artifacts):
    vectors = np.load(text_artifacts / S.TEXT_EMBEDDINGS_NPY)
    ids = json.loads((text_artifacts / S.TEXT_EMBEDDING_IDS).read_text())
    assert ids == load_listings(text_artifacts)[S.LISTING_ID].tolist()
    assert vectors.dtype == np.float32 and vectors.shape == (len(ids), 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_onnx_encoder_matches_sentence_transformers(text_artifacts):
    card = json.loads((text_artifacts / S.TEXT_MODEL_CARD).read_text())
    expected = encode_with_model(load_sentence_model(card["max_length"]), TEXTS, batch_size=2)
    got = TextEncoder.from_artifacts(text_artifacts).encode(TEXTS)
    assert np.abs(expected - got).max() < 1e-3
    assert (np.sum(expected * got, axis=1) > 0.9999).all()
    assert card["onnx_parity_max_abs_diff"] < 1e-3


def test_catalogue_vectors_equal_query_encoder_on_listing_text(text_artifacts):
    listings = load_listings(text_artifacts)
    texts = [listing_text(t, d) for t, d in zip(listings[S.TITLE], listings[S.DESCRIPTION])]
    got = TextEncoder.from_artifacts(text_artifacts).encode(texts[:5])
    np.testing.assert_allclose(got, np.load(text_artifacts / S.TEXT_EMBEDDINGS_NPY)[:5], atol=1e-3)


def test_encoder_never_imports_torch(text_artifacts):
    code = ("import sys; from listing_search.text.encoder import TextEncoder; "
            f"e = TextEncoder.from_artifacts({str(text_artifacts)!r}); v = e.encode(['sofa']); "
            "assert v.shape == (1, 384); assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_second_run_is_up_to_date(text_artifacts):
    card = embed_text(tiny_settings(text_artifacts), text_artifacts)
    assert card["up_to_date"] is True


def test_empty_input_gives_empty_matrix(text_artifacts):
    assert TextEncoder.from_artifacts(text_artifacts).encode([]).shape == (0, 384)


def test_listing_text_joins_title_and_description():
    assert listing_text("Sofa", "Grey, two seats") == "Sofa. Grey, two seats"
    assert listing_text("Sofa", "") == "Sofa"
    assert len(listing_text("t", "x" * 10_000)) == 2000


def test_length_sorted_batches_give_each_text_its_own_vector_in_order(text_artifacts):
    encoder = TextEncoder.from_artifacts(text_artifacts)
    encoder.batch_size = 2  # several batches, each of texts of similar length
    texts = TEXTS + ["sofa", "a much longer text about a grey corner sofa with cushions"]
    together = encoder.encode(texts)
    alone = np.concatenate([encoder.encode([t]) for t in texts])
    assert np.abs(together - alone).max() < 1e-5
    assert np.abs(together[0] - together[-2]).max() > 1e-2  # different texts, different rows


def test_serve_text_spinning_setting_reaches_the_query_encoder(text_artifacts):
    """serve.text_spinning=false makes the engine's text encoder session sleep its idle threads (the
    CPU-for-latency trade measured in docs/performance.md); the default keeps ORT's spinning."""
    from listing_search.search.engine import load_text_encoder

    def spinning(encoder) -> str:
        return encoder.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")

    quiet = load_text_encoder(text_artifacts, spinning=False)
    assert spinning(quiet) == "0"
    assert np.allclose(quiet.encode(["sofa"]), TextEncoder.from_artifacts(text_artifacts).encode(["sofa"]), atol=1e-6)
    default = TextEncoder.from_artifacts(text_artifacts).session.get_session_options()
    with pytest.raises(RuntimeError, match="allow_spinning"):  # not set: ORT's default (spinning)
        default.get_session_config_entry("session.intra_op.allow_spinning")
