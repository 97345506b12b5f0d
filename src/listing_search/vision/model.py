"""The listing model: an ImageNet backbone, then a head (``vision.heads``) giving (embedding, category logits).

The original project's head keeps the 1000-way layer, then ReLU and a category layer; the retrieval head
(opt-in) is an MLP trained for neighbours. The network is split at ``cut``: stages before it are
frozen (their activations are cached once), stages from it on and the head are trained.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from listing_search.vision.backbones import Backbone
from listing_search.vision.heads import Head, ImageNetHead

# "head": the head's own embedding (the 1000-way layer of the imagenet head, the MLP's output of the
# retrieval head); "logits1000": the original name of the imagenet head's; "pooled": the backbone's.
EmbedLayer = Literal["head", "logits1000", "pooled"]


class ListingClassifier(nn.Module):
    def __init__(self, backbone: Backbone, n_categories: int, dropout: float = 0.0,
                 head: Head | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head if head is not None else ImageNetHead(backbone.num_classes, n_categories)
        self.dropout = dropout  # on the pooled features, for the imagenet head (the MLP has its own)

    @property
    def n_categories(self) -> int:
        return self.head.n_categories

    @property
    def head_kind(self) -> str:
        return self.head.kind

    def cut_index(self, train_last_blocks: int) -> int:
        """Index of the first trained stage: the last ``train_last_blocks`` stages are fine-tuned."""
        n = len(self.backbone.stages)
        return max(0, n - max(0, train_last_blocks))

    def tail(self, acts: torch.Tensor, cut: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """From the activations entering stage ``cut``: (pooled, the head's embedding, category logits)."""
        pooled = self.backbone.features(acts, start=cut)
        drop = self.dropout if self.head_kind == "imagenet" else 0.0
        dropped = F.dropout(pooled, drop, self.training) if drop else pooled
        embedding = self.head.embed(dropped, self.backbone.fc)
        return pooled, embedding, self.head.root_logits(embedding)

    def prefix(self, x: torch.Tensor, cut: int) -> torch.Tensor:
        """The frozen part: stages before ``cut``, pooled when every stage is frozen (``cut = len(stages)``)."""
        return Prefix(self, cut)(x)

    def frozen_backbone(self, cut: int) -> bool:
        """Whether every convolutional stage is frozen: only the 1000-way layer and the head are trained."""
        return cut >= len(self.backbone.stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(x, 0)[2]


def freeze_prefix(model: ListingClassifier, cut: int) -> None:
    """Stop gradients into stages before ``cut`` and keep their batch-norm statistics fixed."""
    for i, stage in enumerate(model.backbone.stages):
        frozen = i < cut
        for p in stage.parameters():
            p.requires_grad_(not frozen)
        if frozen:
            stage.eval()


def param_groups(
    model: ListingClassifier, cut: int, lr_backbone: float, lr_head: float, weight_decay: float
) -> list[dict]:
    """Separate learning rates: the pretrained tail moves slowly, the new head fast. The 1000-way layer
    is part of the pretrained tail when the head uses it (the imagenet head), else it is left out."""
    tail = [p for s in model.backbone.stages[cut:] for p in s.parameters()]
    if model.head_kind == "imagenet":
        tail += list(model.backbone.fc.parameters())
    return [
        {"params": tail, "lr": lr_backbone, "weight_decay": weight_decay, "name": "backbone_tail"},
        {"params": list(model.head.parameters()), "lr": lr_head, "weight_decay": weight_decay,
         "name": "head"},
    ]


class Prefix(nn.Module):
    """The frozen stages alone, exported to ONNX to compute the activation cache fast on CPU. When every
    stage is frozen it ends with the global pool, so the cache holds [N, D] features, not feature maps."""

    def __init__(self, model: ListingClassifier, cut: int) -> None:
        super().__init__()
        self.stages = nn.ModuleList(model.backbone.stages[:cut])
        self.pool = model.backbone.pool if model.frozen_backbone(cut) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = stage(x)
        return self.pool(x) if self.pool is not None else x


class VisionTail(nn.Module):
    """The trained part after a frozen, pooled backbone: pooled [N, D] -> (embedding, category logits).
    Appended to the backbone's int8 graph to make the served graph (``vision.quantize.append_tail``)."""

    def __init__(self, model: ListingClassifier, embed_layer: EmbedLayer) -> None:
        super().__init__()
        self.model = model
        self.embed_layer = embed_layer

    def forward(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled, embedding, logits = self.model.tail(pooled, len(self.model.backbone.stages))
        return (pooled if self.embed_layer == "pooled" else embedding), logits


class VisionGraph(nn.Module):
    """What is served: one photo batch -> (embedding, category logits) in a single pass."""

    def __init__(self, model: ListingClassifier, embed_layer: EmbedLayer) -> None:
        super().__init__()
        self.model = model
        self.embed_layer = embed_layer

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled, embedding, logits = self.model.tail(image, 0)
        return (pooled if self.embed_layer == "pooled" else embedding), logits


def embedding_dim(model: ListingClassifier, embed_layer: EmbedLayer) -> int:
    if embed_layer == "pooled":
        return model.backbone.pooled_dim
    with torch.inference_mode():
        return int(model.head.embed(torch.zeros(1, model.backbone.pooled_dim), model.backbone.fc).shape[1])
