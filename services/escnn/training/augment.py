"""Patch-based augmentation: augmented views of an image that are produced tile by tile.

A gigapixel image is never augmented as a whole (Huang et al. 2022, "patch-based image augmentation"):
each view below is itself an `ImageSource` whose `read` computes just the requested window, so the
producer thread augments tile by tile, in cache-friendly pieces, while the model computes.

- `AffineView`: any affine map (rotation, flip, scaling). For an output window it inverse-maps the
  window's corners into the source, reads that region (plus one pixel for interpolation) and warps
  only it. Areas mapped from outside the source are white glass.
- `ColourView`: a per-pixel colour transform (stain perturbation, brightness). Transforms must keep
  pure white pure white, so that white tiles stay skippable and skipping stays exact.

- `ImageAugmentation` / `draw_augmentation`: Huang et al.'s (2022) training augmentation as such views.

Reading the same window twice gives the same pixels, which the backward pass relies on when it
recomputes a tile.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from pathstream.services.escnn.tiles import ImageSource
from pathstream.training.stain import StainJitter, StainTransform

WHITE = 255


class AffineView:
    """The image `source` seen through an affine map, as a height x width image.

    `to_source` is the 2 x 3 matrix taking output (x, y) to source (x, y) coordinates.
    """

    def __init__(self, source: ImageSource, to_source: np.ndarray, height: int, width: int) -> None:
        self.source = source
        self.to_source = np.asarray(to_source, np.float64).reshape(2, 3)
        self._height = height
        self._width = width

    @classmethod
    def rotation(cls, source: ImageSource, degrees: float, flip: bool = False) -> AffineView:
        """`source` rotated by `degrees` (counter-clockwise) about its centre, optionally mirrored
        left-right first; the output is just large enough to hold the whole rotated image."""
        h, w = source.height, source.width
        angle = np.deg2rad(degrees)
        cos, sin = abs(np.cos(angle)), abs(np.sin(angle))
        # Tolerance: cos(90 deg) is 6e-17, not 0, and must not add a pixel.
        out_w = int(np.ceil(w * cos + h * sin - 1e-6))
        out_h = int(np.ceil(w * sin + h * cos - 1e-6))
        # Forward map: mirror, move the source centre to the origin, rotate, move to the output centre.
        mirror = np.array(
            [[-1.0 if flip else 1.0, 0.0, (w - 1) if flip else 0.0], [0.0, 1.0, 0.0], [0, 0, 1]]
        )
        centre = np.array([[1.0, 0.0, -(w - 1) / 2], [0.0, 1.0, -(h - 1) / 2], [0, 0, 1]])
        c, s = np.cos(angle), np.sin(angle)
        rotate = np.array([[c, s, 0.0], [-s, c, 0.0], [0, 0, 1]])
        recentre = np.array([[1.0, 0.0, (out_w - 1) / 2], [0.0, 1.0, (out_h - 1) / 2], [0, 0, 1]])
        forward = recentre @ rotate @ centre @ mirror
        return cls(source, np.linalg.inv(forward)[:2], out_h, out_w)

    @property
    def height(self) -> int:
        return self._height

    @property
    def width(self) -> int:
        return self._width

    def read(self, y0: int, x0: int, height: int, width: int) -> np.ndarray:
        corners = np.array(
            [
                [x0, y0, 1],
                [x0 + width - 1, y0, 1],
                [x0, y0 + height - 1, 1],
                [x0 + width - 1, y0 + height - 1, 1],
            ],
            np.float64,
        )
        mapped = corners @ self.to_source.T
        left = int(np.floor(mapped[:, 0].min())) - 1
        top = int(np.floor(mapped[:, 1].min())) - 1
        right = int(np.ceil(mapped[:, 0].max())) + 2
        bottom = int(np.ceil(mapped[:, 1].max())) + 2
        region = _read_padded(self.source, top, left, bottom - top, right - left)
        # Output (x, y) -> region (x, y): the same map, shifted by the window and region origins.
        local = self.to_source.copy()
        local[:, 2] += self.to_source[:, 0] * x0 + self.to_source[:, 1] * y0
        local[0, 2] -= left
        local[1, 2] -= top
        return cv2.warpAffine(
            region,
            local,
            (width, height),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(WHITE, WHITE, WHITE),
        )


def _read_padded(source: ImageSource, y0: int, x0: int, height: int, width: int) -> np.ndarray:
    """`source.read` that returns white for the parts of the window outside the image."""
    out = np.full((height, width, 3), WHITE, np.uint8)
    top, left = max(y0, 0), max(x0, 0)
    bottom, right = min(y0 + height, source.height), min(x0 + width, source.width)
    if bottom > top and right > left:
        out[top - y0 : bottom - y0, left - x0 : right - x0] = source.read(
            top, left, bottom - top, right - left
        )
    return out


class ColourView:
    """`source` with a per-pixel colour transform applied to each window read.

    `transform` takes and returns uint8 h x w x 3; it must map (255, 255, 255) to itself.
    """

    def __init__(self, source: ImageSource, transform: Callable[[np.ndarray], np.ndarray]) -> None:
        self.source = source
        self.transform = transform
        probe = transform(np.full((1, 1, 3), WHITE, np.uint8))
        if not (probe == WHITE).all():
            raise ValueError("a colour transform must keep white pixels white (white tiles are skipped)")

    @property
    def height(self) -> int:
        return self.source.height

    @property
    def width(self) -> int:
        return self.source.width

    def read(self, y0: int, x0: int, height: int, width: int) -> np.ndarray:
        return self.transform(self.source.read(y0, x0, height, width))


@dataclass(frozen=True)
class ImageAugmentation:
    """One drawn augmentation of a whole image: mirror, rotation, stain perturbation.

    Applied as views (`AffineView`, `ColourView`), so the producer thread computes it tile by tile
    and a recomputed tile gets exactly the same pixels.
    """

    flip: bool = False
    degrees: float = 0.0
    stain: StainTransform | None = None

    def view(self, source: ImageSource) -> ImageSource:
        """`source` seen through this augmentation (itself when there is nothing to do)."""
        augmented: ImageSource = source
        if self.flip or self.degrees:
            augmented = AffineView.rotation(augmented, self.degrees, self.flip)
        if self.stain is not None:
            augmented = ColourView(augmented, self.stain)
        return augmented


def draw_augmentation(
    rng: np.random.Generator, flip: bool = True, rotate: bool = True, stain: StainJitter | None = None
) -> ImageAugmentation:
    """Huang et al.'s (2022) augmentation: mirror with probability 0.5, rotation uniform in [-180, 180)
    degrees, and (when `stain` is given) its stain-matrix and concentration perturbation."""
    return ImageAugmentation(
        flip=bool(flip and rng.random() < 0.5),
        degrees=float(rng.uniform(-180.0, 180.0)) if rotate else 0.0,
        stain=stain.sample(rng) if stain is not None else None,
    )
