"""Polygon measurements: the one shoelace area, used by the event contracts, the detector, ESCNN,
the review service and the synthetic generator."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def polygon_area(polygon: np.ndarray | Sequence[tuple[float, float]]) -> float:
    """Area enclosed by a closed polygon of (x, y) vertices, in square pixels (shoelace)."""
    xy = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    x, y = xy[:, 0], xy[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)
