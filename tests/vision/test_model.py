from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from listing_search.vision.backbones import create_backbone
from listing_search.vision.model import ListingClassifier, VisionGraph, VisionTail, freeze_prefix, param_groups


def _model(n_categories: int = 3) -> ListingClassifier:
    torch.manual_seed(0)
    return ListingClassifier(create_backbone("efficientnet_lite0", input_size=64), n_categories)


def test_head_is_imagenet_1000_then_relu_then_category_layer() -> None:
    model = _model(3)
    assert model.backbone.fc.out_features == 1000
    assert isinstance(model.head[0], nn.ReLU)
    assert isinstance(model.head[1], nn.Linear)
    assert (model.head[1].in_features, model.head[1].out_features) == (1000, 3)
    model.eval()
    with torch.inference_mode():
        assert model(torch.zeros(2, 3, 64, 64)).shape == (2, 3)


def test_a_training_step_moves_the_tail_and_leaves_frozen_stages_alone() -> None:
    model = _model(3)
    cut = model.cut_index(2)
    assert cut == len(model.backbone.stages) - 2
    freeze_prefix(model, cut)
    frozen = {k: v.clone() for k, v in model.backbone.stages[:cut].state_dict().items()}
    tail = {k: v.clone() for k, v in model.backbone.stages[cut:].named_parameters()}
    head = model.head[1].weight.clone()
    optimizer = torch.optim.AdamW(param_groups(model, cut, lr_backbone=1e-3, lr_head=1e-2, weight_decay=0.0))
    model.train()
    freeze_prefix(model, cut)
    x, y = torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 2, 0])
    loss = F.cross_entropy(model.tail(model.prefix(x, cut), cut)[2], y)
    loss.backward()
    optimizer.step()

    after = model.backbone.stages[:cut].state_dict()
    assert all(torch.equal(frozen[k], after[k]) for k in frozen)  # weights and BN statistics
    moved = [k for k, p in model.backbone.stages[cut:].named_parameters() if not torch.equal(tail[k], p)]
    assert moved, "no tail parameter changed"
    assert not torch.equal(head, model.head[1].weight)


def test_param_groups_give_the_head_its_own_learning_rate() -> None:
    model = _model(3)
    groups = param_groups(model, model.cut_index(1), lr_backbone=1e-4, lr_head=1e-3, weight_decay=0.0)
    assert [g["lr"] for g in groups] == [1e-4, 1e-3]
    head_ids = {id(p) for p in model.head.parameters()}
    assert {id(p) for p in groups[1]["params"]} == head_ids
    assert not head_ids & {id(p) for p in groups[0]["params"]}


def test_prefix_then_tail_equals_the_whole_network() -> None:
    model = _model(3).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        whole = model(x)
        cut = model.cut_index(3)
        split = model.tail(model.prefix(x, cut), cut)[2]
        embedding, logits = VisionGraph(model, "logits1000")(x)
    assert torch.allclose(whole, split, atol=1e-5)
    assert torch.allclose(whole, logits, atol=1e-5) and embedding.shape == (2, 1000)


def test_a_fully_frozen_backbone_caches_pooled_features_and_the_tail_takes_them() -> None:
    model = _model(3).eval()
    x = torch.randn(2, 3, 64, 64)
    cut = model.cut_index(0)
    assert model.frozen_backbone(cut)
    with torch.inference_mode():
        acts = model.prefix(x, cut)
        assert acts.shape == (2, model.backbone.pooled_dim)  # pooled, not 1280 x 2 x 2 feature maps
        assert torch.allclose(model.tail(acts, cut)[2], model(x), atol=1e-5)
        embedding, logits = VisionTail(model, "logits1000")(acts)
        assert torch.allclose(logits, model(x), atol=1e-5) and embedding.shape == (2, 1000)
