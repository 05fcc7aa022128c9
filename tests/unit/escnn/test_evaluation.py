"""ESCNN evaluation: slide = max over LNs, LN- and slide-level AUCs and thresholds, ROC PNG."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from pathstream.services.escnn.training.evaluation import (
    LnPrediction,
    evaluate_predictions,
    roc_png_for,
    slide_level,
)


def _cohort() -> list[LnPrediction]:
    rows = [
        ("A", 0, 0.05), ("A", 0, 0.10), ("A", 1, 0.70),  # positive slide, found
        ("B", 0, 0.20), ("B", 0, 0.45),  # negative slide with one false positive LN at 0.4
        ("C", 1, 0.30), ("C", 0, 0.02),  # positive slide, LN missed at 0.4, caught at 0.15
        ("D", 0, 0.01), ("D", 0, 0.12),  # negative slide
    ]  # fmt: skip
    return [LnPrediction(f"{s}_ln{i}", s, label, score) for i, (s, label, score) in enumerate(rows)]


def test_slide_score_is_the_max_over_its_lns_and_positive_if_any_ln_is() -> None:
    slides, labels, scores = slide_level(_cohort())
    assert slides == ["A", "B", "C", "D"]
    assert labels.tolist() == [1, 0, 1, 0] and scores.tolist() == [0.70, 0.45, 0.30, 0.12]


def test_metrics_at_both_levels_and_thresholds() -> None:
    result = evaluate_predictions(_cohort())
    ln, slide = result["ln"], result["slide"]
    assert (ln["n"], ln["positives"], slide["n"], slide["positives"]) == (9, 2, 4, 2)
    # LN level: positives 0.70 and 0.30 against 7 negatives; 0.30 is beaten by 0.45 only.
    assert ln["auc"] == pytest.approx((7 + 6) / 14)
    assert ln["auc_ci"][0] <= ln["auc"] <= ln["auc_ci"][1]
    general, screening = ln["thresholds"]["0.4"], ln["thresholds"]["0.15"]
    assert (general["tp"], general["fn"], general["fp"]) == (1, 1, 1)
    assert (screening["tp"], screening["fn"], screening["fp"]) == (2, 0, 2)
    # Slide level: scores 0.70, 0.30 (positive) vs 0.45, 0.12 (negative).
    assert slide["auc"] == pytest.approx(3 / 4)
    assert slide["thresholds"]["0.4"]["sensitivity"] == 0.5


def test_a_level_with_one_class_reports_no_auc() -> None:
    negatives = [LnPrediction(f"x{i}", "S", 0, 0.1 * i) for i in range(3)]
    result = evaluate_predictions(negatives)
    assert result["ln"]["auc"] is None and "both classes" in result["ln"]["auc_note"]


def test_roc_png_is_written(tmp_path: Path) -> None:
    path = tmp_path / "roc.png"
    roc_png_for(path, _cohort())
    image = cv2.imread(str(path))
    assert image is not None and image.shape[2] == 3 and min(image.shape[:2]) >= 400
    assert (image != 255).any(axis=2).mean() > 0.01  # axes, curves and text were drawn
    assert np.isfinite(image).all()
