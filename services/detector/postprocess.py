"""The paper's LN post-processing: binary mask at 7.36 um/px -> one contour per lymph node.

Huang et al. (2022), Methods "LN detector": the predicted mask is dilated with a 3x3 diamond (cross) kernel,
connected components under 4096 pixels are discarded, and instances are traced with Suzuki's border
following (OpenCV `findContours`, external contours only). Components are 8-connected because
that is how Suzuki's algorithm follows borders: two regions that touch only at a corner after the
dilation are one instance for `findContours`, so they must be one component for the size filter too.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pathstream.shared.polygons import polygon_area

MIN_COMPONENT_PX = 4096
"""Smallest kept component, in pixels of the dilated 7.36 um/px mask (paper: 4096)."""

DIAMOND_3X3 = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=np.uint8)


def mask_to_contours(mask: np.ndarray, min_pixels: int = MIN_COMPONENT_PX) -> list[np.ndarray]:
    """One external contour per lymph node found in `mask`.

    `mask`: bool (or 0/1) H x W array at 7.36 um/px, True = lymph node. Returns int32 arrays of
    shape [K, 2] holding (x, y) pixel centres of the mask's grid, ordered by each contour's top-left
    corner (top to bottom, then left to right) so that LN indices are stable. Holes inside a node
    belong to the node (external contours only).
    """
    if mask.ndim != 2:
        raise ValueError(f"expected a 2-D mask, got shape {mask.shape}")
    binary = (np.asarray(mask) > 0).astype(np.uint8)
    dilated = cv2.dilate(binary, DIAMOND_3X3, iterations=1, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(dilated, connectivity=8)
    keep = np.zeros(count, dtype=bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_pixels
    kept = keep[labels].astype(np.uint8)
    found, _ = cv2.findContours(kept, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    contours = [c.reshape(-1, 2).astype(np.int32) for c in found]
    contours.sort(key=lambda c: (int(c[:, 1].min()), int(c[:, 0].min())))
    return contours


@dataclass(frozen=True)
class LymphNodeOutline:
    """One lymph node in level-0 pixels of the source slide."""

    contour: list[tuple[int, int]]
    """Polygon vertices (x, y), level-0 pixels, not closed (first point not repeated)."""
    bbox: tuple[int, int, int, int]
    """(x, y, width, height) in level-0 pixels, containing every vertex."""
    area_um2: float
    """Area enclosed by the contour in square micrometres."""


def contours_to_level0(
    contours: list[np.ndarray],
    level0_per_px: tuple[float, float],
    level0_mpp: tuple[float, float],
    level0_size: tuple[int, int],
) -> list[LymphNodeOutline]:
    """Map mask contours to level-0 polygons with bounding boxes and areas.

    `contours`: (x, y) pixel centres at the mask's resolution, as from `mask_to_contours`.
    `level0_per_px`: level-0 pixels per mask pixel in x and y (about 32 for a 0.23 um/px scan).
    `level0_mpp`: the slide's level-0 um/px in x and y. `level0_size`: (width, height) of level 0;
    vertices are clipped to it. Areas are the polygon's shoelace area in um^2.
    """
    sx, sy = level0_per_px
    width, height = level0_size
    outlines = []
    for contour in contours:
        # Pixel i covers [i, i+1) of the mask grid, so its centre is at i + 0.5.
        xs = np.clip(np.rint((contour[:, 0] + 0.5) * sx), 0, width - 1).astype(np.int64)
        ys = np.clip(np.rint((contour[:, 1] + 0.5) * sy), 0, height - 1).astype(np.int64)
        points = _drop_repeats(list(zip(xs.tolist(), ys.tolist(), strict=True)))
        area_px = polygon_area(points) if len(points) >= 3 else 0.0
        if len(points) < 3 or area_px == 0:
            # A mask contour of a >= 4096-pixel component always encloses area; this only guards
            # against degenerate input to this function.
            continue
        x0, y0 = min(xs.tolist()), min(ys.tolist())
        x1, y1 = max(xs.tolist()), max(ys.tolist())
        outlines.append(
            LymphNodeOutline(
                contour=points,
                bbox=(x0, y0, max(1, x1 - x0), max(1, y1 - y0)),
                area_um2=area_px * level0_mpp[0] * level0_mpp[1],
            )
        )
    return outlines


def _drop_repeats(points: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for point in points:
        if not out or out[-1] != point:
            out.append(point)
    if len(out) > 1 and out[0] == out[-1]:
        out.pop()
    return out
