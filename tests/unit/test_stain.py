"""H&E stain jitter: glass stays white, stained pixels change within the paper's ranges."""

from __future__ import annotations

import numpy as np
import pytest

from pathstream.training.stain import HED_FROM_RGB_OD, StainJitter, StainTransform

H_AND_E = np.array([[[150, 60, 160], [230, 140, 190], [255, 255, 255], [90, 40, 120]]], np.uint8)


def test_white_stays_white_and_stain_changes() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        out = StainJitter().sample(rng)(H_AND_E)
        assert out.dtype == np.uint8 and out.shape == H_AND_E.shape
        assert (out[0, 2] == 255).all()
    changed = [not np.array_equal(StainJitter().sample(rng)(H_AND_E), H_AND_E) for _ in range(5)]
    assert all(changed)


def test_identity_transform_reproduces_the_image_closely() -> None:
    identity = StainTransform(stains=HED_FROM_RGB_OD.copy(), scale=np.ones(3))
    assert np.abs(identity(H_AND_E).astype(int) - H_AND_E.astype(int)).max() <= 1


def test_stain_vectors_turn_by_at_most_the_configured_angle() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        drawn = StainJitter(max_angle_deg=10).sample(rng)
        cosines = np.sum(drawn.stains * HED_FROM_RGB_OD, axis=1)
        assert np.degrees(np.arccos(np.clip(cosines, -1, 1))).max() <= 10 + 1e-6
        assert ((drawn.scale[:2] >= 0.5) & (drawn.scale[:2] <= 1.5)).all()


def test_non_rgb_input_is_refused() -> None:
    with pytest.raises(ValueError, match="uint8"):
        StainJitter().sample(np.random.default_rng(0))(np.zeros((4, 4), np.uint8))


def test_fast_path_matches_the_optical_density_definition() -> None:
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    image[:8] = 255
    drawn = StainJitter().sample(rng)
    od = -np.log((image.astype(np.float64) + 1.0) / 256.0)
    concentrations = od @ np.linalg.inv(HED_FROM_RGB_OD) * drawn.scale
    expected = np.clip(np.rint(256.0 * np.exp(-np.maximum(concentrations @ drawn.stains, 0.0)) - 1.0), 0, 255)
    out = drawn(image[:, ::-1])[:, ::-1]  # a non-contiguous view is accepted too
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1
    assert (out[:8] == 255).all()
