"""Heads over the backbone's pooled features, chosen by name (``vision.head``), and their losses.

* ``imagenet`` (the original project's): the backbone's ImageNet 1000-way layer, ReLU, then a category
  layer; the 1000-way layer is the embedding. Trained for root-category cross-entropy only.
* ``retrieval``: an MLP (pooled -> hidden, GELU, dropout -> ``embedding_dim``) trained for neighbours:
  root and full-path cross-entropy on the embedding plus a supervised contrastive loss on the unit
  embeddings, so photos of one category sit close under the cosine the indexes search with
  (docs/vision.md has the measurements that chose it).

Both heads map the (dropped-out) pooled features to ``(embedding, root logits)``; the retrieval head also
gives full-path logits for its loss. Serving needs only the first two.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

IGNORE = -100  # a label the losses skip (a val photo's full path never seen in training)


class ImageNetHead(nn.Sequential):
    """ReLU then ``Linear(1000, n_categories)`` after the backbone's own 1000-way layer (``fc``)."""

    kind = "imagenet"

    def __init__(self, n_imagenet: int, n_categories: int) -> None:
        super().__init__(nn.ReLU(), nn.Linear(n_imagenet, n_categories))

    @property
    def n_categories(self) -> int:
        return self[1].out_features

    def embed(self, pooled: torch.Tensor, fc: nn.Linear) -> torch.Tensor:
        return fc(pooled)

    def root_logits(self, embedding: torch.Tensor) -> torch.Tensor:
        return self(embedding)


class RetrievalHead(nn.Module):
    """MLP embedding for neighbours, with root and full-path classifiers reading the embedding."""

    kind = "retrieval"

    def __init__(self, in_dim: int, hidden_dim: int, embedding_dim: int, n_categories: int, n_paths: int,
                 dropout: float = 0.2) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden_dim, embedding_dim))
        self.root = nn.Linear(embedding_dim, n_categories)
        self.path = nn.Linear(embedding_dim, max(1, n_paths))

    @property
    def n_categories(self) -> int:
        return self.root.out_features

    def embed(self, pooled: torch.Tensor, fc: nn.Linear | None = None) -> torch.Tensor:
        return self.mlp(pooled)

    def root_logits(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.root(embedding)


Head = ImageNetHead | RetrievalHead


@dataclass(frozen=True)
class LossWeights:
    """How much each term of the retrieval loss counts; the cross-entropy on roots always counts 1."""

    path: float = 1.0
    supcon: float = 1.0
    temperature: float = 0.1
    label_smoothing: float = 0.0


def supcon_loss(embedding: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al. 2020) on unit embeddings: each photo's batch-mates of
    the same label are its positives. Anchors without a positive in the batch are left out."""
    z = F.normalize(embedding, dim=1)
    logits = z @ z.T / temperature
    self_mask = torch.eye(len(z), dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positive = (labels[:, None] == labels[None, :]) & ~self_mask
    counts = positive.sum(1)
    has = counts > 0
    if not bool(has.any()):
        return embedding.sum() * 0.0
    mean_log_prob = log_prob.masked_fill(~positive, 0.0).sum(1)[has] / counts[has]
    return -mean_log_prob.mean()


def retrieval_loss(head: RetrievalHead, embedding: torch.Tensor, root_logits: torch.Tensor, roots: torch.Tensor,
                   paths: torch.Tensor, w: LossWeights) -> torch.Tensor:
    """Root CE + ``w.path`` x full-path CE + ``w.supcon`` x SupCon (positives: the same root)."""
    loss = F.cross_entropy(root_logits, roots, label_smoothing=w.label_smoothing)
    if w.path and bool((paths != IGNORE).any()):
        loss = loss + w.path * F.cross_entropy(head.path(embedding), paths, ignore_index=IGNORE,
                                               label_smoothing=w.label_smoothing)
    if w.supcon:
        loss = loss + w.supcon * supcon_loss(embedding, roots, w.temperature)
    return loss


HeadBuilder = Callable[..., Head]
_HEADS: dict[str, HeadBuilder] = {
    "imagenet": lambda pooled_dim, n_imagenet, n_categories, **_: ImageNetHead(n_imagenet, n_categories),
    "retrieval": lambda pooled_dim, n_imagenet, n_categories, hidden_dim=1024, embedding_dim=1000, n_paths=1,
    dropout=0.2, **_: RetrievalHead(pooled_dim, hidden_dim, embedding_dim, n_categories, n_paths, dropout),
}


def list_heads() -> list[str]:
    return sorted(_HEADS)


def create_head(kind: str, pooled_dim: int, n_imagenet: int, n_categories: int, **options: object) -> Head:
    """A head by name; ``options`` are the retrieval head's sizes (``hidden_dim``, ``embedding_dim``,
    ``n_paths``, ``dropout``), ignored by the ImageNet head."""
    if kind not in _HEADS:
        raise ValueError(f"unknown vision head {kind!r}; known: {list_heads()}")
    return _HEADS[kind](pooled_dim=pooled_dim, n_imagenet=n_imagenet, n_categories=n_categories, **options)
