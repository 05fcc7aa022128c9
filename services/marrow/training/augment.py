"""Training augmentation and class balancing for the marrow classifiers (Eckardt et al.: "random sized
cropping, color shifting and linear transformations, to balance the data sets").

`Augmentation(strength)` draws, per image, one random-sized crop, one affine map and one colour
shift; `strength` in [0, 1] scales all of them together (it is one of the searched
hyper-parameters). At strength 0 an image is only resized to the input size; at strength 1:

- random-sized crop: 35-100% of the ROI's area, aspect ratio 0.7-1.4, anywhere in the ROI;
- affine: any of the 8 flips / quarter turns (a smear has no up or left, so these are free),
  plus a rotation of up to +-45 degrees and a scaling of 0.8-1.2 (borders are mirrored, so no
  blank corners appear that would hint at the augmentation);
- colour shift (HSV, because May-Gruenwald-Giemsa is not the H&E that `pathstream.training.stain` models): hue
  +-12 degrees, saturation x0.7-1.3, brightness x0.85-1.15.

Class balancing (`balanced_order`): each epoch, every class contributes as many images as the
largest class has. A smaller class shows each of its images once and then further images drawn
at random (with replacement) from its own; since every image passes through a fresh random
augmentation, the repeats are new views rather than copies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Augmentation:
    """Random-sized crop, affine and colour shift scaled by `strength` in [0, 1]; call it as
    `augmentation(image, rng)` (uint8 H x W x 3 RGB -> uint8 size x size x 3 RGB)."""

    size: int
    strength: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"augmentation strength must be in [0, 1], got {self.strength}")
        if self.size < 1:
            raise ValueError(f"output size must be positive, got {self.size}")

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected a uint8 H x W x 3 RGB image, got {image.dtype} {image.shape}")
        out = cv2.warpAffine(
            image,
            self.output_to_source(image.shape[0], image.shape[1], rng),
            (self.size, self.size),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REFLECT_101,
        )
        return self.colour_shift(out, rng)

    def output_to_source(self, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
        """float64 2 x 3 matrix taking output (x, y) pixels to source (x, y) pixels: crop, then
        flips / rotation / scaling about the crop's centre."""
        s = self.strength
        # Random-sized crop: its area share and aspect ratio, then a position that keeps it inside.
        area = rng.uniform(1.0 - 0.65 * s, 1.0) * height * width
        aspect = math.exp(rng.uniform(-0.35 * s, 0.35 * s))
        crop_w = min(float(width), math.sqrt(area * aspect))
        crop_h = min(float(height), math.sqrt(area / aspect))
        cx = rng.uniform(crop_w / 2, width - crop_w / 2)
        cy = rng.uniform(crop_h / 2, height - crop_h / 2)
        # Output pixel centres span [0, size - 1]; map them onto the crop's pixel-centre span.
        half = (self.size - 1) / 2.0
        to_unit = np.array(
            [[1.0 / self.size, 0.0, -half / self.size], [0.0, 1.0 / self.size, -half / self.size]]
        )
        if s > 0:
            turns = int(rng.integers(0, 4))
            flip = bool(rng.integers(0, 2))
            angle = math.radians(90.0 * turns + rng.uniform(-45.0, 45.0) * s)
            zoom = math.exp(rng.uniform(-math.log(1.2), math.log(1.2)) * s)
        else:
            flip, angle, zoom = False, 0.0, 1.0
        cos, sin = math.cos(angle) / zoom, math.sin(angle) / zoom
        rotate = np.array([[cos, -sin], [sin, cos]]) @ np.diag([-1.0 if flip else 1.0, 1.0])
        linear = np.diag([crop_w, crop_h]) @ rotate @ to_unit[:, :2]
        offset = np.diag([crop_w, crop_h]) @ rotate @ to_unit[:, 2] + np.array([cx - 0.5, cy - 0.5])
        return np.hstack([linear, offset[:, None]])

    def colour_shift(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """uint8 RGB -> uint8 RGB with hue, saturation and brightness shifted (identity at strength 0)."""
        s = self.strength
        if s == 0:
            return image
        # Float HSV (hue in degrees, S and V in [0, 1]): 8-bit HSV would round every pixel.
        hsv = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2HSV)
        hsv[..., 0] = np.mod(hsv[..., 0] + rng.uniform(-12.0, 12.0) * s, 360.0)
        hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(1.0 - 0.3 * s, 1.0 + 0.3 * s), 0.0, 1.0)
        hsv[..., 2] = np.clip(hsv[..., 2] * rng.uniform(1.0 - 0.15 * s, 1.0 + 0.15 * s), 0.0, 1.0)
        rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def balanced_order(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One epoch's image indices (int64, shuffled) with equal counts per class: int N `labels` ->
    every image once, plus random repeats of smaller classes' images up to the largest class's
    count (see the module docstring)."""
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) == 0:
        return np.zeros(0, np.int64)
    target = int(counts.max())
    chosen = []
    for cls in classes:
        members = np.flatnonzero(labels == cls)
        extra = rng.choice(members, size=target - len(members), replace=True)
        chosen.append(np.concatenate([members, extra]))
    return rng.permutation(np.concatenate(chosen)).astype(np.int64)
