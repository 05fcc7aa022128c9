"""Occlusion sensitivity maps find the one region a model relies on, batched or not."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from pathstream.services.marrow.occlusion import (
    OcclusionConfig,
    PredictBatch,
    occlusion_sensitivity,
    overlay_image,
    overlay_png,
    write_overlay_png,
)
from pathstream.shared.errors import ErrorCode, PathStreamError

SIZE = 64
BACKGROUND = (226, 226, 232)  # smear-plasma-like, no red excess
SIGNAL = (slice(8, 26), slice(38, 56))  # rows, cols: 18 x 18 px, the only red area


class Redness(nn.Module):
    """Two-class model whose class-0 logit is the image's mean red excess max(R - G, 0): only
    red pixels carry evidence, so only the red region matters."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        excess = torch.relu(x[:, 0] - x[:, 1]).mean(dim=(1, 2)) / 255.0
        return torch.stack([30.0 * excess, torch.zeros_like(excess)], dim=1)


def _predict(model: nn.Module) -> PredictBatch:
    @torch.inference_mode()
    def predict_batch(batch: torch.Tensor) -> torch.Tensor:
        return torch.softmax(model(batch.float()), dim=1)

    return predict_batch


def _image() -> np.ndarray:
    image = np.empty((SIZE, SIZE, 3), np.uint8)
    image[:] = BACKGROUND
    image[SIGNAL] = (210, 60, 90)
    return image


def test_the_map_highlights_only_the_region_the_model_uses() -> None:
    config = OcclusionConfig(occluder_px=8, stride_px=2, batch_size=64)
    importance = occlusion_sensitivity(_predict(Redness()), _image(), 0, config)
    assert importance.shape == (SIZE, SIZE) and importance.dtype == np.float32
    assert importance.min() == 0.0 and importance.max() == pytest.approx(1.0)
    inside = np.zeros((SIZE, SIZE), bool)
    inside[SIGNAL] = True
    high = importance > 0.5
    assert high.sum() > 0.3 * inside.sum()
    assert (high & inside).sum() / high.sum() > 0.9
    assert importance[inside].mean() > 5 * importance[~inside].mean()


def test_batching_does_not_change_the_map() -> None:
    predict = _predict(Redness())
    one = occlusion_sensitivity(
        predict, _image(), 0, OcclusionConfig(occluder_px=12, stride_px=4, batch_size=1)
    )
    many = occlusion_sensitivity(
        predict, _image(), 0, OcclusionConfig(occluder_px=12, stride_px=4, batch_size=7)
    )
    np.testing.assert_allclose(one, many, atol=1e-6)


def test_copies_run_in_batches_of_the_configured_size() -> None:
    sizes: list[int] = []
    predict = _predict(Redness())

    def counting(batch: torch.Tensor) -> torch.Tensor:
        sizes.append(batch.shape[0])
        return predict(batch)

    occlusion_sensitivity(counting, _image(), 0, OcclusionConfig(occluder_px=16, stride_px=16, batch_size=5))
    # 4 x 4 placements (0, 16, 32, 48) after the one unoccluded baseline image.
    assert sizes == [1, 5, 5, 5, 1]


def test_a_model_that_ignores_the_image_gives_an_all_zero_map() -> None:
    def constant(batch: torch.Tensor) -> torch.Tensor:
        return torch.tensor([[0.7, 0.3]]).repeat(batch.shape[0], 1)

    importance = occlusion_sensitivity(constant, _image(), 0, OcclusionConfig(occluder_px=16, stride_px=8))
    assert not importance.any()
    assert np.array_equal(overlay_image(_image(), importance), _image())


def test_any_roi_size_is_resized_to_the_input_size_first() -> None:
    roi = cv2.resize(_image(), (150, 120), interpolation=cv2.INTER_NEAREST)
    importance = occlusion_sensitivity(
        _predict(Redness()),
        roi,
        0,
        OcclusionConfig(occluder_px=8, stride_px=4),
        input_size=SIZE,
    )
    assert importance.shape == (SIZE, SIZE)
    assert importance[SIGNAL].mean() > 0.5


def test_overlay_png_has_the_roi_size_and_marks_only_high_importance() -> None:
    roi = cv2.resize(_image(), (150, 120), interpolation=cv2.INTER_NEAREST)
    importance = np.zeros((SIZE, SIZE), np.float32)
    importance[SIGNAL] = 1.0
    png = cv2.imdecode(np.frombuffer(overlay_png(roi, importance), np.uint8), cv2.IMREAD_COLOR)
    assert png is not None
    decoded = cv2.cvtColor(png, cv2.COLOR_BGR2RGB)
    assert decoded.shape == roi.shape
    heat = cv2.resize(importance, (150, 120), interpolation=cv2.INTER_LINEAR)
    changed = np.any(decoded != roi, axis=2)
    assert changed[heat > 0.5].mean() > 0.9
    assert not changed[heat < 0.4].any()


def test_the_overlay_is_written_atomically(tmp_path: Path) -> None:
    importance = np.zeros((SIZE, SIZE), np.float32)
    importance[SIGNAL] = 1.0
    path = write_overlay_png(tmp_path / "case" / "roi1_osm.png", _image(), importance)
    assert path.exists()
    written = cv2.imread(str(path))
    assert written is not None and written.shape == (SIZE, SIZE, 3)
    assert [p.name for p in path.parent.iterdir()] == ["roi1_osm.png"]


def test_bad_settings_and_targets_are_refused() -> None:
    for settings in ({"occluder_px": 0}, {"batch_size": 0}, {"fill": "grey"}, {"fill": (0, 0, 300)}):
        with pytest.raises(PathStreamError) as raised:
            OcclusionConfig(**settings)  # type: ignore[arg-type]
        assert raised.value.code == ErrorCode.INVALID_CONFIGURATION
    with pytest.raises(PathStreamError) as raised:
        occlusion_sensitivity(_predict(Redness()), _image(), 2)
    assert raised.value.code == ErrorCode.INVALID_CONFIGURATION
