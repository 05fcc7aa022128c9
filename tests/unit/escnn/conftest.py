"""Small ESCNN models with non-trivial frozen statistics, for exactness tests on CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pathstream.services.escnn.model import EscnnModel, FrozenBatchNorm2d, build_escnn


def randomised(backbone: str, seed: int = 0) -> EscnnModel:
    """A model whose frozen BatchNorms have varied statistics and affine terms (not identities)."""
    torch.manual_seed(seed)
    model = build_escnn(backbone)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, FrozenBatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
        model.head.weight.normal_(0, 0.05)
    return model


@pytest.fixture(scope="module")
def resnet18() -> EscnnModel:
    return randomised("resnet18")


def tissue_image(height: int, width: int, seed: int, white_fraction: float = 0.0) -> np.ndarray:
    """Smooth random 'tissue' with a white (glass) band covering `white_fraction` of the width."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(60, 230, (height // 8 + 2, width // 8 + 2, 3)).astype(np.float32)
    image = np.kron(coarse, np.ones((8, 8, 1), np.float32))[:height, :width]
    image += rng.normal(0, 12, image.shape)
    image = np.clip(image, 0, 254).astype(np.uint8)
    white = int(width * white_fraction)
    if white:
        image[:, :white] = 255
    return image
