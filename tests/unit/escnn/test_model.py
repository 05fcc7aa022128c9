"""The ESCNN model: frozen BatchNorm, global max pooling, one logit, strict weight loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from pathstream.backbones.imagenet import IMAGENET_MEAN, IMAGENET_STD
from pathstream.services.escnn.model import (
    FrozenBatchNorm2d,
    build_escnn,
    checkpoint_version,
    preprocess,
    save_checkpoint,
)
from pathstream.shared.errors import ErrorCode, PathStreamError
from tests.unit.escnn.conftest import randomised


@pytest.mark.parametrize("backbone", ["resnet18", "resnet34", "resnet50"])
def test_one_logit_max_pool_no_trainable_statistics(backbone: str) -> None:
    model = build_escnn(backbone)
    assert model(torch.zeros(2, 3, 96, 128)).shape == (2, 1)
    assert isinstance(model.pool, torch.nn.AdaptiveMaxPool2d)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    frozen = [m for m in model.modules() if isinstance(m, FrozenBatchNorm2d)]
    assert frozen and all(m.weight.requires_grad and m.bias.requires_grad for m in frozen)


def test_frozen_batchnorm_is_the_same_in_train_and_eval_mode() -> None:
    model = randomised("resnet18")
    x = torch.randn(1, 3, 64, 64)
    model.train()
    train_out = model(x)
    model.eval()
    assert torch.equal(train_out, model(x))


def test_frozen_batchnorm_equals_an_eval_batchnorm() -> None:
    bn = torch.nn.BatchNorm2d(8)
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
    bn.eval()
    x = torch.randn(2, 8, 5, 5)
    assert torch.allclose(FrozenBatchNorm2d.from_batchnorm(bn)(x), bn(x), atol=1e-6)


def test_max_pooling_reaches_a_single_hot_spot() -> None:
    model = randomised("resnet18")
    model.eval()
    blank = np.full((256, 256, 3), 255, np.uint8)
    spotted = blank.copy()
    spotted[200:232, 40:72] = (90, 40, 120)  # a small dark-purple cluster
    with torch.no_grad():
        features_blank = model.pool(model.features(preprocess(blank)))
        features_spot = model.pool(model.features(preprocess(spotted)))
    assert not torch.equal(features_blank, features_spot)


def test_preprocess_layout_and_normalisation() -> None:
    image = np.zeros((4, 6, 3), np.uint8)
    image[..., 0] = 255
    tensor = preprocess(image)
    assert tensor.shape == (1, 3, 4, 6) and tensor.dtype == torch.float32
    assert tensor[0, 0, 0, 0].item() == pytest.approx((1 - IMAGENET_MEAN[0]) / IMAGENET_STD[0])
    assert tensor[0, 1, 0, 0].item() == pytest.approx((0 - IMAGENET_MEAN[1]) / IMAGENET_STD[1])
    with pytest.raises(ValueError, match="uint8"):
        preprocess(np.zeros((4, 6, 3), np.float32))


def test_torchvision_weights_load_strictly_with_a_new_head(tmp_path: Path) -> None:
    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(reference.state_dict(), path)
    model = build_escnn("resnet18", weights=str(path))
    assert torch.equal(model.stem[0].weight, reference.conv1.weight)
    assert torch.equal(model.layer4[1].bn2.running_var, reference.layer4[1].bn2.running_var)
    assert model.head.weight.shape == (1, 512)


def test_pathstream_checkpoint_round_trip_and_version(tmp_path: Path) -> None:
    model = randomised("resnet18", seed=3)
    path = tmp_path / "escnn.pt"
    version = save_checkpoint(model, path)
    assert version == checkpoint_version(path) and version.startswith("escnn@sha256:")
    loaded = build_escnn("resnet18", weights=str(path))
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True)
    )


def test_wrong_weights_are_refused_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "escnn.pt"
    save_checkpoint(randomised("resnet18"), path)
    with pytest.raises(PathStreamError, match="resnet18 ESCNN, not resnet50") as info:
        build_escnn("resnet50", weights=str(path))
    assert info.value.code == ErrorCode.MODEL_UNAVAILABLE
    other = tmp_path / "resnet34.pth"
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), other)
    with pytest.raises(PathStreamError, match="do not fit a resnet18"):
        build_escnn("resnet18", weights=str(other))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(PathStreamError, match="Cannot read"):
        build_escnn("resnet18", weights=str(garbage))
    with pytest.raises(PathStreamError, match="Unknown ESCNN backbone"):
        build_escnn("vgg16")
