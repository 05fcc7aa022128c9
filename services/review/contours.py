"""Validation of contours a pathologist draws or imports: a simple polygon in level-0 pixels."""

from __future__ import annotations

import math
from collections.abc import Sequence

import shapely
from shapely.geometry import Polygon

from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.events.base import MAX_CONTOUR_POINTS

_HINT = "Draw one closed outline without crossings, in level-0 pixel coordinates of the slide."
MAX_COORDINATE = 10_000_000
"""No slide is 10^7 px on a side (the largest are ~2 x 10^5): the bound for a slide of unknown size."""


def _bad(why: str) -> PathStreamError:
    return PathStreamError(ErrorCode.INVALID_AMENDMENT, f"The contour is not usable: {why}.", hint=_HINT)


def checked_contour(
    points: Sequence[Sequence[float]], slide_size: tuple[int, int] | None = None
) -> list[tuple[int, int]]:
    """Integer (x, y) level-0 vertices of a valid simple polygon, closing point dropped.

    `slide_size` is the slide's level-0 (width, height) in pixels; every vertex must lie on it
    (without it, below `MAX_COORDINATE`). Raises `PathStreamError(INVALID_AMENDMENT)` for fewer
    than 3 distinct points, more than 200,000, non-finite, negative or off-slide coordinates, no
    enclosed area, or a self-intersecting outline.
    """
    try:
        vertices = [(float(p[0]), float(p[1])) for p in points]
    except (TypeError, ValueError, IndexError):
        raise _bad("every point must be a pair of numbers [x, y]") from None
    if len(vertices) > MAX_CONTOUR_POINTS:
        raise _bad(f"it has {len(vertices)} points; at most {MAX_CONTOUR_POINTS} are allowed")
    if not all(math.isfinite(v) for point in vertices for v in point):
        raise _bad("coordinates must be finite numbers")
    if any(x < 0 or y < 0 for x, y in vertices):
        raise _bad("coordinates are level-0 pixels and cannot be negative")
    width, height = slide_size or (MAX_COORDINATE, MAX_COORDINATE)
    outside = next(((x, y) for x, y in vertices if x > width or y > height), None)
    if outside is not None:
        where = f"the slide's {width} x {height} px" if slide_size else f"{MAX_COORDINATE} px"
        raise _bad(f"the point ({outside[0]:.6g}, {outside[1]:.6g}) lies outside {where}")
    rounded = [(round(x), round(y)) for x, y in vertices]
    if len(rounded) > 1 and rounded[0] == rounded[-1]:
        rounded = rounded[:-1]
    if len(set(rounded)) < 3:
        raise _bad(f"it needs at least 3 distinct points, got {len(set(rounded))}")
    (x0, y0), (x1, y1) = rounded[0], next(p for p in rounded if p != rounded[0])
    if all((x - x0) * (y1 - y0) == (y - y0) * (x1 - x0) for x, y in rounded):
        raise _bad("it encloses no area (all points lie on one line)")
    polygon = Polygon(rounded)
    if not polygon.is_valid:
        reason = shapely.is_valid_reason(polygon)
        if reason.startswith(("Self-intersection", "Ring Self-intersection")):
            raise _bad(f"the outline crosses itself ({reason})")
        if polygon.area == 0:
            raise _bad("it encloses no area")
        raise _bad(f"it is not a valid polygon ({reason})")
    if polygon.area == 0:
        raise _bad("it encloses no area")
    return rounded
