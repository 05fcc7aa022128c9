"""One lymph node (or several) as an ESCNN image source: a box at 0.46 um/px, white outside the contours.

The LN is never read whole: the streaming engine asks for one tile window at a time, and each
window is read from the tile store and masked on its own, so memory stays one tile however large
the node. Masking makes everything outside the contour pure white (255), which is exactly what
white-tile skipping recognises.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

WHITE = 255

RegionReader = Callable[[int, int, int, int], np.ndarray]
"""read(x, y, width, height) in array pixels -> uint8 height x width x 3; white outside the image."""


class ContourMaskedSource:
    """An `ImageSource` over box (x, y, width, height) of an array, white outside `polygons`.

    `polygons`: one float [K, 2] (x, y) polygon, or several (a slide's LNs, for slide-level
    training), in the same array's pixels (not relative to the box). A pixel is kept when it lies
    inside any of them.
    """

    def __init__(
        self,
        read: RegionReader,
        box: tuple[int, int, int, int],
        polygons: np.ndarray | Sequence[np.ndarray],
    ) -> None:
        rings = [polygons] if isinstance(polygons, np.ndarray) else list(polygons)
        if not rings:
            raise ValueError("expected at least one polygon")
        for ring in rings:
            if ring.ndim != 2 or ring.shape[1] != 2 or len(ring) < 3:
                raise ValueError(f"expected polygons of at least 3 (x, y) vertices, got shape {ring.shape}")
        self._read = read
        self.box = box
        self._polygons = [np.asarray(ring, np.float64) for ring in rings]

    @property
    def height(self) -> int:
        return self.box[3]

    @property
    def width(self) -> int:
        return self.box[2]

    def read(self, y0: int, x0: int, height: int, width: int) -> np.ndarray:
        """uint8 height x width x 3 at (y0, x0) of the box; white outside the box and the contour."""
        bx, by, bw, bh = self.box
        out = np.full((height, width, 3), WHITE, np.uint8)
        # Only the part inside the box is read; the engine may ask for windows reaching past it.
        top, left = max(y0, 0), max(x0, 0)
        bottom, right = min(y0 + height, bh), min(x0 + width, bw)
        if bottom <= top or right <= left:
            return out
        pixels = self._read(bx + left, by + top, right - left, bottom - top)
        inside = self.inside_mask(bx + left, by + top, right - left, bottom - top)
        pixels[~inside] = WHITE
        out[top - y0 : bottom - y0, left - x0 : right - x0] = pixels
        return out

    def inside_mask(self, x: int, y: int, width: int, height: int) -> np.ndarray:
        """bool height x width for the array pixels of box (x, y, width, height): True where the
        pixel's centre lies inside a contour (even-odd rule; pixel j spans [j, j + 1)).

        Computed row by row from the polygon's edge crossings, so a pixel gets the same answer
        whichever window it is read in: overlapping tiles always agree.
        """
        inside = inside_polygon(self._polygons[0], x, y, width, height)
        for ring in self._polygons[1:]:
            inside |= inside_polygon(ring, x, y, width, height)
        return inside


def inside_polygon(polygon: np.ndarray, x: int, y: int, width: int, height: int) -> np.ndarray:
    """bool height x width: pixel centres (x + j + 0.5, y + i + 0.5) inside `polygon` (float [K, 2])."""
    return inside_grid(polygon, x + np.arange(width) + 0.5, y + np.arange(height) + 0.5)


def inside_grid(polygon: np.ndarray, xs: np.ndarray, ys: np.ndarray, rows_per_chunk: int = 256) -> np.ndarray:
    """bool len(ys) x len(xs): which grid points (xs[j], ys[i]) lie inside `polygon` (even-odd).

    `xs` must be increasing. Exact for a given point, whatever the rest of the grid.
    """
    x0, y0 = polygon[:, 0], polygon[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    out = np.zeros((len(ys), len(xs)), bool)
    for start in range(0, len(ys), rows_per_chunk):
        cy = np.asarray(ys[start : start + rows_per_chunk], np.float64)[:, None]
        crosses = (y0[None, :] <= cy) != (y1[None, :] <= cy)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = x0[None, :] + (cy - y0[None, :]) * (x1 - x0)[None, :] / (y1 - y0)[None, :]
        at = np.where(crosses, at, np.inf)
        at.sort(axis=1)
        for row, crossings in enumerate(at):
            count = int(np.isfinite(crossings).sum())
            if count:
                # An odd number of crossings left of a point means inside.
                out[start + row] = np.searchsorted(crossings[:count], xs, side="right") % 2 == 1
    return out
