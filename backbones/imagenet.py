"""ImageNet input normalisation: the one input convention of every torchvision-format model here.

ESCNN, the LN detector and the marrow classifiers all load ImageNet-format weights, so all of them
see pixels scaled to [0, 1] and standardised with ImageNet's channel statistics.
"""

from __future__ import annotations

import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalisation(device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """ImageNet mean and std as 1 x 3 x 1 x 1 float32 tensors on `device`."""
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    return mean, std


def normalise_uint8(batch: torch.Tensor) -> torch.Tensor:
    """uint8 (or 0..255 float) N x 3 x H x W RGB -> float32 N x 3 x H x W, /255 then ImageNet mean/std."""
    mean, std = normalisation(batch.device)
    return (batch.float() / 255.0 - mean) / std


def image_to_tensor(image: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 H x W x 3 RGB -> float32 1 x 3 x H x W on `device`, normalised (see `normalise_uint8`).

    Raises ValueError for anything but a uint8 H x W x 3 array.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 H x W x 3 RGB image, got {image.dtype} {image.shape}")
    tensor = torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1).unsqueeze(0)
    return normalise_uint8(tensor)
