"""Detector training data: annotated slides (`pathstream.training.annotated_slides`) -> 7.36 um/px images and
LN masks. Every slide is ingested into a tile store first and read back from its 1.25x array, so
training sees exactly the pixels the service segments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from pathstream.shared.qupath import Annotation
from pathstream.shared.tilestore.layout import DETECTOR_1_25X
from pathstream.training.annotated_slides import AnnotatedSlide, ingest_annotated


@dataclass
class TrainingImage:
    """One slide at 7.36 um/px: uint8 H x W x 3 RGB, bool H x W LN mask, and per-LN masks' polygons."""

    name: str
    image: np.ndarray
    mask: np.ndarray
    polygons: list[Annotation]
    """The LN polygons in this image's pixels (for instance-level evaluation)."""

    @property
    def ln_count(self) -> int:
        return len(self.polygons)


def rasterise(
    annotations: Sequence[Annotation], shape: tuple[int, int], scale: tuple[float, float]
) -> np.ndarray:
    """bool H x W mask of the annotations' interiors (holes excluded) at `scale` level-0 px per pixel."""
    mask = np.zeros(shape, np.uint8)
    for annotation in annotations:
        cv2.fillPoly(mask, [_to_pixels(annotation.outer, scale)], 1)
        for hole in annotation.holes:
            cv2.fillPoly(mask, [_to_pixels(hole, scale)], 0)
    return mask.astype(bool)


def _to_pixels(ring: Sequence[tuple[float, float]], scale: tuple[float, float]) -> np.ndarray:
    # Level-0 coordinate c lies at c / s in this grid, whose pixel i is centred on i + 0.5.
    xy = np.asarray(ring, np.float64) / np.asarray(scale)
    return np.rint(xy - 0.5).astype(np.int32).reshape(-1, 1, 2)


def load_training_image(slide: AnnotatedSlide, store_root: str) -> TrainingImage:
    """Ingest `slide` (or reuse its store) under `store_root` and return its 1.25x image and mask."""
    array = ingest_annotated(slide, store_root).array(DETECTOR_1_25X.name)
    image = array.read_all()
    scale = (array.info.level0_per_px_x, array.info.level0_per_px_y)
    scaled = [
        Annotation(
            outer=[(x / scale[0], y / scale[1]) for x, y in a.outer],
            holes=[[(x / scale[0], y / scale[1]) for x, y in h] for h in a.holes],
            classification=a.classification,
        )
        for a in slide.lymph_nodes
    ]
    return TrainingImage(
        name=slide.name,
        image=image,
        mask=rasterise(slide.lymph_nodes, image.shape[:2], scale),
        polygons=scaled,
    )
