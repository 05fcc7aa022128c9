"""The ESCNN classifier: a torchvision ResNet with frozen BatchNorm, global max pooling, one logit.

Huang et al. (2022), "ESCNN for gastric LN metastasis identification": batch norm stays
in evaluation mode (a fixed affine map whose gamma and beta remain trainable), because streaming
never sees the whole image at once; and global *max* pooling replaces average pooling, because a
metastasis may be a few cells in a gigapixel image. `EscnnModel.forward` on a whole image is the
reference computation the streaming engine must reproduce.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock

from pathstream.backbones.imagenet import image_to_tensor
from pathstream.backbones.model_files import model_version, read_torch_file
from pathstream.backbones.resnets import compact_resnet
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.training.state import save_state_atomically

BACKBONES: dict[str, Callable[..., torchvision.models.ResNet]] = {
    "resnet18": torchvision.models.resnet18,
    "resnet34": torchvision.models.resnet34,
    "resnet50": torchvision.models.resnet50,
    "resnet101": torchvision.models.resnet101,
    "resnet152": torchvision.models.resnet152,
    "compact16": lambda weights=None: compact_resnet(16),
}
"""ESCNN backbones. `compact16` (see `compact_resnet`) is for CPU tests and experiments."""

CHECKPOINT_FORMAT = "pathstream-escnn"


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm fixed to its running statistics in every mode: y = x * scale + shift.

    gamma (`weight`) and beta (`bias`) stay trainable parameters; running mean and variance are
    buffers that training never changes. State-dict keys match `nn.BatchNorm2d`, so torchvision
    checkpoints load unchanged.
    """

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.running_mean: torch.Tensor
        self.running_var: torch.Tensor
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    @classmethod
    def from_batchnorm(cls, bn: nn.BatchNorm2d) -> FrozenBatchNorm2d:
        """A frozen copy of `bn` with the same parameters and statistics."""
        frozen = cls(bn.num_features, bn.eps)
        if bn.running_mean is None or bn.running_var is None:
            raise ValueError("a BatchNorm without running statistics cannot be frozen")
        with torch.no_grad():
            frozen.weight.copy_(bn.weight)
            frozen.bias.copy_(bn.bias)
            frozen.running_mean.copy_(bn.running_mean)
            frozen.running_var.copy_(bn.running_var)
        return frozen

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * torch.rsqrt(self.running_var + self.eps)
        shift = self.bias - self.running_mean * scale
        return x * scale.view(1, -1, 1, 1).to(x.dtype) + shift.view(1, -1, 1, 1).to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}, eps={self.eps}"


def _freeze_batchnorm(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, FrozenBatchNorm2d.from_batchnorm(child))
        else:
            _freeze_batchnorm(child)


class EscnnModel(nn.Module):
    """ResNet features (stride 32) -> global max pool -> one logit.

    `features(x)` gives the pre-pool map (N, C, H/32, W/32); `head` is the final linear layer, so
    the CAM of a position is `head.weight @ feature + head.bias`.
    """

    def __init__(self, backbone: str) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise PathStreamError(
                ErrorCode.INVALID_CONFIGURATION,
                f"Unknown ESCNN backbone {backbone!r}.",
                hint=f"Choose one of {', '.join(BACKBONES)}.",
            )
        self.backbone = backbone
        resnet = BACKBONES[backbone](weights=None)
        _freeze_batchnorm(resnet)
        self.stem = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            resnet.layer1,
            resnet.layer2,
            resnet.layer3,
            resnet.layer4,
        )
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.head = nn.Linear(resnet.fc.in_features, 1)

    @property
    def channels(self) -> int:
        """Channels of the pre-pool feature map."""
        return self.head.in_features

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """float N x 3 x H x W (normalised) -> pre-pool feature map N x C x ~H/32 x ~W/32."""
        x = self.stem(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """float N x 3 x H x W (normalised, see `preprocess`) -> logits N x 1."""
        pooled = self.pool(self.features(x)).flatten(1)
        return self.head(pooled)

    def cam(self, x: torch.Tensor) -> torch.Tensor:
        """Class activation map: sigmoid(head(feature at each position)), N x H/32 x W/32."""
        feature_map = self.features(x)
        return torch.sigmoid(
            torch.einsum("nchw,c->nhw", feature_map, self.head.weight[0]) + self.head.bias[0]
        )


# torchvision names -> EscnnModel names (the ResNet's stem is regrouped into one Sequential).
_TORCHVISION_RENAMES = {"conv1.": "stem.0.", "bn1.": "stem.1.", "fc.": "head."}


def _from_torchvision_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    renamed = {}
    for key, value in state.items():
        for old, new in _TORCHVISION_RENAMES.items():
            if key.startswith(old):
                key = new + key[len(old) :]
                break
        renamed[key] = value
    return renamed


def checkpoint_version(path: str | Path) -> str:
    """The model version recorded with every prediction: `escnn@sha256:<first 16 hex of file>`."""
    return model_version("escnn", path)


def load_weights(model: EscnnModel, path: str | Path) -> None:
    """Load a PathStream ESCNN checkpoint, or a torchvision ResNet state dict, with strict keys.

    A PathStream checkpoint (`{"format": "pathstream-escnn", "backbone", "state_dict"}`) must
    match the model exactly. A torchvision checkpoint must match every backbone key; its 1000-class
    `fc` is not an ESCNN head, so the head keeps its initialisation. Any other mismatch raises
    `PathStreamError(MODEL_UNAVAILABLE)` naming the keys.
    """
    loaded: Any = read_torch_file(
        path,
        "the ESCNN weights",
        "Give a checkpoint written by `pathstream train escnn` or a torchvision ResNet state dict.",
    )
    if isinstance(loaded, dict) and loaded.get("format") == CHECKPOINT_FORMAT:
        if loaded.get("backbone") != model.backbone:
            raise PathStreamError(
                ErrorCode.MODEL_UNAVAILABLE,
                f"Checkpoint {path} is a {loaded.get('backbone')} ESCNN, not {model.backbone}.",
                hint="Build the model with the checkpoint's backbone.",
            )
        state, allow_new_head = loaded["state_dict"], False
    elif isinstance(loaded, dict) and all(isinstance(v, torch.Tensor) for v in loaded.values()):
        state = _from_torchvision_keys(loaded)
        allow_new_head = state.get("head.weight") is not None and state["head.weight"].shape[0] != 1
        if allow_new_head:
            state = {k: v for k, v in state.items() if not k.startswith("head.")}
    else:
        raise PathStreamError(
            ErrorCode.MODEL_UNAVAILABLE,
            f"{path} is neither a PathStream ESCNN checkpoint nor a ResNet state dict.",
            hint="Give a checkpoint written by `pathstream train escnn` or a torchvision ResNet state dict.",
        )
    expected = set(model.state_dict())
    missing = sorted(expected - set(state) - ({"head.weight", "head.bias"} if allow_new_head else set()))
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:

        def few(keys: list[str]) -> str:
            return ", ".join(keys[:5]) + (" ..." if len(keys) > 5 else "") if keys else "none"

        raise PathStreamError(
            ErrorCode.MODEL_UNAVAILABLE,
            f"Weights {path} do not fit a {model.backbone} ESCNN: missing {few(missing)}; "
            f"unexpected {few(unexpected)}.",
            hint="Check the backbone (resnet18/34/50/...) the weights were trained for.",
        )
    try:
        model.load_state_dict(state, strict=not allow_new_head)
    except RuntimeError as exc:  # shapes that do not fit
        raise PathStreamError(
            ErrorCode.MODEL_UNAVAILABLE,
            f"Weights {path} do not fit a {model.backbone} ESCNN: {str(exc).splitlines()[0]}",
            hint="Check the backbone the weights were trained for.",
        ) from None


def build_escnn(backbone: str = "resnet50", weights: str | None = None) -> EscnnModel:
    """An ESCNN model; `weights` loads a checkpoint (see `load_weights`). Never downloads."""
    model = EscnnModel(backbone)
    if weights is not None:
        load_weights(model, weights)
    return model


def save_checkpoint(model: EscnnModel, path: str | Path, extra: dict[str, Any] | None = None) -> str:
    """Write a PathStream checkpoint (whole or not at all); returns its model version
    (`checkpoint_version`)."""
    save_state_atomically(
        {
            "format": CHECKPOINT_FORMAT,
            "backbone": model.backbone,
            "state_dict": model.state_dict(),
            **(extra or {}),
        },
        Path(path),
    )
    return checkpoint_version(path)


def preprocess(image: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 H x W x 3 RGB -> float32 1 x 3 x H x W: /255, then ImageNet mean/std per channel."""
    return image_to_tensor(image, device)


@torch.no_grad()
def calibrate_batchnorm(model: EscnnModel, tiles: list[torch.Tensor]) -> None:
    """Set every frozen BatchNorm's statistics to those of its input on `tiles` (normalised float
    1 x 3 x H x W), in network order, so that a model trained from scratch starts with unit-scale
    activations (with frozen BatchNorm nothing else would normalise them). Then zero the last
    BatchNorm scale of every residual block, so that each block starts as the identity (Goyal et
    al. 2017). For models started from pretrained weights this is not used: their statistics are
    the pretrained ones."""
    sums: dict[FrozenBatchNorm2d, list[torch.Tensor]] = {}
    handles = []

    def collect(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        assert isinstance(module, FrozenBatchNorm2d)
        x = inputs[0].transpose(0, 1).reshape(inputs[0].shape[1], -1)
        stats = sums.setdefault(module, [torch.zeros(x.shape[0]), torch.zeros(x.shape[0]), torch.zeros(1)])
        stats[0] += x.sum(1).cpu()
        stats[1] += (x * x).sum(1).cpu()
        stats[2] += x.shape[1]

    # Layer by layer: each layer's statistics are measured with the earlier layers calibrated.
    order = [m for m in model.modules() if isinstance(m, FrozenBatchNorm2d)]
    for layer in order:
        handle = layer.register_forward_pre_hook(collect)
        handles.append(handle)
        for tile in tiles:
            model.features(tile)
        handle.remove()
        total, squares, count = sums[layer]
        mean = total / count
        layer.running_mean.copy_(mean)
        layer.running_var.copy_((squares / count - mean * mean).clamp_min(1e-6))
    for module in model.modules():
        if isinstance(module, BasicBlock):
            nn.init.zeros_(module.bn2.weight)
        elif isinstance(module, torchvision.models.resnet.Bottleneck):
            nn.init.zeros_(module.bn3.weight)
