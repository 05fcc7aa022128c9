"""Binary classification metrics with confidence intervals, in plain numpy (ESCNN and marrow share them).

- ROC AUC is the Mann-Whitney statistic (ties count one half); its confidence interval uses
  DeLong's variance (DeLong et al. 1988, fast form of Sun & Xu 2014), a closed form that needs no
  resampling, so the same scores always give the same interval.
- At an operating threshold (score >= threshold means positive): sensitivity and specificity with
  Wilson score intervals, and the Matthews correlation coefficient.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np


def _as_arrays(
    labels: np.ndarray | list[int], scores: np.ndarray | list[float]
) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels).astype(int).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"{y.size} labels but {s.size} scores")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (negative) or 1 (positive)")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    return y, s


def _midranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    ranks = np.empty(len(values), np.float64)
    start = 0
    while start < len(values):
        stop = start
        while stop + 1 < len(values) and sorted_values[stop + 1] == sorted_values[start]:
            stop += 1
        ranks[order[start : stop + 1]] = (start + stop) / 2.0 + 1.0
        start = stop + 1
    return ranks


@dataclass(frozen=True)
class AucResult:
    """ROC AUC with its DeLong confidence interval."""

    auc: float
    low: float
    high: float
    level: float
    positives: int
    negatives: int


def roc_auc(
    labels: np.ndarray | list[int], scores: np.ndarray | list[float], level: float = 0.95
) -> AucResult:
    """AUC of `scores` for binary `labels` (1 = positive) with a `level` DeLong interval.

    Raises ValueError when a class is missing (the AUC is undefined then).
    """
    y, s = _as_arrays(labels, scores)
    positives, negatives = s[y == 1], s[y == 0]
    m, n = len(positives), len(negatives)
    if m == 0 or n == 0:
        raise ValueError(f"the AUC needs both classes; got {m} positive and {n} negative")
    all_ranks = _midranks(np.concatenate([positives, negatives]))
    rank_pos, rank_neg = _midranks(positives), _midranks(negatives)
    auc = (all_ranks[:m].sum() - m * (m + 1) / 2.0) / (m * n)
    # DeLong structural components: per positive, the share of negatives it outranks, and vice versa.
    v10 = (all_ranks[:m] - rank_pos) / n
    v01 = 1.0 - (all_ranks[m:] - rank_neg) / m
    variance = (np.var(v10, ddof=1) / m if m > 1 else 0.0) + (np.var(v01, ddof=1) / n if n > 1 else 0.0)
    z = NormalDist().inv_cdf(0.5 + level / 2.0)
    half = z * math.sqrt(max(variance, 0.0))
    return AucResult(
        auc=float(auc),
        low=float(max(0.0, auc - half)),
        high=float(min(1.0, auc + half)),
        level=level,
        positives=m,
        negatives=n,
    )


def roc_curve(
    labels: np.ndarray | list[int], scores: np.ndarray | list[float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false-positive rates, true-positive rates, thresholds), from (0, 0) to (1, 1).

    Point k is the classifier "score >= thresholds[k]"; the first threshold is +inf.
    """
    y, s = _as_arrays(labels, scores)
    thresholds = np.concatenate([[np.inf], np.unique(s)[::-1]])
    positives, negatives = max(int(y.sum()), 1), max(int((1 - y).sum()), 1)
    tpr = np.array([((s >= t) & (y == 1)).sum() / positives for t in thresholds])
    fpr = np.array([((s >= t) & (y == 0)).sum() / negatives for t in thresholds])
    return fpr, tpr, thresholds


def wilson_interval(successes: int, total: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion; (0, 1) when `total` is 0."""
    if total == 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + level / 2.0)
    p = successes / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class OperatingPoint:
    """Confusion counts and rates at one threshold (score >= threshold is positive)."""

    threshold: float
    tp: int
    fp: int
    tn: int
    fn: int
    sensitivity: float
    sensitivity_ci: tuple[float, float]
    specificity: float
    specificity_ci: tuple[float, float]
    mcc: float

    def to_json(self) -> dict[str, object]:
        """Plain dict for `--json` output."""
        return asdict(self)


def operating_point(
    labels: np.ndarray | list[int], scores: np.ndarray | list[float], threshold: float, level: float = 0.95
) -> OperatingPoint:
    """Sensitivity, specificity (Wilson intervals) and MCC at `threshold`."""
    y, s = _as_arrays(labels, scores)
    predicted = s >= threshold
    tp = int((predicted & (y == 1)).sum())
    fp = int((predicted & (y == 0)).sum())
    tn = int((~predicted & (y == 0)).sum())
    fn = int((~predicted & (y == 1)).sum())
    denominator = math.sqrt(float(tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return OperatingPoint(
        threshold=threshold,
        tp=tp,
        fp=fp,
        tn=tn,
        fn=fn,
        sensitivity=tp / (tp + fn) if tp + fn else float("nan"),
        sensitivity_ci=wilson_interval(tp, tp + fn, level),
        specificity=tn / (tn + fp) if tn + fp else float("nan"),
        specificity_ci=wilson_interval(tn, tn + fp, level),
        mcc=(tp * tn - fp * fn) / denominator if denominator else 0.0,
    )
