"""The marrow classifiers' networks: torchvision architectures with a new class head.

Eckardt et al. compared ResNet-18/34/50/101/152, ResNeXt-50 32x4d / 101 32x8d,
Wide-ResNet-50/101, DenseNet-121/161/169/201, ShuffleNet v2 x0.5 / x1.0 and SqueezeNet 1.1, all
pre-trained on ImageNet. Every one of them is built here without weights (nothing is downloaded);
ImageNet weights come from a torchvision-format state-dict file on disk, whose 1000-class head is
left out because the marrow head has two or three classes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal, get_args

import torch
import torchvision
from torch import nn

from pathstream.backbones.model_files import read_torch_file
from pathstream.shared.errors import ErrorCode, PathStreamError

ArchitectureName = Literal[
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "wide_resnet50_2",
    "wide_resnet101_2",
    "densenet121",
    "densenet161",
    "densenet169",
    "densenet201",
    "shufflenet_v2_x0_5",
    "shufflenet_v2_x1_0",
    "squeezenet1_1",
]
ARCHITECTURES: tuple[str, ...] = get_args(ArchitectureName)
"""Every architecture name the marrow service accepts (torchvision's own names)."""

_HEAD_HINT = "Give the torchvision ImageNet weights (.pth state dict) of the chosen architecture."


def _constructor(name: str) -> Callable[..., nn.Module]:
    if name not in ARCHITECTURES:
        raise PathStreamError(
            ErrorCode.INVALID_CONFIGURATION,
            f"Unknown marrow architecture {name!r}.",
            hint="Choose one of: " + ", ".join(ARCHITECTURES) + ".",
        )
    constructor: Callable[..., nn.Module] = getattr(torchvision.models, name)
    return constructor


def head_prefix(architecture: str) -> str:
    """State-dict key prefix of the architecture's class head (`fc`, `classifier` or
    `classifier.1` for SqueezeNet's 1x1 convolution)."""
    if architecture.startswith("densenet"):
        return "classifier"
    if architecture.startswith("squeezenet"):
        return "classifier.1"
    return "fc"


def build_network(architecture: str, num_classes: int) -> nn.Module:
    """A randomly initialised `architecture` whose head outputs `num_classes` logits.

    Input: float N x 3 x H x W, ImageNet-normalised (see `pathstream.backbones.imagenet`); any H, W >= 64
    works because every listed architecture ends in adaptive pooling. Raises INVALID_CONFIGURATION for an
    unknown name or fewer than 2 classes.
    """
    if num_classes < 2:
        raise PathStreamError(
            ErrorCode.INVALID_CONFIGURATION,
            f"A marrow classifier needs at least 2 classes, got {num_classes}.",
            hint="Train a binary (MDS vs AML, MDS vs donor) or the 3-class model.",
        )
    network = _constructor(architecture)(weights=None)
    if architecture.startswith("squeezenet"):
        conv = nn.Conv2d(512, num_classes, kernel_size=1, bias=True)
        nn.init.normal_(conv.weight, mean=0.0, std=0.01)
        nn.init.zeros_(conv.bias)  # type: ignore[arg-type]
        head = network.classifier
        assert isinstance(head, nn.Sequential)
        head[1] = conv
        setattr(network, "num_classes", num_classes)  # noqa: B010 - keeps torchvision's attribute true
    elif architecture.startswith("densenet"):
        old = network.classifier
        assert isinstance(old, nn.Linear)
        network.classifier = nn.Linear(old.in_features, num_classes)
    else:
        old = network.fc
        assert isinstance(old, nn.Linear)
        network.fc = nn.Linear(old.in_features, num_classes)
    return network


def load_imagenet_weights(network: nn.Module, architecture: str, path: str | Path) -> int:
    """Copy a torchvision ImageNet state dict (as saved from `torchvision.models.<architecture>`)
    into `network`, every tensor except the 1000-class head. Returns the number of tensors loaded.

    Raises `PathStreamError(MODEL_UNAVAILABLE)` when the file is missing, unreadable, or does not
    fit the architecture (missing or mis-shaped tensors).
    """
    state = read_torch_file(path, "the ImageNet weights", _HEAD_HINT)
    if not isinstance(state, dict):
        raise PathStreamError(ErrorCode.MODEL_UNAVAILABLE, f"{path} is not a state dict.", hint=_HEAD_HINT)
    head = head_prefix(architecture) + "."
    own = network.state_dict()
    body = {k: v for k, v in own.items() if not k.startswith(head)}
    # torchvision's old DenseNet files spell "norm.1" as "norm1"; accept both.
    given = {_modern_densenet_key(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    missing = sorted(k for k in body if k not in given)
    misshaped = sorted(k for k in body if k in given and given[k].shape != body[k].shape)
    if missing or misshaped:
        few = ", ".join((missing + misshaped)[:4])
        raise PathStreamError(
            ErrorCode.MODEL_UNAVAILABLE,
            f"Weights {path} do not fit a {architecture}: {len(missing)} tensors missing, "
            f"{len(misshaped)} of the wrong shape (e.g. {few}).",
            hint=_HEAD_HINT,
        )
    network.load_state_dict({k: given[k] for k in body}, strict=False)
    return len(body)


def _modern_densenet_key(key: str) -> str:
    for old, new in ((".norm.1", ".norm1"), (".relu.1", ".relu1"), (".conv.1", ".conv1")):
        key = key.replace(old, new)
    for old, new in ((".norm.2", ".norm2"), (".relu.2", ".relu2"), (".conv.2", ".conv2")):
        key = key.replace(old, new)
    return key
