"""AJCC 8th-edition pN staging of gastric cancer: the one place the regional-node rule is written.

Each node with tumour is classed by the largest dimension of its largest deposit: isolated tumour
cells (ITC, < 0.2 mm), micrometastasis (0.2-2 mm) or macrometastasis (> 2 mm). Under the TNM/AJCC
rules ITC-only nodes are not counted as positive for pN1-3 (micrometastases are); a study whose only
tumour-bearing nodes hold ITCs is pN0(i+). A positive node whose deposit could not be measured (no
lesion polygon, no size entered) is counted as positive: staging errs towards the higher category
and the report names such nodes so the pathologist can measure them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from shapely.geometry import MultiPoint

from pathstream.shared.events import AJCC_MINIMUM_LNS, LnLabel, PnCategory

ITC_MAX_MM = 0.2
"""Deposits smaller than this (largest dimension) are isolated tumour cells."""
MICRO_MAX_MM = 2.0
"""Deposits up to this size (inclusive) are micrometastases; larger ones macrometastases."""

_UPPER_BOUNDS: tuple[tuple[int, PnCategory], ...] = (
    (0, PnCategory.N0),
    (2, PnCategory.N1),
    (6, PnCategory.N2),
    (15, PnCategory.N3A),
)


class DepositClass(StrEnum):
    """What a node holds, by the size of its largest deposit."""

    NONE = "none"  # negative node
    ITC = "itc"  # < 0.2 mm
    MICRO = "micro"  # 0.2-2 mm
    MACRO = "macro"  # > 2 mm
    UNMEASURED = "unmeasured"  # positive, size unknown


def deposit_class(label: LnLabel | None, deposit_mm: float | None) -> DepositClass | None:
    """A node's class from its effective label and largest-deposit size in mm (None: not yet scored).

    A negative label is `NONE` whatever the size; a positive one is classed by size, `UNMEASURED`
    without one. Raises ValueError for a negative or non-finite size.
    """
    if deposit_mm is not None and (not math.isfinite(deposit_mm) or deposit_mm < 0):
        raise ValueError(f"a deposit size must be a finite number of mm >= 0, got {deposit_mm!r}")
    if label is None:
        return None
    if label == LnLabel.NEGATIVE:
        return DepositClass.NONE
    if deposit_mm is None:
        return DepositClass.UNMEASURED
    if deposit_mm < ITC_MAX_MM:
        return DepositClass.ITC
    if deposit_mm <= MICRO_MAX_MM:
        return DepositClass.MICRO
    return DepositClass.MACRO


COUNTED_POSITIVE = frozenset({DepositClass.MICRO, DepositClass.MACRO, DepositClass.UNMEASURED})
"""Classes that count toward pN1-3."""


@dataclass(frozen=True)
class NodeCounts:
    """A study's (or slide's) examined nodes by class."""

    negative: int = 0
    itc: int = 0
    micro: int = 0
    macro: int = 0
    unmeasured: int = 0

    @property
    def positive(self) -> int:
        """Nodes that count toward pN: micro, macro and unmeasured positive nodes (ITC excluded)."""
        return self.micro + self.macro + self.unmeasured

    @property
    def examined(self) -> int:
        """Every node with a call (ITC nodes are examined, and not positive)."""
        return self.negative + self.itc + self.positive

    @classmethod
    def of(cls, classes: Iterable[DepositClass | None]) -> NodeCounts:
        """Count nodes by class; unscored nodes (None) are not examined yet."""
        found = [c for c in classes if c is not None]
        return cls(
            negative=found.count(DepositClass.NONE),
            itc=found.count(DepositClass.ITC),
            micro=found.count(DepositClass.MICRO),
            macro=found.count(DepositClass.MACRO),
            unmeasured=found.count(DepositClass.UNMEASURED),
        )


def pn_category(positive: int, itc: int = 0) -> PnCategory:
    """Counted positive nodes (micro/macro) and ITC-only nodes -> the AJCC 8th gastric pN category.

    0 positive -> "N0", or "N0(i+)" when any node holds only ITCs; 1-2 "N1", 3-6 "N2", 7-15 "N3a",
    >= 16 "N3b". Raises ValueError for a negative or non-integer count.
    """
    for name, value in (("positive", positive), ("ITC", itc)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"a {name} LN count must be an integer, got {value!r}")
        if value < 0:
            raise ValueError(f"a {name} LN count cannot be negative, got {value}")
    if positive == 0 and itc > 0:
        return PnCategory.N0_ITC
    for upper, category in _UPPER_BOUNDS:
        if positive <= upper:
            return category
    return PnCategory.N3B


def stage(counts: NodeCounts) -> PnCategory | None:
    """The pN category of `counts`, or None when no node has been examined."""
    if counts.examined == 0:
        return None
    return pn_category(counts.positive, counts.itc)


def below_ajcc_minimum(examined: int) -> bool:
    """True when fewer than 15 regional LNs were examined (inadequate for pN staging per AJCC)."""
    return examined < AJCC_MINIMUM_LNS


def largest_deposit_mm(polygons: Sequence[Sequence[Sequence[float]]], mpp: float) -> float | None:
    """Largest dimension of the largest deposit, in mm: the greatest vertex-to-vertex distance (the
    Feret diameter) of any lesion polygon (level-0 px [[x, y], ...]) times `mpp` (um/px). None
    without polygons."""
    best: float | None = None
    for polygon in polygons:
        points = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
        if len(points) == 0:
            continue
        # The farthest pair lies on the convex hull, which keeps the pairwise step small.
        hull = MultiPoint([tuple(p) for p in points]).convex_hull
        ring = np.asarray(getattr(hull, "exterior", hull).coords, dtype=np.float64).reshape(-1, 2)
        diameter = float(np.max(np.linalg.norm(ring[:, None, :] - ring[None, :, :], axis=-1)))
        # A degenerate polygon (one vertex) still marks tumour: at least one pixel across.
        best = max(best or 0.0, diameter, 1.0)
    return None if best is None else best * mpp / 1000.0
