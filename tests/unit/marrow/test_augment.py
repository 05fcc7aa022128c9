"""Marrow augmentation: identity at strength 0, bounded and reproducible above it; balanced epochs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pathstream.services.marrow.training.augment import Augmentation, balanced_order


def _image(size: int = 48, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def test_strength_zero_only_resizes() -> None:
    image = _image()
    rng = np.random.default_rng(0)
    assert np.array_equal(Augmentation(48, 0.0)(image, rng), image)
    resized = Augmentation(32, 0.0)(_image(64), rng)
    expected = cv2.resize(_image(64), (32, 32), interpolation=cv2.INTER_LINEAR)
    assert resized.shape == (32, 32, 3)
    assert np.abs(resized.astype(int) - expected.astype(int)).mean() < 1.0


def test_output_size_type_and_reproducibility() -> None:
    augment = Augmentation(40, 1.0)
    image = _image(60)
    first = augment(image, np.random.default_rng(5))
    assert first.shape == (40, 40, 3)
    assert first.dtype == np.uint8
    assert np.array_equal(first, augment(image, np.random.default_rng(5)))
    assert not np.array_equal(first, augment(image, np.random.default_rng(6)))


def test_colour_shift_is_bounded_by_strength() -> None:
    flat = np.full((16, 16, 3), (180, 90, 160), np.uint8)
    hue = cv2.cvtColor(flat, cv2.COLOR_RGB2HSV)[0, 0].astype(int)
    for seed in range(20):
        shifted = Augmentation(16, 1.0).colour_shift(flat, np.random.default_rng(seed))
        got = cv2.cvtColor(shifted, cv2.COLOR_RGB2HSV)[0, 0].astype(int)
        assert min(abs(got[0] - hue[0]), 180 - abs(got[0] - hue[0])) <= 7  # 12 degrees + rounding
        assert abs(got[2] - hue[2]) <= 0.15 * hue[2] + 2
    assert np.array_equal(Augmentation(16, 0.0).colour_shift(flat, np.random.default_rng(0)), flat)


def _symmetries(image: np.ndarray) -> list[np.ndarray]:
    turns = [np.rot90(image, k) for k in range(4)]
    return turns + [np.fliplr(t) for t in turns]


def test_the_affine_includes_all_flips_and_quarter_turns() -> None:
    # At a vanishing strength the crop, rotation jitter and zoom vanish, but a smear has no up or
    # left, so the 8 symmetries of the square stay: each output is one of them.
    image = _image(32)
    seen = set()
    for seed in range(40):
        out = Augmentation(32, 1e-9)(image, np.random.default_rng(seed)).astype(int)
        distances = [np.abs(out - s.astype(int)).max() for s in _symmetries(image)]
        assert min(distances) <= 1
        seen.add(int(np.argmin(distances)))
    assert len(seen) == 8


def test_strength_outside_unit_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="strength"):
        Augmentation(32, 1.5)


def test_balanced_order_gives_every_class_the_largest_count() -> None:
    labels = np.array([0] * 12 + [1] * 3 + [2] * 5)
    order = balanced_order(labels, np.random.default_rng(1))
    counts = np.bincount(labels[order])
    assert list(counts) == [12, 12, 12]
    assert set(order.tolist()) == set(range(len(labels)))  # every image at least once
    assert np.array_equal(order, balanced_order(labels, np.random.default_rng(1)))


def test_balanced_order_of_balanced_classes_is_a_permutation() -> None:
    labels = np.array([0, 1, 0, 1])
    assert sorted(balanced_order(labels, np.random.default_rng(0)).tolist()) == [0, 1, 2, 3]
