"""The LN detector network: DeepLabv3+ on a torchvision ResNet, two classes (background, lymph node).

Huang et al. (2022), Methods "LN detector", uses DeepLabv3+ with a ResNet50 backbone at 1.25x. The encoder is
a ResNet whose last stage is dilated instead of strided (output stride 16), followed by atrous
spatial pyramid pooling (rates 6, 12, 18 and image pooling); the decoder upsamples the ASPP output
4x, joins it with the stride-4 features of the first ResNet stage (the low-level skip), refines with
two 3x3 convolutions and upsamples 4x to the input size. `DetectorConfig` scales the widths down
for CPU tests; the defaults are the paper's network.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models.segmentation.deeplabv3 import ASPP

from pathstream.backbones.model_files import model_version, read_torch_file
from pathstream.backbones.resnets import compact_resnet
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.training.state import save_state_atomically

BACKBONES: dict[str, Callable[..., torchvision.models.ResNet]] = {
    "resnet18": torchvision.models.resnet18,
    "resnet34": torchvision.models.resnet34,
    "resnet50": torchvision.models.resnet50,
    "resnet101": torchvision.models.resnet101,
    "compact16": lambda weights=None: compact_resnet(16),
    "compact32": lambda weights=None: compact_resnet(32),
}
"""Detector encoders; the compact ones (see `pathstream.backbones.resnets`) are for CPU demos and tests."""
CHECKPOINT_FORMAT = "pathstream-detector"
NUM_CLASSES = 2
LN_CLASS = 1
_HINT = "Give a checkpoint written by `pathstream train detector` (PATHSTREAM_DETECTOR_CHECKPOINT)."


@dataclass(frozen=True)
class DetectorConfig:
    """Architecture of a detector; stored in every checkpoint so it rebuilds itself."""

    backbone: str = "resnet50"
    aspp_channels: int = 256
    decoder_channels: int = 256
    low_level_channels: int = 48
    atrous_rates: tuple[int, int, int] = (6, 12, 18)

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise PathStreamError(
                ErrorCode.INVALID_CONFIGURATION,
                f"Unknown detector backbone {self.backbone!r}.",
                hint=f"Use one of {', '.join(BACKBONES)}.",
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DetectorConfig:
        """Rebuild from `asdict` output (tuples come back from lists)."""
        values = dict(data)
        if "atrous_rates" in values:
            values["atrous_rates"] = tuple(values["atrous_rates"])
        return cls(**values)


def _dilate_last_stage(stage: nn.Sequential) -> None:
    """Turn a ResNet stage's stride 2 into dilation 2 (output stride 32 -> 16), as DeepLab does.

    The first block keeps dilation 1 and loses its stride; every later 3x3 convolution gets
    dilation 2, which keeps each later layer's receptive field what it was with the stride.
    """
    for index, block in enumerate(stage):
        for module in block.modules():
            if not isinstance(module, nn.Conv2d):
                continue
            if module.stride == (2, 2):
                module.stride = (1, 1)
            if index > 0 and module.kernel_size == (3, 3):
                module.dilation, module.padding = (2, 2), (2, 2)


class DeepLabV3Plus(nn.Module):
    """DeepLabv3+ segmentation network: float N x 3 x H x W (ImageNet-normalised) -> N x 2 x H x W logits."""

    def __init__(self, config: DetectorConfig | None = None) -> None:
        super().__init__()
        self.config = config or DetectorConfig()
        resnet = BACKBONES[self.config.backbone](weights=None)
        _dilate_last_stage(resnet.layer4)
        self.stem = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            resnet.layer1,
            resnet.layer2,
            resnet.layer3,
            resnet.layer4,
        )
        high_channels = resnet.fc.in_features
        low_channels = high_channels // 8  # layer1's width: 64 (basic blocks) or 256 (bottlenecks)
        cfg = self.config
        self.aspp = ASPP(high_channels, list(cfg.atrous_rates), cfg.aspp_channels)
        self.low_level = nn.Sequential(
            nn.Conv2d(low_channels, cfg.low_level_channels, 1, bias=False),
            nn.BatchNorm2d(cfg.low_level_channels),
            nn.ReLU(inplace=True),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(
                cfg.aspp_channels + cfg.low_level_channels, cfg.decoder_channels, 3, padding=1, bias=False
            ),
            nn.BatchNorm2d(cfg.decoder_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(cfg.decoder_channels, cfg.decoder_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(cfg.decoder_channels),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Conv2d(cfg.decoder_channels, NUM_CLASSES, 1)

    def backbone_modules(self) -> dict[str, nn.Module]:
        """The ResNet parts, under torchvision's own names, for loading ImageNet weights."""
        return {
            "conv1": self.stem[0],
            "bn1": self.stem[1],
            "layer1": self.layer1,
            "layer2": self.layer2,
            "layer3": self.layer3,
            "layer4": self.layer4,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """float N x 3 x H x W -> float N x 2 x H x W class logits (channel 1 = lymph node)."""
        size = x.shape[-2:]
        low = self.layer1(self.stem(x))
        high = self.aspp(self.layer4(self.layer3(self.layer2(low))))
        skip = self.low_level(low)
        high = F.interpolate(high, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        logits = self.classifier(self.decoder(torch.cat([high, skip], dim=1)))
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


def build_detector(config: DetectorConfig | None = None, weights: str | Path | None = None) -> DeepLabV3Plus:
    """A detector network; `weights` loads a PathStream detector checkpoint (its own config wins
    over `config`). Never downloads anything."""
    if weights is None:
        return DeepLabV3Plus(config)
    checkpoint = read_checkpoint(weights)
    model = DeepLabV3Plus(DetectorConfig.from_dict(checkpoint["config"]))
    _load_strict(model, checkpoint["state_dict"], weights)
    return model


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a detector checkpoint written by `save_checkpoint`; raises MODEL_UNAVAILABLE otherwise."""
    loaded = read_torch_file(path, "the detector checkpoint", _HINT)
    if not isinstance(loaded, dict) or loaded.get("format") != CHECKPOINT_FORMAT:
        raise PathStreamError(
            ErrorCode.MODEL_UNAVAILABLE, f"{path} is not a PathStream detector checkpoint.", hint=_HINT
        )
    try:
        DetectorConfig.from_dict(loaded["config"])
    except (KeyError, TypeError) as exc:
        raise PathStreamError(
            ErrorCode.MODEL_UNAVAILABLE,
            f"Detector checkpoint {path} has no valid config ({exc}).",
            hint=_HINT,
        ) from None
    return loaded


def _load_strict(model: nn.Module, state: dict[str, torch.Tensor], path: str | Path) -> None:
    expected, given = set(model.state_dict()), set(state)
    missing, unexpected = sorted(expected - given), sorted(given - expected)
    if missing or unexpected:
        raise PathStreamError(
            ErrorCode.MODEL_UNAVAILABLE,
            f"Weights {path} do not fit the detector: missing {_few(missing)}; "
            f"unexpected {_few(unexpected)}.",
            hint=_HINT,
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise PathStreamError(
            ErrorCode.MODEL_UNAVAILABLE,
            f"Weights {path} do not fit the detector: {str(exc).splitlines()[0]}",
            hint=_HINT,
        ) from None


def _few(keys: list[str]) -> str:
    return (", ".join(keys[:5]) + (" ..." if len(keys) > 5 else "")) if keys else "none"


def load_backbone_weights(model: DeepLabV3Plus, path: str | Path) -> None:
    """Initialise the encoder from a torchvision ResNet state dict (ImageNet weights on disk).

    Every backbone key must be present with the right shape; the ResNet's `fc` is ignored.
    Raises `PathStreamError(MODEL_UNAVAILABLE)` otherwise.
    """
    state = read_torch_file(path, "the backbone weights", "Give a torchvision ResNet state dict (.pth).")
    if not isinstance(state, dict):
        raise PathStreamError(
            ErrorCode.MODEL_UNAVAILABLE,
            f"{path} is not a ResNet state dict.",
            hint="Give a torchvision .pth.",
        )
    for name, module in model.backbone_modules().items():
        part = {k[len(name) + 1 :]: v for k, v in state.items() if k.startswith(name + ".")}
        try:
            module.load_state_dict(part, strict=True)
        except RuntimeError as exc:
            raise PathStreamError(
                ErrorCode.MODEL_UNAVAILABLE,
                f"Backbone weights {path} do not fit a {model.config.backbone} ({name}): "
                f"{str(exc).splitlines()[0]}",
                hint="Give the torchvision weights of the configured backbone.",
            ) from None


def save_checkpoint(model: DeepLabV3Plus, path: str | Path, extra: dict[str, Any] | None = None) -> str:
    """Write a PathStream detector checkpoint (config + weights + `extra`); returns its model version."""
    save_state_atomically(
        {
            "format": CHECKPOINT_FORMAT,
            "config": asdict(model.config),
            "state_dict": model.state_dict(),
            **(extra or {}),
        },
        path,
    )
    return checkpoint_version(path)


def checkpoint_version(path: str | Path) -> str:
    """The detector model version recorded in events: `detector@sha256:<16 hex>`."""
    return model_version("detector", path)
