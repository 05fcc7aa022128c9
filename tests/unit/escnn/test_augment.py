"""Patch-based augmentation: views computed window by window agree with whole-image transforms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pathstream.services.escnn.model import preprocess
from pathstream.services.escnn.streaming import StreamingESCNN
from pathstream.services.escnn.tiles import ArraySource
from pathstream.services.escnn.training.augment import AffineView, ColourView
from tests.unit.escnn.conftest import randomised, tissue_image


def _whole(view: AffineView | ColourView) -> np.ndarray:
    return view.read(0, 0, view.height, view.width)


def _tiled(view: AffineView, step: int) -> np.ndarray:
    out = np.zeros((view.height, view.width, 3), np.uint8)
    for y in range(0, view.height, step):
        for x in range(0, view.width, step):
            h, w = min(step, view.height - y), min(step, view.width - x)
            out[y : y + h, x : x + w] = view.read(y, x, h, w)
    return out


def test_right_angles_and_mirroring_are_exact() -> None:
    image = tissue_image(97, 131, seed=1)
    source = ArraySource(image)
    assert np.array_equal(_whole(AffineView.rotation(source, 90)), np.rot90(image, 1))
    assert np.array_equal(_whole(AffineView.rotation(source, -90)), np.rot90(image, -1))
    assert np.array_equal(_whole(AffineView.rotation(source, 180)), np.rot90(image, 2))
    assert np.array_equal(_whole(AffineView.rotation(source, 0, flip=True)), image[:, ::-1])


def test_any_tiling_of_a_rotation_gives_the_same_image() -> None:
    image = tissue_image(300, 400, seed=2)
    view = AffineView.rotation(ArraySource(image), 33.0, flip=True)
    whole = _whole(view)
    tiled = _tiled(view, 64)
    difference = np.abs(whole.astype(int) - tiled.astype(int))
    assert difference.max() <= 1 and (difference > 0).mean() < 0.01
    assert view.read(0, 0, 1, 1)[0, 0].tolist() == [255, 255, 255], "the corners are glass"


def test_colour_transforms_must_keep_white_white() -> None:
    source = ArraySource(tissue_image(64, 64, seed=3))
    darker = ColourView(source, lambda p: np.where(p == 255, p, (p * 0.9).astype(np.uint8)))
    assert darker.read(0, 0, 8, 8).max() < 255
    with pytest.raises(ValueError, match="white"):
        ColourView(source, lambda p: (p * 0.9).astype(np.uint8))


def test_streaming_through_an_augmented_view_equals_the_materialised_image() -> None:
    model = randomised("resnet18").eval()
    image = tissue_image(700, 600, seed=4, white_fraction=0.3)
    view = AffineView.rotation(ArraySource(image), 90.0, flip=True)  # exact, so comparable bit for bit
    materialised = _whole(view)
    with torch.no_grad():
        reference = model(preprocess(materialised))[0]
    logit, _ = StreamingESCNN(model, tile_size=640).infer(view)
    assert abs(logit.item() - reference.item()) <= 1e-4 * abs(reference.item())
