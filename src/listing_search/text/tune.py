"""Fine-tuning MiniLM's top layers on the catalogue's own categories, before it is exported and used.

The bundled all-MiniLM-L6-v2 was trained for general sentence similarity: "dyson v8" and "vacuum
cleaner" are near, but so are "phone case" and "pencil case". Buyers' words are judged by category
here, so the top ``fine_tune_layers`` transformer layers learn, on the train-split listings only,
to predict each listing's root category and full category path (two linear heads over the unit
embedding, cross-entropy, root weighted 1 and path 0.5) from its title and from its title + the
start of its description (the two kinds of text the encoder embeds: buyers' queries and listings).
The embeddings and the lower layers stay frozen: their outputs are computed once, so each step
runs and back-propagates through the trained layers only (CPU minutes, not hours).

The heads are dropped afterwards; the encoder keeps mean pooling and unit length, so nothing
downstream changes shape. Off by default (``text.fine_tune_epochs = 0``): on never-seen listings it
sharpened the text vectors' categories but not the served ranking, and it cost personalisation
(docs/ranking.md, "Fine-tuning MiniLM on the categories").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from listing_search.settings import TextSettings

log = logging.getLogger(__name__)

TITLE_TOKENS = 32
COSINE_SCALE = 20.0  # logits of unit embeddings: a temperature, as cosine classifiers use
PATH_WEIGHT = 0.5
HEAD_LR = 1e-3
BATCH = 32
MIN_SCHEDULED_STEPS = 20


def mean_pool(tokens: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """[B, L, D] token states -> [B, D]: mean over real tokens, unit length (sentence-transformers' pooling)."""
    mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
    mean = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return nn.functional.normalize(mean, p=2, dim=1)


def _frozen_states(bert: nn.Module, tokenizer, texts: Sequence[str], max_length: int, n_frozen: int,
                   batch: int = 64) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each text's hidden states after the frozen layers and its attention mask, one (states, mask) per
    text, trimmed to its own length (the trained layers see exactly what the full model would)."""
    out: list[tuple[torch.Tensor, torch.Tensor]] = [None] * len(texts)  # type: ignore[list-item]
    order = np.argsort([len(t) for t in texts], kind="stable")
    with torch.no_grad():
        for start in range(0, len(texts), batch):
            rows = order[start:start + batch]
            enc = tokenizer([texts[i] for i in rows], padding=True, truncation=True, max_length=max_length,
                            return_tensors="pt")
            h = bert.embeddings(input_ids=enc["input_ids"], token_type_ids=enc["token_type_ids"])
            ext = _additive_mask(enc["attention_mask"])
            for layer in bert.encoder.layer[:n_frozen]:
                h = _layer(layer, h, ext)
            lengths = enc["attention_mask"].sum(1).tolist()
            for j, i in enumerate(rows):
                out[i] = (h[j, :lengths[j]].clone(), enc["attention_mask"][j, :lengths[j]].clone())
    return out


def _additive_mask(mask: torch.Tensor) -> torch.Tensor:
    """[B, L] 1/0 -> [B, 1, 1, L] 0/-inf-ish, the attention mask a BERT layer adds to its scores."""
    return (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min


def _layer(layer: nn.Module, h: torch.Tensor, ext_mask: torch.Tensor) -> torch.Tensor:
    result = layer(h, attention_mask=ext_mask)
    return result[0] if isinstance(result, tuple) else result


def _pad(items: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    n, width = len(items), max(len(m) for _, m in items)
    h = torch.zeros(n, width, items[0][0].shape[-1])
    mask = torch.zeros(n, width, dtype=torch.int64)
    for i, (s, m) in enumerate(items):
        h[i, :len(m)], mask[i, :len(m)] = s, m
    return h, mask


def _embed_top(layers: Sequence[nn.Module], h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The trained layers, then the pooling ``PooledMiniLM`` ends with."""
    ext = _additive_mask(mask)
    for layer in layers:
        h = _layer(layer, h, ext)
    return mean_pool(h, mask)


def fine_tune(model, titles: Sequence[str], texts: Sequence[str], roots: np.ndarray, paths: np.ndarray,
              settings: TextSettings, progress: bool = False) -> dict:
    """Train ``model``'s (a sentence-transformers MiniLM) top layers in place on labelled listings.

    ``titles`` and ``texts`` (title + description, as embedded) are row-aligned with ``roots`` and
    ``paths`` (class indices); the caller passes train-split listings only. Returns what was done."""
    t0 = time.perf_counter()
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    bert, tokenizer = model[0].auto_model, model.tokenizer
    n_layers = len(bert.encoder.layer)
    n_top = min(settings.fine_tune_layers, n_layers)
    top = list(bert.encoder.layer[n_layers - n_top:])
    for p in bert.parameters():
        p.requires_grad_(False)
    bert.eval()
    states = {"title": _frozen_states(bert, tokenizer, titles, TITLE_TOKENS, n_layers - n_top),
              "text": _frozen_states(bert, tokenizer, texts, settings.fine_tune_text_tokens, n_layers - n_top)}
    cached_s = time.perf_counter() - t0
    params = [p for layer in top for p in layer.parameters()]
    for p in params:
        p.requires_grad_(True)
    dim = int(bert.config.hidden_size)
    head_root, head_path = nn.Linear(dim, int(roots.max()) + 1), nn.Linear(dim, int(paths.max()) + 1)
    heads = list(head_root.parameters()) + list(head_path.parameters())
    opt = torch.optim.AdamW([{"params": params, "lr": settings.fine_tune_lr}, {"params": heads, "lr": HEAD_LR}],
                            weight_decay=0.01)
    n = len(titles)
    steps = max(1, int(round(settings.fine_tune_epochs * n / BATCH)))
    # one cycle (10% warm-up, then annealing); a run too short for a warm-up step keeps the rates flat
    # (torch's OneCycleLR divides by zero when 10% of the steps is exactly one)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[settings.fine_tune_lr, HEAD_LR], total_steps=steps,
                                                pct_start=0.1) if steps >= MIN_SCHEDULED_STEPS else None
    order = np.concatenate([rng.permutation(n) for _ in range(int(np.ceil(steps * BATCH / n)) + 1)])
    y_root, y_path = torch.as_tensor(roots, dtype=torch.int64), torch.as_tensor(paths, dtype=torch.int64)
    for layer in top:
        layer.train()  # dropout on in the trained layers only
    losses: list[float] = []
    for step in tqdm(range(steps), desc="fine-tune text", unit="step", disable=not progress):
        rows = order[step * BATCH:(step + 1) * BATCH]
        loss = torch.zeros(())
        for view in ("title", "text"):
            e = _embed_top(top, *_pad([states[view][i] for i in rows])) * COSINE_SCALE
            loss = loss + nn.functional.cross_entropy(head_root(e), y_root[rows]) \
                + PATH_WEIGHT * nn.functional.cross_entropy(head_path(e), y_path[rows])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        losses.append(float(loss.detach()))
    for p in bert.parameters():
        p.requires_grad_(False)
    bert.eval()
    per_epoch = max(1, int(np.ceil(n / BATCH)))
    curve = [round(float(np.mean(losses[i:i + per_epoch])), 4) for i in range(0, len(losses), per_epoch)]
    report = {"listings": n, "layers_trained": n_top, "epochs": settings.fine_tune_epochs, "steps": steps,
              "lr": settings.fine_tune_lr, "text_tokens": settings.fine_tune_text_tokens,
              "loss_per_epoch": curve, "cache_seconds": round(cached_s, 1),
              "seconds": round(time.perf_counter() - t0, 1)}
    log.info("fine-tune text: %d listings, %d steps, loss %s, %.0fs", n, steps, curve, report["seconds"])
    return report
