"""Marrow classifier checkpoints and inference: which task, which classes, which input, which weights.

A checkpoint (`pathstream train marrow` writes it) is a dict with `format` "pathstream-marrow", the
`architecture`, the `task` (binary MDS vs AML, binary MDS vs donor, or 3-class), the `input_size`
an ROI is resized to, the `mpp` the ROIs were seen at, and the torchvision-layout `state_dict`.
`MarrowClassifier` turns ROI images into class probabilities; its `model_version` (the file's hash)
goes into every event it contributes to.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from pathstream.backbones.devices import resolve_device
from pathstream.backbones.imagenet import normalise_uint8
from pathstream.backbones.model_files import model_version, read_torch_file
from pathstream.services.marrow.architectures import ARCHITECTURES, build_network
from pathstream.services.marrow.rgb import require_rgb
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.events import MarrowClass
from pathstream.training.state import save_state_atomically

CHECKPOINT_FORMAT = "pathstream-marrow"
_HINT = "Give a checkpoint written by `pathstream train marrow` (its best or exported model)."


class MarrowTask(StrEnum):
    """What a marrow model tells apart (Eckardt et al. trained the two binary tasks; 3-class is ours)."""

    MDS_VS_AML = "mds_vs_aml"
    MDS_VS_DONOR = "mds_vs_donor"
    MDS_AML_DONOR = "mds_aml_donor"

    @property
    def classes(self) -> tuple[MarrowClass, ...]:
        """Output classes in logit order; in binary tasks MDS is first and is the positive class."""
        return {
            MarrowTask.MDS_VS_AML: (MarrowClass.MDS, MarrowClass.AML),
            MarrowTask.MDS_VS_DONOR: (MarrowClass.MDS, MarrowClass.DONOR),
            MarrowTask.MDS_AML_DONOR: (MarrowClass.MDS, MarrowClass.AML, MarrowClass.DONOR),
        }[self]


@dataclass(frozen=True)
class MarrowModelSpec:
    """Everything besides the weights that inference needs to reproduce training's view of an ROI."""

    architecture: str
    task: MarrowTask
    input_size: int = 384
    """ROI side (px) the network sees: the ROI is resized (area interpolation) to a square of this."""
    mpp: float = 0.2
    """um/px of the ROIs the model was trained on (before resizing)."""

    def to_json(self) -> dict[str, Any]:
        """Plain dict for the checkpoint."""
        values = asdict(self)
        values["task"] = self.task.value
        return values

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> MarrowModelSpec:
        """Inverse of `to_json`; raises KeyError / ValueError on a malformed dict."""
        spec = cls(
            architecture=str(values["architecture"]),
            task=MarrowTask(values["task"]),
            input_size=int(values["input_size"]),
            mpp=float(values["mpp"]),
        )
        if spec.architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {spec.architecture}")
        return spec


def resize_roi(image: np.ndarray, size: int) -> np.ndarray:
    """uint8 H x W x 3 RGB ROI -> uint8 size x size x 3 (area interpolation when shrinking).

    Raises `PathStreamError(INVALID_EVENT)` for anything that is not a non-empty RGB uint8 image.
    """
    require_rgb(image, "A marrow ROI")
    shrinking = image.shape[0] > size or image.shape[1] > size
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation)


def to_batch(images: list[np.ndarray], size: int) -> torch.Tensor:
    """ROIs (uint8 H x W x 3 RGB, any sizes) -> uint8 N x 3 x size x size tensor."""
    stacked = np.stack([resize_roi(image, size) for image in images])
    return torch.from_numpy(stacked).permute(0, 3, 1, 2).contiguous()


def save_marrow_checkpoint(
    network: nn.Module, spec: MarrowModelSpec, path: str | Path, extra: dict[str, Any] | None = None
) -> str:
    """Write a marrow checkpoint atomically; returns its model version (`marrow@sha256:<16 hex>`)."""
    save_state_atomically(
        {
            "format": CHECKPOINT_FORMAT,
            "spec": spec.to_json(),
            "state_dict": {k: v.detach().cpu() for k, v in network.state_dict().items()},
            **(extra or {}),
        },
        path,
    )
    return model_version("marrow", path)


def read_marrow_checkpoint(path: str | Path) -> tuple[MarrowModelSpec, dict[str, torch.Tensor]]:
    """(spec, state dict) of a marrow checkpoint; raises `PathStreamError(MODEL_UNAVAILABLE)`."""
    loaded = read_torch_file(path, "the marrow checkpoint", _HINT)
    if not isinstance(loaded, dict) or loaded.get("format") != CHECKPOINT_FORMAT:
        raise PathStreamError(
            ErrorCode.MODEL_UNAVAILABLE, f"{path} is not a PathStream marrow checkpoint.", hint=_HINT
        )
    try:
        spec = MarrowModelSpec.from_json(loaded["spec"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PathStreamError(
            ErrorCode.MODEL_UNAVAILABLE, f"Marrow checkpoint {path} has no valid spec ({exc}).", hint=_HINT
        ) from None
    return spec, loaded["state_dict"]


class MarrowClassifier:
    """A trained marrow network on a device: ROI images in, class probabilities out."""

    def __init__(
        self, network: nn.Module, spec: MarrowModelSpec, version: str, device: torch.device | str = "cpu"
    ) -> None:
        self.device = torch.device(device)
        self.network = network.to(self.device).eval()
        self.spec = spec
        self.model_version = version

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto") -> MarrowClassifier:
        """Load a marrow checkpoint onto `device` ("auto": CUDA when present, else CPU)."""
        spec, state = read_marrow_checkpoint(path)
        network = build_network(spec.architecture, len(spec.task.classes))
        try:
            network.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise PathStreamError(
                ErrorCode.MODEL_UNAVAILABLE,
                f"Weights in {path} do not fit a {spec.architecture}: {str(exc).splitlines()[0]}",
                hint=_HINT,
            ) from None
        return cls(network, spec, model_version("marrow", path), resolve_device(device))

    @property
    def classes(self) -> tuple[MarrowClass, ...]:
        """The classes of the probability columns."""
        return self.spec.task.classes

    @torch.inference_mode()
    def predict_batch(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 (or 0..255 float) N x 3 x S x S RGB, S = `spec.input_size` -> float32 N x C
        softmax probabilities on the CPU, columns in `classes` order."""
        logits = self.network(normalise_uint8(batch.to(self.device)))
        return torch.softmax(logits.float(), dim=1).cpu()

    def probabilities(self, images: list[np.ndarray], batch_size: int = 8) -> np.ndarray:
        """ROIs (uint8 H x W x 3 RGB at about `spec.mpp` um/px, any size; each is resized to the
        input size) -> float64 N x C probabilities, columns in `classes` order."""
        out = []
        for start in range(0, len(images), batch_size):
            out.append(self.predict_batch(to_batch(images[start : start + batch_size], self.spec.input_size)))
        return torch.cat(out).double().numpy() if out else np.zeros((0, len(self.classes)))
