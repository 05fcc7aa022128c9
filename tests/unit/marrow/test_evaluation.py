"""Cross-validated marrow metrics: MDS is the positive class, intervals come from the shared
metrics, folds and cases aggregate as documented, and the ROC figure is a PNG."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from pathstream.services.marrow.training.evaluation import (
    Predictions,
    case_level,
    classification_metrics,
    cross_validation_report,
    macro_auc,
    roc_png,
)
from pathstream.training.classification_metrics import roc_auc, wilson_interval

BINARY = ("mds", "aml")
THREE = ("mds", "aml", "donor")


def _binary(p_mds: list[float]) -> np.ndarray:
    p = np.array(p_mds)
    return np.stack([p, 1 - p], axis=1)


def test_binary_metrics_take_mds_column_zero_as_positive() -> None:
    labels = np.array([0, 0, 0, 1, 1, 1])  # 0 = MDS
    probabilities = _binary([0.9, 0.8, 0.4, 0.6, 0.2, 0.1])
    metrics = classification_metrics(labels, probabilities, BINARY)
    # Called MDS: images 0, 1 (right) and 3 (wrong); MDS missed: image 2.
    assert metrics["precision"]["value"] == pytest.approx(2 / 3)
    assert metrics["precision"]["ci"] == list(wilson_interval(2, 3))
    assert metrics["recall"]["value"] == pytest.approx(2 / 3)
    assert metrics["accuracy"]["value"] == pytest.approx(4 / 6)
    assert metrics["accuracy"]["ci"] == list(wilson_interval(4, 6))
    expected = roc_auc((labels == 0).astype(int), probabilities[:, 0])
    assert metrics["auc"]["value"] == pytest.approx(expected.auc)
    assert metrics["auc"]["ci"] == [expected.low, expected.high]
    assert metrics["counts"] == {"mds": 3, "aml": 3}


def test_three_class_macro_values_are_means_over_one_vs_rest() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 6)
    logits = rng.normal(size=(18, 3)) + 2.0 * np.eye(3)[labels]
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    metrics = classification_metrics(labels, probabilities, THREE)
    aucs = [roc_auc((labels == c).astype(int), probabilities[:, c]).auc for c in range(3)]
    assert metrics["auc"]["value"] == pytest.approx(np.mean(aucs))
    assert metrics["auc"]["ci"] is None
    for c, name in enumerate(THREE):
        assert metrics["per_class"][name]["auc"]["value"] == pytest.approx(aucs[c])
        assert metrics["per_class"][name]["auc"]["ci"] is not None


def test_a_class_never_predicted_counts_as_zero_precision_in_the_macro() -> None:
    labels = np.array([0, 1, 2])
    probabilities = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.8, 0.1]])
    metrics = classification_metrics(labels, probabilities, THREE)
    assert metrics["per_class"]["donor"]["precision"]["value"] is None
    assert metrics["precision"]["value"] == pytest.approx((1.0 + 0.5 + 0.0) / 3)


def _cv_predictions() -> Predictions:
    """Two folds, four patients each with two images; fold 2 perfect, fold 1 imperfect."""
    patients = [f"P{i}" for i in range(8) for _ in range(2)]
    labels = np.array([i % 2 for i in range(8) for _ in range(2)])
    folds = np.array([0 if i < 4 else 1 for i in range(8) for _ in range(2)])
    p_mds = np.where(labels == 0, 0.9, 0.1)
    p_mds[0], p_mds[2] = 0.3, 0.35  # P0 (MDS): one weak ROI; P1 (AML): one ROI scores high
    return Predictions(patients, labels, np.stack([p_mds, 1 - p_mds], axis=1), folds)


def test_case_level_averages_a_patients_rois() -> None:
    cases = case_level(_cv_predictions())
    assert cases.patient_ids == [f"P{i}" for i in range(8)]
    assert cases.probabilities[0, 0] == pytest.approx((0.3 + 0.9) / 2)
    assert cases.probabilities[1, 0] == pytest.approx((0.35 + 0.1) / 2)
    assert cases.labels.tolist() == [0, 1] * 4
    assert cases.folds.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


def test_cross_validation_report_per_fold_macro_and_pooled() -> None:
    predictions = _cv_predictions()
    report = cross_validation_report(predictions, BINARY)
    images = report["images"]
    fold_aucs = [f["auc"]["value"] for f in images["folds"]]
    assert [f["fold"] for f in images["folds"]] == [1, 2]
    assert fold_aucs[1] == 1.0
    macro = images["macro_average"]["auc"]
    assert macro["value"] == pytest.approx(np.mean(fold_aucs))
    half = 12.706 * np.std(fold_aucs, ddof=1) / math.sqrt(2)  # t(0.975, 1 df)
    assert macro["ci"] == pytest.approx([max(0.0, macro["value"] - half), min(1.0, macro["value"] + half)])
    assert macro["folds"] == 2
    assert images["pooled"]["n"] == 16
    assert report["cases"]["pooled"]["n"] == 8
    assert report["cases"]["pooled"]["accuracy"]["value"] == 1.0  # the means call every case right
    assert macro_auc(predictions, BINARY) == pytest.approx(macro["value"])


def test_macro_auc_is_undefined_when_a_fold_lacks_a_class() -> None:
    predictions = _cv_predictions()
    one_class = predictions.subset(~((predictions.folds == 1) & (predictions.labels == 1)))
    assert macro_auc(one_class, BINARY) is None


@pytest.mark.parametrize("classes", [BINARY, THREE])
def test_roc_png_is_a_png(tmp_path: Path, classes: tuple[str, ...]) -> None:
    rng = np.random.default_rng(1)
    n = 30
    labels = np.arange(n) % len(classes)
    probabilities = rng.dirichlet(np.ones(len(classes)), size=n) + np.eye(len(classes))[labels]
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    predictions = Predictions([f"P{i}" for i in range(n)], labels, probabilities, np.arange(n) // 10)
    out = tmp_path / "roc.png"
    roc_png(out, predictions, classes, title="test")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 10_000
