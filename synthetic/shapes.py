"""Irregular closed shapes for synthetic tissue, and their measurements."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

HARMONICS = (2, 3, 4, 5)


@dataclass(frozen=True)
class Blob:
    """An irregular oval: an ellipse whose radius wobbles with a few low harmonics.

    Centre and radii in level-0 pixels; `angle` in radians; `wobble` holds (amplitude, phase) per
    harmonic, amplitudes as fractions of the radius.
    """

    cx: float
    cy: float
    rx: float
    ry: float
    angle: float
    wobble: tuple[tuple[float, float], ...]

    @classmethod
    def random(
        cls, rng: np.random.Generator, cx: float, cy: float, diameter: float, aspect: float, roughness: float
    ) -> Blob:
        """A blob of major axis `diameter` px, minor/major `aspect`, radial wobble up to `roughness`."""
        wobble = tuple(
            (float(rng.uniform(0, roughness)), float(rng.uniform(0, 2 * math.pi))) for _ in HARMONICS
        )
        return cls(cx, cy, diameter / 2, diameter * aspect / 2, float(rng.uniform(0, math.pi)), wobble)

    def radius_bound(self) -> float:
        """A radius no point of the outline exceeds."""
        return max(self.rx, self.ry) * (1 + sum(a for a, _ in self.wobble))

    def scaled(self, factor: float) -> Blob:
        """The same shape, `factor` times larger about its centre."""
        return Blob(self.cx, self.cy, self.rx * factor, self.ry * factor, self.angle, self.wobble)

    def outline(self, points: int = 128) -> np.ndarray:
        """The closed outline as float (points, 2) (x, y) level-0 pixels."""
        theta = np.linspace(0, 2 * math.pi, points, endpoint=False)
        radius = np.ones_like(theta)
        for k, (amplitude, phase) in zip(HARMONICS, self.wobble, strict=True):
            radius += amplitude * np.cos(k * theta + phase)
        x = self.rx * radius * np.cos(theta)
        y = self.ry * radius * np.sin(theta)
        cos_a, sin_a = math.cos(self.angle), math.sin(self.angle)
        return np.stack([self.cx + x * cos_a - y * sin_a, self.cy + x * sin_a + y * cos_a], axis=1)

    def polygon(self, points: int = 128) -> np.ndarray:
        """The outline rounded to int32 (points, 2) pixel vertices."""
        return np.rint(self.outline(points)).astype(np.int32)


def max_diameter(polygon: np.ndarray) -> float:
    """Largest distance between two vertices, in pixels."""
    points = polygon.astype(np.float64)
    differences = points[:, None, :] - points[None, :, :]
    return float(np.sqrt((differences**2).sum(-1)).max())


def bbox(polygon: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) inclusive-exclusive bounds of a polygon."""
    return (
        int(polygon[:, 0].min()),
        int(polygon[:, 1].min()),
        int(polygon[:, 0].max()) + 1,
        int(polygon[:, 1].max()) + 1,
    )


def points_inside(polygon: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Boolean mask: which (x, y) lie inside the polygon (even-odd rule, vectorised)."""
    px = polygon[:, 0].astype(np.float64)
    py = polygon[:, 1].astype(np.float64)
    qx, qy = np.roll(px, -1), np.roll(py, -1)
    x = np.asarray(x, np.float64)[:, None]
    y = np.asarray(y, np.float64)[:, None]
    crosses = (py > y) != (qy > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        at = px + (y - py) * (qx - px) / (qy - py)
    return np.logical_and(crosses, x < at).sum(axis=1) % 2 == 1
