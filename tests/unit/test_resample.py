"""Area-averaging resampling: exact box filter, seamless blocks, and the fast snapped variant."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from pathstream.shared.tilestore.resample import (
    area_resample,
    snapped_area_resize,
    snapped_boundaries,
    snapped_span,
    source_span,
)


def _box_filter(image: np.ndarray, fx: float, fy: float, out_w: int, out_h: int) -> np.ndarray:
    """Reference: each output pixel as the overlap-weighted mean of the source pixels it covers."""
    height, width, _ = image.shape
    out = np.zeros((out_h, out_w, 3))
    for j in range(out_h):
        y0, y1 = j * fy, min((j + 1) * fy, height)
        ys = np.arange(int(np.floor(y0)), int(np.ceil(y1)))
        wy = np.minimum(ys + 1, y1) - np.maximum(ys, y0)
        for i in range(out_w):
            x0, x1 = i * fx, min((i + 1) * fx, width)
            xs = np.arange(int(np.floor(x0)), int(np.ceil(x1)))
            wx = np.minimum(xs + 1, x1) - np.maximum(xs, x0)
            weights = wy[:, None] * wx[None, :]
            out[j, i] = (image[ys][:, xs] * weights[..., None]).sum((0, 1)) / weights.sum()
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


@pytest.mark.parametrize(("fx", "fy"), [(1.84, 1.84), (2.0, 2.0), (3.3, 1.7), (0.91, 0.93), (1.0, 1.0)])
def test_matches_the_box_filter(fx: float, fy: float) -> None:
    image = np.random.default_rng(1).integers(0, 256, (37, 41, 3), dtype=np.uint8)
    out_w, out_h = round(41 / fx), round(37 / fy)
    got = area_resample(image, (0, 0), (0, 0), (out_w, out_h), (fx, fy), (41, 37))
    expected = _box_filter(image, fx, fy, out_w, out_h)
    assert np.abs(got.astype(int) - expected).max() <= 1  # rounding of exact halves only


@pytest.mark.parametrize("factor", [1.8431, 0.9218])
def test_blocks_give_the_same_pixels_as_the_whole(factor: float) -> None:
    image = np.random.default_rng(2).integers(0, 256, (300, 260, 3), dtype=np.uint8)
    out_w, out_h = round(260 / factor), round(300 / factor)
    whole = area_resample(image, (0, 0), (0, 0), (out_w, out_h), (factor, factor), (260, 300))
    cut_x, cut_y = out_w // 3, out_h // 2
    rows = []
    for r0, r1 in ((0, cut_y), (cut_y, out_h)):
        row = []
        for c0, c1 in ((0, cut_x), (cut_x, out_w)):
            sx0, sx1 = source_span(c0, c1, factor, 260)
            sy0, sy1 = source_span(r0, r1, factor, 300)
            block = image[sy0:sy1, sx0:sx1]
            row.append(
                area_resample(block, (sx0, sy0), (c0, r0), (c1 - c0, r1 - r0), (factor, factor), (260, 300))
            )
        rows.append(np.concatenate(row, axis=1))
    assert np.array_equal(np.concatenate(rows, axis=0), whole)


def test_pixels_beyond_the_source_are_white() -> None:
    image = np.zeros((10, 10, 3), np.uint8)
    out = area_resample(image, (0, 0), (0, 0), (8, 8), (2.0, 2.0), (10, 10))
    assert (out[:5, :5] == 0).all()
    assert (out[5:, :] == 255).all() and (out[:, 5:] == 255).all()


@pytest.mark.parametrize(
    ("factor", "residual"),
    [(0.46 / 0.2499, 0.05), (46 / 25, 1e-9), (7.36 / 0.25 / 16, 0.05), (0.46 / 0.2283, 0.05), (1.0003, 0.5)],
)
def test_snapped_blocks_tile_the_source_and_sit_on_whole_pixels(factor: float, residual: float) -> None:
    width = 9000
    edges = snapped_boundaries(width, 2048, factor)
    assert edges[0] == 0 and edges[-1] == width
    assert all(b - a >= 2048 - 64 for a, b in itertools.pairwise(edges[:-1])), "all but the last are full"
    spans = [snapped_span(a, b, factor) for a, b in itertools.pairwise(edges)]
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans)), "no gaps, no overlaps"
    # Inner edges fall (almost) on whole source pixels, so blocks resize like the whole image;
    # a factor barely above an integer cannot do better than its slow drift (still < 0.5 px).
    assert max(abs(e * factor - round(e * factor)) for e in edges[1:-1]) <= residual


def test_snapped_resize_agrees_with_the_exact_filter() -> None:
    rng = np.random.default_rng(3)
    # Smooth content, as in tissue: differences come only from where block edges fall.
    image = cv2.GaussianBlur(rng.integers(0, 256, (400, 400, 3), dtype=np.uint8), (0, 0), 3)
    factor = 1.8431
    out = round(400 / factor)
    exact = area_resample(image, (0, 0), (0, 0), (out, out), (factor, factor), (400, 400))
    fast = snapped_area_resize(image[: round(out * factor), : round(out * factor)], (out, out))
    assert np.abs(exact.astype(int) - fast.astype(int)).mean() < 0.5
