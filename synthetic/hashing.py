"""Position-hashed randomness: the same value for the same place whatever tile asks for it.

Synthetic slides are rendered tile by tile; anything that crosses a tile border (a nucleus, a fat
cell wall) must come out identical on both sides. These functions derive pseudo-random numbers from
integer grid coordinates, a seed and a salt (one salt per texture layer) with a SplitMix64 mix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix(value: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = value + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def hash_grid(ix: np.ndarray, iy: np.ndarray, seed: int, salt: int) -> np.ndarray:
    """uint64 hash of integer grid coordinates (any broadcastable shapes)."""
    with np.errstate(over="ignore"):
        key = (
            np.asarray(ix, dtype=np.int64).astype(np.uint64) * np.uint64(0x100000001B3)
            ^ np.asarray(iy, dtype=np.int64).astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)
            ^ np.uint64((seed * 0x9E3779B1 + salt * 0x85EBCA77) & 0xFFFFFFFFFFFFFFFF)
        )
    return _mix(_mix(key))


def uniforms(ix: np.ndarray, iy: np.ndarray, seed: int, salt: int, count: int) -> np.ndarray:
    """`count` independent uniforms in [0, 1) per grid point: shape (*broadcast, count)."""
    base = hash_grid(ix, iy, seed, salt)[..., None]
    streams = _mix(base ^ (np.arange(1, count + 1, dtype=np.uint64) * np.uint64(0xD6E8FEB86659FD93)))
    return (streams >> np.uint64(11)).astype(np.float64) / float(1 << 53)


@dataclass(frozen=True)
class JitteredPoints:
    """Points on a jittered grid inside a rectangle: one candidate per grid cell."""

    x: np.ndarray
    y: np.ndarray
    u: np.ndarray
    """Extra uniforms per point, shape (n, k), for sizes, shapes, colours and presence."""


def jittered_points(
    x0: float, y0: float, x1: float, y1: float, spacing: float, seed: int, salt: int, extra: int = 6
) -> JitteredPoints:
    """Candidates whose grid cell (size `spacing`, in level-0 px) overlaps [x0, x1) x [y0, y1).

    Each grid cell holds one point at a hashed position inside it, plus `extra` uniforms. The same
    cell always yields the same point, so neighbouring tiles agree about shared cells.
    """
    gx = np.arange(int(np.floor(x0 / spacing)), int(np.floor(x1 / spacing)) + 1)
    gy = np.arange(int(np.floor(y0 / spacing)), int(np.floor(y1 / spacing)) + 1)
    ix, iy = np.meshgrid(gx, gy)
    u = uniforms(ix.ravel(), iy.ravel(), seed, salt, extra + 2)
    px = (ix.ravel() + u[:, 0]) * spacing
    py = (iy.ravel() + u[:, 1]) * spacing
    return JitteredPoints(x=px, y=py, u=u[:, 2:])


@dataclass(frozen=True)
class CanvasPoints:
    """Jittered points whose cell overlaps a canvas, with their integer canvas coordinates."""

    points: JitteredPoints
    col: np.ndarray
    row: np.ndarray
    inside: np.ndarray
    """Indices of the points whose centre lies on the canvas."""


def canvas_points(
    origin: tuple[int, int], shape: tuple[int, int], spacing: float, seed: int, salt: int, extra: int = 6
) -> CanvasPoints:
    """Jittered points for a canvas of `shape` (rows, cols) whose top-left is level-0 `origin`."""
    x0, y0 = origin
    points = jittered_points(x0, y0, x0 + shape[1], y0 + shape[0], spacing, seed, salt, extra)
    col = np.floor(points.x - x0).astype(np.int64)
    row = np.floor(points.y - y0).astype(np.int64)
    inside = np.flatnonzero((col >= 0) & (col < shape[1]) & (row >= 0) & (row < shape[0]))
    return CanvasPoints(points, col, row, inside)


class NoiseTexture:
    """Per-pixel noise in [-1, 1) keyed by absolute position: a periodic texture, cheap to sample.

    The period (a prime) is far larger than any structure it perturbs, so repetition is invisible.
    """

    PERIOD = 1021

    def __init__(self, seed: int, salt: int) -> None:
        rng = np.random.default_rng([seed, salt])
        self.texture = rng.uniform(-1.0, 1.0, (self.PERIOD, self.PERIOD)).astype(np.float32)

    def patch(self, x0: int, y0: int, width: int, height: int) -> np.ndarray:
        """Noise for pixels [x0, x0+width) x [y0, y0+height), float32 height x width."""
        rows = (y0 + np.arange(height)) % self.PERIOD
        cols = (x0 + np.arange(width)) % self.PERIOD
        return self.texture[np.ix_(rows, cols)]
