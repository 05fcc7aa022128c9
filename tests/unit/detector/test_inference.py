"""Windowed whole-slide segmentation: full coverage, bounded reads, same result as one big window."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pathstream.backbones.imagenet import image_to_tensor
from pathstream.services.detector.inference import LymphNodeSegmenter, plan_windows
from pathstream.services.detector.model import DeepLabV3Plus, DetectorConfig

SMALL = DetectorConfig(backbone="resnet18", aspp_channels=16, decoder_channels=16, low_level_channels=8)


@pytest.mark.parametrize(("width", "height"), [(1, 1), (300, 200), (1000, 257)])
def test_windows_cover_every_pixel_exactly_once(width: int, height: int) -> None:
    counts = np.zeros((height, width), np.int32)
    for win in plan_windows(width, height, window=256, margin=32):
        counts[win.core_y : win.core_y + win.core_h, win.core_x : win.core_x + win.core_w] += 1
        x, y, w, h = win.input_box
        assert w <= 256 and h <= 256 and w % 16 == 0 and h % 16 == 0
        assert x == win.core_x - 32 and y == win.core_y - 32
    assert (counts == 1).all()


def test_a_window_without_core_is_refused() -> None:
    with pytest.raises(ValueError, match="no core"):
        plan_windows(100, 100, window=64, margin=32)


def test_reads_stay_within_the_window_and_the_map_has_the_image_size() -> None:
    torch.manual_seed(0)
    segmenter = LymphNodeSegmenter(DeepLabV3Plus(SMALL), "test", device="cpu", window=192, margin=32)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (300, 410, 3), dtype=np.uint8)
    reads: list[tuple[int, int]] = []

    def read(x: int, y: int, w: int, h: int) -> np.ndarray:
        reads.append((w, h))
        out = np.full((h, w, 3), 255, np.uint8)
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, 410), min(y + h, 300)
        if x1 > x0 and y1 > y0:
            out[y0 - y : y1 - y, x0 - x : x1 - x] = image[y0:y1, x0:x1]
        return out

    probabilities = segmenter.probabilities(read, 410, 300)
    assert probabilities.shape == (300, 410) and probabilities.dtype == np.float32
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    assert len(reads) == len(plan_windows(410, 300, 192, 32)) > 1
    assert max(max(w, h) for w, h in reads) <= 192
    # predict_image reads the same pixels through its in-memory reader.
    assert np.array_equal(segmenter.predict_image(image), probabilities > 0.5)


def test_one_window_equals_the_plain_forward_of_the_padded_image() -> None:
    torch.manual_seed(1)
    model = DeepLabV3Plus(SMALL).eval()
    segmenter = LymphNodeSegmenter(model, "test", device="cpu", window=256, margin=16)
    image = np.random.default_rng(1).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    padded = np.full((128, 160, 3), 255, np.uint8)
    padded[16:112, 16:144] = image
    with torch.inference_mode():
        plain = torch.softmax(model(image_to_tensor(padded)), dim=1)[0, 1, 16:112, 16:144].numpy()
    windowed = segmenter.probabilities(
        lambda x, y, w, h: padded[y + 16 : y + 16 + h, x + 16 : x + 16 + w], 128, 96
    )
    np.testing.assert_allclose(windowed, plain, atol=1e-6)


def test_predict_image_refuses_non_rgb() -> None:
    segmenter = LymphNodeSegmenter(DeepLabV3Plus(SMALL), "test", device="cpu")
    with pytest.raises(ValueError, match="uint8"):
        segmenter.predict_image(np.zeros((10, 10), np.uint8))
