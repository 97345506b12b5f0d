"""The photo heads: the retrieval head's loss and training, the neighbour measure, choosing a head."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from listing_search.evaluate.vision import precision_at_k as faiss_precision_at_k
from listing_search.settings import VisionSettings
from listing_search.vision.backbones import create_backbone
from listing_search.vision.cache import ActivationCache
from listing_search.vision.heads import IGNORE, ImageNetHead, RetrievalHead, create_head, supcon_loss
from listing_search.vision.model import ListingClassifier, VisionTail, embedding_dim
from listing_search.vision.neighbours import precision_at_k, top_k
from listing_search.vision.train import Targets, fit, neighbour_precision


def _supcon_reference(z: torch.Tensor, labels: list[int], tau: float) -> float:
    """Khosla et al. eq. 2 written as loops: for each anchor with positives, the mean over its positives
    of -log(exp(z_i.z_p / tau) / sum over every other photo a of exp(z_i.z_a / tau))."""
    z = torch.nn.functional.normalize(z, dim=1)
    per_anchor = []
    for i in range(len(z)):
        others = [a for a in range(len(z)) if a != i]
        positives = [p for p in others if labels[p] == labels[i]]
        if not positives:
            continue
        denominator = sum(math.exp(float(z[i] @ z[a]) / tau) for a in others)
        per_anchor.append(sum(-math.log(math.exp(float(z[i] @ z[p]) / tau) / denominator)
                              for p in positives) / len(positives))
    return sum(per_anchor) / len(per_anchor)


def test_supcon_loss_matches_the_loop_reference() -> None:
    torch.manual_seed(0)
    z = torch.randn(7, 5)
    labels = [0, 1, 0, 2, 1, 0, 3]  # label 2 and 3 have no positive: left out as anchors
    got = float(supcon_loss(z, torch.tensor(labels), 0.5))
    assert got == pytest.approx(_supcon_reference(z, labels, 0.5), rel=1e-5)


def test_supcon_loss_is_lower_when_each_label_is_clustered() -> None:
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    centres = torch.eye(3)[labels]
    clustered = centres + 0.01 * torch.randn(6, 3, generator=torch.Generator().manual_seed(1))
    mixed = torch.eye(3)[torch.tensor([0, 1, 2, 0, 1, 2])]
    assert float(supcon_loss(clustered, labels, 0.1)) < float(supcon_loss(mixed, labels, 0.1))


def test_neighbour_precision_matches_faiss_and_brute_force() -> None:
    rng = np.random.default_rng(0)
    queries, catalogue = rng.normal(size=(40, 6)), rng.normal(size=(300, 6))
    q_labels, c_labels = rng.integers(0, 3, 40), rng.integers(0, 3, 300)
    sims = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ \
        (catalogue / np.linalg.norm(catalogue, axis=1, keepdims=True)).T
    brute = np.argsort(-sims, axis=1)[:, :10]
    assert (top_k(queries, catalogue, 10, block=7) == brute).all()
    expected = float((c_labels[brute] == q_labels[:, None]).mean())
    assert precision_at_k(queries, q_labels, catalogue, c_labels) == pytest.approx(expected)
    assert faiss_precision_at_k(queries.astype(np.float32), q_labels, catalogue.astype(np.float32), c_labels) == \
        pytest.approx(expected, abs=1e-6)


def _clustered_cache(n_classes: int = 4, per_class: int = 40, dim: int = 64, seed: int = 0) -> ActivationCache:
    """Pooled features whose class shows in only 2 of 64 noisy dimensions: cosine on the raw features
    barely finds same-class neighbours, a trained embedding does."""
    rng = np.random.default_rng(seed)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.repeat(np.arange(n_classes), n)
        x = rng.normal(size=(len(y), dim)).astype(np.float32)
        x[:, 0] += np.cos(2 * np.pi * y / n_classes) * 2
        x[:, 1] += np.sin(2 * np.pi * y / n_classes) * 2
        return x, y

    train_x, train_y = draw(per_class)
    val_x, val_y = draw(per_class // 4)
    return ActivationCache(train_x=train_x, train_y=train_y, train_photo=np.arange(len(train_y)), val_x=val_x,
                           val_y=val_y, key="t", train_ids=[f"t{i}" for i in range(len(train_y))],
                           val_ids=[f"v{i}" for i in range(len(val_y))])


class _Pooled(torch.nn.Module):
    """A stand-in backbone for cached pooled features: no stages, a 1000-way-like ``fc``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.stages = torch.nn.ModuleList()
        self.fc = torch.nn.Linear(dim, 16)
        self.pooled_dim, self.num_classes = dim, 16

    def features(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        return x


def test_fit_of_the_retrieval_head_learns_neighbours_and_keeps_its_best_epoch() -> None:
    cache = _clustered_cache()
    paths = cache.train_y * 2 + (np.arange(len(cache.train_y)) % 2)  # two sub-paths per root
    targets = Targets(paths, np.full(len(cache.val_y), IGNORE), tuple(str(i) for i in range(8)))
    torch.manual_seed(0)
    head = RetrievalHead(64, 64, 16, n_categories=4, n_paths=8, dropout=0.0)
    model = ListingClassifier(_Pooled(64), 4, head=head)
    before = precision_at_k(cache.val_x, cache.val_y, cache.train_x, cache.train_y)
    vs = VisionSettings(epochs=30, batch_size=32, patience=30, lr_head=3e-3, label_smoothing=0.0, device="cpu")
    result = fit(model, cache, 0, vs, torch.device("cpu"), targets=targets)
    model.load_state_dict(result.state)
    after, path = neighbour_precision(model, cache, 0, targets, 64, torch.device("cpu"))
    assert after == pytest.approx(result.best_val_precision)
    assert result.best_val_precision == max(row["val_precision_at_10"] for row in result.history)
    assert after > before + 0.1, (before, after)  # measured 0.45 -> 0.63
    assert path == 0.0  # every val path is unknown to training: never a hit


def test_heads_by_name_and_what_the_served_graph_returns() -> None:
    backbone = create_backbone("efficientnet_lite0", input_size=64, pretrained=False)
    head = create_head("retrieval", backbone.pooled_dim, backbone.num_classes, 3, hidden_dim=32, embedding_dim=24,
                       n_paths=5)
    model = ListingClassifier(backbone, 3, head=head).eval()
    assert embedding_dim(model, "head") == 24 and embedding_dim(model, "pooled") == backbone.pooled_dim
    with torch.inference_mode():
        embedding, logits = VisionTail(model, "head")(torch.randn(2, backbone.pooled_dim))
    assert embedding.shape == (2, 24) and logits.shape == (2, 3)
    assert isinstance(create_head("imagenet", 1280, 1000, 3), ImageNetHead)
    with pytest.raises(ValueError, match="unknown vision head 'nope'.*imagenet.*retrieval"):
        create_head("nope", 1280, 1000, 3)


def test_the_imagenet_layer_is_refused_as_the_retrieval_heads_embedding() -> None:
    with pytest.raises(ValidationError, match="logits1000"):
        VisionSettings(head="retrieval", embed_layer="logits1000")
    for head, layer in itertools.product(("imagenet",), ("logits1000", "head", "pooled")):
        VisionSettings(head=head, embed_layer=layer)


def test_held_back_listings_leave_every_view_of_their_photos_out_of_training() -> None:
    import pandas as pd

    from listing_search import schema as S
    from listing_search.vision.train import without_listings

    ids = [f"t{i}" for i in range(6)]
    photos = pd.DataFrame({S.IMAGE_ID: ids, S.LISTING_ID: ["a", "a", "b", "c", "c", "d"]})
    per = 3
    cache = ActivationCache(train_x=np.arange(18, dtype=np.float32)[:, None], train_y=np.repeat(np.arange(6), per),
                            train_photo=np.repeat(np.arange(6), per), val_x=np.zeros((2, 1), np.float32),
                            val_y=np.zeros(2, np.int64), key="k", train_ids=ids, val_ids=["v0", "v1"])
    targets = Targets(np.repeat(np.arange(6) + 10, per), np.array([IGNORE, 3]), ("p",))
    sub, sub_targets = without_listings(cache, targets, photos, {"a", "c"})
    assert sub.train_ids == ["t2", "t5"]
    assert sub.train_x[:, 0].tolist() == [6, 7, 8, 15, 16, 17] and sub.train_y.tolist() == [2, 2, 2, 5, 5, 5]
    assert sub.train_photo.tolist() == [0, 0, 0, 1, 1, 1]  # renumbered: fit counts photos from it
    assert sub_targets.train_path.tolist() == [12, 12, 12, 15, 15, 15]
    assert sub.val_ids == cache.val_ids and without_listings(cache, targets, photos, set())[0] is cache


def test_only_the_retrieval_head_holds_back_the_ranker_queries_unless_told() -> None:
    assert not VisionSettings().holds_out()  # the original recipe trains on every train-split photo
    assert VisionSettings(head="retrieval").holds_out()
    assert not VisionSettings(head="retrieval", hold_out_ranker_queries=False).holds_out()
    assert VisionSettings(hold_out_ranker_queries=True).holds_out()
