"""Checks shared by the ingestion tests: physical size and agreement with OpenSlide."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import openslide

from pathstream.shared.tilestore.reader import StoreArray, TileStore
from pathstream.shared.tilestore.slide_source import resolve_slide_path


def assert_physical_size(store: TileStore) -> None:
    """Every array covers the slide's physical extent (width x mpp, height x mpp) within 1%."""
    width0, height0 = store.level0_size
    mpp_x, mpp_y = store.mpp
    for name in store.arrays:
        array = store.array(name)
        assert abs(array.width * array.info.mpp_x / (width0 * mpp_x) - 1) < 0.01, name
        assert abs(array.height * array.info.mpp_y / (height0 * mpp_y) - 1) < 0.01, name


def openslide_reference(slide: Path, array: StoreArray, x: int, y: int, size: int) -> np.ndarray:
    """What OpenSlide's read_region plus an area resize gives for the same region, read from the
    level OpenSlide recommends for the array's downsample (as ingestion does)."""
    left, top = array.to_level0(x, y)
    right, bottom = array.to_level0(x + size, y + size)
    with openslide.OpenSlide(str(resolve_slide_path(slide))) as handle:
        level = handle.get_best_level_for_downsample(max(1.0, array.info.level0_per_px_x))
        downsample = handle.level_downsamples[level]
        region = handle.read_region(
            (round(left), round(top)),
            level,
            (round((right - left) / downsample), round((bottom - top) / downsample)),
        ).convert("RGB")
    # OpenCV's INTER_AREA is the same box filter in both directions (for enlarging, too).
    return cv2.resize(np.asarray(region), (size, size), interpolation=cv2.INTER_AREA)


def aligned(position: int, per_px: float, window: int = 64) -> int:
    """A start near `position` whose level-0 coordinate is (almost) a whole pixel, so the OpenSlide
    reference (which reads from whole pixels) is not itself shifted by a fraction of a pixel."""
    candidates = np.arange(max(0, position - window), position + window + 1)
    level0 = candidates * per_px
    return int(candidates[np.argmin(np.abs(level0 - np.rint(level0)))])


def region_difference(slide: Path, array: StoreArray, x: int, y: int, size: int) -> tuple[float, float]:
    """(mean, 99th percentile) absolute difference between store and OpenSlide for a region
    starting near (x, y)."""
    x = aligned(x, array.info.level0_per_px_x)
    y = aligned(y, array.info.level0_per_px_y)
    ours = array.read(x, y, size, size).astype(np.int16)
    reference = openslide_reference(slide, array, x, y, size).astype(np.int16)
    difference = np.abs(ours - reference)
    return float(difference.mean()), float(np.percentile(difference, 99))
