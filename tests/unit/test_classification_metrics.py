"""AUC with DeLong intervals, Wilson intervals, operating points: checked against direct definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pathstream.training.classification_metrics import operating_point, roc_auc, roc_curve, wilson_interval


def _pairwise(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """psi(positive i, negative j): 1 if it scores higher, 1/2 on a tie (the definition)."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    return (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])


def test_auc_and_delong_interval_match_the_definitions_with_ties() -> None:
    rng = np.random.default_rng(0)
    labels = np.array([1] * 30 + [0] * 45)
    scores = np.round(
        np.concatenate([rng.normal(1.0, 1, 30), rng.normal(0, 1, 45)]), 1
    )  # rounding makes ties
    psi = _pairwise(labels, scores)
    m, n = psi.shape
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    variance = v10.var(ddof=1) / m + v01.var(ddof=1) / n
    result = roc_auc(labels, scores)
    assert result.auc == pytest.approx(psi.mean())
    assert result.high - result.auc == pytest.approx(1.959964 * math.sqrt(variance), rel=1e-5)
    assert result.low < result.auc < result.high and (result.positives, result.negatives) == (30, 45)


def test_perfect_and_reversed_rankings() -> None:
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]).auc == 1.0
    assert roc_auc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]).auc == 0.0
    assert roc_auc([0, 1], [0.5, 0.5]).auc == 0.5


def test_auc_needs_both_classes_and_clean_input() -> None:
    with pytest.raises(ValueError, match="both classes"):
        roc_auc([1, 1], [0.2, 0.3])
    with pytest.raises(ValueError, match="0 \\(negative\\) or 1"):
        roc_auc([0, 2], [0.2, 0.3])
    with pytest.raises(ValueError, match="finite"):
        roc_auc([0, 1], [0.2, float("nan")])


def test_roc_curve_runs_from_origin_to_one_and_its_area_is_the_auc() -> None:
    labels = np.array([0, 0, 1, 0, 1, 1, 0, 1])
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.7, 0.9, 0.2, 0.6])
    fpr, tpr, thresholds = roc_curve(labels, scores)
    assert (fpr[0], tpr[0]) == (0.0, 0.0) and (fpr[-1], tpr[-1]) == (1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0) and thresholds[0] == np.inf
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    assert area == pytest.approx(roc_auc(labels, scores).auc)


def test_wilson_interval_known_value() -> None:
    low, high = wilson_interval(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_operating_point_counts_sensitivity_specificity_and_mcc() -> None:
    labels = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    scores = [0.9, 0.5, 0.41, 0.2, 0.45, 0.1, 0.05, 0.3, 0.39, 0.0]
    point = operating_point(labels, scores, 0.4)
    assert (point.tp, point.fn, point.fp, point.tn) == (3, 1, 1, 5)
    assert point.sensitivity == 0.75 and point.specificity == pytest.approx(5 / 6)
    expected_mcc = (3 * 5 - 1 * 1) / math.sqrt(4 * 4 * 6 * 6)
    assert point.mcc == pytest.approx(expected_mcc)
    screening = operating_point(labels, scores, 0.15)
    assert screening.sensitivity == 1.0 and screening.fn == 0
